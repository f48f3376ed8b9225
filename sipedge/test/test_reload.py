# -*- test-case-name: sipedge.test.test_reload -*-
"""
Tests for L{sipedge._reload}: C{SipEdgeService.reload} reads the
configuration file again and applies it all or not at all, keeping the
state of what did not change, on a whole sipedge in memory
(L{edge_in_memory}) with scripted phones.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from sipedge._reload import ConfigSource, ReloadReport
from sipedge.error import ConfigError
from sipedge.message import Response
from sipedge.pipeline.stages import FilterStage, MediaAnchorStage
from sipedge.testing import UAC, UAS, capture_log, edge_in_memory, make_certificates

EDGE = "192.0.2.1"
PHONE = "192.0.2.10"
TRUNK = "198.51.100.50"

#: What a new user configures: a domain and a listener, nothing tuned.
BASE = f"""
[sip]
domains = ["lab.test"]
listen = ["udp:{EDGE}:5060"]
"""

FILTER = """
[pipeline.options.filter]
[[pipeline.options.filter.rules]]
name = "no-evil"
header = "User-Agent"
pattern = "evil"
"""

ROUTE = f"""
[[routes]]
match_prefix = "+44"
next_hop = "sip:{TRUNK}:5070"
"""


class _EdgeCase(SynchronousTestCase):
    """A sipedge in memory whose configuration file can be rewritten and reloaded."""

    base = BASE

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).absolute()
        self.directory.mkdir(parents=True)
        self.state = self.directory / "state"
        self.path = self.directory / "sipedge.toml"
        self.write("")
        self.edge = edge_in_memory(self.base, self.state)
        self.addCleanup(self.edge.stop)
        self.service = self.edge.service
        self.service.config_source = ConfigSource(str(self.path))
        self.reactor = self.edge.reactor
        self.events = capture_log(self)

    def write(self, extra: str, base: str | None = None) -> None:
        """The file: the base configuration, C{extra}, and the state directory."""
        text = (self.base if base is None else base) + extra
        self.path.write_text(text + f'\n[state]\npath = "{self.state}"\n')

    def restart_with(self, text: str) -> None:
        """Run a new sipedge on C{text} (in the file too) instead."""
        self.write("", text)
        self.edge.stop()
        self.edge = edge_in_memory(text, self.state)
        self.addCleanup(self.edge.stop)
        self.service = self.edge.service
        self.service.config_source = ConfigSource(str(self.path))
        self.reactor = self.edge.reactor

    def agent(self, cls: type = UAC, host: str = PHONE, port: int = 5060, **kw: Any) -> Any:
        agent = cls("alice" if cls is UAC else "trunk", "lab.test", self.reactor, host=host,
                    outbound=self.edge.udp if cls is UAC else None, **kw)
        agent.listen(self.reactor, port)
        self.addCleanup(agent.stop)
        return agent

    def options(self, agent: Any, user_agent: str) -> list[int]:
        """An OPTIONS to the edge itself; the statuses it got."""
        request = agent.request("OPTIONS", f"sip:{EDGE}:5060", f"User-Agent: {user_agent}")
        agent.send(request, self.edge.udp)
        self.reactor.flush()
        call_id = request.headers.get("Call-ID")
        return [
            m.status for m in agent.received
            if isinstance(m, Response) and m.headers.get("Call-ID") == call_id
        ]

    def refused_lines(self) -> list[str]:
        return [formatEvent(e) for e in self.events if "Reload refused" in formatEvent(e)]


class ApplyTests(_EdgeCase):
    """What a good file changes, and what it keeps."""

    def test_filter_rule(self) -> None:
        """A filter rule added to the file refuses requests after the reload, not before."""
        alice = self.agent()
        self.assertEqual(self.options(alice, "evil/1.0"), [200])
        self.write(FILTER)
        report = self.service.reload()
        self.assertIn("pipeline: stages and options as in the file", report.changed)
        self.assertEqual(self.options(alice, "evil/1.0"), [403])
        self.assertEqual(self.options(alice, "good/1.0"), [200])
        self.write("")
        self.service.reload()
        self.assertEqual(self.options(alice, "evil/1.0"), [200])

    def test_route(self) -> None:
        """
        A static route added to the file takes a trusted PBX's call for
        +44 to the trunk; before, the call went nowhere (the carrier's
        domain does not resolve).
        """
        base = BASE + f'trusted = ["{PHONE}"]\n'
        self.restart_with(base)
        self.edge.add_user("alice", "alice-secret")
        pbx = self.agent(password="alice-secret")
        trunk = self.agent(UAS, host=TRUNK, port=5070)
        before = pbx.invite("sip:+442071234567@carrier.test")
        for _ in range(10):
            self.reactor.advance_and_flush(1)
        self.assertNotEqual(before.state, "confirmed")
        self.assertEqual(trunk.calls, {})
        self.write(ROUTE, base)
        self.assertIn("routes: 1 static routes (were 0)", self.service.reload().changed)
        call = pbx.invite("sip:+442071234567@carrier.test")
        self.reactor.flush()
        self.assertEqual(call.state, "confirmed", call.statuses)
        self.assertIn(call.call_id, trunk.calls)
        pbx.bye(call)
        self.reactor.flush()

    def test_in_flight(self) -> None:
        """
        A call whose INVITE is still ringing when the file is reloaded is
        answered and confirmed through the new chain; its BYE after a
        second reload ends it at both ends: transactions and dialogs live
        through reloads.
        """
        base = BASE + f'trusted = ["{PHONE}"]\n'
        self.restart_with(base + ROUTE)
        self.edge.add_user("alice", "alice-secret")
        pbx = self.agent(password="alice-secret")
        trunk = self.agent(UAS, host=TRUNK, port=5070)
        trunk.answer_after = 2.0
        call = pbx.invite("sip:+442071234567@carrier.test")
        self.reactor.flush()
        self.assertEqual(call.statuses[-1], 180)
        self.write(ROUTE + FILTER + "[security]\nflood_threshold = 9\n", base)
        self.assertIn("pipeline: stages and options as in the file", self.service.reload().changed)
        self.reactor.advance_and_flush(2.5)
        self.assertEqual(call.state, "confirmed", call.statuses)
        self.assertEqual(trunk.calls[call.call_id].state, "confirmed")
        self.write(ROUTE, base)
        self.service.reload()
        pbx.bye(call)
        self.reactor.flush()
        self.assertEqual(trunk.calls[call.call_id].state, "ended")

    def test_domains(self) -> None:
        """A domain added to the file is ours after the reload (its REGISTER answered)."""
        self.write("", BASE.replace('["lab.test"]', '["lab.test", "other.test"]'))
        report = self.service.reload()
        self.assertEqual(report.changed[0], "sip.domains: [lab.test] -> [lab.test, other.test]")
        self.assertIn("other.test", self.service.core.services.local.domains)
        self.assertEqual(self.service.config.sip.domains, ("lab.test", "other.test"))

    def test_stage_state_kept(self) -> None:
        """
        Changing the flood budget keeps the limiter (its buckets), the bans,
        the monitor and the stages whose settings did not change; the
        stages that read [security] are built anew on the same services.
        """
        security: Any = self.service.security
        limiter, monitor = security.limiter, self.service.monitor
        security.limiter.take("203.0.113.9", "other", "unauthenticated", self.reactor.seconds())
        security.ban("203.0.113.66", "test")
        before = dict(zip(self.service.config.pipeline.stages, self.service.core.chain.stages,
                          strict=True))
        self.write("[security]\nunauthenticated_burst = 20\nflood_threshold = 9\n")
        report = self.service.reload()
        self.assertIn("security.unauthenticated_burst: 10.0 -> 20.0", report.changed)
        self.assertIs(security.limiter, limiter)
        self.assertEqual(len(limiter), 1)
        self.assertEqual(limiter.budgets["unauthenticated"].burst, 20.0)
        self.assertEqual(security.bans.thresholds["flood"], 9)
        self.assertTrue(security.is_banned("203.0.113.66"))
        self.assertIs(self.service.monitor, monitor)
        after = dict(zip(self.service.config.pipeline.stages, self.service.core.chain.stages,
                          strict=True))
        for name in ("sanity", "registrar", "location", "forward", "media-anchor", "monitor"):
            self.assertIs(after[name], before[name], name)
        for name in ("flood", "filter", "scanner", "ban-check"):
            self.assertIsNot(after[name], before[name], name)

    def test_media_anchor_kept(self) -> None:
        """
        The media-anchor stage (it holds the live calls) is never built
        anew: its options changed in the file need a restart, and the
        proxy core's observers still hold it once.
        """
        self.write('[pipeline.options.media-anchor]\nsrtp = "rekey"\n')
        anchor = [s for s in self.service.core.chain.stages if isinstance(s, MediaAnchorStage)]
        report = self.service.reload()
        self.assertEqual(report.changed, ())
        [line] = report.needs_restart
        self.assertTrue(line.startswith("pipeline.options.media-anchor: needs a restart"), line)
        now = [s for s in self.service.core.chain.stages if isinstance(s, MediaAnchorStage)]
        self.assertEqual(now, anchor)
        self.assertEqual(
            [o for o in self.service.core.observers if isinstance(o, MediaAnchorStage)], anchor
        )

    def test_needs_restart(self) -> None:
        """
        Listen addresses, the state directory's neighbours and the media
        ports cannot change live: each is reported, with the running and
        the file's value, the running one is kept, and the next reload
        reports them again; what can change changes meanwhile.
        """
        base = BASE.replace(f"udp:{EDGE}:5060", f"udp:{EDGE}:5080")
        self.write('[media]\nports = "40000-40999"\n[timers]\nt1 = 1.0\n' + FILTER, base)
        report = self.service.reload()
        self.assertEqual(
            report.needs_restart,
            (
                f"sip.listen: needs a restart (running with [udp:{EDGE}:5060], the file has"
                f" [udp:{EDGE}:5080])",
                "timers.t1: needs a restart (running with 0.5, the file has 1.0)",
                "media.ports: needs a restart (running with [30000, 30999], the file has"
                " [40000, 40999])",
            ),
        )
        self.assertEqual(self.service.config.listeners[0].port, 5060)
        self.assertEqual(self.service.config.timers.t1, 0.5)
        self.assertIn("pipeline: stages and options as in the file", report.changed)
        again = self.service.reload()
        self.assertEqual(again.needs_restart, report.needs_restart)
        self.assertEqual(again.changed, ())

    def test_without_source(self) -> None:
        """Without a file to read (a test's own configuration), a reload changes nothing."""
        self.service.config_source = None
        config = self.service.config
        self.assertEqual(self.service.reload(), ReloadReport())
        self.assertIs(self.service.config, config)

    def test_logged(self) -> None:
        """C{reload_and_log} logs each change and each key that needs a restart."""
        self.write('[timers]\nt1 = 1.0\n' + FILTER)
        self.service.reload_and_log()
        text = [formatEvent(e) for e in self.events]
        self.assertIn("Reloading (SIGHUP)", text)
        self.assertIn("Reload done: pipeline: stages and options as in the file", text)
        self.assertIn(
            "Reload: timers.t1: needs a restart (running with 0.5, the file has 1.0)", text
        )


class RefusedTests(_EdgeCase):
    """A bad file keeps the whole running state, and says why."""

    def assert_unchanged(self, run: Any) -> str:
        """Run C{run}; it raises L{ConfigError}; nothing of the service changed."""
        service = self.service
        core = service.core
        before = (service.config, core.chain, core.services, list(core.observers),
                  dict(service.security.limiter.budgets), service.security.config)
        error = self.assertRaises(ConfigError, run)
        after = (service.config, core.chain, core.services, list(core.observers),
                 dict(service.security.limiter.budgets), service.security.config)
        self.assertEqual(before, after)
        self.assertIs(before[1], after[1])
        return str(error)

    def test_syntax_error(self) -> None:
        """A file that is not TOML: the error names the file and the line."""
        self.path.write_text("[security\nflood_threshold = 9\n")
        error = self.assert_unchanged(self.service.reload)
        self.assertTrue(error.startswith(f"{self.path}: invalid TOML:"), error)
        self.assertIn("line 1", error)

    def test_invalid_value(self) -> None:
        """A bad value names the file and the key; the rest of the file is not applied."""
        self.write("[security]\nunauthenticated_burst = 20\nflood_threshold = 0\n")
        error = self.assert_unchanged(self.service.reload)
        self.assertTrue(error.startswith(f"{self.path}: security.flood_threshold:"), error)

    def test_stage_refuses(self) -> None:
        """A stage's bad option (found only when the stage is built) names the file and key."""
        self.write(FILTER.replace('pattern = "evil"', 'pattern = "evil"\nstatus = 302'))
        error = self.assert_unchanged(self.service.reload)
        self.assertTrue(
            error.startswith(f"{self.path}: pipeline.options.filter.rules[0].status:"), error
        )

    def test_unreadable(self) -> None:
        """A file gone (or a directory in its place) is refused, naming it."""
        self.path.unlink()
        self.path.mkdir()
        error = self.assert_unchanged(self.service.reload)
        self.assertEqual(error, f"{self.path}: cannot read configuration file: Is a directory")

    def test_logged(self) -> None:
        """SIGHUP's reload logs the refusal with the reason; the filter stays as it ran."""
        alice = self.agent()
        self.write(FILTER)
        self.service.reload()
        self.path.write_text("[pipeline.options.filter\n")
        self.assertIsNone(self.service.reload_and_log())
        [line] = self.refused_lines()
        self.assertIn(f"Reload refused, still running as before: {self.path}: invalid TOML", line)
        self.assertEqual(self.options(alice, "evil/1.0"), [403])


class TlsAtomicTests(_EdgeCase):
    """The certificate is read last: if it is bad, nothing else is applied either."""

    base = BASE.replace(f'["udp:{EDGE}:5060"]', f'["udp:{EDGE}:5060", "tls:{EDGE}:5061"]') + (
        '[tls]\ncertificate = "cert.pem"\nprivate_key = "key.pem"\n'
    )

    def setUp(self) -> None:
        make_certificates("lab.test").write(str(Path(self.mktemp()).absolute()))
        directory = Path(self.mktemp()).absolute()
        directory.mkdir(parents=True)
        self.certificates = make_certificates("lab.test")
        self.certificates.write(str(directory))
        self.base = self.base.replace('"cert.pem"', f'"{directory}/cert.pem"').replace(
            '"key.pem"', f'"{directory}/key.pem"')
        self.certificate_directory = directory
        super().setUp()

    def test_bad_key_applies_nothing(self) -> None:
        """
        A file with a new filter rule and a private key that does not match
        the certificate: refused for the key, and the filter is not
        applied either.
        """
        self.write(FILTER)
        key = self.certificate_directory / "key.pem"
        shutil.copy(key, self.certificate_directory / "key.pem.old")
        key.write_bytes(make_certificates("lab.test").key_pem)

        def reload() -> Any:
            return self.service.reload()

        service: Any = self.service
        before = (service.config, service.core.chain, service.server_tls.fingerprint)
        error = self.assertRaises(ConfigError, reload)
        self.assertIn("tls.private_key", str(error))
        self.assertTrue(str(error).startswith(str(self.path)), error)
        self.assertEqual(
            (service.config, service.core.chain, service.server_tls.fingerprint), before
        )
        self.assertFalse(any(isinstance(s, FilterStage) and s.config.rules
                             for s in service.core.chain.stages))
        shutil.copy(self.certificate_directory / "key.pem.old", key)
        self.assertIn("pipeline: stages and options as in the file", service.reload().changed)
