"""
The flaky-trunk lab (see README.md): a PBX calls through a sipedge whose
fault stage loses INVITEs and holds ringing, to a trunk behind a slow,
lossy network. Run it with C{python -m twisted.trial test_flaky_trunk}.
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import (
    UAC,
    UAS,
    NetworkModel,
    NetworkRule,
    edge_in_memory,
    sip_match,
)

HERE = Path(__file__).parent
PBX = "10.0.0.10"
TRUNK = "203.0.113.50"
CALLS = 12


class FlakyTrunkLab(SynchronousTestCase):
    """The PBX's calls through the flaky edge."""

    def setUp(self) -> None:
        config = (HERE / "sipedge.toml").read_text()
        self.edge = edge_in_memory(config, Path(self.mktemp()).absolute())
        self.addCleanup(self.edge.stop)
        self.reactor = self.edge.reactor
        # The wire between sipedge and the trunk: 40 ms each way, 5% lost.
        toward = sip_match(destination=(TRUNK, None))
        back = sip_match(source=(TRUNK, None))
        NetworkModel(self.reactor, [
            NetworkRule(match=toward, latency=0.04, loss=0.05),
            NetworkRule(match=back, latency=0.04, loss=0.05),
        ], seed=1).install(self.reactor.network)
        # The PBX authenticates to sipedge as a user of its domain (digest).
        self.edge.add_user("pbx", "pbx-secret")
        self.pbx = UAC("pbx", "pbx.lab.test", self.reactor, host=PBX,
                       password="pbx-secret", outbound=self.edge.udp)
        self.trunk = UAS("trunk", "trunk.lab.test", self.reactor, host=TRUNK)
        for agent in (self.pbx, self.trunk):
            agent.listen(self.reactor, 5060)
            self.addCleanup(agent.stop)

    def run_for(self, seconds: float, step: float = 0.01) -> None:
        for _ in range(int(seconds / step)):
            self.reactor.advance_and_flush(step)

    def test_every_call_completes(self) -> None:
        """
        Every call is answered and confirmed, though the edge lost some
        INVITEs (the PBX retransmitted them) and held every 180.
        """
        calls = [self.pbx.invite(f"sip:+4420794600{n:02d}@trunk.lab.test") for n in range(CALLS)]
        self.run_for(20)
        self.assertEqual([c.state for c in calls], ["confirmed"] * CALLS)
        fault = next(s for s in self.edge.service.core.chain.stages if s.name == "fault")
        dropped = [line for action, line in fault.hits if action == "drop"]
        delayed = [line for action, line in fault.hits if action == "delay"]
        self.assertGreater(len(dropped), 0)
        self.assertGreaterEqual(len(delayed), CALLS)
        retransmitted = len([m for m, _ in self.pbx.sent if getattr(m, "method", "") == "INVITE"])
        self.assertGreater(retransmitted, CALLS)
        for call in calls:
            self.pbx.bye(call)
        self.run_for(10)
        self.assertEqual({c.state for c in self.trunk.calls.values()}, {"ended"})

    def test_ringing_is_late(self) -> None:
        """The PBX hears ringing no sooner than a second after it called."""
        call = self.pbx.invite("sip:+442079460099@trunk.lab.test")
        self.run_for(0.9)
        self.assertNotIn(180, call.statuses)
        self.run_for(10)
        self.assertEqual(call.state, "confirmed")
