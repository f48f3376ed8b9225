# -*- test-case-name: sipedge.test.test_security_config -*-
"""
Tests for L{sipedge.security.SecurityConfig} and L{parse_security_config}.
"""

from __future__ import annotations

import tomllib

from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import ConfigError
from sipedge.security import (
    AUTHENTICATED,
    DEFAULT_SCANNER_USER_AGENTS,
    DEFAULT_THRESHOLDS,
    TRUSTED,
    UNAUTHENTICATED,
    Budget,
    SecurityConfig,
    evolve_config,
    parse_security_config,
)

FULL = """
[security]
unauthenticated_rate = 2
unauthenticated_burst = 4
authenticated_rate = 20.5
authenticated_burst = 40
trusted_rate = 10000
trusted_burst = 20000
max_rate_keys = 5000
flood_offence_interval = 2
max_authenticated_sources = 1000
ban_base = 30
ban_max = 3600
ban_memory = 0
offence_window = 120
flood_threshold = 4
scanner_threshold = 2
auth_failure_threshold = 10
monitor_threshold = 3
filter_threshold = 2
max_offence_keys = 500
purge_interval = 5
scanner_user_agents = ["friendly-scanner", "badbot"]
scanner_user_agent_patterns = ["^sip-?scan"]
"""


class SecurityConfigTests(SynchronousTestCase):
    """Tests for L{SecurityConfig}."""

    def parse(self, text: str) -> SecurityConfig:
        return parse_security_config(tomllib.loads(text).get("security"), "test.toml")

    def error(self, text: str) -> str:
        return str(self.assertRaises(ConfigError, self.parse, text))

    def test_defaults(self) -> None:
        """
        If there is no C{[security]} table, L{parse_security_config} gives
        the defaults: 5/s burst 10 for strangers, 50/s for authenticated
        sources, 5000/s for trusted ones, 60 s bans up to a day.
        """
        config = self.parse("")
        self.assertEqual(config, SecurityConfig())
        self.assertEqual(
            config.budgets,
            {
                UNAUTHENTICATED: Budget(5.0, 10.0),
                AUTHENTICATED: Budget(50.0, 100.0),
                TRUSTED: Budget(5000.0, 10000.0),
            },
        )
        self.assertEqual((config.ban_base, config.ban_max), (60.0, 86400.0))
        self.assertEqual(config.thresholds, dict(DEFAULT_THRESHOLDS))
        self.assertEqual(config.scanner_user_agents, DEFAULT_SCANNER_USER_AGENTS)
        self.assertEqual(self.parse("[security]\n"), SecurityConfig())

    def test_full(self) -> None:
        """If every key is set, L{parse_security_config} takes each (integers as numbers)."""
        config = self.parse(FULL)
        self.assertEqual(config.budgets[UNAUTHENTICATED], Budget(2.0, 4.0))
        self.assertEqual(config.budgets[AUTHENTICATED], Budget(20.5, 40.0))
        self.assertEqual(config.budgets[TRUSTED], Budget(10000.0, 20000.0))
        self.assertEqual(
            config.thresholds,
            {"flood": 4, "scanner": 2, "auth-failure": 10, "monitor": 3, "filter": 2},
        )
        self.assertEqual(
            (config.ban_base, config.ban_max, config.ban_memory, config.offence_window),
            (30.0, 3600.0, 0.0, 120.0),
        )
        self.assertEqual(
            (config.max_rate_keys, config.max_authenticated_sources, config.max_offence_keys),
            (5000, 1000, 500),
        )
        self.assertEqual((config.flood_offence_interval, config.purge_interval), (2.0, 5.0))
        self.assertEqual(config.scanner_user_agents, ("friendly-scanner", "badbot"))
        self.assertEqual(config.scanner_user_agent_patterns, ("^sip-?scan",))

    def test_errors_name_keys(self) -> None:
        """
        If a value is wrong, L{parse_security_config} raises L{ConfigError}
        naming the file, C{security.<key>} and what is wrong.
        """
        cases = {
            "unauthenticated_rate = 0": "test.toml: security.unauthenticated_rate: must be a"
            " positive number, not 0.0",
            "trusted_rate = 'fast'": "test.toml: security.trusted_rate: expected a number per"
            " second, got string 'fast'",
            "authenticated_burst = 0.5": "test.toml: security.authenticated_burst: must be at"
            " least 1, not 0.5",
            "ban_base = -1": "test.toml: security.ban_base: must be a positive number of"
            " seconds, not -1.0",
            "ban_memory = -1": "test.toml: security.ban_memory: must be a non-negative number"
            " of seconds, not -1.0",
            "flood_threshold = 0": "test.toml: security.flood_threshold: must be at least 1, not 0",
            "scanner_threshold = 1.5": "test.toml: security.scanner_threshold: expected an"
            " integer, got float 1.5",
            "max_rate_keys = true": "test.toml: security.max_rate_keys: expected an integer,"
            " got boolean true",
            "ban_base = 100\nban_max = 10": "test.toml: security.ban_base: must not exceed"
            " ban_max (10.0), not 100.0",
            "scanner_user_agents = 'sipvicious'": "test.toml: security.scanner_user_agents:"
            " expected an array, got string 'sipvicious'",
            "scanner_user_agents = ['ok', '  ']": "test.toml: security.scanner_user_agents[1]:"
            " must not be empty",
            "scanner_user_agents = ['ok', 3]": "test.toml: security.scanner_user_agents[1]:"
            " expected a string, got integer 3",
            "scanner_user_agent_patterns = ['ok', '(']": "test.toml:"
            " security.scanner_user_agent_patterns[1]: '(' is not a valid regular expression",
            "scanner_user_agent_patterns = ['.*']": "test.toml:"
            " security.scanner_user_agent_patterns[0]: '.*' matches the empty string",
            "ban_bsae = 5": "test.toml: security.ban_bsae: unknown key; did you mean 'ban_base'?",
        }
        for line, expected in cases.items():
            message = self.error(f"[security]\n{line}\n")
            self.assertTrue(message.startswith(expected), f"{line}: {message}")

    def test_not_a_table(self) -> None:
        """If C{security} is not a table, L{parse_security_config} says so."""
        self.assertEqual(
            self.error("security = 5"),
            "test.toml: security: expected a table ([security]), got integer 5",
        )

    def test_section_errors(self) -> None:
        """
        If L{SecurityConfig} is built directly with a bad value, it raises
        L{sipedge.config}'s section error, with the key relative to the
        section (so L{sipedge.config} can prefix C{security.}).
        """
        from sipedge.config import InvalidValue

        error = self.assertRaises(InvalidValue, SecurityConfig, trusted_burst=0)
        self.assertEqual(error.key, "trusted_burst")
        self.assertEqual(error.within("security").key, "security.trusted_burst")

    def test_evolve(self) -> None:
        """
        If stage options change values, L{evolve_config} applies them under
        their option names, and names the option in errors.
        """
        aliases = {"max_keys": "max_rate_keys"}
        config = evolve_config(
            SecurityConfig(),
            {"max_keys": 7, "trusted_rate": 1},
            "pipeline.options.flood",
            aliases,
        )
        self.assertEqual((config.max_rate_keys, config.trusted_rate), (7, 1.0))
        error = self.assertRaises(
            ConfigError, evolve_config, SecurityConfig(), {"max_keys": 0}, "p", aliases
        )
        self.assertEqual(str(error), "p.max_keys: must be at least 1, not 0")
        error = self.assertRaises(
            ConfigError, evolve_config, SecurityConfig(), {"nonsense": 0}, "p", aliases
        )
        self.assertEqual(str(error), "p.nonsense: unknown option")
