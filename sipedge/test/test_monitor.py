# -*- test-case-name: sipedge.test.test_monitor -*-
"""
Tests for L{sipedge.security.Monitor} (the behaviour monitor), the
C{monitor} stage, their plugin factory and C{[security.monitor]}.
"""

from __future__ import annotations

import gc
import ipaddress
import tomllib
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import sipedge
from sipedge import _debug
from sipedge.config import Config, parse_config
from sipedge.error import ConfigError
from sipedge.interfaces import IProxyObserver, IRequestStage, IResponseStage
from sipedge.message import Request, Response, parse_datagram
from sipedge.pipeline import (
    Continue,
    Drop,
    Forward,
    RequestChain,
    RequestContext,
    Respond,
    StageServices,
    Target,
    stage_factories,
)
from sipedge.pipeline.stages import MonitorStage
from sipedge.plugins import sipedge_monitor_stages
from sipedge.proxy import LocalIdentity
from sipedge.security import (
    MONITOR_RULES,
    MONITOR_STAT_KEYS,
    Monitor,
    MonitorConfig,
    Security,
    SecurityConfig,
    Verdict,
    parse_security_config,
)
from sipedge.testing import ALICE as CORE_ALICE
from sipedge.testing import BOB_UDP as CORE_PBX
from sipedge.testing import TRUSTED as CORE_TRUSTED
from sipedge.testing import (
    ProxyHarness,
    capture_log,
)
from sipedge.testing import sip_answer as core_answer
from sipedge.testing import sip_request as core_request
from sipedge.transaction import make_response
from sipedge.transport import Flow

PROXY = "192.0.2.1"
ATTACKER = "203.0.113.66"
OTHER = "203.0.113.99"
PHONE = "198.51.100.7"
TRUNK = "10.1.2.3"
TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)
ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"

FORWARD = Forward([Target("sip:callee@198.51.100.20")])
NOT_FOUND = Respond(404)
CHALLENGE = Respond(407)


def request(
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    call_id: str = "call-1@203.0.113.66",
    to_tag: str | None = None,
) -> Request:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 203.0.113.66:5060;branch=z9hG4bK-m1",
        "Max-Forwards: 70",
        "From: <sip:alice@example.com>;tag=m1",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        "Content-Length: 0",
    ]
    message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def flow(source: str) -> Flow:
    return Flow("UDP", PROXY, 5060, source, 5060)


CREDENTIALS = (
    'Digest username="{user}", realm="pbx.example.com", nonce="n1",'
    ' uri="sip:pbx.example.com", response="0123456789abcdef0123456789abcdef"'
)


def with_credentials(req: Request, user: str = "alice", name: str = "Authorization") -> Request:
    """C{req} with digest credentials for a server behind us."""
    return req.with_headers(req.headers.added(name, CREDENTIALS.format(user=user)))


class MonitorTestCase(SynchronousTestCase):
    """A L{Monitor} on a clock with a L{Security}, and ways to feed it decisions."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.events = capture_log(self)
        self.security = Security(clock=self.clock, trusted=TRUSTED)
        self.addCleanup(self.security.close)
        self.services = StageServices(
            clock=self.clock,
            local=LocalIdentity(("example.com",), ()),
            trusted=TRUSTED,
            security=self.security,
        )

    def monitor(self, **settings: Any) -> Monitor:
        """A monitor whose every rule is off but those C{settings} turn on."""
        rules: dict[str, Any] = {f"{key}_action": "off" for key in MONITOR_RULES.values()}
        rules.update(settings)
        return Monitor(MonitorConfig(**rules), clock=self.clock, security=self.security)

    def decide(
        self,
        monitor: Monitor,
        result: Any = FORWARD,
        req: Request | None = None,
        *,
        source: str = ATTACKER,
        identity: str | None = None,
        auth: str | None = None,
        auth_user: str | None = "alice",
        services: Any = None,
    ) -> RequestContext:
        context = RequestContext(
            req if req is not None else request(),
            flow(source),
            self.services if services is None else services,
        )
        context.identity = identity
        if auth is not None:
            context.annotations["digest-auth"] = {
                "result": auth,
                "reason": "testing",
                "source": source,
                "user": auth_user,
            }
        monitor.request_decided(context, result)
        return context

    def triggers(self, metric: str | None = None) -> list[dict[str, Any]]:
        """The monitor's trigger events (of C{metric})."""
        return [
            e
            for e in self.events
            if e.get("rule") == "monitor"
            and "metric" in e
            and (metric is None or e["metric"] == metric)
        ]


