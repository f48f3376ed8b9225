# -*- test-case-name: sipedge.test.test_registrar -*-
"""
Tests for L{sipedge.proxy._registrar}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import LocalProtocolError
from sipedge.flow import Flow
from sipedge.message import Request, Response, parse_datagram
from sipedge.proxy import Registrar
from sipedge.store import Binding, MemoryLocationStore, SQLiteLocationStore
from sipedge.testing import capture_log

RFC4475 = Path(__file__).parent / "data" / "rfc4475"

FLOW = Flow("UDP", "192.0.2.100", 5060, "198.51.100.7", 40000)
AOR = "sip:alice@example.com"
INSTANCE = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"
START = 1_000_000.0


def register(
    *fields: str,
    to: str = "<sip:alice@example.com>",
    call_id: str = "reg-1@192.0.2.10",
    cseq: int = 1,
) -> Request:
    """A REGISTER with the usual fields and C{fields} (C{"Name: value"})."""
    lines = [
        "REGISTER sip:example.com SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-reg-1;rport",
        "Max-Forwards: 70",
        "From: <sip:alice@example.com>;tag=a73kszlfl",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *fields,
        "Content-Length: 0",
    ]
    message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    assert isinstance(message, Request)
    return message


def corpus(name: str) -> Request:
    """A request of the RFC 4475 torture tests."""
    message = parse_datagram((RFC4475 / f"{name}.dat").read_bytes())
    assert isinstance(message, Request)
    return message


class _FailingStore(MemoryLocationStore):
    """A store whose writes fail, as a broken database would."""

    def update(self, aor: str, bindings: Any, now: float) -> Deferred[list[Binding]]:
        return defer.fail(RuntimeError("disk on fire"))


class RegistrarTests(SynchronousTestCase):
    """Tests for L{Registrar} over the memory store."""

    def make_store(self) -> Any:
        return MemoryLocationStore()

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.store = self.make_store()
        self.addCleanup(self.store.close)
        self.registrar = Registrar(self.store, self.clock)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def handle(self, request: Request, flow: Flow = FLOW) -> Response:
        return self.successResultOf(self.registrar.handle_register(request, flow))

    def bindings(self, aor: str = AOR) -> list[Binding]:
        return self.successResultOf(self.store.lookup(aor, self.clock.seconds()))

    def contacts(self, response: Response) -> list[str]:
        return list(response.headers.get_all("Contact"))

    # -- adding, refreshing, removing ----------------------------------------

    def test_register(self) -> None:
        """
        A REGISTER with a Contact adds a binding that remembers the flow,
        Call-ID, CSeq, Path, User-Agent and source, and the 200 lists it
        with the default expiry (RFC 3261 10.3 step 8).
        """
        response = self.handle(
            register(
                "Contact: <sip:alice@10.0.0.5:5060>",
                "Path: <sip:edge.example.com;lr>",
                "User-Agent: Phone/1.0",
                cseq=7,
            )
        )
        self.assertEqual((response.status, response.reason), (200, "OK"))
        self.assertEqual(self.contacts(response), ["<sip:alice@10.0.0.5:5060>;expires=3600"])
        [b] = self.bindings()
        self.assertEqual(
            b,
            Binding(
                aor=AOR,
                contact="sip:alice@10.0.0.5:5060",
                expires_at=START + 3600,
                call_id="reg-1@192.0.2.10",
                cseq=7,
                flow=FLOW,
                path=("<sip:edge.example.com;lr>",),
                user_agent="Phone/1.0",
                received="sip:198.51.100.7:40000;transport=udp",
            ),
        )

    def test_response_fields(self) -> None:
        """
        The response copies Via, From, Call-ID and CSeq, and adds a To tag
        that is the same for a retransmission (RFC 3261 8.2.6.2).
        """
        request = register(
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-proxy", "Contact: <sip:alice@10.0.0.5>"
        )
        response = self.handle(request)
        self.assertEqual(
            response.headers.get_all("Via"),
            (
                "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-reg-1;rport",
                "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-proxy",
            ),
        )
        for name in ("From", "Call-ID", "CSeq"):
            self.assertEqual(response.headers.get(name), request.headers.get(name))
        tag = response.to_address.tag
        self.assertTrue(tag)
        self.assertEqual(response.to_address.uri, request.to_address.uri)
        self.assertEqual(self.handle(request).to_address.tag, tag)
        other = register("Contact: <sip:alice@10.0.0.5>", call_id="another")
        self.assertNotEqual(self.handle(other).to_address.tag, tag)

    def test_to_tag_kept(self) -> None:
        """A To that has a tag keeps it."""
        response = self.handle(register(to="<sip:alice@example.com>;tag=xyz"))
        self.assertEqual(response.to_address.tag, "xyz")

    def test_aor_canonical(self) -> None:
        """The AOR is the canonical To URI (RFC 3261 10.3 step 5)."""
        self.handle(
            register(
                "Contact: <sip:alice@10.0.0.5>", to='"A" <sip:%61lice@EXAMPLE.COM:5060;user=ip>'
            )
        )
        self.assertEqual(len(self.bindings()), 1)

    def test_several_contacts(self) -> None:
        """Every Contact, in one field or several, gets a binding."""
        response = self.handle(
            register("Contact: <sip:a@10.0.0.5>, <sip:b@10.0.0.5>", "m: <sip:c@10.0.0.5>")
        )
        self.assertEqual(len(self.contacts(response)), 3)
        self.assertEqual(
            [b.contact for b in self.bindings()],
            ["sip:a@10.0.0.5", "sip:b@10.0.0.5", "sip:c@10.0.0.5"],
        )

    def test_refresh(self) -> None:
        """A REGISTER of the same contact with a higher CSeq refreshes it."""
        self.handle(register("Contact: <sip:alice@10.0.0.5>", "Expires: 600"))
        self.clock.advance(500)
        response = self.handle(register("Contact: <sip:alice@10.0.0.5>", "Expires: 600", cseq=2))
        self.assertEqual(self.contacts(response), ["<sip:alice@10.0.0.5>;expires=600"])
        [b] = self.bindings()
        self.assertEqual((b.expires_at, b.cseq), (START + 1100, 2))

    def test_remove(self) -> None:
        """A contact with expires 0 removes its binding; the 200 lists the rest."""
        self.handle(register("Contact: <sip:a@10.0.0.5>, <sip:b@10.0.0.5>"))
        response = self.handle(register("Contact: <sip:a@10.0.0.5>;expires=0", cseq=2))
        self.assertEqual(self.contacts(response), ["<sip:b@10.0.0.5>;expires=3600"])
        self.assertEqual([b.contact for b in self.bindings()], ["sip:b@10.0.0.5"])

    def test_remove_by_expires_header(self) -> None:
        """C{Expires: 0} removes every listed contact without its own expires."""
        self.handle(register("Contact: <sip:a@10.0.0.5>, <sip:b@10.0.0.5>"))
        self.handle(
            register("Contact: <sip:a@10.0.0.5>, <sip:b@10.0.0.5>;expires=60", "Expires: 0", cseq=2)
        )
        self.assertEqual(
            [(b.contact, b.expires_at) for b in self.bindings()], [("sip:b@10.0.0.5", START + 60)]
        )

    def test_query(self) -> None:
        """A REGISTER without Contact changes nothing and lists the bindings."""
        self.handle(register("Contact: <sip:alice@10.0.0.5>;q=0.5", "Expires: 100"))
        self.clock.advance(40)
        response = self.handle(register(cseq=2))
        self.assertEqual(response.status, 200)
        self.assertEqual(self.contacts(response), ["<sip:alice@10.0.0.5>;expires=60;q=0.5"])

    def test_query_empty(self) -> None:
        """A query of an AOR without bindings gets a 200 without Contact."""
        response = self.handle(register())
        self.assertEqual(response.status, 200)
        self.assertEqual(self.contacts(response), [])

    # -- expiry intervals ------------------------------------------------------

    def test_expires_header(self) -> None:
        """Without an expires parameter the Expires header sets the interval."""
        response = self.handle(register("Contact: <sip:alice@10.0.0.5>", "Expires: 120"))
        self.assertEqual(self.contacts(response), ["<sip:alice@10.0.0.5>;expires=120"])

    def test_expires_param_first(self) -> None:
        """The Contact's expires parameter wins over the Expires header."""
        response = self.handle(
            register("Contact: <sip:alice@10.0.0.5>;expires=300", "Expires: 120")
        )
        self.assertEqual(self.contacts(response), ["<sip:alice@10.0.0.5>;expires=300"])

    def test_clamped(self) -> None:
        """An interval above max_expires is shortened to it."""
        response = self.handle(register("Contact: <sip:alice@10.0.0.5>;expires=99999"))
        self.assertEqual(self.contacts(response), ["<sip:alice@10.0.0.5>;expires=3600"])

    def test_interval_too_brief(self) -> None:
        """
        An interval below min_expires (and not 0) is answered 423 with
        Min-Expires, and nothing of the request is applied.
        """
        response = self.handle(register("Contact: <sip:a@10.0.0.5>, <sip:b@10.0.0.5>;expires=59"))
        self.assertEqual((response.status, response.reason), (423, "Interval Too Brief"))
        self.assertEqual(response.headers.get("Min-Expires"), "60")
        self.assertEqual(self.bindings(), [])
        response = self.handle(register("Contact: <sip:a@10.0.0.5>", "Expires: 1", cseq=2))
        self.assertEqual(response.status, 423)

    def test_min_expires_exact(self) -> None:
        """An interval of exactly min_expires is accepted."""
        response = self.handle(register("Contact: <sip:a@10.0.0.5>;expires=60"))
        self.assertEqual(response.status, 200)

    def test_settings(self) -> None:
        """The intervals come from the constructor, which checks them."""
        registrar = Registrar(
            self.store, self.clock, min_expires=10, max_expires=100, default_expires=50
        )
        response = self.successResultOf(
            registrar.handle_register(register("Contact: <sip:a@10.0.0.5>"), FLOW)
        )
        self.assertEqual(self.contacts(response), ["<sip:a@10.0.0.5>;expires=50"])
        self.assertRaises(
            ValueError,
            Registrar,
            self.store,
            self.clock,
            min_expires=100,
            max_expires=50,
            default_expires=60,
        )
        self.assertRaises(ValueError, Registrar, self.store, self.clock, min_expires=-1)

    # -- q ---------------------------------------------------------------------

    def test_q(self) -> None:
        """q-values are stored and the 200 lists the highest first, with C{q}."""
        response = self.handle(
            register(
                "Contact: <sip:low@10.0.0.5>;q=0.1, <sip:top@10.0.0.5>;q=1.0,"
                " <sip:mid@10.0.0.5>;q=0.75, <sip:default@10.0.0.5>"
            )
        )
        self.assertEqual(
            self.contacts(response),
            [
                "<sip:default@10.0.0.5>;expires=3600",
                "<sip:top@10.0.0.5>;expires=3600",
                "<sip:mid@10.0.0.5>;expires=3600;q=0.75",
                "<sip:low@10.0.0.5>;expires=3600;q=0.1",
            ],
        )

    def test_q_zero(self) -> None:
        """q=0 is a valid preference, listed as C{q=0}."""
        response = self.handle(register("Contact: <sip:a@10.0.0.5>;q=0"))
        self.assertEqual(self.contacts(response), ["<sip:a@10.0.0.5>;expires=3600;q=0"])

    # -- wildcard ----------------------------------------------------------------

    def test_wildcard(self) -> None:
        """C{Contact: *} with C{Expires: 0} removes every binding of the AOR."""
        self.handle(register("Contact: <sip:a@10.0.0.5>, <sip:b@10.0.0.5>"))
        response = self.handle(register("Contact: *", "Expires: 0", cseq=2))
        self.assertEqual(response.status, 200)
        self.assertEqual(self.contacts(response), [])
        self.assertEqual(self.bindings(), [])

    def test_wildcard_needs_expires_zero(self) -> None:
        """C{Contact: *} without C{Expires: 0} is a 400 (RFC 3261 10.3 step 6)."""
        self.handle(register("Contact: <sip:a@10.0.0.5>"))
        for fields in (("Contact: *",), ("Contact: *", "Expires: 10")):
            response = self.handle(register(*fields, cseq=2))
            self.assertEqual((response.status, response.reason), (400, "Bad Request"))
        self.assertEqual(len(self.bindings()), 1)

    def test_wildcard_not_alone(self) -> None:
        """C{*} with another Contact, in one field or two, is a 400."""
        for fields in (
            ("Contact: *", "Contact: <sip:a@10.0.0.5>", "Expires: 0"),
            ("Contact: *, <sip:a@10.0.0.5>", "Expires: 0"),
        ):
            self.assertEqual(self.handle(register(*fields)).status, 400)

    def test_wildcard_stale_cseq(self) -> None:
        """
        C{Contact: *} with the Call-ID of a binding and a CSeq not above its
        own fails with 500 and removes nothing (RFC 3261 10.3 step 6).
        """
        self.handle(register("Contact: <sip:a@10.0.0.5>", cseq=5))
        response = self.handle(register("Contact: *", "Expires: 0", cseq=5))
        self.assertEqual(response.status, 500)
        self.assertEqual(len(self.bindings()), 1)
        response = self.handle(register("Contact: *", "Expires: 0", cseq=1, call_id="other"))
        self.assertEqual(response.status, 200)
        self.assertEqual(self.bindings(), [])

    # -- Call-ID and CSeq (RFC 3261 10.3 step 7) ------------------------------

    def test_stale_cseq(self) -> None:
        """
        The same Call-ID with a CSeq lower than or equal to the binding's
        aborts the update with a 500, without Retry-After.
        """
        self.handle(register("Contact: <sip:a@10.0.0.5>", "Expires: 600", cseq=5))
        for cseq in (5, 4):
            response = self.handle(register("Contact: <sip:a@10.0.0.5>;expires=0", cseq=cseq))
            self.assertEqual((response.status, response.reason), (500, "Server Internal Error"))
            self.assertNotIn("Retry-After", response.headers)
            self.assertNotIn("Contact", response.headers)
        [b] = self.bindings()
        self.assertEqual((b.cseq, b.expires_at), (5, START + 600))

    def test_other_call_id(self) -> None:
        """Another Call-ID updates the binding whatever its CSeq."""
        self.handle(register("Contact: <sip:a@10.0.0.5>", cseq=5))
        response = self.handle(
            register("Contact: <sip:a@10.0.0.5>;expires=120", cseq=1, call_id="new-call")
        )
        self.assertEqual(response.status, 200)
        [b] = self.bindings()
        self.assertEqual((b.call_id, b.cseq, b.expires_at), ("new-call", 1, START + 120))

    def test_stale_cseq_atomic(self) -> None:
        """If one contact fails the CSeq rule, no contact of the request is applied."""
        self.handle(register("Contact: <sip:a@10.0.0.5>", cseq=5))
        self.handle(register("Contact: <sip:b@10.0.0.5>", call_id="b-call", cseq=9))
        response = self.handle(
            register(
                "Contact: <sip:c@10.0.0.5>, <sip:a@10.0.0.5>;expires=0, <sip:b@10.0.0.5>",
                call_id="b-call",
                cseq=9,
            )
        )
        self.assertEqual(response.status, 500)
        self.assertEqual(
            [(b.contact, b.cseq) for b in self.bindings()],
            [("sip:a@10.0.0.5", 5), ("sip:b@10.0.0.5", 9)],
        )

    def test_expired_binding_ignored(self) -> None:
        """An expired binding does not hold back a REGISTER with its Call-ID."""
        self.handle(register("Contact: <sip:a@10.0.0.5>;expires=60", cseq=5))
        self.clock.advance(60)
        self.assertEqual(self.handle(register("Contact: <sip:a@10.0.0.5>", cseq=1)).status, 200)

    # -- malformed requests ----------------------------------------------------

    def test_to_not_sip(self) -> None:
        """A To that is not a SIP or SIPS URI is a 400 (RFC 4475 unksm2)."""
        response = self.handle(corpus("unksm2"))
        self.assertEqual((response.status, response.reason), (400, "Bad Request"))
        self.assertEqual(str(response.to_address.uri), "isbn:2983792873")
        self.assertTrue(response.to_address.tag)
        self.assertEqual(self.handle(register(to="<tel:+15551234567>")).status, 400)

    def test_bad_fields(self) -> None:
        """Malformed Contact, expires, q, Expires, reg-id or To fields are a 400."""
        for fields, to in (
            (("Contact: <sip:a@10.0.0.5>;expires=soon",), None),
            (("Contact: <sip:a@10.0.0.5>;q=2",), None),
            (("Contact: <sip:a@10.0.0.5>", "Expires: never"), None),
            (("Contact: sip:a@10.0.0.5?x=y",), None),
            (("Contact: <sip:a@10.0.0.5>",), "<sip:alice@example.com"),
            (
                (
                    f'Contact: <sip:a@10.0.0.5>;+sip.instance="{INSTANCE}";reg-id=x',
                    "Supported: outbound",
                ),
                None,
            ),
        ):
            kwargs: dict[str, Any] = {} if to is None else {"to": to}
            response = self.handle(register(*fields, **kwargs))
            self.assertEqual(response.status, 400, fields)
        self.assertEqual(self.bindings(), [])

    def test_not_register(self) -> None:
        """Only REGISTER is handled; anything else is our own mistake."""
        request = register().with_uri("sip:alice@example.com")
        options = Request("OPTIONS", request.uri, request.headers)
        self.failureResultOf(self.registrar.handle_register(options, FLOW), LocalProtocolError)

    def test_store_failure(self) -> None:
        """If the store fails, the REGISTER fails with a 500 and the failure is logged."""
        registrar = Registrar(_FailingStore(), self.clock)
        response = self.successResultOf(
            registrar.handle_register(register("Contact: <sip:a@10.0.0.5>"), FLOW)
        )
        self.assertEqual(response.status, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    # -- RFC 4475 --------------------------------------------------------------

    def test_cparam01(self) -> None:
        """
        RFC 4475 cparam01: in C{Contact: sip:...;unknownparam} the parameter
        is a Contact parameter, not part of the bound URI.
        """
        response = self.handle(corpus("cparam01"))
        self.assertEqual(response.status, 200)
        [b] = self.bindings("sip:watson@example.com")
        self.assertEqual(b.contact, "sip:+19725552222@gw1.example.net")

    def test_cparam02(self) -> None:
        """
        RFC 4475 cparam02: in C{Contact: <sip:...;unknownparam>} the
        parameter is a URI parameter and is kept in the binding.
        """
        response = self.handle(corpus("cparam02"))
        self.assertEqual(response.status, 200)
        [b] = self.bindings("sip:watson@example.com")
        self.assertEqual(b.contact, "sip:+19725552222@gw1.example.net;unknownparam")
        self.assertEqual(
            self.contacts(response),
            ["<sip:+19725552222@gw1.example.net;unknownparam>;expires=3600"],
        )

    def test_escnull(self) -> None:
        """
        RFC 4475 escnull: C{sip:%00@...} and C{sip:%00%00@...} are two
        bindings of the AOR C{sip:null-%00-null@example.com}.
        """
        response = self.handle(corpus("escnull"))
        self.assertEqual(response.status, 200)
        self.assertEqual(len(self.contacts(response)), 2)
        self.assertCountEqual(
            [b.contact for b in self.bindings("sip:null-%00-null@example.com")],
            ["sip:%00@host5.example.com", "sip:%00%00@host5.example.com"],
        )

    def test_regescrt(self) -> None:
        """
        RFC 4475 regescrt: the escaped Route header of the contact is kept
        verbatim in the binding and in the 200.
        """
        response = self.handle(corpus("regescrt"))
        self.assertEqual(response.status, 200)
        [b] = self.bindings("sip:user@example.com")
        self.assertEqual(b.contact, "sip:user@example.com?Route=%3Csip:sip.example.com%3E")
        self.assertEqual(
            self.contacts(response),
            ["<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600"],
        )

    # -- SIP Outbound ------------------------------------------------------------

    def test_outbound(self) -> None:
        """
        With C{Supported: outbound}, the instance and reg-id are stored, the
        200 echoes them and has C{Require: outbound} (RFC 5626 section 6),
        and each reg-id of an instance is its own binding.
        """
        tcp = Flow("TCP", "192.0.2.100", 5060, "198.51.100.7", 50001)
        first = f'Contact: <sip:alice@10.0.0.5;transport=tcp>;+sip.instance="{INSTANCE}";reg-id=1'
        second = f'Contact: <sip:alice@10.0.0.5;transport=tcp>;+sip.instance="{INSTANCE}";reg-id=2'
        self.handle(register(first, "Supported: path, outbound"), FLOW)
        response = self.handle(register(second, "Supported: outbound", cseq=2), tcp)
        self.assertEqual(response.headers.get("Require"), "outbound")
        self.assertEqual(
            self.contacts(response),
            [
                f'<sip:alice@10.0.0.5;transport=tcp>;expires=3600;+sip.instance="{INSTANCE}";reg-id=1',
                f'<sip:alice@10.0.0.5;transport=tcp>;expires=3600;+sip.instance="{INSTANCE}";reg-id=2',
            ],
        )
        self.assertEqual(
            [(b.instance, b.reg_id, b.flow) for b in self.bindings()],
            [(INSTANCE, 1, FLOW), (INSTANCE, 2, tcp)],
        )

    def test_no_outbound(self) -> None:
        """Without C{Supported: outbound} the reg-id is ignored (RFC 5626 section 6)."""
        response = self.handle(
            register(f'Contact: <sip:alice@10.0.0.5>;+sip.instance="{INSTANCE}";reg-id=1')
        )
        self.assertNotIn("Require", response.headers)
        [b] = self.bindings()
        self.assertEqual((b.instance, b.reg_id), (INSTANCE, None))

    # -- periodic expiry -------------------------------------------------------

    def test_expiry(self) -> None:
        """
        C{start_expiry} purges expired bindings from the store every
        interval until C{stop_expiry}.
        """
        events = capture_log(self)
        self.handle(register("Contact: <sip:a@10.0.0.5>;expires=60, <sip:b@10.0.0.5>;expires=200"))
        self.registrar.start_expiry(100)
        self.assertRaises(LocalProtocolError, self.registrar.start_expiry, 100)
        self.clock.advance(99)
        self.assertEqual(self.successResultOf(self.store.expire(START)), 0)
        self.clock.advance(1)
        self.assertEqual(len(self.bindings()), 1)
        self.assertEqual(self.successResultOf(self.store.expire(START + 100)), 0)
        self.assertEqual([e["count"] for e in events if "count" in e and "aor" not in e], [1])
        self.clock.advance(100)
        self.assertEqual(self.successResultOf(self.store.expire(START + 200)), 0)
        self.registrar.stop_expiry()
        self.registrar.stop_expiry()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_expiry_survives_store_failure(self) -> None:
        """A failing purge is logged and the next one still runs."""
        calls = []

        def expire(now: float) -> Deferred[int]:
            calls.append(now)
            return defer.fail(RuntimeError("locked"))

        self.store.expire = expire
        self.registrar.start_expiry(10)
        self.clock.pump([10, 10])
        self.assertEqual(calls, [START + 10, START + 20])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.registrar.stop_expiry()

    # -- logging -----------------------------------------------------------------

    def test_logged(self) -> None:
        """A REGISTER is logged with the AOR and the bindings as fields."""
        events = capture_log(self)
        self.handle(register("Contact: <sip:a@10.0.0.5>"))
        self.handle(register("Contact: <sip:a@10.0.0.5>;expires=10"))
        [ok] = [e for e in events if "aor" in e]
        self.assertEqual((ok["aor"], ok["count"], ok["contacts"]), (AOR, 1, ["sip:a@10.0.0.5"]))
        [rejected] = [e for e in events if "status" in e]
        self.assertEqual(rejected["status"], 423)


class RegistrarSQLiteTests(RegistrarTests):
    """The registrar tests again, over the SQLite store."""

    def make_store(self) -> Any:
        return SQLiteLocationStore(self.mktemp())
