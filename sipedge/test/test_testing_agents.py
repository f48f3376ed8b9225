# -*- test-case-name: sipedge.test.test_testing_agents -*-
"""
Tests for the scripted user agents of L{sipedge.testing} (L{UAC}, L{UAS},
L{Phone}) on the fake network, on real loopback sockets, and through a
whole sipedge built in memory by L{edge_in_memory}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sipedge.message import Request, Response
from sipedge.testing import (
    UAC,
    UAS,
    FakeReactor,
    NetworkModel,
    NetworkRule,
    Phone,
    edge_in_memory,
    sip_match,
)

A = "192.0.2.10"
B = "192.0.2.20"

#: What a new user configures: a domain, and the defaults for the rest.
CONFIG = """
[sip]
domains = ["lab.test"]
listen = ["udp:192.0.2.1:5060"]
"""


class DirectTests(SynchronousTestCase):
    """A UAC calls a UAS directly on the fake network."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.alice = UAC("alice", "lab.test", self.reactor, host=A)
        self.bob = UAS("bob", "lab.test", self.reactor, host=B)
        for agent in (self.alice, self.bob):
            agent.listen(self.reactor, 5060)
            self.addCleanup(agent.stop)
        self.addCleanup(self.assert_no_timers)

    def assert_no_timers(self) -> None:
        self.reactor.advance_and_flush(64)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_call(self) -> None:
        """INVITE, 180, 200, ACK, then BYE and its 200: both sides agree."""
        call = self.alice.invite(f"sip:bob@{B}:5060")
        self.reactor.flush()
        self.assertEqual(call.statuses, [180, 200])
        self.assertEqual(call.state, "confirmed")
        bob_call = self.bob.calls[call.call_id]
        self.assertEqual(bob_call.state, "confirmed")
        self.assertEqual(call.remote_tag, bob_call.local_tag)
        self.alice.bye(call)
        self.reactor.flush()
        self.assertEqual(bob_call.state, "ended")
        bye_ok = [m for m in self.alice.received
                  if isinstance(m, Response) and m.cseq.method == "BYE"]
        self.assertEqual([m.status for m in bye_ok], [200])

    def test_busy(self) -> None:
        """A UAS told to answer 486: the caller's call fails, and it ACKs the 486."""
        self.bob.status = 486
        call = self.alice.invite(f"sip:bob@{B}:5060")
        self.reactor.flush()
        self.assertEqual((call.statuses, call.state), ([180, 486], "failed"))
        acks = [m for m in self.bob.received if isinstance(m, Request) and m.method == "ACK"]
        self.assertEqual(len(acks), 1)

    def test_cancel(self) -> None:
        """A UAS that answers late: CANCEL gets 200, the INVITE 487."""
        self.bob.answer_after = 10
        call = self.alice.invite(f"sip:bob@{B}:5060")
        self.reactor.flush()
        self.assertEqual(call.state, "early")
        self.alice.cancel(call)
        self.reactor.flush()
        self.assertEqual(call.statuses, [180, 487])
        self.assertEqual(self.bob.calls[call.call_id].state, "failed")

    def test_retransmission_over_loss(self) -> None:
        """
        On a network that loses the first two INVITEs, the UAC's
        retransmissions (T1, then 2*T1) get the call through.
        """
        model = NetworkModel(self.reactor).install(self.reactor.network)
        lost: list[int] = []

        def first_two(datagram: Any) -> bool:
            if sip_match(method="INVITE", status=())(datagram) and len(lost) < 2:
                lost.append(1)
                return True
            return False

        model.add(NetworkRule(match=first_two, loss=1.0))
        call = self.alice.invite(f"sip:bob@{B}:5060")
        self.reactor.flush()
        self.assertEqual(call.statuses, [])
        self.reactor.advance_and_flush(0.5)
        self.assertEqual(call.statuses, [])
        self.reactor.advance_and_flush(1.0)
        self.assertEqual(call.statuses, [180, 200])
        self.assertEqual(len(model.lost), 2)

    def test_duplicates_absorbed(self) -> None:
        """On a network that duplicates everything, the UAS answers each INVITE once."""
        NetworkModel(self.reactor, [NetworkRule(duplicate=1.0)]).install(self.reactor.network)
        call = self.alice.invite(f"sip:bob@{B}:5060")
        self.reactor.flush()
        self.assertEqual(call.state, "confirmed")
        self.assertEqual(len(self.bob.calls), 1)
        self.assertEqual(self.bob.calls[call.call_id].statuses, [180, 200])

    def test_options(self) -> None:
        """A UAS answers OPTIONS 200, and an unknown method 405."""
        self.alice.send_request(self.alice.request("OPTIONS", f"sip:bob@{B}:5060"))
        self.alice.send_request(self.alice.request("MESSAGE", f"sip:bob@{B}:5060"))
        self.reactor.flush()
        statuses = [m.status for m in self.alice.received if isinstance(m, Response)]
        self.assertEqual(statuses, [200, 405])


