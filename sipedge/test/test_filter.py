# -*- test-case-name: sipedge.test.test_filter -*-
"""
Tests for the request filter: L{sipedge.security.FilterConfig} and its
parser, the C{filter} stage and its plugin factory.
"""

from __future__ import annotations

import ipaddress
import tomllib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.config import DEFAULT_STAGES, InvalidValue, parse_config
from sipedge.error import ConfigError
from sipedge.interfaces import IRequestStage
from sipedge.message import Headers, Request, parse_datagram
from sipedge.pipeline import (
    Continue,
    Drop,
    RequestContext,
    Respond,
    StageServices,
    build_chain,
    stage_factories,
)
from sipedge.pipeline.stages import FilterStage
from sipedge.proxy import LocalIdentity
from sipedge.security import FilterConfig, Security, parse_filter_config
from sipedge.testing import capture_log
from sipedge.transport import Flow

PROXY = "192.0.2.1"
SOURCE = "203.0.113.66"
OTHER = "198.51.100.7"


def request(
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    extra: tuple[str, ...] = ("User-Agent: Linphone/5.2",),
    from_: str = "<sip:100@example.com>;tag=f1",
) -> Request:
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 203.0.113.66:5060;branch=z9hG4bK-f1",
        "Max-Forwards: 70",
        f"From: {from_}",
        "To: <sip:bob@example.com>",
        "Call-ID: filter-1@203.0.113.66",
        f"CSeq: 1 {method}",
        *extra,
        "Content-Length: 0",
    ]
    message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def flow(source: str = SOURCE) -> Flow:
    return Flow("UDP", PROXY, 5060, source, 5060)


def _Services(clock: Clock, security: Security | None) -> StageServices:
    """Stage services without a configuration, with C{security}."""
    return StageServices(clock=clock, local=LocalIdentity(("example.com",), ()), security=security)


class ParseTests(SynchronousTestCase):
    """L{parse_filter_config}: what it accepts and the keys its errors name."""

    def error(self, table: dict[str, Any]) -> str:
        return str(self.assertRaises(InvalidValue, parse_filter_config, table))

    def test_empty(self) -> None:
        """If there are no options, nothing is filtered."""
        config = parse_filter_config({})
        self.assertEqual(config, FilterConfig())
        self.assertTrue(config.allows("FOO"))
        self.assertIsNone(config.match(request()))

    def test_methods(self) -> None:
        """If INVITE is allowed, so are ACK and CANCEL; the Allow value is sorted."""
        config = parse_filter_config({"methods": ["REGISTER", "INVITE"]})
        self.assertEqual(config.methods, frozenset({"INVITE", "ACK", "CANCEL", "REGISTER"}))
        self.assertEqual(config.allow, "ACK, CANCEL, INVITE, REGISTER")
        self.assertFalse(config.allows("MESSAGE"))
        only = parse_filter_config({"methods": ["OPTIONS"]})
        self.assertEqual(only.methods, frozenset({"OPTIONS"}))

    def test_bad_methods(self) -> None:
        """If C{methods} is not an array of tokens, or empty, the error names it."""
        self.assertTrue(self.error({"methods": "INVITE"}).startswith("methods: expected an array"))
        message = self.error({"methods": ["INVITE", "BAD METHOD"]})
        self.assertTrue(message.startswith("methods[1]: "), message)
        self.assertTrue(self.error({"methods": [3]}).startswith("methods[0]: "))
        self.assertIn("at least one method", self.error({"methods": []}))

    def test_unknown_option(self) -> None:
        """If an option is unknown, the error names it and suggests one."""
        message = self.error({"rule": []})
        self.assertTrue(message.startswith("rule: unknown option"), message)
        self.assertIn("'rules'", message)

    def test_rule_defaults(self) -> None:
        """If a rule gives only header and pattern, it rejects with 403, case-sensitively."""
        [rule] = parse_filter_config({"rules": [{"header": "From", "pattern": "x"}]}).rules
        self.assertEqual(
            (rule.name, rule.action, rule.status, rule.reason, rule.ignore_case, rule.offence),
            ("rules[0]", "reject", 403, None, False, False),
        )
        self.assertEqual(rule.methods, frozenset())

    def test_bad_rules(self) -> None:
        """Each bad rule value gives an error naming C{rules[i].<key>}."""
        good = {"header": "User-Agent", "pattern": "bot"}
        cases: list[tuple[Any, str]] = [
            ({"rules": {"header": "x"}}, "rules: expected an array"),
            ({"rules": ["x"]}, "rules[0]: expected a table"),
            ({"rules": [{"pattern": "x"}]}, "rules[0].header: missing"),
            ({"rules": [{"header": "To"}]}, "rules[0].pattern: missing"),
            ({"rules": [good, {**good, "pattern": "("}]}, "rules[1].pattern: '(' is not a valid"),
            ({"rules": [{**good, "pattern": ""}]}, "rules[0].pattern: expected a regular"),
            ({"rules": [{**good, "header": "User Agent"}]}, "rules[0].header: expected a header"),
            ({"rules": [{**good, "action": "ban"}]}, "rules[0].action: must be one of accept,"),
            ({"rules": [{**good, "status": 399}]}, "rules[0].status: expected a status from 400"),
            ({"rules": [{**good, "status": 700}]}, "rules[0].status: expected a status from 400"),
            ({"rules": [{**good, "status": "403"}]}, "rules[0].status: expected a status"),
            ({"rules": [{**good, "status": True}]}, "rules[0].status: expected a status"),
            ({"rules": [{**good, "reason": "a\r\nX-Evil: 1"}]}, "rules[0].reason: expected"),
            ({"rules": [{**good, "reason": " "}]}, "rules[0].reason: expected"),
            ({"rules": [{**good, "action": "drop", "status": 404}]}, "rules[0].status: only a"),
            ({"rules": [{**good, "action": "accept", "reason": "x"}]}, "rules[0].reason: only a"),
            ({"rules": [{**good, "action": "accept", "offence": True}]}, "rules[0].offence: "),
            ({"rules": [{**good, "offence": "yes"}]}, "rules[0].offence: expected true"),
            ({"rules": [{**good, "ignore_case": 1}]}, "rules[0].ignore_case: expected true"),
            ({"rules": [{**good, "methods": ["IN VITE"]}]}, "rules[0].methods[0]: "),
            ({"rules": [{**good, "name": ""}]}, "rules[0].name: expected a non-empty"),
            ({"rules": [{**good, "actoin": "drop"}]}, "rules[0].actoin: unknown key"),
            ({"rules": [{**good, "name": "a"}, {**good, "name": "a"}]}, "rules[1].name: 'a' is"),
        ]
        for table, start in cases:
            message = self.error(table)
            self.assertTrue(message.startswith(start), f"{table!r}: {message}")


