# -*- test-case-name: sipedge.test.test_proxy_keepalive -*-
"""
Tests for L{sipedge.proxy._keepalive}: pinging registered phones behind NAT
on a L{Clock}, dropping the bindings whose flow died (an unanswered ping, a
connection gone) so that callers get 480 at once, and the registrar's short
interval for them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import OriginateError
from sipedge.message import Request, Response
from sipedge.proxy import NatKeepalive, Registrar, bound_to_connection, needs_keepalive
from sipedge.store import Binding, LostBindings, MemoryLocationStore
from sipedge.testing import ALICE, UPSTREAM, ProxyHarness
from sipedge.testing import sip_request as request
from sipedge.transaction import make_response
from sipedge.transport import Flow

PROXY = "192.0.2.1"
NAT = Flow("UDP", PROXY, 5060, "203.0.113.5", 41234)
PUBLIC = Flow("UDP", PROXY, 5060, "203.0.113.6", 5060)
TCP = Flow("TCP", PROXY, 5060, "203.0.113.5", 50000)
AOR = "sip:bob@example.com"


def binding(contact: str, flow: Flow | None, expires_at: float = 4600.0, **kw: Any) -> Binding:
    return Binding(aor=AOR, contact=contact, expires_at=expires_at, call_id="reg-1", cseq=1,
                   flow=flow, **kw)


class NeedsKeepaliveTests(SynchronousTestCase):
    """Tests for L{needs_keepalive}."""

    def test_which(self) -> None:
        """
        UDP bindings whose Contact names another address than the source,
        or that asked for outbound, are pinged; public ones, stream ones,
        ones behind another proxy (Path) or without a flow are not.
        """
        self.assertTrue(needs_keepalive(binding("sip:bob@10.0.0.5", NAT)))
        self.assertTrue(needs_keepalive(binding("sip:bob@203.0.113.6", PUBLIC, reg_id=1,
                                                instance="<urn:uuid:1>")))
        self.assertTrue(needs_keepalive(binding("tel:+1234", NAT)))
        self.assertFalse(needs_keepalive(binding("sip:bob@203.0.113.6", PUBLIC)))
        self.assertFalse(needs_keepalive(binding("sip:bob@10.0.0.5;transport=tcp", TCP)))
        self.assertFalse(needs_keepalive(binding("sip:bob@10.0.0.5", NAT, path=("<sip:e;lr>",))))
        self.assertFalse(needs_keepalive(binding("sip:bob@10.0.0.5", None)))


class BoundToConnectionTests(SynchronousTestCase):
    """Tests for L{bound_to_connection}."""

    def test_which(self) -> None:
        """
        TCP and TLS bindings reached only over their connection: a Contact
        at another IP address than the source, outbound (reg-id), or not a
        SIP URI. Not one at its own address or a host name (reached at its
        Contact once the connection is gone), nor UDP, Path or flowless
        ones.
        """
        tls = Flow("TLS", PROXY, 5061, "203.0.113.5", 50001)
        self.assertTrue(bound_to_connection(binding("sip:bob@10.0.0.5;transport=tcp", TCP)))
        self.assertTrue(bound_to_connection(binding("sip:bob@10.0.0.5;transport=tls", tls)))
        self.assertTrue(bound_to_connection(binding("sip:bob@203.0.113.5;transport=tcp", TCP,
                                                    reg_id=1, instance="<urn:uuid:1>")))
        self.assertTrue(bound_to_connection(binding("tel:+1234", TCP)))
        self.assertFalse(bound_to_connection(binding("sip:bob@203.0.113.5;transport=tcp", TCP)))
        self.assertFalse(bound_to_connection(binding("sip:bob@phone.example.com", TCP)))
        self.assertFalse(bound_to_connection(binding("sip:bob@10.0.0.5", NAT)))
        self.assertFalse(
            bound_to_connection(binding("sip:bob@10.0.0.5", TCP, path=("<sip:e;lr>",)))
        )
        self.assertFalse(bound_to_connection(binding("sip:bob@10.0.0.5", None)))


class NatKeepaliveTests(SynchronousTestCase):
    """Tests for L{NatKeepalive}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.store = MemoryLocationStore()
        self.sent: list[tuple[Request, Flow, Deferred[Response]]] = []
        self.lost = LostBindings()
        self.keepalive = NatKeepalive(
            self.store, self.clock, self.originate, interval=15, lost=self.lost
        )
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.addCleanup(self.keepalive.stop)

    def originate(self, request: Request, flow: Flow) -> Deferred[Response]:
        d: Deferred[Response] = Deferred()
        self.sent.append((request, flow, d))
        return d

    def register(self, *bindings: Binding) -> None:
        now = self.clock.seconds()
        result = self.successResultOf(self.store.update(AOR, bindings, now))
        self.keepalive.registered(AOR, result, now)

    def left(self) -> list[str]:
        """The contacts bound to the AOR now."""
        return [b.contact for b in self.successResultOf(
            self.store.lookup(AOR, self.clock.seconds())
        )]

    def test_verify(self) -> None:
        """A non-positive interval or timeout is refused."""
        self.assertRaises(ValueError, NatKeepalive, self.store, self.clock, self.originate,
                          interval=0)
        self.assertRaises(ValueError, NatKeepalive, self.store, self.clock, self.originate,
                          timeout=0)

    def test_pings_on_interval(self) -> None:
        """
        Every interval, each registered phone behind NAT gets an OPTIONS to
        its Contact over the flow it registered from; public ones get none.
        """
        self.register(binding("sip:bob@10.0.0.5:5060", NAT), binding("sip:bob@203.0.113.6",
                                                                        PUBLIC))
        self.assertEqual(len(self.keepalive), 1)
        self.keepalive.start()
        self.clock.advance(14)
        self.assertEqual(self.sent, [])
        self.clock.advance(1)
        [(request, flow, d)] = self.sent
        self.assertEqual((request.method, request.uri, flow), ("OPTIONS", "sip:bob@10.0.0.5:5060",
                                                               NAT))
        self.assertEqual(request.headers.get("To"), "<sip:bob@10.0.0.5:5060>")
        d.callback(make_response(request.with_headers(
            request.headers.prepended("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-x")), 200))
        self.clock.advance(15)
        self.assertEqual(len(self.sent), 2)
        self.assertNotEqual(self.sent[0][0].call_id, self.sent[1][0].call_id)
        self.assertEqual(self.keepalive.stats["answered"], 1)
        self.sent[1][2].callback(make_response(self.sent[1][0].with_headers(
            self.sent[1][0].headers.prepended("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-y")),
            405))
        self.keepalive.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_one_ping_at_a_time(self) -> None:
        """While a ping is unanswered (a timeout longer than the interval), no second one."""
        keepalive = NatKeepalive(self.store, self.clock, self.originate, interval=15, timeout=40)
        keepalive.registered(AOR, [binding("sip:bob@10.0.0.5", NAT)], self.clock.seconds())
        keepalive.start()
        self.clock.advance(15)
        self.clock.advance(15)
        self.assertEqual(len(self.sent), 1)
        keepalive.stop()

    def test_unanswered_within_timeout(self) -> None:
        """
        A ping unanswered after C{timeout} (10 s, RFC 5626 4.4.1), long
        before its transaction gives up (32 s): the flow is dead, the
        binding removed, its user lost until the binding would have
        expired; the transaction's late failure changes nothing.
        """
        self.register(binding("sip:bob@10.0.0.5", NAT))
        self.keepalive.start()
        self.clock.advance(15)
        self.clock.advance(9.9)
        self.assertEqual(self.left(), ["sip:bob@10.0.0.5"])
        self.assertFalse(self.lost.is_lost(AOR, self.clock.seconds()))
        self.clock.advance(0.1)
        self.assertEqual(self.left(), [])
        self.assertTrue(self.lost.is_lost(AOR, self.clock.seconds()))
        self.assertFalse(self.lost.is_lost(AOR, 4600.0))
        self.sent[0][2].errback(OriginateError("timed out"))
        self.assertEqual(self.keepalive.stats, {"sent": 1, "answered": 0, "failed": 1,
                                                "removed": 1})
        self.keepalive.stop()

    def test_late_answer_of_old_ping(self) -> None:
        """
        The phone registers again after its ping timed out; the old ping's
        late answer neither counts nor cancels the timeout of the new one.
        """
        self.register(binding("sip:bob@10.0.0.5", NAT))
        self.keepalive.start()
        self.clock.advance(15)
        self.clock.advance(10)
        self.register(binding("sip:bob@10.0.0.5", NAT, expires_at=9999.0))
        self.assertFalse(self.lost.is_lost(AOR, self.clock.seconds()))
        self.clock.advance(5)
        self.assertEqual(len(self.sent), 2)
        self.sent[0][2].callback(make_response(self.sent[0][0].with_headers(
            self.sent[0][0].headers.prepended("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-x")),
            200))
        self.assertEqual(self.keepalive.stats["answered"], 0)
        self.clock.advance(10)
        self.assertEqual(self.left(), [])
        self.assertEqual(self.keepalive.stats["removed"], 2)
        self.keepalive.stop()

    def test_connection_lost(self) -> None:
        """
        A TCP phone reached only over its connection: when that connection
        is gone its binding is removed and its user lost; a phone at its
        own address (reachable at its Contact) and one on another
        connection stay.
        """
        other = Flow("TCP", PROXY, 5060, "203.0.113.5", 50002)
        self.register(
            binding("sip:bob@10.0.0.5;transport=tcp", TCP),
            binding("sip:bob@10.0.0.6;transport=tcp", other),
            binding("sip:bob@203.0.113.5:5060;transport=tcp", TCP),
        )
        self.keepalive.flow_lost(TCP)
        self.assertEqual(
            sorted(self.left()),
            ["sip:bob@10.0.0.6;transport=tcp", "sip:bob@203.0.113.5:5060;transport=tcp"],
        )
        self.assertTrue(self.lost.is_lost(AOR, self.clock.seconds()))
        self.assertEqual(self.keepalive.stats["removed"], 1)
        self.keepalive.flow_lost(TCP)
        self.assertEqual(self.keepalive.stats["removed"], 1)

    def test_reconnected_before_close(self) -> None:
        """
        A phone that registered again over a new connection before the old
        one closed keeps its new binding when the old connection goes.
        """
        self.register(binding("sip:bob@10.0.0.5;transport=tcp", TCP))
        new = Flow("TCP", PROXY, 5060, "203.0.113.5", 50003)
        self.register(binding("sip:bob@10.0.0.5;transport=tcp", new))
        self.keepalive.flow_lost(TCP)
        self.assertEqual(self.left(), ["sip:bob@10.0.0.5;transport=tcp"])
        self.assertFalse(self.lost.is_lost(AOR, self.clock.seconds()))

    def test_dead_flow_removed(self) -> None:
        """
        If a ping's transaction fails, the binding is removed from the store
        (so a caller gets 480 at once) and is no longer pinged.
        """
        self.register(binding("sip:bob@10.0.0.5", NAT), binding("sip:bob@203.0.113.6", PUBLIC))
        self.keepalive.start()
        self.clock.advance(15)
        self.sent[0][2].errback(OriginateError("timed out"))
        now = self.clock.seconds()
        left = self.successResultOf(self.store.lookup(AOR, now))
        self.assertEqual([b.contact for b in left], ["sip:bob@203.0.113.6"])
        self.assertEqual(self.keepalive.stats["removed"], 1)
        self.assertEqual(len(self.keepalive), 0)
        self.clock.advance(15)
        self.assertEqual(len(self.sent), 1)
        self.keepalive.stop()

    def test_registered_again_meanwhile(self) -> None:
        """
        If the phone registered again while a ping was in flight, a timeout
        of that ping removes nothing: the new binding is kept and pinged.
        """
        self.register(binding("sip:bob@10.0.0.5", NAT))
        self.keepalive.start()
        self.clock.advance(15)
        self.register(binding("sip:bob@10.0.0.5", NAT, expires_at=9999.0))
        self.sent[0][2].errback(OriginateError("timed out"))
        left = self.successResultOf(self.store.lookup(AOR, self.clock.seconds()))
        self.assertEqual(len(left), 1)
        self.assertEqual(self.keepalive.stats["removed"], 0)
        self.clock.advance(15)
        self.assertEqual(len(self.sent), 2)
        self.keepalive.stop()

    def test_expired_forgotten(self) -> None:
        """An expired binding is not pinged and is forgotten; so is one unregistered."""
        self.register(binding("sip:bob@10.0.0.5", NAT, expires_at=1010.0))
        self.keepalive.start()
        self.clock.advance(15)
        self.assertEqual(self.sent, [])
        self.assertEqual(len(self.keepalive), 0)
        self.register(binding("sip:bob@10.0.0.5", NAT))
        self.keepalive.registered(AOR, [], self.clock.seconds())
        self.assertEqual(len(self.keepalive), 0)
        self.keepalive.stop()