class ThroughEdgeTests(SynchronousTestCase):
    """Two phones register with a sipedge in memory and call each other."""

    def setUp(self) -> None:
        self.edge = edge_in_memory(CONFIG, Path(self.mktemp()).absolute())
        self.addCleanup(self.edge.stop)
        self.reactor = self.edge.reactor
        self.phones: dict[str, Phone] = {}
        for user, host in (("alice", A), ("bob", B)):
            self.edge.add_user(user, f"{user}-secret")
            phone = Phone(user, "lab.test", self.reactor, host=host,
                          password=f"{user}-secret", outbound=self.edge.udp)
            phone.listen(self.reactor, 5060)
            self.addCleanup(phone.stop)
            self.phones[user] = phone

    def test_edge_listens(self) -> None:
        """L{edge_in_memory} starts the service: it listens where its config says."""
        self.assertEqual(self.edge.udp, ("192.0.2.1", 5060))
        self.assertEqual(self.edge.config.sip.domains, ("lab.test",))

    def test_register_with_digest(self) -> None:
        """A phone's REGISTER is challenged (401); with its password it is registered."""
        alice = self.phones["alice"]
        alice.register()
        self.reactor.flush()
        statuses = [m.status for m in alice.received if isinstance(m, Response)]
        self.assertEqual(statuses, [401, 200])
        self.assertTrue(alice.registered)

    def test_wrong_password(self) -> None:
        """A phone with the wrong password stays unregistered."""
        alice = self.phones["alice"]
        alice.password = "wrong"
        alice.register()
        self.reactor.flush()
        self.assertFalse(alice.registered)

    def test_call_through_edge(self) -> None:
        """
        Alice calls bob@lab.test through sipedge: bob's phone rings and
        answers, the ACK and the BYE follow the Record-Route through
        sipedge.
        """
        alice, bob = self.phones["alice"], self.phones["bob"]
        alice.register()
        bob.register()
        self.reactor.flush()
        call = alice.invite("sip:bob@lab.test")
        self.reactor.flush()
        self.assertEqual(call.state, "confirmed", call.statuses)
        self.assertEqual(call.statuses, [100, 180, 200])
        bob_call = bob.calls[call.call_id]
        self.assertEqual(bob_call.state, "confirmed")
        self.assertTrue(call.route, "sipedge record-routes")
        alice.bye(call)
        self.reactor.flush()
        self.assertEqual(bob_call.state, "ended")

    def test_lossy_network_between(self) -> None:
        """
        With 30% loss between the phones and sipedge (seeded), the
        retransmissions of both sides still register the phones and set
        up the call.
        """
        NetworkModel(self.reactor, [NetworkRule(loss=0.3)], seed=5).install(
            self.reactor.network
        )
        alice, bob = self.phones["alice"], self.phones["bob"]
        alice.register()
        bob.register()
        for _ in range(64):
            self.reactor.advance_and_flush(0.5)
        self.assertTrue(alice.registered and bob.registered)
        call = alice.invite("sip:bob@lab.test")
        for _ in range(64):
            self.reactor.advance_and_flush(0.5)
        self.assertEqual(call.state, "confirmed", call.statuses)
        self.assertTrue(self.reactor.network.model.lost)


class DnsRoutedTests(SynchronousTestCase):
    """A trusted PBX calls a trunk that sipedge finds with the fake DNS."""

    def test_trunk_by_srv(self) -> None:
        """
        The static route names C{trunk.lab.test}; its NAPTR and SRV records
        (in the edge's L{FakeResolver}) lead sipedge to the trunk's UDP
        port, where a L{UAS} answers.
        """
        config = CONFIG + (
            'trusted = ["192.0.2.10"]\n'
            "[[routes]]\n"
            'match_prefix = "+"\n'
            'next_hop = "sip:trunk.lab.test"\n'
        )
        edge = edge_in_memory(config, Path(self.mktemp()).absolute())
        self.addCleanup(edge.stop)
        edge.resolver.add_naptr("trunk.lab.test", 10, 10, "SIP+D2U", "_sip._udp.trunk.lab.test")
        edge.resolver.add_srv("_sip._udp.trunk.lab.test", 0, 0, 5070, "gw.trunk.lab.test")
        edge.resolver.add_address("gw.trunk.lab.test", "198.51.100.50")
        edge.add_user("pbx", "pbx-secret")
        pbx = UAC("pbx", "lab.test", edge.reactor, host=A, password="pbx-secret",
                  outbound=edge.udp)
        trunk = UAS("trunk", "trunk.lab.test", edge.reactor, host="198.51.100.50")
        pbx.listen(edge.reactor, 5060)
        trunk.listen(edge.reactor, 5070)
        for agent in (pbx, trunk):
            self.addCleanup(agent.stop)
        call = pbx.invite("sip:+15551234@trunk.lab.test")
        for _ in range(10):
            edge.reactor.advance_and_flush(0.5)
        self.assertEqual(call.state, "confirmed", call.statuses)
        self.assertEqual(list(trunk.calls), [call.call_id])
        self.assertIn(("NAPTR", "trunk.lab.test"), edge.resolver.queries)
        self.assertIn(("SRV", "_sip._udp.trunk.lab.test"), edge.resolver.queries)


class RealSocketTests(TestCase):
    """The same agents on real loopback sockets and the real reactor."""

    timeout = 20

    def test_call_on_loopback(self) -> None:
        """A UAC calls a UAS over 127.0.0.1 (ports from the OS): 180, 200, ACK."""
        from twisted.internet import reactor

        alice = UAC("alice", "lab.test", reactor)
        bob = UAS("bob", "lab.test", reactor)
        for agent in (alice, bob):
            port = agent.listen(reactor, 0)
            self.addCleanup(port.stopListening)
            self.addCleanup(agent.stop)
        done: Deferred[None] = Deferred()
        bob.on_invite = lambda invite: None
        call = alice.invite(f"sip:bob@127.0.0.1:{bob.port}")

        def check() -> None:
            if bob.calls and bob.calls[call.call_id].state == "confirmed":
                done.callback(None)
            else:
                poll[0] = reactor.callLater(0.05, check)

        poll: list[Any] = [reactor.callLater(0.05, check)]
        self.addCleanup(lambda: poll[0].active() and poll[0].cancel())

        def confirmed(_: None) -> None:
            self.assertEqual(call.statuses, [180, 200])
            self.assertEqual(call.state, "confirmed")

        return done.addCallback(confirmed)  # type: ignore[return-value]
