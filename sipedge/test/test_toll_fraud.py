# -*- test-case-name: sipedge.test.test_toll_fraud -*-
"""
Tests for L{sipedge.security.TollFraudGuard}, L{CallTracker}, the
C{toll-fraud} stage, its plugin factory and C{[security.toll_fraud]}.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import sipedge
from sipedge.config import Config, parse_config
from sipedge.error import ConfigError
from sipedge.interfaces import IDialogListener, IProxyObserver, IRequestStage, IResponseStage
from sipedge.message import Request, Response, parse_datagram, parse_uri
from sipedge.pipeline import (
    Continue,
    Forward,
    RequestChain,
    RequestContext,
    Respond,
    StageServices,
    Target,
    build_chain,
    stage_factories,
)
from sipedge.pipeline.stages._toll_fraud import REFUSAL, TollFraudStage
from sipedge.plugins import sipedge_monitor_stages
from sipedge.proxy import LocalIdentity
from sipedge.security import (
    TOLL_FRAUD_RULES,
    TOLL_FRAUD_STAT_KEYS,
    Call,
    CallTracker,
    Security,
    SecurityConfig,
    TollFraudConfig,
    TollFraudGuard,
    dialled_number,
    match_prefix,
    parse_security_config,
)
from sipedge.testing import ALICE as CORE_ALICE
from sipedge.testing import (
    ProxyHarness,
    capture_log,
)
from sipedge.testing import sip_answer as core_answer
from sipedge.testing import sip_request as core_request
from sipedge.transaction import make_response
from sipedge.transport import Flow

PROXY = "192.0.2.1"
PHONE = "198.51.100.7"
TRUNK = "10.1.2.3"
TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)
ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"
FORWARD = Forward([Target("sip:+4420@gw.example.net")])


def request(
    method: str = "INVITE",
    uri: str = "sip:+442071234567@gw.example.net",
    call_id: str = "call-1",
    to_tag: str | None = None,
) -> Request:
    to = f"<{uri}>" if not uri.startswith("tel:") else "<sip:x@gw.example.net>"
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-t1",
        "Max-Forwards: 70",
        "From: <sip:alice@example.com>;tag=t1",
        f"To: {to}" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        "Content-Length: 0",
    ]
    message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def flow(source: str) -> Flow:
    return Flow("UDP", PROXY, 5060, source, 5060)


class GuardTestCase(SynchronousTestCase):
    """A guard on a clock, and a way to run the stage."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.events = capture_log(self)
        self.services = StageServices(
            clock=self.clock, local=LocalIdentity(("example.com",), ()), trusted=TRUSTED
        )

    def guard(self, **settings: Any) -> TollFraudGuard:
        return TollFraudGuard(
            TollFraudConfig(**settings), clock=self.clock, is_trusted=self.services.is_trusted
        )

    def context(
        self,
        req: Request | None = None,
        *,
        source: str = PHONE,
        identity: str | None = ALICE,
        responsibility: str | None = "relay",
    ) -> RequestContext:
        context = RequestContext(req if req is not None else request(), flow(source), self.services)
        context.identity = identity
        if responsibility is not None:
            context.annotations["responsibility"] = responsibility
        return context

    def run_stage(self, guard: TollFraudGuard, req: Request | None = None, **kwargs: Any) -> Any:
        """Run the stage, and tell the guard the INVITE was forwarded if it passed."""
        context = self.context(req, **kwargs)
        result = TollFraudStage(guard).process_request(context)
        if result == Continue():
            guard.request_decided(context, FORWARD)
        return result

    def refusals(self, rule: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("rule", "").startswith("toll-fraud-") and (rule is None or e["rule"] == rule)
        ]


class HelperTests(SynchronousTestCase):
    """Tests for L{dialled_number} and L{match_prefix}."""

    def test_dialled_number(self) -> None:
        """
        The dialled number is the SIP user part or tel number, unescaped,
        without its parameters and visual separators.
        """
        cases = {
            "sip:+1-900-555-0100@gw.example.net": "+19005550100",
            "sip:00%2044.20@gw.example.net": "004420",
            "sip:+1900555;phone-context=x@gw.example.net;user=phone": "+1900555",
            "tel:+1-(900)-555": "+1900555",
            "sip:alice@example.com": "alice",
            "sip:gw.example.net": "",
            "http://example.com": "",
        }
        for uri, expected in cases.items():
            self.assertEqual(dialled_number(parse_uri(uri)), expected, uri)
        self.assertEqual(dialled_number(None), "")

    def test_match_prefix(self) -> None:
        """L{match_prefix} gives the longest prefix matched, or C{None}."""
        self.assertEqual(match_prefix("+19005", ["+1", "+1900", "00"]), "+1900")
        self.assertIsNone(match_prefix("+44", ["+1", "00"]))
        self.assertIsNone(match_prefix("", ["+1"]))


