# -*- test-case-name: sipedge.test.test_doc_config -*-
"""
The documentation of the configuration file against the code that reads
it: every key a section accepts is in a table (or, for C{[auth]}, the
example) of the document that describes the section, and every key such a
table names is accepted. A key added without its documentation, or
documented and since renamed, fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import attrs
from twisted.trial.unittest import SynchronousTestCase

from sipedge import config
from sipedge.security import MonitorConfig, TollFraudConfig
from sipedge.security._filter import _OPTION_KEYS, _RULE_KEYS

DOC = Path(__file__).resolve().parents[2] / "doc"

#: A key in a table's first column: `name` (several may share a row).
_KEY = re.compile(r"`([a-z_0-9]+)`")


def _lines_after(document: str, heading: str) -> list[str]:
    """The lines of C{document} after the heading line C{heading}, to the next heading."""
    lines = (DOC / document).read_text(encoding="utf-8").splitlines()
    matches = [i for i, line in enumerate(lines) if line.strip() == heading]
    if len(matches) != 1:
        raise AssertionError(f"{document}: {len(matches)} headings {heading!r}")
    out = []
    for line in lines[matches[0] + 1 :]:
        if line.startswith("#"):
            break
        out.append(line)
    return out


def table_keys(document: str, heading: str, table: int = 0) -> set[str]:
    """
    The keys in the first column of the C{table}th table under
    C{heading} in C{doc/<document>}.
    """
    tables: list[list[str]] = []
    current: list[str] | None = None
    for line in _lines_after(document, heading):
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            current.append(line)
        else:
            current = None
    if len(tables) <= table:
        raise AssertionError(f"{document}: no table {table} under {heading!r}")
    keys: set[str] = set()
    for row in tables[table][2:]:  # after the header and its separator
        first = row.strip("|").split("|", 1)[0]
        keys.update(_KEY.findall(first))
    return keys


def toml_keys(document: str, heading: str, section: str) -> set[str]:
    """The keys of C{[section]} in the first TOML example under C{heading}."""
    text = "\n".join(_lines_after(document, heading))
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    if block is None:
        raise AssertionError(f"{document}: no TOML example under {heading!r}")
    return set(tomllib.loads(block.group(1))[section])


def fields(kind: type) -> set[str]:
    """The keys a section of type C{kind} accepts."""
    return set(attrs.fields_dict(kind))


class ConfigurationDocTests(SynchronousTestCase):
    """Every configuration key is documented where its section is, and no other."""

    def assertDocumented(self, accepted: set[str], documented: set[str], where: str) -> None:
        """C{documented} names exactly the C{accepted} keys."""
        self.assertEqual(
            (sorted(accepted - documented), sorted(documented - accepted)),
            ([], []),
            f"{where}: (accepted but not documented, documented but not accepted)",
        )

    def test_every_section_in_configuration_md(self) -> None:
        """Each section the reader knows has its heading in doc/configuration.md."""
        text = (DOC / "configuration.md").read_text(encoding="utf-8")
        headings = set(re.findall(r"^## `\[\[?([a-z_]+)\]\]?`$", text, re.M))
        self.assertEqual(sorted(headings), sorted([*config.SECTIONS, "routes"]))

    def test_configuration_md_tables(self) -> None:
        """The sections doc/configuration.md documents in a table of their own."""
        for name in (
            "sip",
            "tls",
            "state",
            "limits",
            "timers",
            "registrar",
            "dialogs",
            "topology_hiding",
            "relay",
            "log",
            "hep",
            "metrics",
            "accounting",
            "admin",
            "process",
        ):
            self.assertDocumented(
                fields(config.SECTIONS[name]),
                table_keys("configuration.md", f"## `[{name}]`"),
                f"configuration.md [{name}]",
            )

    def test_pipeline(self) -> None:
        """C{[pipeline]}: C{stages} and C{options.<stage>}."""
        documented = table_keys("configuration.md", "## `[pipeline]`")
        # `options.<stage>` is written as a pattern: its first word counts.
        self.assertDocumented(fields(config.PipelineConfig), documented | {"options"}, "[pipeline]")
        text = "\n".join(_lines_after("configuration.md", "## `[pipeline]`"))
        self.assertIn("`options.<stage>`", text)

    def test_routes(self) -> None:
        """C{[[routes]]}."""
        self.assertDocumented(
            fields(config.Route), table_keys("configuration.md", "## `[[routes]]`"), "[[routes]]"
        )

    def test_filter_options(self) -> None:
        """C{[pipeline.options.filter]} and the keys of its rules."""
        heading = "### `[pipeline.options.filter]`"
        self.assertDocumented(set(_OPTION_KEYS), table_keys("configuration.md", heading), heading)
        self.assertDocumented(
            set(_RULE_KEYS), table_keys("configuration.md", heading, 1), f"{heading} rules"
        )

    def test_auth(self) -> None:
        """C{[auth]}: the example in doc/authentication.md names every key."""
        self.assertDocumented(
            fields(config.SECTIONS["auth"]),
            toml_keys("authentication.md", "## Configuration", "auth"),
            "authentication.md [auth]",
        )

    def test_security(self) -> None:
        """C{[security]} and its sub-tables, in doc/security.md."""
        documented = table_keys("security.md", "## `[security]`")
        self.assertDocumented(
            fields(config.SECTIONS["security"]),
            documented | {"monitor", "toll_fraud"},
            "[security]",
        )
        self.assertDocumented(
            fields(MonitorConfig),
            table_keys("security.md", "### `[security.monitor]`"),
            "[security.monitor]",
        )
        self.assertDocumented(
            fields(TollFraudConfig),
            table_keys("security.md", "### `[security.toll_fraud]`"),
            "[security.toll_fraud]",
        )

    def test_media(self) -> None:
        """C{[media]}, in doc/media.md."""
        self.assertDocumented(
            fields(config.SECTIONS["media"]),
            table_keys("media.md", "### `[media]`"),
            "media.md [media]",
        )

    def test_relay_protocol(self) -> None:
        """C{[relay]} is documented in doc/relay-protocol.md too, with the same keys."""
        self.assertDocumented(
            fields(config.SECTIONS["relay"]),
            table_keys("relay-protocol.md", "### `[relay]`"),
            "relay-protocol.md [relay]",
        )