class MonitorTests(MonitorTestCase):
    """Tests for L{Monitor} as an observer."""

    def test_interface(self) -> None:
        """L{Monitor} provides L{IProxyObserver}."""
        self.assertTrue(verifyObject(IProxyObserver, Monitor(clock=self.clock)))
        self.assertTrue(verifyObject(IProxyObserver, self.monitor()))

    def test_stats_keys(self) -> None:
        """
        The monitor's counters start at 0, in C{security.stats} by default
        (one per rule and per action, among others).
        """
        monitor = self.monitor()
        self.assertIs(monitor.stats, self.security.stats)
        for key in MONITOR_STAT_KEYS:
            self.assertEqual(monitor.stats[key], 0)
        self.assertIn("monitor_auth_failure_ratio", MONITOR_STAT_KEYS)
        self.assertIn("monitor_rate_limit", MONITOR_STAT_KEYS)
        own: dict[str, int] = {}
        Monitor(clock=self.clock, stats=own)
        self.assertEqual(set(own), set(MONITOR_STAT_KEYS))

    def test_request_rate_once_per_window(self) -> None:
        """
        If a source's requests in the window reach C{request_rate}, the
        rule triggers once, however many more come in that window; a window
        later, still over the threshold, it triggers once again. The log
        event has the rule, metric, source, user, value, threshold and
        action.
        """
        monitor = self.monitor(request_rate=5, request_rate_action="log")
        for _ in range(4):
            self.decide(monitor, req=request("OPTIONS"))
        self.assertEqual(self.triggers(), [])
        for _ in range(20):
            self.decide(monitor, req=request("OPTIONS"))
        [event] = self.triggers("request-rate")
        self.assertEqual(
            {k: event[k] for k in ("rule", "metric", "scope", "source", "user", "value")},
            {
                "rule": "monitor",
                "metric": "request-rate",
                "scope": "source",
                "source": ATTACKER,
                "user": None,
                "value": 5,
            },
        )
        self.assertEqual((event["threshold"], event["action"]), (5, "log"))
        self.assertEqual(event["log_level"].name, "warn")
        self.assertEqual(monitor.stats["monitor_triggered"], 1)
        self.assertEqual(monitor.stats["monitor_request_rate"], 1)
        self.assertEqual(monitor.stats["monitor_log"], 1)
        self.assertFalse(self.security.is_banned(ATTACKER))
        self.assertFalse(monitor.is_restricted(ATTACKER))
        # Steady traffic a window later triggers once more.
        for _ in range(12):
            self.clock.advance(5)
            self.decide(monitor, req=request("OPTIONS"))
        self.assertEqual(len(self.triggers("request-rate")), 2)

    def test_sliding_window(self) -> None:
        """
        Requests that left the window no longer count: a source that stays
        under C{request_rate} in every window never triggers.
        """
        monitor = self.monitor(request_rate=5, request_rate_action="log")
        for _ in range(20):
            self.decide(monitor, req=request("OPTIONS"))
            self.clock.advance(20)
        self.assertEqual(self.triggers(), [])

    def test_per_source(self) -> None:
        """Each source is counted on its own."""
        monitor = self.monitor(request_rate=3, request_rate_action="log")
        for source in (ATTACKER, OTHER, ATTACKER, OTHER, PHONE):
            self.decide(monitor, req=request("OPTIONS"), source=source)
        self.assertEqual(self.triggers(), [])
        self.decide(monitor, req=request("OPTIONS"), source=OTHER)
        [event] = self.triggers()
        self.assertEqual(event["source"], OTHER)

    def test_auth_failure_ratio_source_ban(self) -> None:
        """
        If the share of failed digest outcomes of a source reaches
        C{auth_failure_ratio} once there are C{min_samples} outcomes, the
        C{ban} action counts a C{monitor} offence, which bans the source;
        challenges do not count as outcomes.
        """
        monitor = self.monitor(
            auth_failure_ratio=0.5, auth_failure_ratio_action="ban", min_samples=4
        )
        for _ in range(10):
            self.decide(monitor, CHALLENGE, auth="challenged")
        self.decide(monitor, FORWARD, auth="ok")
        self.decide(monitor, CHALLENGE, auth="failed", auth_user="bob")
        self.decide(monitor, CHALLENGE, auth="failed", auth_user="carol")
        self.assertEqual(self.triggers(), [])  # 2 of 3: too few samples
        self.assertFalse(self.security.is_banned(ATTACKER))
        self.decide(monitor, FORWARD, auth="ok")  # 2 of 4: the ratio is reached
        [event] = self.triggers("auth-failure-ratio")
        self.assertEqual((event["scope"], event["value"], event["threshold"]), ("source", 0.5, 0.5))
        self.assertEqual(event["action"], "ban")
        self.assertTrue(self.security.is_banned(ATTACKER))
        self.assertEqual(self.security.stats["offences_monitor"], 1)
        self.assertEqual(monitor.stats["monitor_ban"], 1)
        self.decide(monitor, CHALLENGE, auth="failed")
        self.assertEqual(len(self.triggers("auth-failure-ratio")), 1)
        self.assertEqual(self.security.stats["offences_monitor"], 1)

    def test_auth_failure_ratio_below(self) -> None:
        """A ratio under the threshold never triggers, however many samples."""
        monitor = self.monitor(
            auth_failure_ratio=0.5, auth_failure_ratio_action="ban", min_samples=4
        )
        for _ in range(30):
            self.decide(monitor, FORWARD, auth="ok")
            self.decide(monitor, FORWARD, auth="ok")
            self.decide(monitor, CHALLENGE, auth="failed")
        self.assertEqual(self.triggers(), [])

    def test_auth_failure_ratio_user(self) -> None:
        """
        The failure ratio is counted per user name too: a password guessed
        at from many addresses triggers the user rule, acting against the
        source of the request that reached the threshold, with the user in
        the event.
        """
        monitor = self.monitor(
            auth_failure_ratio=1.0, auth_failure_ratio_action="rate-limit", min_samples=3
        )
        sources = ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"]
        for source in sources:
            self.decide(monitor, CHALLENGE, source=source, auth="failed", auth_user="alice")
        [event] = self.triggers()
        self.assertEqual(
            (event["scope"], event["user"], event["source"], event["action"]),
            ("user", "alice", "203.0.113.3", "rate-limit"),
        )
        self.assertEqual(monitor.restricted().keys(), {"203.0.113.3"})

    def test_not_found_ratio(self) -> None:
        """
        If the share of a source's requests answered 404 reaches
        C{not_found_ratio} once there are C{min_samples} requests, the rule
        triggers (once per window).
        """
        monitor = self.monitor(not_found_ratio=0.75, not_found_ratio_action="log", min_samples=4)
        self.decide(monitor, FORWARD)
        for i in range(2):
            self.decide(monitor, NOT_FOUND, request(uri=f"sip:{100 + i}@example.com"))
        self.assertEqual(self.triggers(), [])
        self.decide(monitor, NOT_FOUND, request(uri="sip:102@example.com"))
        [event] = self.triggers("not-found-ratio")
        self.assertEqual((event["value"], event["threshold"]), (0.75, 0.75))
        for i in range(10):
            self.decide(monitor, NOT_FOUND, request(uri=f"sip:{200 + i}@example.com"))
        self.assertEqual(len(self.triggers()), 1)

    def test_distinct_not_found_users(self) -> None:
        """
        If a source has requests for C{distinct_not_found_users} different
        Request-URI users answered 404 in the window (an extension scan),
        the rule triggers; the same user again and again does not count.
        """
        monitor = self.monitor(distinct_not_found_users=5, distinct_not_found_users_action="ban")
        for _ in range(10):
            self.decide(monitor, NOT_FOUND, request(uri="sip:100@example.com"))
        for i in range(3):
            self.decide(monitor, NOT_FOUND, request(uri=f"sip:{101 + i}@example.com"))
        self.decide(monitor, FORWARD, request(uri="sip:200@example.com"))
        self.assertEqual(self.triggers(), [])
        self.decide(monitor, NOT_FOUND, request(uri="tel:+1-555-0100"))
        [event] = self.triggers("distinct-not-found-users")
        self.assertEqual((event["value"], event["action"]), (5, "ban"))
        self.assertTrue(self.security.is_banned(ATTACKER))

    def test_distinct_not_found_users_window(self) -> None:
        """Users tried longer ago than the window are not counted."""
        monitor = self.monitor(distinct_not_found_users=3, distinct_not_found_users_action="log")
        for i in range(6):
            self.decide(monitor, NOT_FOUND, request(uri=f"sip:{100 + i}@example.com"))
            self.clock.advance(30)
        self.assertEqual(self.triggers(), [])

    def test_premium_calls(self) -> None:
        """
        INVITEs to a premium prefix (on the Request-URI user or tel number,
        visual separators ignored) are counted per source and per
        authenticated user; each scope triggers once. Other numbers and
        in-dialog INVITEs do not count.
        """
        monitor = self.monitor(
            premium_prefixes=["+1900", "00"], premium_calls=3, premium_calls_action="log"
        )
        self.decide(monitor, req=request(uri="sip:+44207@example.com"), identity=ALICE)
        self.decide(
            monitor, req=request(uri="sip:+1900555@example.com", to_tag="x"), identity=ALICE
        )
        self.decide(monitor, req=request(uri="sip:+1-900-555-0100@example.com"), identity=ALICE)
        self.decide(
            monitor, req=request(uri="tel:00-44-909-1234;phone-context=+44"), identity=ALICE
        )
        self.assertEqual(self.triggers(), [])
        self.decide(monitor, Respond(403), request(uri="sip:0090@example.com"), identity=ALICE)
        events = self.triggers("premium-calls")
        self.assertEqual(
            sorted((e["scope"], e["user"], e["value"]) for e in events),
            [("source", ALICE, 3), ("user", ALICE, 3)],
        )
        self.decide(monitor, req=request(uri="sip:0090@example.com"), identity=ALICE)
        self.assertEqual(len(self.triggers()), 2)

    def test_premium_calls_off_without_prefixes(self) -> None:
        """Without premium prefixes, the premium rule never triggers."""
        monitor = self.monitor(premium_calls=1, premium_calls_action="log")
        self.decide(monitor, req=request(uri="sip:+1900555@example.com"), identity=ALICE)
        self.assertEqual(self.triggers(), [])

    def test_call_rate(self) -> None:
        """
        If an authenticated user's new calls in the window reach
        C{call_rate}, the C{rate-limit} action restricts the source for
        C{restrict_duration}; the restriction ends by itself.
        """
        monitor = self.monitor(call_rate=3, call_rate_action="rate-limit", restrict_duration=100)
        for i in range(5):
            self.decide(monitor, req=request(call_id=f"c{i}"), identity=ALICE)
            self.decide(monitor, req=request(call_id=f"c{i}"), source=OTHER, identity=BOB)
            self.decide(monitor, CHALLENGE, request(call_id=f"u{i}"), source=PHONE)
        events = self.triggers("call-rate")
        self.assertEqual(
            [(e["scope"], e["user"], e["source"], e["value"], e["action"]) for e in events],
            [("user", ALICE, ATTACKER, 3, "rate-limit"), ("user", BOB, OTHER, 3, "rate-limit")],
        )
        self.assertEqual(monitor.restricted(), {ATTACKER: 1100.0, OTHER: 1100.0})
        self.assertEqual(monitor.stats["monitor_rate_limit"], 2)
        self.clock.advance(100)
        self.assertFalse(monitor.is_restricted(ATTACKER))
        self.assertEqual(monitor.restricted(), {})

    def test_concurrent_calls(self) -> None:
        """
        Calls of one user forwarded and not yet ended are counted; reaching
        C{concurrent_calls} triggers the rule. A BYE (seen as a decision or
        by the stage) or a CANCEL ends a call; INVITEs that were not
        forwarded are no calls. A BYE from a trusted source ends a call too.
        """
        monitor = self.monitor(concurrent_calls=3, concurrent_calls_action="log")
        self.decide(monitor, req=request(call_id="a"), identity=ALICE)
        self.decide(monitor, req=request(call_id="b"), identity=ALICE)
        self.decide(monitor, Respond(486), request(call_id="x"), identity=ALICE)
        self.decide(monitor, FORWARD, request(call_id="y"))  # no identity
        self.assertEqual(monitor.calls.active(ALICE), 2)
        self.decide(monitor, req=request("BYE", call_id="a", to_tag="t"), source=TRUNK)
        monitor.note_dialog_request(request("CANCEL", call_id="b"))
        self.assertEqual(monitor.calls.active(ALICE), 0)
        for call_id in ("c", "d"):
            self.decide(monitor, req=request(call_id=call_id), identity=ALICE)
        self.assertEqual(self.triggers(), [])
        self.decide(monitor, req=request(call_id="e"), identity=ALICE)
        [event] = self.triggers("concurrent-calls")
        self.assertEqual((event["user"], event["value"]), (ALICE, 3))
        self.decide(monitor, req=request(call_id="f"), identity=ALICE)
        self.assertEqual(len(self.triggers()), 1)

    def test_concurrent_calls_expire(self) -> None:
        """
        A call no BYE ends is forgotten after C{max_call_duration}; with
        the monitor stage showing ACKs, a call no ACK confirms is forgotten
        after C{call_setup_timeout}.
        """
        monitor = self.monitor(max_call_duration=600, call_setup_timeout=30)
        self.decide(monitor, req=request(call_id="a"), identity=ALICE)
        self.clock.advance(599)
        self.decide(monitor, req=request(call_id="b"), identity=ALICE)
        self.assertEqual(monitor.calls.active(ALICE), 2)
        self.clock.advance(1)
        monitor.purge()
        self.assertEqual(monitor.calls.active(ALICE), 1)
        MonitorStage(monitor)
        self.decide(monitor, req=request(call_id="c"), identity=ALICE)
        self.decide(monitor, req=request(call_id="d"), identity=ALICE)
        monitor.note_dialog_request(request("ACK", call_id="c", to_tag="t"))
        self.clock.advance(30)
        monitor.purge()
        self.assertEqual([c.call_id for c in monitor.calls.calls()], ["b", "c"])

    def test_trusted_never(self) -> None:
        """
        Sources in a trusted network (the security service's, or the
        decision's services') are neither counted nor acted on.
        """
        monitor = self.monitor(request_rate=2, request_rate_action="ban")
        services = StageServices(
            clock=self.clock,
            local=LocalIdentity(("example.com",), ()),
            trusted=(ipaddress.ip_network("198.51.100.0/24"),),
        )
        for _ in range(10):
            self.decide(monitor, source=TRUNK)
            self.decide(monitor, source=PHONE, services=services)
        self.assertEqual(self.triggers(), [])
        self.assertEqual(monitor.sizes()["sources"], 0)
        self.assertEqual(self.security.stats["bans_refused_trusted"], 0)
        own = Monitor(
            MonitorConfig(request_rate=1, request_rate_action="ban"),
            clock=self.clock,
            is_trusted=lambda host: host == OTHER,
        )
        for _ in range(3):
            self.decide(own, source=OTHER, services=attrs.evolve(self.services, trusted=()))
        self.assertEqual(self.triggers(), [])

    def test_off(self) -> None:
        """A rule whose action is C{off} never triggers."""
        monitor = self.monitor(request_rate=1)
        for _ in range(5):
            self.decide(monitor)
        self.assertEqual(self.triggers(), [])
        self.assertEqual(monitor.stats["monitor_triggered"], 0)

    def test_ban_without_security(self) -> None:
        """Without a security service, the C{ban} action logs that it cannot ban."""
        monitor = Monitor(
            MonitorConfig(request_rate=1, request_rate_action="ban"), clock=self.clock
        )
        self.decide(monitor)
        [event] = self.triggers()
        self.assertEqual(event["action"], "ban")
        self.assertTrue(
            [e for e in self.events if "cannot ban" in e.get("log_format", "")], self.events
        )

    def test_from_config(self) -> None:
        """
        L{Monitor.from_config} takes C{[security.monitor]} from a whole
        config, and C{sip.trusted} as trusted when there is no security
        service.
        """
        config = parse_config(
            tomllib.loads(
                '[sip]\ntrusted = ["10.0.0.0/8"]\n'
                "[security.monitor]\nrequest_rate = 2\nrequest_rate_action = 'log'\n"
            )
        )
        monitor = Monitor.from_config(config, self.clock)
        self.assertEqual(monitor.config.request_rate, 2)
        self.assertIsNone(monitor.security)
        for _ in range(3):
            self.decide(monitor, source=TRUNK, services=attrs.evolve(self.services, trusted=()))
        self.assertEqual(self.triggers(), [])
        self.decide(monitor)
        self.decide(monitor)
        self.assertEqual(len(self.triggers()), 1)
        monitor = Monitor.from_config(config, self.clock, self.security)
        self.assertIs(monitor.security, self.security)