class CallTrackerTests(SynchronousTestCase):
    """Tests for L{CallTracker}."""

    def test_start_release(self) -> None:
        """
        Calls are counted per user by Call-ID; the same Call-ID of the same
        user once; L{CallTracker.release} ends every call of a Call-ID.
        """
        ended: list[tuple[str, str]] = []
        tracker = CallTracker(max_duration=100, on_end=lambda c, r: ended.append((c.call_id, r)))
        self.assertIsInstance(tracker.start("a", ALICE, PHONE, 0), Call)
        self.assertIsNone(tracker.start("a", ALICE, PHONE, 1))
        tracker.start("a", BOB, PHONE, 1)
        tracker.start("b", ALICE, PHONE, 1)
        self.assertEqual((tracker.active(ALICE), tracker.active(BOB), len(tracker)), (2, 1, 3))
        self.assertEqual(len(tracker.release("a", "bye")), 2)
        self.assertEqual(tracker.release("zzz", "bye"), [])
        self.assertEqual((tracker.active(ALICE), tracker.active(BOB)), (1, 0))
        self.assertEqual(ended, [("a", "bye"), ("a", "bye")])

    def test_deadlines(self) -> None:
        """
        A call lasts C{setup_timeout} until confirmed, then C{max_duration}
        from its start; L{CallTracker.expire} ends those past their
        deadline and says why.
        """
        ended: list[tuple[str, str]] = []
        tracker = CallTracker(
            max_duration=100, setup_timeout=10, on_end=lambda c, r: ended.append((c.call_id, r))
        )
        tracker.start("a", ALICE, PHONE, 0)
        tracker.start("b", ALICE, PHONE, 0)
        self.assertEqual(tracker.confirm("a"), 1)
        self.assertEqual(tracker.confirm("a"), 0)
        self.assertEqual(tracker.expire(9.9), [])
        self.assertEqual([c.call_id for c in tracker.expire(10)], ["b"])
        self.assertEqual([c.call_id for c in tracker.expire(100)], ["a"])
        self.assertEqual(ended, [("b", "setup-timeout"), ("a", "max-duration")])
        self.assertEqual(len(tracker), 0)

    def test_bounded(self) -> None:
        """
        At most C{max_calls} are kept (the oldest evicted), and the
        deadline heap does not grow with calls long released.
        """
        tracker = CallTracker(max_duration=100, max_calls=3)
        for i in range(10):
            tracker.start(f"c{i}", ALICE, PHONE, i)
        self.assertEqual([c.call_id for c in tracker.calls()], ["c7", "c8", "c9"])
        self.assertEqual(tracker.active(ALICE), 3)
        for i in range(1000):
            tracker.start(f"x{i}", BOB, PHONE, 10)
            tracker.release(f"x{i}", "bye")
        self.assertLessEqual(len(tracker._deadlines), 2 * len(tracker) + 65)

    def test_arguments(self) -> None:
        """Nonsense limits are refused."""
        self.assertRaises(ValueError, CallTracker, max_duration=0)
        self.assertRaises(ValueError, CallTracker, max_duration=1, max_calls=0)


