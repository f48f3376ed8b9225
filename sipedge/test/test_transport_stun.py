# -*- test-case-name: sipedge.test.test_transport_stun -*-
"""
Tests for L{sipedge.transport._stun}: answering STUN keepalives on the SIP
UDP port (RFC 5626 8).
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import FakeReactor, RecordingReceiver
from sipedge.transport import MAX_DATAGRAM_SIZE, SipDatagramProtocol
from sipedge.transport._stun import MAGIC_COOKIE, binding_response, looks_like_stun

TRANSACTION = bytes(range(12))


def binding_request(attributes: bytes = b"", kind: int = 0x0001) -> bytes:
    """A STUN message of C{kind} with C{attributes}."""
    return struct.pack("!HHI12s", kind, len(attributes), MAGIC_COOKIE, TRANSACTION) + attributes


def mapped_address(response: bytes) -> tuple[str, int]:
    """The XOR-MAPPED-ADDRESS of a Binding success response, decoded."""
    kind, length, cookie, transaction = struct.unpack_from("!HHI12s", response)
    assert (kind, cookie, transaction) == (0x0101, MAGIC_COOKIE, TRANSACTION)
    assert len(response) == 20 + length
    attribute, size = struct.unpack_from("!HH", response, 20)
    assert attribute == 0x0020
    _, family, xport = struct.unpack_from("!BBH", response, 24)
    raw = response[28 : 24 + size]
    mask = MAGIC_COOKIE.to_bytes(4, "big") + (transaction if family == 2 else b"")
    address = ipaddress.ip_address(bytes(a ^ b for a, b in zip(raw, mask, strict=True)))
    return str(address), xport ^ (MAGIC_COOKIE >> 16)


class BindingResponseTests(SynchronousTestCase):
    """Tests for L{binding_response}."""

    def test_ipv4(self) -> None:
        """A Binding request gets a success response naming the source, XORed."""
        response = binding_response(binding_request(), "203.0.113.9", 41234)
        assert response is not None
        self.assertEqual(mapped_address(response), ("203.0.113.9", 41234))

    def test_ipv6(self) -> None:
        """For an IPv6 source the address is XORed with cookie and transaction ID."""
        response = binding_response(binding_request(), "2001:db8::9", 5062)
        assert response is not None
        self.assertEqual(mapped_address(response), ("2001:db8::9", 5062))

    def test_optional_attributes(self) -> None:
        """Comprehension-optional attributes (SOFTWARE) are ignored."""
        software = struct.pack("!HH", 0x8022, 5) + b"phone\x00\x00\x00"
        response = binding_response(binding_request(software), "203.0.113.9", 1)
        self.assertIsNotNone(response)

    def test_not_answered(self) -> None:
        """
        Not a Binding request, an attribute we must understand (USERNAME),
        a wrong length or a source that is not an address: no answer.
        """
        username = struct.pack("!HH", 0x0006, 4) + b"user"
        self.assertIsNone(binding_response(binding_request(kind=0x0111), "203.0.113.9", 1))
        self.assertIsNone(binding_response(binding_request(username), "203.0.113.9", 1))
        self.assertIsNone(binding_response(binding_request() + b"\0\0\0\0", "203.0.113.9", 1))
        self.assertIsNone(binding_response(binding_request(), "host.invalid", 1))
        self.assertIsNone(binding_response(b"OPTIONS sip:x SIP/2.0\r\n\r\n", "203.0.113.9", 1))

    def test_sip_is_not_stun(self) -> None:
        """No SIP message and no CRLF keepalive looks like STUN."""
        for data in (b"INVITE sip:a@b SIP/2.0\r\n", b"SIP/2.0 200 OK\r\n", b"\r\n\r\n"):
            self.assertFalse(looks_like_stun(data.ljust(24, b" ")))
        self.assertTrue(looks_like_stun(binding_request()))

    @given(st.binary(max_size=600))
    def test_never_raises(self, data: bytes) -> None:
        """Any datagram gets an answer or none, never an exception."""
        response = binding_response(data, "203.0.113.9", 5060)
        if response is not None:
            self.assertEqual(mapped_address(response)[0], "203.0.113.9")

    @given(st.binary(min_size=12, max_size=12), st.integers(0, 65535))
    def test_round_trip(self, transaction: bytes, port: int) -> None:
        """Whatever the transaction ID and port, the response echoes the ID and names the port."""
        request = struct.pack("!HHI12s", 1, 0, MAGIC_COOKIE, transaction)
        response = binding_response(request, "198.51.100.4", port)
        assert response is not None
        self.assertEqual(response[8:20], transaction)
        _, _, xport = struct.unpack_from("!BBH", response, 24)
        self.assertEqual(xport ^ (MAGIC_COOKIE >> 16), port)


class DatagramStunTests(SynchronousTestCase):
    """L{SipDatagramProtocol} answers STUN keepalives on the SIP port."""

    def test_answered(self) -> None:
        """
        A STUN Binding request to the SIP port is answered to its source,
        counted as a keepalive, and not delivered as a message.
        """
        reactor = FakeReactor()
        receiver = RecordingReceiver()
        proxy = SipDatagramProtocol(receiver)
        reactor.listenUDP(5060, proxy, interface="198.51.100.1", maxPacketSize=MAX_DATAGRAM_SIZE)
        answers: list[bytes] = []

        class Phone(DatagramProtocol):
            def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
                answers.append(data)

        phone = reactor.network.bind("192.0.2.5", 41000, Phone())
        phone.write(binding_request(), ("198.51.100.1", 5060))
        phone.write(binding_request(kind=0x0111), ("198.51.100.1", 5060))
        reactor.network.flush()
        self.assertEqual(receiver.messages, [])
        self.assertEqual(receiver.malformed, [])
        self.assertEqual(proxy.keepalives, 2)
        [answer] = answers
        self.assertEqual(mapped_address(answer), ("192.0.2.5", 41000))
