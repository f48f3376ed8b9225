"""
Tests for L{sipedge.config}: the errors, validators and table
parsing shared by the sections of the configuration.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from sipedge import config
from sipedge.config import (
    InvalidValue,
    boolean,
    describe,
    each,
    integer,
    join,
    network,
    non_negative_integer,
    parse_table,
    seconds,
    suggest,
    to_float,
)
from sipedge.error import ConfigError


@attrs.frozen
class _Section:
    flag: bool = attrs.field(default=False, validator=boolean)
    count: int = attrs.field(default=1, validator=integer(1, 10))
    limit: int = attrs.field(default=0, validator=non_negative_integer("off"))
    wait: float = attrs.field(default=1.0, converter=to_float, validator=seconds())
    grace: float = attrs.field(
        default=0.0, converter=to_float, validator=seconds(minimum_exclusive=False)
    )


def _problem(**values: Any) -> tuple[str, str]:
    try:
        _Section(**values)
    except InvalidValue as e:
        return e.key, e.problem
    raise AssertionError(f"{values} accepted")


class InvalidValueTests(SynchronousTestCase):
    def test_message(self) -> None:
        """The message is C{key: problem}, or the problem alone without a key."""
        self.assertEqual(str(InvalidValue("a", "bad")), "a: bad")
        self.assertEqual(str(InvalidValue("", "bad")), "bad")
        self.assertIsInstance(InvalidValue("a", "bad"), ConfigError)

    def test_within(self) -> None:
        """L{InvalidValue.within} puts a prefix before the key."""
        e = InvalidValue("listen[2]", "bad").within("sip")
        self.assertEqual((e.key, e.problem), ("sip.listen[2]", "bad"))
        self.assertEqual(InvalidValue("x", "bad").within("a.b").key, "a.b.x")

    def test_join(self) -> None:
        self.assertEqual(join("", "a"), "a")
        self.assertEqual(join("a", ""), "a")
        self.assertEqual(join("a", "[1]"), "a[1]")
        self.assertEqual(join("a", "b"), "a.b")

    def test_same_class_as_loader(self) -> None:
        """The loader raises and catches this very class."""
        error = self.assertRaises(InvalidValue, config.SipConfig, max_forwards=0)
        self.assertEqual(error.key, "max_forwards")

    def test_no_import_of_sections(self) -> None:
        """
        Importing the grammar (the leaf C{sipedge._config_values}) imports
        neither L{sipedge.config} nor the packages whose sections use it,
        so those can import it without a cycle.
        """
        code = (
            "import sys, sipedge._config_values; "
            "print(sorted(m for m in sys.modules if m.startswith('sipedge.config') "
            "or m.startswith(('sipedge.auth', 'sipedge.security', 'sipedge.media'))))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        self.assertEqual(out.strip(), "[]")


class DescribeTests(SynchronousTestCase):
    def test_values(self) -> None:
        self.assertEqual(describe(None), "nothing")
        self.assertEqual(describe(True), "boolean true")
        self.assertEqual(describe(3), "integer 3")
        self.assertEqual(describe(1.5), "float 1.5")
        self.assertEqual(describe("x"), "string 'x'")
        self.assertEqual(describe([1]), "array")
        self.assertEqual(describe((1,)), "array")
        self.assertEqual(describe({}), "table")

    def test_suggest(self) -> None:
        self.assertEqual(suggest("flg", ["count", "flag"]), "; did you mean 'flag'?")
        self.assertEqual(suggest("zzz", ["b", "a"]), "; expected one of: a, b")
        self.assertEqual(suggest("zzz", []), "")


class ValidatorTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        self.assertEqual(_Section(wait=2), _Section(wait=2.0))
        self.assertIsInstance(_Section(wait=2).wait, float)

    def test_boolean(self) -> None:
        self.assertEqual(_problem(flag=1), ("flag", "expected true or false, got integer 1"))

    def test_integer(self) -> None:
        self.assertEqual(_problem(count=True), ("count", "expected an integer, got boolean true"))
        self.assertEqual(_problem(count=11), ("count", "must be 1 to 10, not 11"))

    def test_integer_at_least(self) -> None:
        @attrs.frozen
        class One:
            n: int = attrs.field(validator=integer(1))

        e = self.assertRaises(InvalidValue, One, 0)
        self.assertEqual((e.key, e.problem), ("n", "must be at least 1, not 0"))

    def test_non_negative_integer(self) -> None:
        self.assertEqual(_problem(limit=-1), ("limit", "must be 0 (off) or more, not -1"))
        self.assertEqual(_problem(limit=1.0), ("limit", "expected an integer, got float 1.0"))

    def test_seconds(self) -> None:
        self.assertEqual(
            _problem(wait="1"), ("wait", "expected a number of seconds, got string '1'")
        )
        self.assertEqual(
            _problem(wait=0), ("wait", "must be a positive number of seconds, not 0.0")
        )
        self.assertEqual(
            _problem(wait=float("inf")),
            ("wait", "must be a positive number of seconds, not inf"),
        )
        self.assertEqual(_Section(grace=0).grace, 0.0)
        self.assertEqual(
            _problem(grace=-1), ("grace", "must be a non-negative number of seconds, not -1.0")
        )

    def test_to_float(self) -> None:
        self.assertEqual(to_float(True), True)
        self.assertEqual(to_float("1"), "1")

    def test_each(self) -> None:
        self.assertEqual(each("k", int, ["1", 2]), (1, 2))
        e = self.assertRaises(InvalidValue, each, "k", int, ["1", "x"])
        self.assertEqual(e.key, "k[1]")
        e = self.assertRaises(InvalidValue, each, "k", int, "1")
        self.assertEqual((e.key, e.problem), ("k", "expected an array, got string '1'"))

    def test_network(self) -> None:
        self.assertEqual(network("10.1.2.3/8"), ipaddress.ip_network("10.0.0.0/8"))
        net = ipaddress.ip_network("::1/128")
        self.assertIs(network(net), net)
        self.assertRaises(ValueError, network, "nonsense")
        self.assertRaises(ValueError, network, 10)


class ParseTableTests(SynchronousTestCase):
    def test_values(self) -> None:
        self.assertEqual(parse_table(_Section, {"count": 3}, "s", None), _Section(count=3))

    def test_base(self) -> None:
        base = _Section(flag=True)
        self.assertEqual(
            parse_table(_Section, {"count": 3}, "s", base), _Section(flag=True, count=3)
        )

    def test_errors(self) -> None:
        cases = [
            ([], "a.b: expected a table, got array"),
            ({"cont": 1}, "a.b.cont: unknown key; did you mean 'count'?"),
            ({"count": 0}, "a.b.count: must be 1 to 10, not 0"),
        ]
        for table, message in cases:
            e = self.assertRaises(ConfigError, parse_table, _Section, table, "a.b", None)
            self.assertNotIsInstance(e, InvalidValue)
            self.assertEqual(str(e), message)