class GuardTests(GuardTestCase):
    """Tests for L{TollFraudGuard} and L{TollFraudStage}."""

    def test_interfaces(self) -> None:
        """
        The guard is an L{IProxyObserver}; the stage an L{IRequestStage}
        named C{toll-fraud}. Counters start at 0.
        """
        guard = self.guard()
        self.assertTrue(verifyObject(IProxyObserver, guard))
        stage = TollFraudStage(guard)
        self.assertTrue(verifyObject(IRequestStage, stage))
        self.assertTrue(verifyObject(IResponseStage, stage))
        self.assertEqual(stage.name, "toll-fraud")
        self.assertEqual(guard.stats, dict.fromkeys(TOLL_FRAUD_STAT_KEYS, 0))

    def test_deny(self) -> None:
        """
        A relayed call of an authenticated user to a denied prefix gets 403
        "Call Not Allowed", with a warning naming the rule, user, source and
        number.
        """
        guard = self.guard(deny_prefixes=["+1900", "00"])
        self.assertEqual(self.run_stage(guard), Continue())
        result = self.run_stage(guard, request(uri="sip:+1-900-555-0100@gw.example.net"))
        self.assertEqual(result, Respond(403, "Call Not Allowed"))
        self.assertIs(result, REFUSAL)
        [event] = self.refusals()
        self.assertEqual(
            {k: event[k] for k in ("rule", "user", "source", "number", "method")},
            {
                "rule": "toll-fraud-deny",
                "user": ALICE,
                "source": PHONE,
                "number": "+19005550100",
                "method": "INVITE",
            },
        )
        self.assertEqual(event["log_level"].name, "warn")
        self.assertEqual(guard.stats["toll_fraud_refused"], 1)
        self.assertEqual(guard.stats["toll_fraud_deny"], 1)
        self.assertEqual(
            self.run_stage(guard, request(uri="tel:00-44-20;phone-context=+44")), REFUSAL
        )

    def test_allow(self) -> None:
        """
        With an allow list, only the prefixes on it may be dialled (a URI
        without a number matches none); deny wins over allow.
        """
        guard = self.guard(allow_prefixes=["+44", "+33"], deny_prefixes=["+44909"])
        self.assertEqual(self.run_stage(guard, request(call_id="a")), Continue())
        self.assertEqual(
            self.run_stage(guard, request(uri="tel:+33-1-2345", call_id="b")), Continue()
        )
        for uri in ("sip:+1900555@gw.example.net", "sip:bob@example.net", "sip:+4490912@gw"):
            self.assertEqual(self.run_stage(guard, request(uri=uri, call_id=uri)), REFUSAL)
        self.assertEqual(
            [e["rule"] for e in self.refusals()],
            ["toll-fraud-allow", "toll-fraud-allow", "toll-fraud-deny"],
        )
        self.assertEqual(guard.stats["toll_fraud_allow"], 2)

    def test_not_relay(self) -> None:
        """
        Requests the stage has no business with pass untouched and
        uncounted: calls into our domains, requests without a
        responsibility note, in-dialog INVITEs, other methods, and relays
        of nobody we vouch for (no identity, untrusted).
        """
        guard = self.guard(deny_prefixes=["+44"], max_concurrent_calls=1)
        denied = request()
        cases = [
            self.context(denied, responsibility="local"),
            self.context(denied, responsibility=None),
            self.context(request(to_tag="x")),
            self.context(request("OPTIONS")),
            self.context(request("MESSAGE")),
            self.context(denied, identity=None),
        ]
        stage = TollFraudStage(guard)
        for context in cases:
            self.assertEqual(stage.process_request(context), Continue())
        self.assertEqual(self.refusals(), [])
        self.assertEqual(guard.active_calls(ALICE), 0)

    def test_concurrent_bye_cancel(self) -> None:
        """
        A user gets C{max_concurrent_calls} calls at once; the next is
        refused until a BYE (from either side, with or without identity) or
        a CANCEL with a call's Call-ID releases its slot. Other users have
        their own.
        """
        guard = self.guard(max_concurrent_calls=2, calls_per_minute=0)
        self.assertEqual(self.run_stage(guard, request(call_id="a")), Continue())
        self.assertEqual(self.run_stage(guard, request(call_id="b")), Continue())
        self.assertEqual(self.run_stage(guard, request(call_id="c")), REFUSAL)
        self.assertEqual(self.run_stage(guard, request(call_id="c"), identity=BOB), Continue())
        [event] = self.refusals("toll-fraud-concurrent")
        self.assertEqual((event["user"], event["call_id"]), (ALICE, "c"))
        self.assertEqual(guard.stats["toll_fraud_concurrent"], 1)
        # The callee hangs up: its BYE comes from outside, unauthenticated.
        bye = request("BYE", call_id="a", to_tag="t")
        self.assertEqual(
            self.run_stage(guard, bye, source="192.0.2.77", identity=None, responsibility=None),
            Continue(),
        )
        self.assertEqual(guard.active_calls(ALICE), 1)
        self.assertEqual(self.run_stage(guard, request(call_id="d")), Continue())
        self.assertEqual(self.run_stage(guard, request(call_id="e")), REFUSAL)
        self.assertEqual(self.run_stage(guard, request("CANCEL", call_id="d")), Continue())
        self.assertEqual(self.run_stage(guard, request(call_id="e")), Continue())
        self.assertEqual(guard.stats["toll_fraud_calls_ended"], 2)

    def test_max_duration(self) -> None:
        """
        A call confirmed by an ACK but never hung up is released after
        C{max_call_duration}; an INVITE no ACK confirms (failed, or
        cancelled upstream) after C{call_setup_timeout}. Both are logged.
        No timer is left behind.
        """
        guard = self.guard(max_concurrent_calls=1, max_call_duration=3600, call_setup_timeout=60)
        self.assertEqual(self.run_stage(guard, request(call_id="a")), Continue())
        self.assertEqual(self.run_stage(guard, request("ACK", call_id="a", to_tag="t")), Continue())
        self.clock.advance(3599)
        self.assertEqual(self.run_stage(guard, request(call_id="b")), REFUSAL)
        self.clock.advance(1)
        self.assertEqual(self.run_stage(guard, request(call_id="b")), Continue())
        self.clock.advance(59)
        self.assertEqual(self.run_stage(guard, request(call_id="c")), REFUSAL)
        self.clock.advance(1)
        self.assertEqual(guard.active_calls(ALICE), 0)
        released = [e for e in self.events if e.get("rule") == "toll-fraud"]
        self.assertEqual(
            [(e["call_id"], e["reason"]) for e in released],
            [("a", "max-duration"), ("b", "setup-timeout")],
        )
        self.assertEqual(guard.stats["toll_fraud_calls_expired"], 2)

    def test_no_setup_timeout(self) -> None:
        """With C{call_setup_timeout} 0, an unconfirmed call lasts C{max_call_duration}."""
        guard = self.guard(max_concurrent_calls=1, max_call_duration=100, call_setup_timeout=0)
        self.run_stage(guard, request(call_id="a"))
        self.clock.advance(99)
        self.assertEqual(guard.active_calls(ALICE), 1)
        self.clock.advance(1)
        self.assertEqual(guard.active_calls(ALICE), 0)

    def test_not_forwarded(self) -> None:
        """
        As an observer, the guard gives the slot back at once when the
        chain does not forward an INVITE that passed the stage; a forwarded
        one keeps it. A retry with the same Call-ID is counted once.
        """
        guard = self.guard(max_concurrent_calls=1)
        stage = TollFraudStage(guard)
        context = self.context(request(call_id="a"))
        self.assertEqual(stage.process_request(context), Continue())
        self.assertEqual(context.annotations["toll-fraud"]["call_id"], "a")
        guard.request_decided(context, Respond(404))
        self.assertEqual(guard.active_calls(ALICE), 0)
        context = self.context(request(call_id="b"))
        self.assertEqual(stage.process_request(context), Continue())
        guard.request_decided(context, FORWARD)
        self.assertEqual(stage.process_request(self.context(request(call_id="b"))), Continue())
        self.assertEqual(guard.active_calls(ALICE), 1)
        guard.request_decided(self.context(request("OPTIONS")), Respond(200))

    def test_dialog_ended_releases(self) -> None:
        """
        If the proxy's dialog table says a counted call's dialog is over
        (the proxy ended it with BYEs itself, a 481, no refresh: no BYE
        passed the stage), the guard, an L{IDialogListener}, gives its slot
        back at once instead of at C{max_call_duration}; a dialog it does
        not count changes nothing.
        """
        guard = self.guard(max_concurrent_calls=1, calls_per_minute=0)
        self.assertTrue(verifyObject(IDialogListener, guard))
        stage = TollFraudStage(guard)
        context = self.context(request(call_id="d1"))
        self.assertEqual(stage.process_request(context), Continue())
        guard.request_decided(context, FORWARD)
        self.assertEqual(guard.active_calls(ALICE), 1)
        guard.dialog_ended("other", "a", "b", "forgotten")
        self.assertEqual(guard.active_calls(ALICE), 1)
        ended = guard.stats["toll_fraud_calls_ended"]
        guard.dialog_ended("d1", "alice-tag", "bob-tag", "ended: media timeout")
        self.assertEqual(guard.active_calls(ALICE), 0)
        self.assertEqual(guard.stats["toll_fraud_calls_ended"], ended + 1)

    def test_failed_call_released(self) -> None:
        """
        If the final response relayed for a counted call's INVITE is a
        failure (3xx-6xx), the response stage gives its slot back at once
        and passes the response on unchanged; a provisional or a 2xx keeps
        it, and the failure of a call not counted changes nothing.
        """
        guard = self.guard(max_concurrent_calls=1, calls_per_minute=0)
        stage = TollFraudStage(guard)
        for status in (486, 487, 408, 603, 302):
            context = self.context(request(call_id=f"c{status}"))
            self.assertEqual(stage.process_request(context), Continue())
            guard.request_decided(context, FORWARD)
            self.assertEqual(self.run_stage(guard, request(call_id="x")), REFUSAL)
            for provisional in (100, 180):
                stage.process_response(context, make_response(context.request, provisional))
            self.assertEqual(guard.active_calls(ALICE), 1)
            failure = make_response(context.request, status)
            self.assertIs(stage.process_response(context, failure), failure)
            self.assertEqual(guard.active_calls(ALICE), 0, status)
            stage.process_response(context, failure)  # again: nothing more
        self.assertEqual(guard.stats["toll_fraud_calls_ended"], 5)
        context = self.context(request(call_id="ok"))
        stage.process_request(context)
        guard.request_decided(context, FORWARD)
        stage.process_response(context, make_response(context.request, 200))
        self.assertEqual(guard.active_calls(ALICE), 1)
        stage.process_response(None, make_response(request(call_id="ok"), 486))
        other = self.context(request("OPTIONS", call_id="ok"))
        stage.process_response(other, make_response(other.request, 404))
        self.assertEqual(guard.active_calls(ALICE), 1)
        released = [e["reason"] for e in self.events if e.get("rule") == "toll-fraud"]
        self.assertEqual(released, ["failed"] * 5)

    def test_calls_per_minute(self) -> None:
        """
        A user gets C{calls_per_minute} new calls in any 60 seconds; refused
        calls do not count, so the user gets calls again once the oldest is
        a minute old.
        """
        guard = self.guard(calls_per_minute=3, max_concurrent_calls=0)
        for i in range(3):
            self.assertEqual(self.run_stage(guard, request(call_id=f"a{i}")), Continue())
            self.clock.advance(10)
        for i in range(5):
            self.assertEqual(self.run_stage(guard, request(call_id=f"b{i}")), REFUSAL)
        self.assertEqual(self.run_stage(guard, request(call_id="c"), identity=BOB), Continue())
        [event, *_] = self.refusals("toll-fraud-rate")
        self.assertEqual(event["user"], ALICE)
        self.assertEqual(guard.stats["toll_fraud_rate"], 5)
        self.clock.advance(30)
        self.assertEqual(self.run_stage(guard, request(call_id="d")), Continue())
        self.assertEqual(self.run_stage(guard, request(call_id="e")), REFUSAL)

    def test_trusted(self) -> None:
        """
        Calls from a trusted network bypass the per-user limits but not the
        prefix lists, with or without an identity; with
        C{trusted_prefix_checks} off they bypass those too.
        """
        guard = self.guard(max_concurrent_calls=1, calls_per_minute=1, deny_prefixes=["+1900"])
        for i in range(5):
            self.assertEqual(
                self.run_stage(guard, request(call_id=f"t{i}"), source=TRUNK), Continue()
            )
            self.assertEqual(
                self.run_stage(guard, request(call_id=f"u{i}"), source=TRUNK, identity=None),
                Continue(),
            )
        premium = request(uri="sip:+1900555@gw.example.net")
        self.assertEqual(self.run_stage(guard, premium, source=TRUNK), REFUSAL)
        self.assertEqual(self.run_stage(guard, premium, source=TRUNK, identity=None), REFUSAL)
        [_, event] = self.refusals("toll-fraud-deny")
        self.assertEqual((event["user"], event["source"]), (None, TRUNK))
        self.assertEqual(guard.active_calls(ALICE), 0)
        lenient = self.guard(deny_prefixes=["+1900"], trusted_prefix_checks=False)
        self.assertEqual(self.run_stage(lenient, premium, source=TRUNK), Continue())
        self.assertEqual(self.run_stage(lenient, premium, source=PHONE), REFUSAL)

    def test_max_users(self) -> None:
        """The recent calls of at most C{max_users} users are kept."""
        guard = self.guard(max_users=2, calls_per_minute=1, max_concurrent_calls=0)
        for i in range(5):
            self.run_stage(guard, request(call_id=f"c{i}"), identity=f"sip:u{i}@example.com")
        self.assertEqual(len(guard._recent), 2)

    def test_from_config(self) -> None:
        """
        L{TollFraudGuard.from_config} takes C{[security.toll_fraud]} and
        C{sip.trusted} from a whole config.
        """
        config = parse_config(
            tomllib.loads(
                '[sip]\ntrusted = ["10.0.0.0/8"]\n'
                '[security.toll_fraud]\nmax_concurrent_calls = 1\ndeny_prefixes = ["+1900"]\n'
            )
        )
        stats: dict[str, int] = {}
        guard = TollFraudGuard.from_config(config, self.clock, stats)
        self.assertIs(guard.stats, stats)
        self.assertEqual(guard.config.deny_prefixes, ("+1900",))
        for i in range(3):
            self.assertEqual(
                self.run_stage(guard, request(call_id=f"{i}"), source=TRUNK), Continue()
            )
        self.assertEqual(self.run_stage(guard, request(call_id="x")), Continue())
        self.assertEqual(self.run_stage(guard, request(call_id="y")), REFUSAL)

    def test_rules(self) -> None:
        """Every refusal's rule is one of L{TOLL_FRAUD_RULES}."""
        self.assertEqual(
            TOLL_FRAUD_RULES,
            ("toll-fraud-deny", "toll-fraud-allow", "toll-fraud-concurrent", "toll-fraud-rate"),
        )


