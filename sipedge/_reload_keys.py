# -*- test-case-name: sipedge.test.test_reload_keys -*-
"""
Which configuration keys a reload can apply to the running proxy, and
which need a restart.

L{split_config} compares the running configuration with the one just read
and makes the configuration the proxy runs on after the reload: the file's
value for every key that can change live (L{LIVE}), the running value for
every other key, each of which is reported as needing a restart. Reporting
the running value (not the file's) as what runs means the next reload
reports the same keys again, until a restart applies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from sipedge.config import Config, PipelineConfig
from sipedge.security import LIVE_KEYS as _SECURITY_LIVE_KEYS

__all__ = ["LIVE", "PINNED_STAGE", "ConfigSplit", "split_config"]

#: Keys a reload applies (a section name stands for all its keys).
LIVE = frozenset({
    "sip.domains",
    "tls.certificate",
    "tls.private_key",
    "tls.profile",
    "tls.ciphers",
    "tls.verify_client",
    "registrar.min_expires",
    "registrar.max_expires",
    "registrar.default_expires",
    "registrar.nat_expires",
    "routes",
    "pipeline",
    "auth.realm",
    "auth.algorithms",
    "auth.minimum_algorithm",
    "auth.require_for_our_domains",
})

#: The stage that holds live calls (and their relay sessions): never
#: rebuilt by a reload, so its options and adding or removing it need a
#: restart (as C{[media]} does).
PINNED_STAGE = "media-anchor"


@attrs.frozen
class ConfigSplit:
    """
    @ivar running: the configuration to run on after the reload.
    @ivar applied: the keys that change now (dotted: C{sip.domains},
        C{routes}, C{security.monitor.request_rate}).
    @ivar needs_restart: one line per key that changed in the file but
        keeps its running value until a restart.
    @ivar changes: one line per key of C{applied}, with its old and new
        value.
    """

    running: Config
    applied: tuple[str, ...]
    needs_restart: tuple[str, ...]
    changes: tuple[str, ...] = ()


def _is_live(key: str) -> bool:
    if key in LIVE:
        return True
    if key.startswith("security."):
        return key.removeprefix("security.") in _SECURITY_LIVE_KEYS
    return False


def _show(value: object) -> str:
    """A value as a line of the report shows it (at most 60 characters)."""
    if isinstance(value, tuple):
        text = "[" + ", ".join(str(item) for item in value) + "]"
    elif isinstance(value, (str, Path)):
        text = repr(str(value))
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _restart(key: str, old: object, new: object) -> str:
    return f"{key}: needs a restart (running with {_show(old)}, the file has {_show(new)})"


class _Splitter:
    def __init__(self) -> None:
        self.applied: list[str] = []
        self.changes: list[str] = []
        self.restart: list[str] = []

    def merge(self, old: Any, new: Any, key: str) -> Any:
        """The value to run on for C{key}: C{new}, C{old} or a mix of their fields."""
        if old == new:
            return old
        if key == "pipeline":
            return self._pipeline(old, new)
        if (_is_live(key) and not attrs.has(type(old))) or key in LIVE:
            self.applied.append(key)
            if key == "routes":
                self.changes.append(f"routes: {len(new)} static routes (were {len(old)})")
            else:
                self.changes.append(f"{key}: {_show(old)} -> {_show(new)}")
            return new
        if not attrs.has(type(old)):
            self.restart.append(_restart(key, old, new))
            return old
        applied, restart = len(self.applied), len(self.restart)
        changes = len(self.changes)
        fields = {}
        for field in attrs.fields(type(old)):
            name = field.name
            merged = self.merge(getattr(old, name), getattr(new, name), f"{key}.{name}".lstrip("."))
            if merged is not getattr(old, name):
                fields[name] = merged
        if not fields:
            return old
        try:
            return attrs.evolve(old, **fields)
        except (ValueError, TypeError):
            # The live keys do not stand without the others: all wait.
            del self.applied[applied:], self.restart[restart:], self.changes[changes:]
            self.restart.append(f"{key}: needs a restart (its keys change together)")
            return old

    def _pipeline(self, old: PipelineConfig, new: PipelineConfig) -> PipelineConfig:
        if (PINNED_STAGE in old.stages) != (PINNED_STAGE in new.stages):
            self.restart.append(
                f"pipeline.stages: needs a restart (adds or removes {PINNED_STAGE}, which"
                " holds the live calls)"
            )
            return old
        before, after = old.options.get(PINNED_STAGE), new.options.get(PINNED_STAGE)
        if before != after:
            self.restart.append(_restart(f"pipeline.options.{PINNED_STAGE}", before, after))
            options: dict[str, Mapping[str, Any]] = dict(new.options)
            if before is None:
                del options[PINNED_STAGE]
            else:
                options[PINNED_STAGE] = before
            new = attrs.evolve(new, options=options)
            if new == old:
                return old
        self.applied.append("pipeline")
        self.changes.append(
            "pipeline: stages and options as in the file"
            + ("" if new.stages == old.stages else f" (now {', '.join(new.stages)})")
        )
        return new


def split_config(running: Config, loaded: Config) -> ConfigSplit:
    """
    What of C{loaded} (just read from the file) a reload applies to the
    proxy running on C{running}.
    """
    splitter = _Splitter()
    merged = splitter.merge(running, loaded, "")
    return ConfigSplit(
        merged, tuple(splitter.applied), tuple(splitter.restart), tuple(splitter.changes)
    )
