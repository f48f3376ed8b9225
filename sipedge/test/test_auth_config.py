# -*- test-case-name: sipedge.test.test_auth_config -*-
"""
Tests for L{sipedge.auth.AuthConfig}, the C{[auth]} section.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sipedge.auth import AuthConfig, parse_auth_config
from sipedge.config import InvalidValue, parse_config
from sipedge.error import ConfigError


class AuthConfigTests(SynchronousTestCase):
    """Tests for L{AuthConfig} and L{parse_auth_config}."""

    def error(self, table: Any, prefix: str = "auth") -> str:
        return str(self.assertRaises(ConfigError, parse_auth_config, table, prefix))

    def test_defaults(self) -> None:
        """By default: the first domain, 300 seconds, all three algorithms, required."""
        config = AuthConfig()
        self.assertEqual(
            (config.realm, config.nonce_lifetime, config.algorithms),
            (None, 300.0, ("SHA-512-256", "SHA-256", "MD5")),
        )
        self.assertTrue(config.require_for_our_domains)
        self.assertEqual(parse_auth_config({}), config)

    def test_values(self) -> None:
        """
        Every key is read; integers are seconds; algorithm names become
        canonical, strongest first.
        """
        config = parse_auth_config(
            {
                "realm": "example.com",
                "nonce_lifetime": 60,
                "algorithms": ["md5", "sha-256"],
                "require_for_our_domains": False,
            }
        )
        self.assertEqual(
            config,
            AuthConfig(
                realm="example.com",
                nonce_lifetime=60.0,
                algorithms=("SHA-256", "MD5"),
                require_for_our_domains=False,
            ),
        )

    def test_sess(self) -> None:
        """-sess algorithms may be offered too."""
        config = parse_auth_config({"algorithms": ["MD5-sess", "SHA-256"]})
        self.assertEqual(config.algorithms, ("SHA-256", "MD5-sess"))

    def test_base(self) -> None:
        """Keys given replace those of C{base}; the others are kept."""
        base = AuthConfig(realm="example.com", nonce_lifetime=30)
        config = parse_auth_config({"nonce_lifetime": 90}, base=base)
        self.assertEqual((config.realm, config.nonce_lifetime), ("example.com", 90.0))

    def test_errors(self) -> None:
        """Each bad value is a L{ConfigError} naming C{auth.<key>} and the problem."""
        cases = [
            ({"realm": 5}, "auth.realm: expected a string, got integer 5"),
            ({"realm": ""}, "auth.realm: must be non-empty text"),
            ({"realm": " x"}, "auth.realm: must be non-empty text"),
            ({"realm": "a\nb"}, "auth.realm: must not contain control characters"),
            ({"nonce_lifetime": 0}, "auth.nonce_lifetime: must be more than 0"),
            (
                {"nonce_lifetime": 86401},
                "auth.nonce_lifetime: must be more than 0 and at most 86400",
            ),
            ({"nonce_lifetime": "5"}, "auth.nonce_lifetime: expected a number of seconds"),
            ({"nonce_lifetime": True}, "auth.nonce_lifetime: expected a number of seconds"),
            ({"algorithms": "MD5"}, "auth.algorithms: expected an array of names"),
            ({"algorithms": []}, "auth.algorithms: must name at least one algorithm"),
            ({"algorithms": ["MD5", "SHA-1"]}, "auth.algorithms[1]: unknown algorithm 'SHA-1'"),
            ({"algorithms": [1]}, "auth.algorithms[0]: expected an algorithm name"),
            ({"algorithms": ["MD5", "md5"]}, "auth.algorithms[1]: 'MD5' is already algorithms[0]"),
            (
                {"require_for_our_domains": 1},
                "auth.require_for_our_domains: expected true or false",
            ),
            ({"relam": "x"}, "auth.relam: unknown key; did you mean 'realm'?"),
            ([], "auth: expected a table, got array"),
        ]
        for table, message in cases:
            self.assertIn(message, self.error(table))

    def test_prefix(self) -> None:
        """The prefix names where the table came from."""
        self.assertIn(
            "pipeline.options.digest-auth.nonce_lifetime:",
            self.error({"nonce_lifetime": -1}, "pipeline.options.digest-auth"),
        )

    def test_config_section(self) -> None:
        """
        L{AuthConfig} raises the grammar's L{InvalidValue} with the key
        relative to the section, so the loader names C{auth.<key>}.
        """
        error = self.assertRaises(InvalidValue, AuthConfig, nonce_lifetime=0)
        self.assertEqual(error.within("auth").key, "auth.nonce_lifetime")
        error = self.assertRaises(ConfigError, parse_config, {"auth": {"nonce_lifetime": 0}})
        self.assertIn("auth.nonce_lifetime:", str(error))

    def test_realm_for(self) -> None:
        """The realm is C{realm}, else the first domain; with neither, a L{ConfigError}."""
        self.assertEqual(AuthConfig(realm="r").realm_for(("a", "b")), "r")
        self.assertEqual(AuthConfig().realm_for(("a", "b")), "a")
        error = self.assertRaises(ConfigError, AuthConfig().realm_for, ())
        self.assertIn("auth.realm", str(error))