def _services(
    clock: Any, security: Any = None, toll_fraud: Any = None, config: Config | None = None
) -> StageServices:
    """StageServices as the composition root will make them: with C{toll_fraud}."""
    return StageServices(
        clock=clock,
        local=LocalIdentity((), ()),
        security=security,
        toll_fraud=toll_fraud,
        config=config,
    )


class TollFraudPluginTests(GuardTestCase):
    """The C{toll-fraud} stage factory."""

    def test_found(self) -> None:
        """
        The C{toll-fraud} factory is found as a plugin and builds the stage
        on C{services.toll_fraud}; it takes no options.
        """
        factory = stage_factories()["toll-fraud"]
        self.assertIs(type(factory).__module__, sipedge_monitor_stages.__name__)
        self.assertTrue(factory.description)
        guard = self.guard()
        stage = factory.build_stage({}, _services(self.clock, toll_fraud=guard))
        self.assertIs(stage.guard, guard)
        error = self.assertRaises(ConfigError, factory.build_stage, {"deny_prefixes": []}, None)
        self.assertIn("pipeline.options.toll-fraud: unknown option", str(error))

    def test_without_guard(self) -> None:
        """
        If the services carry no guard, the factory makes one from the
        config's C{[security.toll_fraud]}, trusting the services' trusted
        networks (or the security service's) and counting into the security
        service's stats.
        """
        config = Config(security=SecurityConfig(toll_fraud={"deny_prefixes": ["+1900"]}))
        services = attrs.evolve(self.services, config=config)
        chain = build_chain(["toll-fraud"], {}, services)
        [stage] = chain.stages
        self.assertEqual(stage.guard.config.deny_prefixes, ("+1900",))
        self.assertTrue(stage.guard._is_trusted(TRUNK))
        security = Security(clock=self.clock, trusted=TRUSTED)
        self.addCleanup(security.close)
        stage = stage_factories()["toll-fraud"].build_stage(
            {}, _services(self.clock, security, config=config)
        )
        self.assertIs(stage.guard.stats, security.stats)
        self.assertTrue(stage.guard._is_trusted(TRUNK))
        self.assertFalse(stage.guard._is_trusted(PHONE))
        stage = stage_factories()["toll-fraud"].build_stage({}, _services(self.clock))
        self.assertEqual(stage.guard.config, TollFraudConfig())
        self.assertFalse(stage.guard._is_trusted(TRUNK))


