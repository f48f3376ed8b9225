# -*- test-case-name: sipedge.test.test_stage_security -*-
"""
Tests for the security stages (C{ban-check}, C{scanner}, C{flood}) and
their plugin factories.
"""

from __future__ import annotations

import gc
import ipaddress
from typing import Any

from twisted.internet.task import Clock
from twisted.plugin import IPlugin, getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

import sipedge.plugins
from sipedge import _debug
from sipedge.config import Config
from sipedge.error import ConfigError
from sipedge.interfaces import IRequestStage, IStageFactory
from sipedge.message import Request, parse_datagram
from sipedge.pipeline import (
    Continue,
    Drop,
    RequestContext,
    Respond,
    StageServices,
    build_chain,
    stage_factories,
)
from sipedge.pipeline.stages import BanCheckStage, FloodStage, ScannerStage
from sipedge.plugins import sipedge_security_stages
from sipedge.proxy import LocalIdentity
from sipedge.security import (
    DEFAULT_SCANNER_USER_AGENTS,
    Budget,
    RateLimiter,
    Security,
    SecurityConfig,
    UserAgentMatcher,
)
from sipedge.testing import capture_log
from sipedge.transport import Flow

PROXY = "192.0.2.1"
ATTACKER = "203.0.113.66"
PHONE = "198.51.100.7"
TRUNK = "10.1.2.3"
STAGES = ("ban-check", "scanner", "flood", "filter")


def request(method: str = "INVITE", user_agent: str | None = "Linphone/5.2") -> Request:
    lines = [
        f"{method} sip:bob@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 203.0.113.66:5060;branch=z9hG4bK-s1",
        "Max-Forwards: 70",
        "From: <sip:100@example.com>;tag=s1",
        "To: <sip:bob@example.com>",
        "Call-ID: security-1@203.0.113.66",
        f"CSeq: 1 {method}",
        *([f"User-Agent: {user_agent}"] if user_agent is not None else []),
        "Content-Length: 0",
    ]
    message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def flow(source: str) -> Flow:
    return Flow("UDP", PROXY, 5060, source, 5060)


def Services(
    clock: Any, security: Any, trusted: tuple[Any, ...] = (), config: Config | None = None
) -> StageServices:
    """StageServices as the composition root will make them: with C{security}."""
    return StageServices(
        clock=clock,
        local=LocalIdentity(("example.com",), ()),
        security=security,
        trusted=trusted,
        config=config,
    )