class StageTestCase(SynchronousTestCase):
    """A L{Security} on a clock, the log, and a way to run a filter."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.events = capture_log(self)
        self.security = Security(clock=self.clock, trusted=(ipaddress.ip_network("10.0.0.0/8"),))
        self.addCleanup(self.security.close)
        self.services = _Services(self.clock, self.security)

    def stage(self, **options: Any) -> FilterStage:
        stage = stage_factories()["filter"].build_stage(options, self.services)
        assert isinstance(stage, FilterStage)
        return stage

    def decide(self, stage: Any, req: Request, source: str = SOURCE) -> Any:
        return stage.process_request(RequestContext(req, flow(source), self.services))

    def logged(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("rule") == "filter"]


class MethodTests(StageTestCase):
    """The method allow-list."""

    def test_allowed(self) -> None:
        """If the method is allowed, the request goes on."""
        stage = self.stage(methods=["INVITE", "REGISTER"])
        for method in ("INVITE", "ACK", "CANCEL", "REGISTER"):
            self.assertEqual(self.decide(stage, request(method)), Continue(), method)
        self.assertEqual(self.logged(), [])

    def test_refused(self) -> None:
        """
        If the method is not allowed, the answer is 405 with an Allow header
        of the allowed methods (RFC 3261 21.4.6), counted and logged with
        the rule and the source.
        """
        stage = self.stage(methods=["INVITE", "REGISTER"])
        result = self.decide(stage, request("MESSAGE"))
        self.assertEqual(result, Respond(405, None, (("Allow", "ACK, CANCEL, INVITE, REGISTER"),)))
        self.assertEqual(self.security.stats["filter_method_refused"], 1)
        [event] = self.logged()
        self.assertEqual(
            (event["filter"], event["source"], event["method"], event["action"], event["status"]),
            ("methods", SOURCE, "MESSAGE", "reject", 405),
        )

    def test_ack_never_answered(self) -> None:
        """If an ACK's method is not allowed, it is dropped, never answered."""
        stage = self.stage(methods=["OPTIONS"])
        self.assertIsInstance(self.decide(stage, request("ACK")), Drop)
        [event] = self.logged()
        self.assertEqual(event["action"], "drop")

    def test_case_sensitive(self) -> None:
        """If a method differs only in case, it is another method (RFC 3261 7.1)."""
        stage = self.stage(methods=["INVITE"])
        self.assertEqual(self.decide(stage, request("invite")).status, 405)

    def test_no_list(self) -> None:
        """If no methods are listed, every method goes on."""
        stage = self.stage()
        for method in ("INVITE", "FOO", "ACK"):
            self.assertEqual(self.decide(stage, request(method)), Continue())