class TollFraudConfigTests(SynchronousTestCase):
    """Tests for C{[security.toll_fraud]}."""

    def parse(self, text: str) -> SecurityConfig:
        return parse_security_config(tomllib.loads(text).get("security"), "test.toml")

    def test_defaults(self) -> None:
        """
        Without C{[security.toll_fraud]}: 10 calls at once and 20 a minute
        per user, 3 hours at most, no prefix lists.
        """
        config = self.parse("").toll_fraud
        self.assertEqual(config, TollFraudConfig())
        self.assertEqual(
            (config.max_concurrent_calls, config.calls_per_minute, config.max_call_duration),
            (10, 20, 10800.0),
        )
        self.assertEqual((config.deny_prefixes, config.allow_prefixes), ((), ()))
        self.assertTrue(config.trusted_prefix_checks)

    def test_table(self) -> None:
        """C{[security.toll_fraud]} sets the guard's values."""
        config = self.parse(
            "[security.toll_fraud]\nmax_concurrent_calls = 0\ncalls_per_minute = 5\n"
            'deny_prefixes = ["+1900", "00"]\nallow_prefixes = ["+44"]\n'
            "trusted_prefix_checks = false\nmax_call_duration = 600\ncall_setup_timeout = 0\n"
        ).toll_fraud
        self.assertEqual(
            config,
            TollFraudConfig(
                max_concurrent_calls=0,
                calls_per_minute=5,
                deny_prefixes=("+1900", "00"),
                allow_prefixes=("+44",),
                trusted_prefix_checks=False,
                max_call_duration=600.0,
                call_setup_timeout=0.0,
            ),
        )

    def test_errors_name_keys(self) -> None:
        """
        A bad value in C{[security.toll_fraud]} raises L{ConfigError}
        naming C{security.toll_fraud.<key>}.
        """
        cases = {
            "max_concurrent_calls = -1": "security.toll_fraud.max_concurrent_calls: must be 0"
            " (no limit) or more, not -1",
            "calls_per_minute = 1.5": "security.toll_fraud.calls_per_minute: expected an"
            " integer, got float 1.5",
            "deny_prefixes = ['+1 900']": "security.toll_fraud.deny_prefixes[0]: '+1 900' is"
            " not a dialled prefix",
            "allow_prefixes = [44]": "security.toll_fraud.allow_prefixes[0]: expected a dialled"
            " prefix, got integer 44",
            "trusted_prefix_checks = 'yes'": "security.toll_fraud.trusted_prefix_checks:"
            " expected true or false, got string 'yes'",
            "max_call_duration = 0": "security.toll_fraud.max_call_duration: must be a positive"
            " number of seconds",
            "deny_prefix = ['00']": "security.toll_fraud.deny_prefix: unknown key; did you"
            " mean 'deny_prefixes'?",
        }
        for line, expected in cases.items():
            text = f"[security.toll_fraud]\n{line}\n"
            message = str(self.assertRaises(ConfigError, self.parse, text))
            self.assertTrue(message.startswith(f"test.toml: {expected}"), f"{line}: {message}")
            message = str(
                self.assertRaises(ConfigError, parse_config, tomllib.loads(text), "x.toml")
            )
            self.assertTrue(message.startswith(f"x.toml: {expected}"), f"{line}: {message}")

    def test_documented(self) -> None:
        """Every key of C{[security.toll_fraud]} is in the table of C{doc/security.md}."""
        doc = Path(sipedge.__file__).resolve().parent.parent / "doc" / "security.md"
        if not doc.exists():
            raise self.skipTest("not running from a checkout")
        text = doc.read_text()
        self.assertIn("### `[security.toll_fraud]`", text)
        for field in attrs.fields(TollFraudConfig):
            self.assertIn(f"`{field.name}`", text, field.name)