class MonitorResponseTests(MonitorTestCase):
    """
    The monitor's response side: what servers behind us answer, shown to
    it by the C{monitor} stage (L{MonitorStage.process_response}).
    """

    def relay(
        self,
        monitor: Monitor,
        status: int,
        req: Request | None = None,
        *,
        source: str = ATTACKER,
        auth: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        """
        Forward C{req} (the monitor decides on it as the core would tell it),
        then relay a C{status} final through the stage's response side.
        """
        context = self.decide(monitor, FORWARD, req, source=source, auth=auth)
        response = make_response(context.request, status, headers=headers)
        relayed = MonitorStage(monitor).process_response(context, response)
        self.assertIs(relayed, response)
        return response

    def test_interface(self) -> None:
        """L{MonitorStage} is an L{IResponseStage} too."""
        self.assertTrue(verifyObject(IResponseStage, MonitorStage(self.monitor())))

    def test_downstream_not_found_users(self) -> None:
        """
        If a server behind us answers 404 to a source's requests for
        C{distinct_not_found_users} different users (an extension scan
        through us), the rule triggers against that source and bans it.
        """
        monitor = self.monitor(distinct_not_found_users=3, distinct_not_found_users_action="ban")
        for i in range(2):
            self.relay(monitor, 404, request("REGISTER", f"sip:{100 + i}@example.com"))
        self.relay(monitor, 200, request("REGISTER", "sip:200@example.com"))
        self.assertEqual(self.triggers(), [])
        self.relay(monitor, 404, request("REGISTER", "sip:102@example.com"))
        [event] = self.triggers("distinct-not-found-users")
        self.assertEqual((event["source"], event["value"]), (ATTACKER, 3))
        self.assertTrue(self.security.is_banned(ATTACKER))

    def test_downstream_not_found_ratio(self) -> None:
        """
        If 404s from behind us make up C{not_found_ratio} of a source's
        requests, the rule triggers; the chain's own 404s and the relayed
        ones add up, each once.
        """
        monitor = self.monitor(not_found_ratio=0.75, not_found_ratio_action="log", min_samples=4)
        self.relay(monitor, 200)
        self.decide(monitor, NOT_FOUND, request(uri="sip:100@example.com"))
        self.relay(monitor, 404, request(uri="sip:101@example.com"))
        self.assertEqual(self.triggers(), [])
        self.relay(monitor, 404, request(uri="sip:102@example.com"))
        [event] = self.triggers("not-found-ratio")
        self.assertEqual(event["value"], 0.75)

    def test_local_finals_not_counted(self) -> None:
        """
        If the final is one the proxy core made up (C{Warning: 399
        sipedge}: a next hop DNS does not know, a branch without an
        answer), it is not counted.
        """
        monitor = self.monitor(distinct_not_found_users=2, distinct_not_found_users_action="log")
        warning = (("Warning", '399 sipedge "next hop not found"'),)
        for i in range(4):
            self.relay(monitor, 404, request(uri=f"sip:{i}@example.com"), headers=warning)
        self.assertEqual(self.triggers(), [])
        other = (("Warning", '399 pbx.example.com "no such extension"'),)
        for i in range(2):
            self.relay(monitor, 404, request(uri=f"sip:{i}@example.com"), headers=other)
        self.assertEqual(len(self.triggers("distinct-not-found-users")), 1)

    def test_once_per_request(self) -> None:
        """
        If several finals are relayed for one request (2xx of a forked
        INVITE), only the first counts; provisional responses and responses
        without a context (stray 2xx) count nothing.
        """
        monitor = self.monitor(distinct_not_found_users=2, distinct_not_found_users_action="log")
        stage = MonitorStage(monitor)
        context = self.decide(monitor, FORWARD, request(uri="sip:1@example.com"))
        for status in (180, 404, 404):
            stage.process_response(context, make_response(context.request, status))
        stage.process_response(None, make_response(request(uri="sip:2@example.com"), 404))
        self.assertEqual(self.triggers(), [])
        self.relay(monitor, 404, request(uri="sip:2@example.com"))
        self.assertEqual(len(self.triggers()), 1)

    def test_downstream_auth_failures(self) -> None:
        """
        If a server behind us answers 401, 407 or 403 to credentials the
        request carried on, that is a failed digest outcome of the source
        and of the user named; a 2xx is an ok one; enough failures trigger
        C{auth-failure-ratio} and ban the source.
        """
        monitor = self.monitor(
            auth_failure_ratio=0.75, auth_failure_ratio_action="ban", min_samples=4
        )
        self.relay(monitor, 200, with_credentials(request("REGISTER")))
        self.relay(monitor, 401, with_credentials(request("REGISTER"), "bob"))
        self.relay(monitor, 407, with_credentials(request(), "bob", "Proxy-Authorization"))
        self.assertEqual(self.triggers(), [])
        self.relay(monitor, 403, with_credentials(request("REGISTER"), "carol"))
        [event] = self.triggers("auth-failure-ratio")
        self.assertEqual((event["scope"], event["value"]), ("source", 0.75))
        self.assertTrue(self.security.is_banned(ATTACKER))

    def test_downstream_auth_user(self) -> None:
        """The user named in the credentials is scored too, from any source."""
        monitor = self.monitor(
            auth_failure_ratio=1.0, auth_failure_ratio_action="log", min_samples=3
        )
        for i in range(3):
            req = with_credentials(request("REGISTER"), "alice")
            self.relay(monitor, 401, req, source=f"203.0.113.{i + 1}")
        [event] = self.triggers()
        self.assertEqual((event["scope"], event["user"]), ("user", "alice"))

    def test_challenges_not_outcomes(self) -> None:
        """
        If the request carried no credentials, a 401/407 is a challenge and
        a 2xx or 403 is no digest outcome: nothing is counted.
        """
        monitor = self.monitor(
            auth_failure_ratio=0.1, auth_failure_ratio_action="log", min_samples=1
        )
        for status in (401, 407, 403, 200):
            self.relay(monitor, status, request("REGISTER"))
        self.assertEqual(self.triggers(), [])

    def test_judged_by_us_not_again(self) -> None:
        """
        If our C{digest-auth} stage judged the request's credentials, the
        relayed answer is not a second outcome.
        """
        monitor = self.monitor(
            auth_failure_ratio=0.5, auth_failure_ratio_action="log", min_samples=2
        )
        for _ in range(2):
            self.relay(monitor, 401, with_credentials(request("REGISTER")), auth="ok")
        self.assertEqual(self.triggers(), [])

    def test_malformed_credentials(self) -> None:
        """If the credentials do not parse, the failure counts for the source only."""
        monitor = self.monitor(
            auth_failure_ratio=1.0, auth_failure_ratio_action="log", min_samples=2
        )
        bad = request("REGISTER")
        bad = bad.with_headers(bad.headers.added("Authorization", 'Digest username="'))
        self.relay(monitor, 401, bad)
        self.relay(monitor, 401, bad)
        [event] = self.triggers()
        self.assertEqual((event["scope"], event["user"]), ("source", None))

    def test_trusted_not_counted(self) -> None:
        """If the request came from a trusted network, its responses count nothing."""
        monitor = self.monitor(distinct_not_found_users=1, distinct_not_found_users_action="ban")
        self.relay(monitor, 404, source=TRUNK)
        self.assertEqual(self.triggers(), [])


class MonitorMemoryTests(MonitorTestCase):
    """The monitor's memory stays bounded."""

    def test_max_sources(self) -> None:
        """
        At most C{max_sources} sources are kept, the least recently seen
        evicted first (and counted).
        """
        monitor = self.monitor(max_sources=3)
        for i in range(10):
            self.decide(monitor, source=f"203.0.113.{i}")
        self.assertEqual(monitor.sizes()["sources"], 3)
        self.assertEqual(monitor.stats["monitor_sources_evicted"], 7)

    def test_max_users(self) -> None:
        """At most C{max_users} users are kept."""
        monitor = self.monitor(max_users=2)
        for i in range(5):
            self.decide(monitor, req=request(call_id=f"c{i}"), identity=f"sip:u{i}@example.com")
            self.decide(monitor, CHALLENGE, auth="failed", auth_user=f"v{i}")
        self.assertEqual(monitor.sizes()["users"], 2)
        self.assertEqual(monitor.stats["monitor_users_evicted"], 8)

    def test_max_calls(self) -> None:
        """At most C{max_calls} calls are kept, the oldest forgotten first."""
        monitor = self.monitor(max_calls=2)
        for i in range(4):
            self.decide(monitor, req=request(call_id=f"c{i}"), identity=ALICE)
        self.assertEqual([c.call_id for c in monitor.calls.calls()], ["c2", "c3"])
        self.assertEqual(monitor.stats["monitor_calls_evicted"], 2)

    def test_idle_expire(self) -> None:
        """
        Sources and users idle for a window are forgotten as decisions keep
        arriving (no timer), and so are ended restrictions.
        """
        monitor = self.monitor(restrict_duration=30)
        for i in range(5):
            self.decide(monitor, source=f"203.0.113.{i}", identity=f"sip:u{i}@example.com")
        monitor.restrict(OTHER)
        self.assertEqual(monitor.sizes(), {"sources": 5, "users": 5, "restricted": 1, "calls": 5})
        self.clock.advance(monitor.config.window)
        self.decide(monitor, req=request("OPTIONS"), source=PHONE)
        self.assertEqual(monitor.sizes(), {"sources": 1, "users": 0, "restricted": 0, "calls": 5})

    def test_restricted_bounded(self) -> None:
        """At most C{max_sources} sources are restricted at once."""
        monitor = self.monitor(max_sources=2)
        for i in range(4):
            monitor.restrict(f"203.0.113.{i}")
        self.assertEqual(sorted(monitor.restricted()), ["203.0.113.2", "203.0.113.3"])

    def test_distinct_users_bounded(self) -> None:
        """
        A source's 404ed users are kept up to the rule's threshold only,
        however many it tries.
        """
        monitor = self.monitor(distinct_not_found_users=4, distinct_not_found_users_action="log")
        for i in range(100):
            self.decide(monitor, NOT_FOUND, request(uri=f"sip:{1000 + i}@example.com"))
        [record] = monitor._sources.values()
        assert record.not_found_users is not None
        self.assertEqual(len(record.not_found_users), 4)
        self.assertEqual(len(self.triggers()), 1)


class MonitorStageTests(MonitorTestCase):
    """Tests for L{MonitorStage}."""

    def run_stage(self, stage: MonitorStage, req: Request, source: str = ATTACKER) -> Any:
        return stage.process_request(RequestContext(req, flow(source), self.services))

    def test_interface(self) -> None:
        """L{MonitorStage} is an L{IRequestStage} named C{monitor}."""
        stage = MonitorStage(self.monitor())
        self.assertTrue(verifyObject(IRequestStage, stage))
        self.assertEqual(stage.name, "monitor")

    def test_restricted(self) -> None:
        """
        A restricted source gets C{restricted_burst} requests at once and
        C{restricted_rate} a second per method class; the rest is dropped
        unanswered, counted, and logged at info level once per second.
        Others pass.
        """
        _debug.set_enabled(True)  # the per-drop debug lines are asserted
        self.addCleanup(_debug.set_enabled, False)
        monitor = self.monitor(restricted_rate=1, restricted_burst=2)
        stage = MonitorStage(monitor)
        monitor.restrict(ATTACKER)
        results = [self.run_stage(stage, request("OPTIONS")) for _ in range(5)]
        self.assertEqual(results[:2], [Continue(), Continue()])
        self.assertEqual([type(r) for r in results[2:]], [Drop] * 3)
        self.assertEqual(self.run_stage(stage, request("INVITE")), Continue())
        self.assertEqual(self.run_stage(stage, request("OPTIONS"), OTHER), Continue())
        self.assertEqual(monitor.stats["monitor_restricted_dropped"], 3)
        drops = [e for e in self.events if e.get("rule") == "monitor" and "method" in e]
        self.assertEqual([e["log_level"].name for e in drops], ["info", "debug", "debug"])
        self.assertEqual((drops[0]["source"], drops[0]["action"]), (ATTACKER, "rate-limit"))
        self.clock.advance(1)
        self.assertEqual(self.run_stage(stage, request("OPTIONS")), Continue())
        self.assertEqual(monitor.admit(OTHER, "OPTIONS"), Verdict.ADMIT)

    def test_rate_limit_action(self) -> None:
        """
        A rule with the C{rate-limit} action puts the source on the reduced
        budget that the stage enforces, until C{restrict_duration} ends.
        """
        monitor = self.monitor(
            request_rate=3,
            request_rate_action="rate-limit",
            restricted_rate=0.1,
            restricted_burst=1,
            restrict_duration=60,
        )
        stage = MonitorStage(monitor)
        for _ in range(3):
            self.assertEqual(self.run_stage(stage, request("OPTIONS")), Continue())
            self.decide(monitor, Respond(200), request("OPTIONS"))
        self.assertEqual(self.run_stage(stage, request("OPTIONS")), Continue())
        self.assertIsInstance(self.run_stage(stage, request("OPTIONS")), Drop)
        self.clock.advance(60)
        for _ in range(3):
            self.assertEqual(self.run_stage(stage, request("OPTIONS")), Continue())

    def test_dialog_requests(self) -> None:
        """The stage shows the monitor every ACK, BYE and CANCEL it lets through."""
        monitor = self.monitor(call_setup_timeout=10)
        stage = MonitorStage(monitor)
        for call_id in ("a", "b", "c"):
            self.decide(monitor, req=request(call_id=call_id), identity=ALICE)
        self.run_stage(stage, request("ACK", call_id="a", to_tag="t"))
        self.run_stage(stage, request("BYE", call_id="b", to_tag="t"))
        self.run_stage(stage, request("CANCEL", call_id="c"))
        self.assertEqual([(c.call_id, c.confirmed) for c in monitor.calls.calls()], [("a", True)])


def _services(clock: Any, security: Any, monitor: Any = None) -> StageServices:
    """StageServices as the composition root will make them: with C{monitor}."""
    return StageServices(
        clock=clock, local=LocalIdentity((), ()), security=security, monitor=monitor
    )


class MonitorPluginTests(MonitorTestCase):
    """The C{monitor} stage factory."""

    def test_found(self) -> None:
        """
        The C{monitor} factory is found as a plugin and builds the stage on
        C{services.monitor}; it takes no options.
        """
        factory = stage_factories()["monitor"]
        self.assertIs(type(factory).__module__, sipedge_monitor_stages.__name__)
        self.assertTrue(factory.description)
        monitor = self.monitor()
        services = _services(self.clock, self.security, monitor)
        stage = factory.build_stage({}, services)
        self.assertIs(stage.monitor, monitor)
        error = self.assertRaises(ConfigError, factory.build_stage, {"x": 1}, services)
        self.assertIn("pipeline.options.monitor: unknown option 'x'", str(error))

    def test_without_monitor(self) -> None:
        """
        If the services carry no monitor, the factory makes one from the
        config's C{[security.monitor]}, once per services object, and logs
        a warning.
        """
        config = Config(security=SecurityConfig(monitor={"request_rate": 7}))
        services = attrs.evolve(self.services, config=config)
        factory = stage_factories()["monitor"]
        first = factory.build_stage({}, services)
        second = factory.build_stage({}, services)
        self.assertIs(first.monitor, second.monitor)
        self.assertEqual(first.monitor.config.request_rate, 7)
        self.assertIs(first.monitor.security, self.security)
        warnings = [e for e in self.events if "No monitor" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        key = id(services)
        self.assertIn(key, sipedge_monitor_stages._FALLBACK)
        del services, first, second
        gc.collect()
        self.assertNotIn(key, sipedge_monitor_stages._FALLBACK)


class MonitorConfigTests(SynchronousTestCase):
    """Tests for C{[security.monitor]}."""

    def parse(self, text: str) -> SecurityConfig:
        return parse_security_config(tomllib.loads(text).get("security"), "test.toml")

    def test_defaults(self) -> None:
        """
        Without C{[security.monitor]}, every rule has its default threshold
        and action; no premium prefix is set.
        """
        config = self.parse("[security]\n").monitor
        self.assertEqual(config, MonitorConfig())
        self.assertEqual(
            config.rules,
            {
                "auth-failure-ratio": (0.8, "ban"),
                "not-found-ratio": (0.8, "log"),
                "distinct-not-found-users": (20, "ban"),
                "request-rate": (3000, "log"),
                "premium-calls": (5, "log"),
                "concurrent-calls": (10, "log"),
                "call-rate": (30, "log"),
            },
        )
        self.assertEqual(config.premium_prefixes, ())

    def test_table(self) -> None:
        """C{[security.monitor]} sets the monitor's values (integers as numbers)."""
        config = self.parse(
            "[security.monitor]\nwindow = 120\nmin_samples = 3\n"
            'premium_prefixes = ["+1900", " 00 "]\nauth_failure_ratio = 1\n'
            'request_rate_action = "off"\n'
        ).monitor
        self.assertEqual((config.window, config.min_samples), (120.0, 3))
        self.assertEqual(config.premium_prefixes, ("+1900", "00"))
        self.assertEqual(config.auth_failure_ratio, 1.0)
        self.assertEqual(config.rules["request-rate"], (3000, "off"))

    def test_errors_name_keys(self) -> None:
        """
        A bad value in C{[security.monitor]} raises L{ConfigError} naming
        C{security.monitor.<key>}, from L{parse_security_config} and from
        L{parse_config}.
        """
        cases = {
            "window = 0": "security.monitor.window: must be a positive number of seconds",
            "auth_failure_ratio = 0": "security.monitor.auth_failure_ratio: must be more than 0",
            "auth_failure_ratio = 'x'": "security.monitor.auth_failure_ratio: expected a number",
            "call_rate_action = 'kill'": "security.monitor.call_rate_action: must be one of"
            " off, log, rate-limit, ban, not 'kill'",
            "premium_prefixes = ['+1900', 'x']": "security.monitor.premium_prefixes[1]: 'x' is"
            " not a dialled prefix",
            "premium_prefixes = '00'": "security.monitor.premium_prefixes: expected an array",
            "slots = 61": "security.monitor.slots: must be at most 60",
            "min_samples = 0": "security.monitor.min_samples: must be at least 1",
            "windw = 5": "security.monitor.windw: unknown key; did you mean 'window'?",
            "call_setup_timeout = -1": "security.monitor.call_setup_timeout: must be a"
            " non-negative number",
        }
        for line, expected in cases.items():
            text = f"[security.monitor]\n{line}\n"
            message = str(self.assertRaises(ConfigError, self.parse, text))
            self.assertTrue(message.startswith(f"test.toml: {expected}"), f"{line}: {message}")
            message = str(
                self.assertRaises(ConfigError, parse_config, tomllib.loads(text), "x.toml")
            )
            self.assertTrue(message.startswith(f"x.toml: {expected}"), f"{line}: {message}")
        message = str(self.assertRaises(ConfigError, self.parse, "[security]\nmonitor = 1\n"))
        self.assertEqual(
            message,
            "test.toml: security.monitor: expected a table ([security.monitor]), got integer 1",
        )

    def test_documented(self) -> None:
        """Every key of C{[security.monitor]} is in the table of C{doc/security.md}."""
        doc = Path(sipedge.__file__).resolve().parent.parent / "doc" / "security.md"
        if not doc.exists():
            raise self.skipTest("not running from a checkout")
        text = doc.read_text()
        self.assertIn("### `[security.monitor]`", text)
        for field in attrs.fields(MonitorConfig):
            self.assertIn(f"`{field.name}`", text, field.name)


def unique(tag: str) -> dict[str, Any]:
    """The Call-ID and branch of a new transaction."""
    return {"call_id": f"{tag}@198.51.100.7", "branch": f"z9hG4bK-{tag}"}


class ProxyCoreMonitorTests(ProxyHarness, SynchronousTestCase):
    """The monitor wired as the composition root wires it: observer and stage."""

    def test_extension_scan(self) -> None:
        """
        If a source's requests for different unknown users are answered 404
        by the proxy, the monitor, told of each decision by the proxy core,
        restricts the source, and the C{monitor} stage then drops what it
        sends over the reduced budget, unanswered. A trusted source doing
        the same is left alone.
        """
        events = capture_log(self)
        monitor = Monitor(
            MonitorConfig(
                distinct_not_found_users=3,
                distinct_not_found_users_action="rate-limit",
                restricted_rate=0.01,
                restricted_burst=1,
                restrict_duration=60,
            ),
            clock=self.clock,
        )
        self.core.observers.append(monitor)
        self.core.chain = RequestChain([MonitorStage(monitor), *self.core.chain.stages])
        for i in range(3):
            uri = f"sip:{100 + i}@example.com"
            self.receive(core_request("MESSAGE", uri, **unique(f"a{i}")), CORE_ALICE)
            trunk = core_request("MESSAGE", uri, via="10.1.2.3:5060", **unique(f"t{i}"))
            self.receive(trunk, CORE_TRUSTED)
        self.assertEqual(self.statuses(CORE_ALICE.remote), [404, 404, 404])
        self.assertEqual(monitor.restricted().keys(), {CORE_ALICE.remote_host})
        [event] = [e for e in events if e.get("metric") == "distinct-not-found-users"]
        self.assertEqual((event["source"], event["value"]), (CORE_ALICE.remote_host, 3))
        self.take()
        for i in range(3):
            options = core_request("OPTIONS", "sip:nobody@example.com", **unique(f"o{i}"))
            self.receive(options, CORE_ALICE)
        self.assertEqual(self.statuses(CORE_ALICE.remote), [404])  # one in budget, then nothing
        self.assertEqual(monitor.stats["monitor_restricted_dropped"], 2)

    def test_extension_scan_behind_us(self) -> None:
        """
        If a source scans extensions through the proxy and the PBX behind
        it answers 404, the monitor (seeing the relayed finals through the
        C{monitor} stage) restricts the source; the proxy's own 404 for a
        next hop DNS does not know counts for nothing.
        """
        monitor = Monitor(
            MonitorConfig(
                distinct_not_found_users=3,
                distinct_not_found_users_action="rate-limit",
                restricted_rate=0.01,
                restricted_burst=1,
                restrict_duration=60,
            ),
            clock=self.clock,
        )
        self.core.observers.append(monitor)
        self.core.chain = RequestChain([MonitorStage(monitor), _ToPbx()])
        self.locator.add("nowhere.example")
        for i in range(3):
            uri = f"sip:{300 + i}@nowhere.example"
            self.receive(core_request("OPTIONS", uri, **unique(f"n{i}")), CORE_ALICE)
        self.assertEqual(self.statuses(CORE_ALICE.remote), [404, 404, 404])
        self.assertEqual(monitor.restricted(), {})
        self.take()
        for i in range(3):
            uri = f"sip:{100 + i}@example.com"
            self.receive(core_request("OPTIONS", uri, **unique(f"p{i}")), CORE_ALICE)
            forwarded = self.only(CORE_PBX.remote, "OPTIONS")
            self.take()
            self.receive(core_answer(forwarded, 404), CORE_PBX)
            self.assertEqual(self.statuses(CORE_ALICE.remote), [404])
            self.take()
        self.assertEqual(monitor.restricted().keys(), {CORE_ALICE.remote_host})


class _ToPbx:
    """A stage that forwards everything to the PBX, Request-URI unchanged."""

    name = "to-pbx"

    def process_request(self, context: RequestContext) -> Any:
        if "@nowhere.example" in context.request.uri:
            return Forward([Target(context.request.uri)])
        return Forward([Target(context.request.uri, flow=CORE_PBX)])
