# -*- test-case-name: sipedge.test.test_kernel_bans -*-
"""
Kernel bans (C{[security] kernel_bans = true}): the ban list mirrored into
an nftables set, so that packets from banned sources to our SIP ports are
dropped by the kernel and never reach Python.

One table of our own, C{inet sipedge} by default:

    table inet sipedge {
        set banned4 { type ipv4_addr; flags timeout; }
        set banned6 { type ipv6_addr; flags timeout; }
        set ports { type inet_service; }
        chain prerouting {
            type filter hook prerouting priority raw; policy accept;
            ip saddr @banned4 meta l4proto { tcp, udp } th dport @ports drop
            ip6 saddr @banned6 meta l4proto { tcp, udp } th dport @ports drop
        }
    }

Each ban becomes an element with the ban's remaining time as its timeout,
so the kernel forgets it when the ban ends; a lifted ban is deleted. Only
our SIP ports are covered (a banned address may still reach SSH, the web
server or the media relay). The hook runs before connection tracking.

Changes are batched: L{KernelBans.changed} asks for a sync a moment later
(C{delay}), and one C{nft -f -} run applies the difference between the
active bans and what the set holds. A run that fails (a race with a
kernel timeout, or no permission) is logged, and the next sync rebuilds
the sets whole. Each run blocks the caller for the few milliseconds nft
takes; batching bounds that to a few runs a second in a storm of bans.
"""

from __future__ import annotations

import ipaddress
import math
import subprocess
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["DEFAULT_TABLE", "KernelBans", "run_nft"]

DEFAULT_TABLE = "sipedge"

#: Bans ending within this many seconds are left to the kernel's timeout
#: rather than deleted (a delete of an element the kernel just dropped
#: would fail the whole batch).
_MARGIN = 1.0


def run_nft(script: str, command: Sequence[str] = ("nft",)) -> None:
    """
    Run C{nft -f -} with C{script} (atomic: all of it or none).

    @param command: the nft program (with a prefix such as C{ip netns exec
        NAME} to run it elsewhere).

    @raise OSError: if nft cannot run or refuses the script (its message).
    """
    try:
        result = subprocess.run(
            [*command, "-f", "-"], input=script, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise OSError(f"cannot run nft: {e}") from e
    if result.returncode != 0:
        raise OSError(result.stderr.strip() or f"nft exited with {result.returncode}")


def _family(source: str) -> str | None:
    """C{banned4}, C{banned6}, or C{None} for what is not an IP address."""
    try:
        address = ipaddress.ip_address(source.strip("[]"))
    except ValueError:
        return None
    return "banned4" if address.version == 4 else "banned6"


def _timeout(seconds: float) -> str:
    """An nft element timeout (whole seconds, at least 1), or nothing for never."""
    if math.isinf(seconds):
        return ""
    return f" timeout {max(1, math.ceil(seconds))}s"


class KernelBans:
    """
    The nftables mirror of a ban list.

    @ivar table: the C{inet} table's name.
    @ivar installed: address -> when its element ends (C{inf} for never),
        as this object last wrote them.
    @ivar runs: C{nft} runs made; @ivar failures: of them, failed.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        active: Callable[[float], Iterable[Any]],
        *,
        table: str = DEFAULT_TABLE,
        run: Callable[[str], None] = run_nft,
        delay: float = 0.2,
    ) -> None:
        """
        @param clock: for the batching delay and the bans' remaining time.
        @param active: returns the active bans (with C{source} and
            C{expires_at}) at a time: C{IBanStore.list}.
        @param run: applies an nft script (L{run_nft}); raises C{OSError}.
        @param delay: seconds between a change and its sync.
        """
        self.clock = clock
        self.table = table
        self._active = active
        self._run = run
        self._delay = delay
        self.installed: dict[str, float] = {}
        self.ports: tuple[int, ...] = ()
        self.started = False
        self._whole = True
        self._pending: IDelayedCall | None = None
        self.runs = 0
        self.failures = 0

    def _apply(self, script: str) -> bool:
        self.runs += 1
        try:
            self._run(script)
        except OSError as e:
            self.failures += 1
            self._log.error(
                "Kernel bans: nft refused the change to table inet {table}: {error}",
                table=self.table, error=str(e), rule="kernel-bans",
            )
            return False
        return True

    def table_script(self) -> str:
        """The script that (re)creates our table, empty, for L{ports}."""
        t = self.table
        ports = ", ".join(str(p) for p in sorted(set(self.ports)))
        elements = f"elements = {{ {ports} }}; " if ports else ""
        return (
            f"table inet {t}\n"
            f"delete table inet {t}\n"
            f"table inet {t} {{\n"
            "  set banned4 { type ipv4_addr; flags timeout; }\n"
            "  set banned6 { type ipv6_addr; flags timeout; }\n"
            f"  set ports {{ type inet_service; {elements}}}\n"
            "  chain prerouting {\n"
            "    type filter hook prerouting priority raw; policy accept;\n"
            "    ip saddr @banned4 meta l4proto { tcp, udp } th dport @ports drop\n"
            "    ip6 saddr @banned6 meta l4proto { tcp, udp } th dport @ports drop\n"
            "  }\n"
            "}\n"
        )

    def start(self, ports: Iterable[int]) -> bool:
        """
        Create the table for our SIP C{ports} and fill it with the active
        bans; C{False} (logged) if nft refused.
        """
        self.ports = tuple(ports)
        self.started = True
        if not self._apply(self.table_script()):
            self.started = False
            return False
        self._whole = False  # a new table: its sets are empty
        self.installed = {}
        self.sync()
        return True

    def changed(self) -> None:
        """The ban list changed: sync a moment from now (batched)."""
        if not self.started or self._pending is not None:
            return
        self._pending = self.clock.callLater(self._delay, self._sync_later)

    def _sync_later(self) -> None:
        self._pending = None
        self.sync()

    def sync(self) -> bool:
        """Make the sets hold the active bans now; C{False} if nft refused."""
        if not self.started:
            return True
        now = self.clock.seconds()
        wanted: dict[str, float] = {}
        for ban in self._active(now):
            if _family(ban.source) is not None and ban.expires_at > now:
                wanted[ban.source] = ban.expires_at
        lines: list[str] = []
        t = self.table
        if self._whole:
            lines += [f"flush set inet {t} banned4", f"flush set inet {t} banned6"]
            installed: dict[str, float] = {}
        else:
            installed = self.installed
        for source, ends in installed.items():
            if ends - now <= _MARGIN:
                continue  # the kernel drops it itself
            if wanted.get(source) != ends:
                lines.append(f"delete element inet {t} {_family(source)} {{ {source} }}")
        for source, ends in wanted.items():
            if installed.get(source) == ends and ends - now > _MARGIN:
                continue
            timeout = _timeout(ends - now)
            lines.append(f"add element inet {t} {_family(source)} {{ {source}{timeout} }}")
        if not lines:
            self.installed = wanted
            return True
        if not self._apply("\n".join(lines) + "\n"):
            self._whole = True
            return False
        self._whole = False
        self.installed = wanted
        return True

    def stop(self) -> None:
        """Remove our table (idempotent); nothing is dropped in the kernel after."""
        pending, self._pending = self._pending, None
        if pending is not None and pending.active():
            pending.cancel()
        if self.started:
            self.started = False
            self._apply(f"table inet {self.table}\ndelete table inet {self.table}\n")
            self.installed = {}