class _Identify:
    """Stands in for digest-auth: requests from the phone are alice's."""

    name = "identify"

    def process_request(self, context: RequestContext) -> Continue:
        if context.flow.remote_host == CORE_ALICE.remote_host:
            context.identity = ALICE
        return Continue()


GATEWAY = Flow("UDP", PROXY, 5060, "203.0.113.10", 5060)


class _Waiting:
    """A stage that decides its first request when C{pending} fires, the rest at once."""

    name = "waiting"

    def __init__(self, pending: Deferred[Any]) -> None:
        self.pending: Deferred[Any] | None = pending

    def process_request(self, context: RequestContext) -> Deferred[Any] | Continue:
        pending, self.pending = self.pending, None
        return pending if pending is not None else Continue()


class ProxyCoreTollFraudTests(ProxyHarness, SynchronousTestCase):
    """The toll-fraud stage and guard wired as the composition root wires them."""

    def test_calls(self) -> None:
        """
        Through the proxy core, a call to a denied prefix gets 403 "Call
        Not Allowed"; a call over the concurrency limit too, until the
        failed call that held the slot reaches C{call_setup_timeout}.
        """
        guard = TollFraudGuard(
            TollFraudConfig(max_concurrent_calls=1, deny_prefixes=["+1900"], call_setup_timeout=60),
            clock=self.clock,
            is_trusted=self.services.is_trusted,
        )
        self.core.observers.append(guard)
        stages = list(self.core.chain.stages)
        at = [s.name for s in stages].index("responsibility") + 1
        stages[at:at] = [TollFraudStage(guard)]
        self.core.chain = RequestChain([_Identify(), *stages])
        self.locator.add("gw.example.net", ("UDP", "203.0.113.10", 5060))
        gateway = Flow("UDP", PROXY, 5060, "203.0.113.10", 5060)

        def call(number: str, tag: str) -> list[Response]:
            self.take()
            invite = core_request(
                "INVITE",
                f"sip:{number}@gw.example.net",
                call_id=f"{tag}@198.51.100.7",
                branch=f"z9hG4bK-{tag}",
            )
            self.receive(invite, CORE_ALICE)
            return [m for m, f in self.transports.sent if isinstance(m, Response)]

        [refused] = call("+1900555", "a")
        self.assertEqual((refused.status, refused.reason), (403, "Call Not Allowed"))
        call("+442071234567", "b")
        forwarded = self.only(("203.0.113.10", 5060), "INVITE")
        [refused] = call("+442071234568", "c")
        self.assertEqual(refused.status, 403)
        self.receive(core_answer(forwarded, 486, to_tag="gw"), gateway)
        self.assertEqual(guard.active_calls(ALICE), 0)  # the failed call's slot is free
        call("+442071234569", "d")
        self.only(("203.0.113.10", 5060), "INVITE")
        self.assertEqual(guard.stats["toll_fraud_refused"], 2)

    def guarded(self) -> TollFraudGuard:
        """A guard of one call at a time, wired in as the composition root does."""
        guard = TollFraudGuard(
            TollFraudConfig(max_concurrent_calls=1, call_setup_timeout=300),
            clock=self.clock,
            is_trusted=self.services.is_trusted,
        )
        self.core.observers.append(guard)
        stages = list(self.core.chain.stages)
        at = [s.name for s in stages].index("responsibility") + 1
        stages[at:at] = [TollFraudStage(guard)]
        self.core.chain = RequestChain([_Identify(), *stages])
        self.locator.add("gw.example.net", ("UDP", "203.0.113.10", 5060))
        return guard

    def place(self, tag: str) -> Request:
        """Alice calls a number at the gateway; the INVITE forwarded there."""
        self.take()
        invite = core_request(
            "INVITE", "sip:+442071234567@gw.example.net", call_id=f"{tag}@198.51.100.7",
            branch=f"z9hG4bK-{tag}",
        )
        self.receive(invite, CORE_ALICE)
        forwarded = self.only(GATEWAY.remote, "INVITE")
        self.take()
        return forwarded

    def test_cancelled_call_released(self) -> None:
        """
        If the caller CANCELs a ringing call, the callee's 487, relayed
        upstream, gives the slot back at once.
        """
        guard = self.guarded()
        forwarded = self.place("a")
        self.receive(core_answer(forwarded, 180, to_tag="gw"), GATEWAY)
        cancel = core_request(
            "CANCEL", "sip:+442071234567@gw.example.net", call_id="a@198.51.100.7",
            branch="z9hG4bK-a",
        )
        self.receive(cancel, CORE_ALICE)
        self.assertEqual(guard.active_calls(ALICE), 1)
        downstream = self.only(GATEWAY.remote, "CANCEL")
        self.receive(core_answer(downstream, 200, to_tag="gw"), GATEWAY)
        self.receive(core_answer(forwarded, 487, to_tag="gw"), GATEWAY)
        self.assertEqual(self.statuses(CORE_ALICE.remote)[-1], 487)
        self.assertEqual(guard.active_calls(ALICE), 0)
        self.place("b")

    def test_cancelled_while_deciding(self) -> None:
        """
        If the caller CANCELs while a stage after C{toll-fraud} is still
        deciding, the 487 the proxy core answers passes the response
        chain, and the slot is given back at once.
        """
        guard = self.guarded()
        pending: Deferred[Any] = Deferred()
        stages = list(self.core.chain.stages)
        at = [s.name for s in stages].index("toll-fraud") + 1
        stages[at:at] = [_Waiting(pending)]
        self.core.chain = RequestChain(stages)
        invite = core_request(
            "INVITE", "sip:+442071234567@gw.example.net", call_id="a@198.51.100.7",
            branch="z9hG4bK-a",
        )
        self.receive(invite, CORE_ALICE)
        self.assertEqual(guard.active_calls(ALICE), 1)
        cancel = core_request(
            "CANCEL", "sip:+442071234567@gw.example.net", call_id="a@198.51.100.7",
            branch="z9hG4bK-a",
        )
        self.receive(cancel, CORE_ALICE)
        self.assertEqual(self.statuses(CORE_ALICE.remote), [100, 200, 487])
        self.assertEqual(guard.active_calls(ALICE), 0)
        pending.callback(Continue())
        self.assertEqual(self.sent_to(GATEWAY.remote, "INVITE"), [])
        self.assertEqual(guard.active_calls(ALICE), 0)
        self.place("b")

    def test_unanswered_call_released(self) -> None:
        """
        If the far side never answers, the 408 the proxy sends upstream
        (Timer B) gives the slot back at once, long before
        C{call_setup_timeout}.
        """
        guard = self.guarded()
        self.place("a")
        self.clock.pump([0.5] * 66)
        self.assertEqual(self.statuses(CORE_ALICE.remote), [408])
        self.assertEqual(guard.active_calls(ALICE), 0)
        self.place("b")

    def test_bye_releases(self) -> None:
        """
        If an answered call ends with a BYE (from the callee, through our
        Record-Route), the slot is given back when the BYE passes the chain;
        until then the call holds it.
        """
        guard = self.guarded()
        forwarded = self.place("a")
        ok = core_answer(forwarded, 200, ("Contact", "<sip:gw@203.0.113.10>"), to_tag="gw")
        self.receive(ok, GATEWAY)
        self.assertEqual(self.statuses(CORE_ALICE.remote)[-1], 200)
        route = forwarded.headers.get_all("Record-Route")
        ack = core_request(
            "ACK", "sip:gw@203.0.113.10", *(f"Route: {r}" for r in reversed(route)),
            call_id="a@198.51.100.7", branch="z9hG4bK-a-ack", to="<sip:x@gw>;tag=gw",
        )
        self.receive(ack, CORE_ALICE)
        self.only(GATEWAY.remote, "ACK")
        self.clock.advance(400)  # past call_setup_timeout: a confirmed call keeps its slot
        self.assertEqual(guard.active_calls(ALICE), 1)
        bye = core_request(
            "BYE", "sip:alice@198.51.100.7", *(f"Route: {r}" for r in route),
            call_id="a@198.51.100.7", branch="z9hG4bK-gw-bye", via="203.0.113.10:5060",
            from_="<sip:x@gw>;tag=gw", to="<sip:alice@example.com>;tag=alice-tag", cseq=1,
        )
        self.receive(bye, GATEWAY)
        self.only(CORE_ALICE.remote, "BYE")
        self.assertEqual(guard.active_calls(ALICE), 0)