class StageTestCase(SynchronousTestCase):
    """A L{Security} on a clock, and a way to run a stage."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.events = capture_log(self)
        self.security = Security(clock=self.clock, trusted=(ipaddress.ip_network("10.0.0.0/8"),))
        self.addCleanup(self.security.close)
        self.services = Services(self.clock, self.security)

    def decide(self, stage: Any, req: Request, source: str = ATTACKER) -> Any:
        return stage.process_request(RequestContext(req, flow(source), self.services))

    def logged(self, rule: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("rule") == rule and "method" in e]


class BanCheckStageTests(StageTestCase):
    """Tests for L{BanCheckStage}."""

    def test_banned(self) -> None:
        """
        If the source is banned, L{BanCheckStage} drops the request without
        an answer, counts it and logs it with rule and source.
        """
        _debug.set_enabled(True)  # the per-drop debug lines are asserted
        self.addCleanup(_debug.set_enabled, False)
        stage = BanCheckStage(self.security)
        self.assertEqual(self.decide(stage, request()), Continue())
        self.security.ban(ATTACKER, "testing")
        self.assertIsInstance(self.decide(stage, request()), Drop)
        self.assertEqual(self.decide(stage, request(), PHONE), Continue())
        [event] = self.logged("ban")
        self.assertEqual((event["source"], event["method"]), (ATTACKER, "INVITE"))
        self.assertEqual(self.security.stats["ban_check_dropped"], 1)

    def test_expired(self) -> None:
        """If the ban has ended, L{BanCheckStage} lets the request on."""
        stage = BanCheckStage(self.security)
        self.security.ban(ATTACKER, "testing")
        self.clock.advance(60)
        self.assertEqual(self.decide(stage, request()), Continue())


class ScannerStageTests(StageTestCase):
    """Tests for L{ScannerStage}."""

    def test_known_scanners(self) -> None:
        """
        If the User-Agent names any of the default scanners (in any case,
        anywhere in it), L{ScannerStage} drops the request without an answer
        and bans the source.
        """
        stage = ScannerStage(self.security)
        for i, name in enumerate(DEFAULT_SCANNER_USER_AGENTS):
            source = f"203.0.113.{i + 1}"
            for user_agent in (name, f"x {name.upper()}/1.0"):
                result = self.decide(stage, request("REGISTER", user_agent), source)
                self.assertEqual(result, Drop("scanner User-Agent"), user_agent)
            self.assertTrue(self.security.is_banned(source), name)
        self.assertEqual(
            self.security.stats["scanner_dropped"], 2 * len(DEFAULT_SCANNER_USER_AGENTS)
        )

    def test_log_fields(self) -> None:
        """
        If L{ScannerStage} drops a request, the log event has the rule,
        source, User-Agent and what matched; the ban's reason has the
        User-Agent.
        """
        _debug.set_enabled(True)  # the per-drop debug lines are asserted
        self.addCleanup(_debug.set_enabled, False)
        self.decide(ScannerStage(self.security), request("OPTIONS", "friendly-scanner"))
        [event] = self.logged("scanner")
        self.assertEqual(
            (event["source"], event["user_agent"], event["matched"], event["method"]),
            (ATTACKER, "friendly-scanner", "friendly-scanner", "OPTIONS"),
        )
        ban = self.security.bans.get(ATTACKER, self.clock.seconds())
        assert ban is not None
        self.assertIn("'friendly-scanner'", ban.reason)

    def test_not_scanners(self) -> None:
        """If there is no User-Agent or an ordinary one, L{ScannerStage} goes on."""
        stage = ScannerStage(self.security)
        self.assertEqual(self.decide(stage, request(user_agent=None)), Continue())
        self.assertEqual(self.decide(stage, request(user_agent="Yealink SIP-T46S")), Continue())
        self.assertFalse(self.security.is_banned(ATTACKER))

    def test_matcher(self) -> None:
        """If given its own matcher, L{ScannerStage} uses it instead."""
        stage = ScannerStage(self.security, UserAgentMatcher(patterns=[r"^evil\d+"]))
        self.assertIsInstance(self.decide(stage, request(user_agent="EVIL42")), Drop)
        self.assertEqual(self.decide(stage, request(user_agent="sipvicious"), PHONE), Continue())

    def test_long_user_agent(self) -> None:
        """If the User-Agent is very long, L{ScannerStage} logs only its start."""
        self.decide(ScannerStage(self.security), request(user_agent="sipcli" + "x" * 1000))
        [event] = self.logged("scanner")
        self.assertEqual(len(event["user_agent"]), 120)


class FloodStageTests(StageTestCase):
    """Tests for L{FloodStage}."""

    def flood(
        self, stage: FloodStage, n: int, method: str = "INVITE", source: str = ATTACKER
    ) -> list[Any]:
        return [self.decide(stage, request(method), source) for _ in range(n)]

    def test_unauthenticated(self) -> None:
        """
        If an unknown source sends more than its burst, L{FloodStage} lets
        the burst through and drops the rest without an answer.
        """
        results = self.flood(FloodStage(self.security), 12)
        self.assertEqual(results[:10], [Continue()] * 10)
        self.assertEqual(results[10:], [Drop("flood: over the unauthenticated invite budget")] * 2)
        self.assertNotIn(Respond, {type(r) for r in results})
        self.assertEqual(self.security.stats["flood_dropped"], 2)

    def test_log_fields(self) -> None:
        """
        If L{FloodStage} drops requests, each is logged with rule, source,
        tier and method class: the first of an interval at info level (and
        counted as an offence), the rest at debug level.
        """
        _debug.set_enabled(True)  # the per-drop debug lines are asserted
        self.addCleanup(_debug.set_enabled, False)
        self.flood(FloodStage(self.security), 13)
        events = self.logged("flood")
        self.assertEqual(len(events), 3)
        self.assertEqual([e["log_level"].name for e in events], ["info", "debug", "debug"])
        self.assertEqual(
            (events[0]["source"], events[0]["tier"], events[0]["method_class"], events[0]["rate"]),
            (ATTACKER, "unauthenticated", "invite", 5.0),
        )
        self.assertEqual(self.security.stats["offences_flood"], 1)

    def test_flood_bans(self) -> None:
        """
        If a source stays over budget for three offence intervals,
        L{FloodStage}'s offences ban it.
        """
        stage = FloodStage(self.security)
        for _ in range(3):
            self.flood(stage, 20)
            self.clock.advance(1.0)
        self.assertTrue(self.security.is_banned(ATTACKER))
        self.assertEqual(self.security.stats["offences_flood"], 3)

    def test_classes(self) -> None:
        """If a source floods INVITEs, L{FloodStage} still lets its REGISTERs through."""
        stage = FloodStage(self.security)
        self.flood(stage, 20)
        self.assertEqual(self.decide(stage, request("REGISTER")), Continue())
        self.assertEqual(self.decide(stage, request("OPTIONS")), Continue())

    def test_authenticated(self) -> None:
        """If a user authenticated from the source, L{FloodStage} applies the larger budget."""
        self.security.note_authenticated(PHONE, "alice", self.clock.seconds() + 3600)
        results = self.flood(FloodStage(self.security), 101, source=PHONE)
        self.assertEqual(results.count(Continue()), 100)

    def test_trusted_trunk(self) -> None:
        """
        If a trusted trunk sends thousands of calls a second, L{FloodStage}
        never throttles it.
        """
        stage = FloodStage(self.security)
        for _ in range(3):
            results = self.flood(stage, 3000, source=TRUNK)
            self.assertEqual(results.count(Continue()), 3000)
            self.clock.advance(1.0)

    def test_own_limiter(self) -> None:
        """If given its own limiter, L{FloodStage} uses it."""
        budget = Budget(1.0, 1.0)
        limiter = RateLimiter(
            {"trusted": budget, "authenticated": budget, "unauthenticated": budget}
        )
        stage = FloodStage(self.security, limiter)
        self.assertIs(stage.limiter, limiter)
        self.assertEqual(
            self.flood(stage, 2)[1], Drop("flood: over the unauthenticated invite budget")
        )


@implementer(IRequestStage)
class _Answer:
    name = "answer"

    def process_request(self, context: RequestContext) -> Respond:
        return Respond(200)


@implementer(IStageFactory)
class _AnswerFactory:
    name = "answer"
    description = "Answer 200."

    def build_stage(self, options: dict[str, Any], services: Any) -> Any:
        return _Answer()


class FactoryTests(StageTestCase):
    """The plugin factories in L{sipedge.plugins.sipedge_security_stages}."""

    def test_found(self) -> None:
        """
        If plugins are looked up, each security stage's factory is found,
        provides L{IStageFactory} and C{IPlugin}, and builds an
        L{IRequestStage} of its name.
        """
        found = {
            f.name: f
            for f in getPlugins(IStageFactory, sipedge.plugins)
            if type(f).__module__ == "sipedge.plugins.sipedge_security_stages"
        }
        self.assertEqual(sorted(found), sorted(STAGES))
        for name, factory in found.items():
            self.assertTrue(verifyObject(IStageFactory, factory))
            self.assertTrue(IPlugin.providedBy(factory))
            self.assertTrue(factory.description)
            stage = factory.build_stage({}, self.services)
            self.assertTrue(verifyObject(IRequestStage, stage))
            self.assertEqual(stage.name, name)
        self.assertEqual({n: stage_factories()[n] for n in STAGES}, found)

    def test_chain(self) -> None:
        """
        If the chain starts C{ban-check, scanner, flood}, a scanner's first
        request is dropped and bans it, and its next request (another
        User-Agent) is dropped by ban-check; others are answered.
        """
        factories = {**stage_factories(), "answer": _AnswerFactory()}
        chain = build_chain([*STAGES, "answer"], {}, self.services, factories)

        def run(req: Request, source: str = ATTACKER) -> Any:
            return chain.run(RequestContext(req, flow(source), self.services))

        self.assertEqual(run(request(user_agent="sipvicious")), Drop("scanner User-Agent"))
        self.assertEqual(run(request()), Drop("banned source"))
        self.assertEqual(run(request(), PHONE), Respond(200))
        self.assertEqual(self.security.stats["ban_check_dropped"], 1)

    def test_flood_options(self) -> None:
        """
        If the flood stage has options, they override C{[security]} for it
        alone; bad ones raise L{ConfigError} naming the option.
        """
        factory = stage_factories()["flood"]
        stage = factory.build_stage(
            {"unauthenticated_rate": 1, "unauthenticated_burst": 2, "offence_interval": 5},
            self.services,
        )
        self.assertIsNot(stage.limiter, self.security.limiter)
        self.assertEqual(stage.limiter.report_interval, 5.0)
        results = [self.decide(stage, request()) for _ in range(3)]
        self.assertEqual(results[:2], [Continue()] * 2)
        self.assertIsInstance(results[2], Drop)
        self.assertEqual(self.security.stats["flood_dropped"], 1)
        error = self.assertRaises(
            ConfigError, factory.build_stage, {"unauthenticated_rate": -1}, self.services
        )
        self.assertTrue(
            str(error).startswith("pipeline.options.flood.unauthenticated_rate: "), str(error)
        )
        error = self.assertRaises(ConfigError, factory.build_stage, {"max_keys": 0}, self.services)
        self.assertTrue(str(error).startswith("pipeline.options.flood.max_keys: "), str(error))
        error = self.assertRaises(ConfigError, factory.build_stage, {"rate": 1}, self.services)
        self.assertIn("pipeline.options.flood: unknown option 'rate'", str(error))

    def test_scanner_options(self) -> None:
        """
        If the scanner stage has options, they replace the scanner list for
        it; a bad pattern raises L{ConfigError} naming it.
        """
        factory = stage_factories()["scanner"]
        stage = factory.build_stage(
            {"user_agents": ["badbot"], "user_agent_patterns": ["^x-[0-9]+$"]}, self.services
        )
        self.assertIsInstance(self.decide(stage, request(user_agent="BadBot 2")), Drop)
        self.assertIsInstance(self.decide(stage, request(user_agent="x-12"), PHONE), Drop)
        self.assertEqual(self.decide(stage, request(user_agent="sipvicious"), TRUNK), Continue())
        error = self.assertRaises(
            ConfigError, factory.build_stage, {"user_agent_patterns": ["("]}, self.services
        )
        self.assertTrue(
            str(error).startswith("pipeline.options.scanner.user_agent_patterns[0]: "),
            str(error),
        )
        error = self.assertRaises(
            ConfigError, stage_factories()["ban-check"].build_stage, {"x": 1}, self.services
        )
        self.assertIn("(takes none)", str(error))

    def test_without_security_service(self) -> None:
        """
        If the services carry no security service, the factories make one
        (bans in memory), shared by the stages built for those services,
        and log a warning.
        """
        clock = Clock()
        services = StageServices(clock=clock, local=LocalIdentity(("example.com",), ()))
        factories = stage_factories()
        scanner = factories["scanner"].build_stage({}, services)
        ban_check = factories["ban-check"].build_stage({}, services)
        context = RequestContext(request(user_agent="sipvicious"), flow(ATTACKER), services)
        self.assertIsInstance(scanner.process_request(context), Drop)
        context = RequestContext(request(), flow(ATTACKER), services)
        self.assertEqual(ban_check.process_request(context), Drop("banned source"))
        warnings = [e for e in self.events if "No security service" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        key = id(services)
        self.assertIn(key, sipedge_security_stages._FALLBACK)
        del services, context, scanner, ban_check
        gc.collect()
        self.assertNotIn(key, sipedge_security_stages._FALLBACK)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_config_section(self) -> None:
        """If the services' config has a security section, the fallback service uses it."""

        services = Services(
            self.clock, None, config=Config(security=SecurityConfig(scanner_user_agents=["onlyme"]))
        )
        stage = stage_factories()["scanner"].build_stage({}, services)
        self.assertIsInstance(self.decide(stage, request(user_agent="OnlyMe")), Drop)
        self.assertEqual(self.decide(stage, request(user_agent="sipvicious"), PHONE), Continue())