class RuleTests(StageTestCase):
    """The header rules."""

    def test_reject(self) -> None:
        """
        If a reject rule matches, the answer has its status and reason; the
        refusal is counted and logged with the rule, source, header and
        value.
        """
        stage = self.stage(
            rules=[
                {
                    "name": "no-bots",
                    "header": "User-Agent",
                    "pattern": "^bot/",
                    "status": 603,
                    "reason": "Go Away",
                }
            ]
        )
        result = self.decide(stage, request(extra=("User-Agent: bot/1.0",)))
        self.assertEqual(result, Respond(603, "Go Away"))
        self.assertEqual(self.decide(stage, request(), OTHER), Continue())
        self.assertEqual(self.security.stats["filter_rejected"], 1)
        [event] = self.logged()
        self.assertEqual(
            (event["filter"], event["source"], event["header"], event["value"], event["status"]),
            ("no-bots", SOURCE, "User-Agent", "bot/1.0", 603),
        )
        self.assertFalse(self.security.is_banned(SOURCE))

    def test_drop(self) -> None:
        """If a drop rule matches, the request is dropped without an answer and counted."""
        stage = self.stage(rules=[{"header": "To", "pattern": "bob", "action": "drop"}])
        self.assertEqual(self.decide(stage, request()), Drop("filter rule rules[0]"))
        self.assertEqual(self.security.stats["filter_dropped"], 1)
        [event] = self.logged()
        self.assertEqual((event["action"], event["status"]), ("drop", None))

    def test_first_match_wins(self) -> None:
        """If several rules match, the first decides; an accept stops the rules."""
        rules = [
            {"name": "trunk", "header": "From", "pattern": "@trunk\\.example", "action": "accept"},
            {"name": "all", "header": "To", "pattern": ".", "status": 404},
            {"name": "never", "header": "To", "pattern": ".", "action": "drop"},
        ]
        stage = self.stage(rules=rules)
        trunk = request(from_="<sip:+4930@trunk.example>;tag=t")
        self.assertEqual(self.decide(stage, trunk), Continue())
        self.assertEqual(self.decide(stage, request()), Respond(404))
        self.assertEqual([e["filter"] for e in self.logged()], ["all"])

    def test_rule_methods(self) -> None:
        """If a rule lists methods, requests of other methods skip it."""
        stage = self.stage(rules=[{"header": "To", "pattern": "bob", "methods": ["MESSAGE"]}])
        self.assertEqual(self.decide(stage, request("INVITE")), Continue())
        self.assertEqual(self.decide(stage, request("MESSAGE")), Respond(403))

    def test_ignore_case(self) -> None:
        """If C{ignore_case} is set, the pattern matches in any case; not otherwise."""
        sensitive = self.stage(rules=[{"header": "User-Agent", "pattern": "evil"}])
        insensitive = self.stage(
            rules=[{"header": "User-Agent", "pattern": "evil", "ignore_case": True}]
        )
        evil = request(extra=("User-Agent: EVIL dialer",))
        self.assertEqual(self.decide(sensitive, evil), Continue())
        self.assertEqual(self.decide(insensitive, evil), Respond(403))

    def test_compact_and_any_header(self) -> None:
        """
        If the request writes a header in its compact form, or the rule
        names it so, they match the same field; any header can be named.
        """
        stage = self.stage(
            rules=[
                {"name": "from", "header": "From", "pattern": "mallory"},
                {"name": "subject", "header": "s", "pattern": "lottery"},
                {"name": "custom", "header": "X-Campaign", "pattern": "^spam$"},
            ]
        )
        compact = request(from_="<sip:x@y>;tag=1").with_headers(
            request().headers.removed("From").added("f", "<sip:mallory@evil>;tag=2")
        )
        self.assertEqual(self.decide(stage, compact), Respond(403))
        subject = request(extra=("Subject: You won the LOTTERY and the lottery",))
        self.assertEqual(self.decide(stage, subject), Respond(403))
        self.assertEqual(self.decide(stage, request(extra=("X-Campaign: spam",))), Respond(403))
        self.assertEqual(
            [e["filter"] for e in self.logged()], ["from", "subject", "custom"]
        )

    def test_every_value(self) -> None:
        """If a header occurs several times, a match in any of its values counts."""
        stage = self.stage(rules=[{"header": "Contact", "pattern": "@10\\.", "action": "drop"}])
        req = request(extra=("Contact: <sip:a@192.0.2.9>", "Contact: <sip:b@10.0.0.1>"))
        self.assertIsInstance(self.decide(stage, req), Drop)
        [event] = self.logged()
        self.assertEqual(event["value"], "<sip:b@10.0.0.1>")

    def test_absent_header(self) -> None:
        """If the header is absent, the rule does not match (even a pattern like C{.*x?})."""
        stage = self.stage(rules=[{"header": "User-Agent", "pattern": "x?"}])
        self.assertEqual(self.decide(stage, request(extra=())), Continue())
        self.assertEqual(self.decide(stage, request()), Respond(403))

    def test_request_uri(self) -> None:
        """If a rule names C{request-uri} (any case), it matches the Request-URI as written."""
        stage = self.stage(
            rules=[{"header": "Request-URI", "pattern": "^sip:00", "methods": ["INVITE"]}]
        )
        self.assertEqual(self.decide(stage, request(uri="sip:0044123@example.com")), Respond(403))
        self.assertEqual(self.decide(stage, request(uri="sip:0144@example.com")), Continue())

    def test_content_type(self) -> None:
        """If a rule names Content-Type, it matches the media type as written."""
        stage = self.stage(
            rules=[
                {"header": "Content-Type", "pattern": "^application/sdp", "action": "accept"},
                {"header": "Content-Type", "pattern": ".", "status": 415},
            ]
        )
        sdp = request(extra=("Content-Type: application/sdp",))
        self.assertEqual(self.decide(stage, sdp), Continue())
        other = request(extra=("c: text/plain",))
        self.assertEqual(self.decide(stage, other), Respond(415))
        self.assertEqual(self.decide(stage, request(extra=())), Continue())

    def test_ack_dropped(self) -> None:
        """If a reject rule matches an ACK, the ACK is dropped, never answered."""
        stage = self.stage(rules=[{"header": "To", "pattern": "bob", "status": 480}])
        self.assertIsInstance(self.decide(stage, request("ACK")), Drop)
        self.assertEqual(self.security.stats["filter_dropped"], 1)

    def test_offence(self) -> None:
        """
        If a rule has C{offence = true}, each refusal counts a C{filter}
        offence of the source, which bans it at C{filter_threshold} (1);
        a rule without it bans nobody, nor is a trusted source banned.
        """
        stage = self.stage(
            rules=[
                {"name": "bad", "header": "User-Agent", "pattern": "bad", "offence": True},
                {"name": "meh", "header": "User-Agent", "pattern": "meh", "action": "drop"},
            ]
        )
        self.decide(stage, request(extra=("User-Agent: meh",)), OTHER)
        self.assertFalse(self.security.is_banned(OTHER))
        self.decide(stage, request(extra=("User-Agent: bad",)))
        self.assertTrue(self.security.is_banned(SOURCE))
        self.assertEqual(self.security.stats["offences_filter"], 1)
        ban = self.security.bans.get(SOURCE, self.clock.seconds())
        assert ban is not None
        self.assertIn("rule bad", ban.reason)
        self.decide(stage, request(extra=("User-Agent: bad",)), "10.1.2.3")
        self.assertFalse(self.security.is_banned("10.1.2.3"))

    def test_long_value(self) -> None:
        """If the matched value is long, only its start is logged."""
        stage = self.stage(rules=[{"header": "User-Agent", "pattern": "^x"}])
        self.decide(stage, request(extra=("User-Agent: " + "x" * 1000,)))
        [event] = self.logged()
        self.assertEqual(len(event["value"]), 120)

    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["User-Agent", "From", "To", "Contact", "X-Any", "c", "f"]),
                st.text(max_size=300),
            ),
            max_size=6,
        ),
        st.text(min_size=1, max_size=60),
    )
    def test_never_crashes(self, fields: list[tuple[str, str]], uri: str) -> None:
        """
        If header values and the Request-URI are arbitrary text (control
        characters, surrogates, nothing at all), the rules decide without
        raising.
        """
        config = parse_filter_config(
            {
                "rules": [
                    {"name": "a", "header": "From", "pattern": r"(?i)^\s*\"?[^<]*<sips?:"},
                    {"name": "b", "header": "User-Agent", "pattern": "a+b*$", "action": "drop"},
                    {"name": "c", "header": "request-uri", "pattern": r"\d{3,}"},
                    {"name": "d", "header": "Content-Type", "pattern": "x", "ignore_case": True},
                    {"name": "e", "header": "X-Any", "pattern": "^$|.", "action": "accept"},
                ]
            }
        )
        stage = FilterStage(config)
        req = Request("INVITE", uri, Headers.of(*fields))
        result = stage.process_request(RequestContext(req, flow(), self.services))
        self.assertIsInstance(result, (Continue, Respond, Drop))