class RegistrarNatTests(SynchronousTestCase):
    """The registrar's short interval for phones behind NAT, and its observers."""

    def register(self, registrar: Registrar, flow: Flow, contact: str) -> Response:
        from sipedge.message import parse_datagram
        from sipedge.transport import stamp_via

        text = (
            "REGISTER sip:example.com SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-r1;rport\r\n"
            "From: <sip:bob@example.com>;tag=r\r\nTo: <sip:bob@example.com>\r\n"
            "Call-ID: reg-nat\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: <{contact}>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
        )
        request = parse_datagram(text.encode())
        assert isinstance(request, Request)
        return self.successResultOf(registrar.handle_register(stamp_via(request, flow), flow))

    def test_nat_expires(self) -> None:
        """
        A phone behind NAT asking for 3600 s is granted C{nat_expires}; one
        that is not, the full 3600; the observers learn the bindings.
        """
        clock = Clock()
        registrar = Registrar(MemoryLocationStore(), clock, nat_expires=120)
        seen: list[Any] = []
        registrar.on_registered.append(lambda aor, bs, now: seen.append((aor, len(bs))))
        ok = self.register(registrar, NAT, "sip:bob@10.0.0.5")
        self.assertEqual(ok.headers.get("Contact"), "<sip:bob@10.0.0.5>;expires=120")
        self.assertEqual(seen, [("sip:bob@example.com", 1)])
        public = Flow("UDP", PROXY, 5060, "10.0.0.5", 5060)
        registrar = Registrar(MemoryLocationStore(), clock, nat_expires=120)
        ok = self.register(registrar, public, "sip:bob@10.0.0.5")
        self.assertEqual(ok.headers.get("Contact"), "<sip:bob@10.0.0.5>;expires=3600")

    def test_nat_expires_not_below_minimum(self) -> None:
        """C{nat_expires} below C{min_expires} grants C{min_expires}."""
        registrar = Registrar(MemoryLocationStore(), Clock(), min_expires=60, nat_expires=30)
        ok = self.register(registrar, NAT, "sip:bob@10.0.0.5")
        self.assertEqual(ok.headers.get("Contact"), "<sip:bob@10.0.0.5>;expires=60")

    def test_observer_failure(self) -> None:
        """An observer that raises is logged; the REGISTER still succeeds."""
        registrar = Registrar(MemoryLocationStore(), Clock())
        def fail(aor: str, bindings: list[Binding], now: float) -> None:
            raise ZeroDivisionError()

        registrar.on_registered.append(fail)
        self.assertEqual(self.register(registrar, NAT, "sip:bob@10.0.0.5").status, 200)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class KeepaliveThroughCoreTests(ProxyHarness, SynchronousTestCase):
    """L{NatKeepalive} sending its pings through a real L{ProxyCore}."""

    def test_ping_and_timeout(self) -> None:
        """
        A phone registered from behind NAT gets OPTIONS over its flow (our
        Via with rport on top, Max-Forwards set); when the phone answers,
        the binding stays; when a ping is unanswered for 10 s, the binding
        is gone and a call to the phone is answered 480 at once, with
        nothing sent to it.
        """
        keepalive = NatKeepalive(
            self.store, self.clock, self.core.originate, interval=15, lost=self.lost
        )
        self.registrar.on_registered.append(keepalive.registered)
        keepalive.start()
        self.addCleanup(keepalive.stop)
        self.register("sip:bob@10.0.0.5:5060", NAT)
        self.clock.advance(15)
        ping = self.only(NAT.remote, "OPTIONS")
        self.assertEqual(ping.uri, "sip:bob@10.0.0.5:5060")
        self.assertTrue(ping.top_via.has_param("rport"))
        self.assertEqual(ping.max_forwards, 70)
        self.receive(make_response(ping, 200), NAT)
        self.take()
        self.assertEqual(keepalive.stats["answered"], 1)
        self.clock.advance(15)
        self.only(NAT.remote, "OPTIONS")
        for _ in range(20):
            self.clock.advance(0.5)
        self.assertEqual(keepalive.stats["removed"], 1)
        self.take()
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [480])
        self.assertEqual(self.sent_to(NAT.remote), [])
        keepalive.stop()
        self.settle(40)
        self.take()

    def test_connection_gone(self) -> None:
        """
        A TCP phone behind NAT registered over its connection; the
        connection goes: its registration is dropped, and a call to it is
        answered 480 at once. Once it registers again, it is called.
        """
        tcp = Flow("TCP", "192.0.2.1", 5060, "203.0.113.5", 50000)
        keepalive = NatKeepalive(self.store, self.clock, self.core.originate, lost=self.lost)
        self.registrar.on_registered.append(keepalive.registered)
        self.transports.connections.add(tcp)
        self.register("sip:bob@10.0.0.5;transport=tcp", tcp)
        self.transports.connections.discard(tcp)
        keepalive.flow_lost(tcp)
        self.assertEqual(self.successResultOf(self.store.lookup(
            "sip:bob@example.com", self.clock.seconds())), [])
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [480])
        self.take()
        self.transports.connections.add(tcp)
        self.register("sip:bob@10.0.0.5;transport=tcp", tcp, call_id="reg-again")
        self.receive(
            request("INVITE", "sip:bob@example.com", call_id="c2", branch="z9hG4bK-alice-2"),
            ALICE,
        )
        self.assertEqual(len(self.sent_to(tcp.remote, "INVITE")), 1)
        self.settle()
        self.take()
