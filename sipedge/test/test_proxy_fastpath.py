# -*- test-case-name: sipedge.test.test_proxy_fastpath -*-
"""
The proxy core's synchronous paths: a next hop the locator answers at
once is used at once, and a locator that raises or fails is handled the
same whether it answers at once or later.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import TransportError
from sipedge.flow import Flow
from sipedge.message import Request, Response
from sipedge.testing import ALICE, BOB_UDP, PROXY, TRUSTED, ProxyHarness, capture_log
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request
from sipedge.transport import Destination

FOREIGN = ("203.0.113.10", 5060)


class _Raising:
    """A locator that raises as it is asked (a bug in a resolver)."""

    def __init__(self) -> None:
        self.asked = 0

    def locate(self, uri: Any) -> Any:
        self.asked += 1
        raise TransportError("resolver bug")


class _Failing:
    """A locator whose answer is a Deferred that has already failed."""

    def locate(self, uri: Any) -> Deferred[Any]:
        return fail(TransportError("no such host"))


class _Later:
    """A locator whose answers come when the test fires them."""

    def __init__(self) -> None:
        self.pending: list[Deferred[Any]] = []

    def locate(self, uri: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d


class LocatorPathsTests(ProxyHarness, SynchronousTestCase):
    """Branches and ACKs whose next hop the locator answers at once, later, or never."""

    def test_located_at_once(self) -> None:
        """A next hop the locator has at once is sent to before the core returns."""
        self.locator.add("other.example.net", ("UDP", *FOREIGN))
        self.receive(request("MESSAGE", "sip:bob@other.example.net"), TRUSTED)
        self.only(FOREIGN, "MESSAGE")

    def test_locator_raises(self) -> None:
        """
        A locator that raises instead of failing its Deferred: the branch
        fails with 503, as for a failed look-up, and the core goes on (the
        caller gets 500: a proxy does not relay 503, RFC 3261 16.7 item 6).
        """
        self.core.locator = _Raising()
        self.receive(request("MESSAGE", "sip:bob@other.example.net"), TRUSTED)
        self.assertEqual(self.statuses(TRUSTED.remote), [500])

    def test_locator_fails_at_once_or_later(self) -> None:
        """A look-up that fails at once and one that fails later end alike (in 500)."""
        self.core.locator = _Failing()
        message = request("MESSAGE", "sip:bob@other.example.net", call_id="a", branch="z9hG4bK-a")
        self.receive(message, TRUSTED)
        later = _Later()
        self.core.locator = later
        message = request("MESSAGE", "sip:bob@other.example.net", call_id="b", branch="z9hG4bK-b")
        self.receive(message, TRUSTED)
        self.assertEqual(self.statuses(TRUSTED.remote), [500])
        later.pending[0].errback(TransportError("no such host"))
        self.assertEqual(self.statuses(TRUSTED.remote), [500, 500])

    def dialog_ack(self) -> Any:
        """An INVITE to Bob answered 200, and Alice's ACK for it along our Route."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        forwarded = self.only(("203.0.113.5", 5060), "INVITE")
        self.receive(
            answer(forwarded, 200, ("Contact", "<sip:bob@bob-host.example.net>")), BOB_UDP
        )
        ok = self.only(ALICE.remote, 200)
        assert isinstance(ok, Response)
        self.take()
        [rr] = ok.headers.get_all("Record-Route")
        return request(
            "ACK",
            "sip:bob@bob-host.example.net",
            f"Route: {rr}",
            branch="z9hG4bK-alice-ack",
            to="<sip:bob@example.com>;tag=bob-tag",
        )

    def test_ack_located_at_once(self) -> None:
        """An ACK whose next hop the locator has at once is forwarded at once."""
        ack = self.dialog_ack()
        self.locator.add("bob-host.example.net", ("UDP", "203.0.113.20", 5060))
        self.receive(ack, ALICE)
        self.only(("203.0.113.20", 5060), "ACK")

    def test_ack_locator_raises(self) -> None:
        """An ACK whose look-up raises is not forwarded, and the failure is logged once."""
        ack = self.dialog_ack()
        events = capture_log(self)
        self.core.locator = _Raising()
        self.receive(ack, ALICE)
        self.assertEqual(self.take(), [])
        self.assertEqual(len(self.flushLoggedErrors(TransportError)), 1)
        self.assertEqual(
            [e["log_format"] for e in events if "log_failure" in e], ["Forwarding ACK failed"]
        )

    def test_ack_located_later(self) -> None:
        """An ACK whose look-up answers later is forwarded then."""
        ack = self.dialog_ack()
        later = _Later()
        self.core.locator = later
        self.receive(ack, ALICE)
        self.assertEqual(self.take(), [])
        later.pending[0].callback([])
        self.assertEqual(self.take(), [])
        self.receive(ack, ALICE)
        host = "203.0.113.20"
        later.pending[1].callback([Destination("UDP", host, 5060, host, host)])
        [(out, flow)] = self.take()
        assert isinstance(out, Request)
        self.assertEqual((out.method, flow.remote), ("ACK", (host, 5060)))
        self.assertIsInstance(flow, Flow)
        self.assertEqual(flow.local_host, PROXY)