class FactoryTests(StageTestCase):
    """The C{filter} plugin factory and its place in the default chain."""

    def test_provides(self) -> None:
        """If built, the stage provides L{IRequestStage} and is named C{filter}."""
        stage = self.stage()
        self.assertTrue(verifyObject(IRequestStage, stage))
        self.assertEqual(stage.name, "filter")

    def test_errors_name_the_key(self) -> None:
        """If an option is bad, L{ConfigError} names it under C{pipeline.options.filter}."""
        factory = stage_factories()["filter"]
        prefix = "pipeline.options.filter"
        rule = {"header": "From", "pattern": "x"}
        cases: list[tuple[dict[str, Any], str]] = [
            ({"rules": [{**rule, "pattern": "(x"}]}, f"{prefix}.rules[0].pattern: "),
            ({"rules": [{**rule, "status": 800}]}, f"{prefix}.rules[0].status: "),
            ({"rules": [rule, {**rule, "action": "kill"}]}, f"{prefix}.rules[1].action: "),
            ({"methods": ["OK", 1]}, f"{prefix}.methods[1]: "),
            ({"allow": []}, f"{prefix}: unknown option 'allow'"),
        ]
        for options, start in cases:
            error = self.assertRaises(ConfigError, factory.build_stage, options, self.services)
            self.assertTrue(str(error).startswith(start), str(error))

    def test_config_file(self) -> None:
        """
        If a configuration file sets the filter's options (TOML arrays of
        tables), the default chain builds with them, and a bad rule stops
        the build naming the key.
        """
        text = """
[pipeline.options.filter]
methods = ["INVITE", "REGISTER", "OPTIONS", "BYE"]

[[pipeline.options.filter.rules]]
name = "spam"
header = "Subject"
pattern = "viagra"
ignore_case = true
action = "drop"
"""
        config = parse_config(tomllib.loads(text))
        self.assertIn("filter", config.pipeline.stages)
        stage = stage_factories()["filter"].build_stage(
            config.pipeline.options_for("filter"), self.services
        )
        self.assertEqual(self.decide(stage, request("MESSAGE")).status, 405)
        self.assertIsInstance(self.decide(stage, request(extra=("Subject: VIAGRA",))), Drop)
        bad = parse_config(tomllib.loads(text.replace('"drop"', '"explode"')))
        error = self.assertRaises(
            ConfigError,
            stage_factories()["filter"].build_stage,
            bad.pipeline.options_for("filter"),
            self.services,
        )
        self.assertIn("pipeline.options.filter.rules[0].action", str(error))

    def test_default_chain(self) -> None:
        """
        If the chain is the default, C{filter} comes right after the
        security stages that drop without answering (ban-check, scanner,
        flood, monitor) and before C{sanity}.
        """
        index = DEFAULT_STAGES.index("filter")
        self.assertEqual(DEFAULT_STAGES[index - 1], "monitor")
        self.assertEqual(DEFAULT_STAGES[index + 1], "sanity")

    def test_in_a_chain(self) -> None:
        """
        If the filter answers in a chain of security stages, the later
        stages do not run; a banned source is dropped by ban-check first.
        """
        chain = build_chain(
            ["ban-check", "scanner", "flood", "filter"],
            {"filter": {"rules": [{"header": "To", "pattern": "bob", "offence": True}]}},
            self.services,
        )

        def run(req: Request) -> Any:
            return chain.run(RequestContext(req, flow(), self.services))

        self.assertEqual(run(request()), Respond(403))
        self.assertEqual(run(request()), Drop("banned source"))
