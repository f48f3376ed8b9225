# -*- test-case-name: sipedge.test.test_testing -*-
"""
Helpers for people who test with sipedge: plugin authors and interop labs.

Everything here runs in memory, with no socket and no wall clock:

 - L{FakeDatagramNetwork}: UDP between protocols, with deterministic loss
   and reordering (Twisted's C{MemoryReactor} has no C{IReactorUDP}).
 - L{FakeReactor}: a C{MemoryReactorClock} whose C{listenUDP} binds on a
   L{FakeDatagramNetwork} and whose C{listenTCP}/C{connectTCP} join
   protocols with C{twisted.test.iosim} pumps, so a whole
   L{sipedge.transport.TransportManager} (TLS included) runs in memory.
 - L{RecordingReceiver}: an L{IMessageReceiver} that keeps what it gets.
 - L{make_certificates}: a CA and a server certificate made on the spot.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import (
    CannotListenError,
    ConnectionLost,
    ConnectionRefusedError,
    InvalidAddressError,
    MessageLengthError,
    NotConnectingError,
    UserError,
)
from twisted.internet.interfaces import IConnector, IListeningPort, IReactorUDP
from twisted.internet.ssl import Certificate, CertificateOptions
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.test import iosim
from zope.interface import implementer

from sipedge.interfaces import IMessageReceiver

__all__ = [
    "CertificateSet",
    "Datagram",
    "FakeDatagramNetwork",
    "FakeDatagramPort",
    "FakeReactor",
    "RecordingReceiver",
    "make_certificates",
]

_log = Logger()

Address = tuple[str, int]
DropHook = Callable[[int, bytes, Address, Address], bool]
ReorderHook = Callable[[list["Datagram"]], Sequence["Datagram"]]

_WILDCARD = {4: "0.0.0.0", 6: "::"}
# The largest UDP payload over IPv4 and IPv6 (65,535 less the headers).
_MAX_PAYLOAD = {4: 65507, 6: 65527}


def _version(host: str) -> int | None:
    """4 or 6 for an IP literal, else None."""
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def _address(kind: Literal["TCP", "UDP"], host: str, port: int) -> IPv4Address | IPv6Address:
    if _version(host) == 6:
        return IPv6Address(kind, host, port)
    return IPv4Address(kind, host, port)


@attrs.frozen
class Datagram:
    """One datagram on a L{FakeDatagramNetwork}."""

    data: bytes
    source: Address
    destination: Address


@implementer(IListeningPort)
class FakeDatagramPort:
    """
    A bound UDP socket on a L{FakeDatagramNetwork}: the transport of the
    protocol bound there. C{write(data, addr)} queues the datagram on the
    network (it is delivered by L{FakeDatagramNetwork.flush}).

    Like a real socket it refuses host names, the other address family and
    datagrams over the UDP payload limit, and hands the receiving protocol
    at most C{max_packet_size} bytes of each datagram.
    """

    def __init__(
        self,
        network: FakeDatagramNetwork,
        host: str,
        port: int,
        protocol: Any,
        max_packet_size: int,
    ) -> None:
        self.network = network
        self.host = host
        self.port = port
        self.protocol = protocol
        self.max_packet_size = max_packet_size
        self.version = _version(host) or 4
        self.connected_to: Address | None = None
        self.closed = False
        self._broadcast = False

    def __repr__(self) -> str:
        return f"<FakeDatagramPort {self.host}:{self.port}>"

    def startListening(self) -> None:
        """Already listening once bound."""

    def stopListening(self) -> Deferred[None]:
        """Unbind, and stop the protocol."""
        if not self.closed:
            self.closed = True
            self.network._unbind(self)
            self.protocol.doStop()
        return succeed(None)

    loseConnection = stopListening

    def getHost(self) -> IPv4Address | IPv6Address:
        return _address("UDP", self.host, self.port)

    def connect(self, host: str, port: int) -> None:
        """Fix the peer (connected UDP)."""
        self.connected_to = (host, port)

    def setBroadcastAllowed(self, enabled: bool) -> None:
        self._broadcast = enabled

    def getBroadcastAllowed(self) -> bool:
        return self._broadcast

    def write(self, packet: bytes, addr: Address | None = None) -> None:
        if addr is None:
            if self.connected_to is None:
                raise InvalidAddressError(None, "write() without an address on an unconnected port")
            addr = self.connected_to
        version = _version(addr[0])
        if version is None:
            raise InvalidAddressError(addr[0], "write() only accepts IP addresses, not hostnames")
        if version != self.version:
            raise InvalidAddressError(addr[0], f"IPv{self.version} port written to IPv{version}")
        if self.closed:
            raise OSError(errno.EBADF, "the port is closed")
        if len(packet) > _MAX_PAYLOAD[version]:
            raise MessageLengthError("message too long")
        self.network._send(self, bytes(packet), (addr[0], addr[1]))

    def writeSequence(self, seq: Sequence[bytes], addr: Address) -> None:
        self.write(b"".join(seq), addr)


class FakeDatagramNetwork:
    """
    UDP in memory, deterministic.

    L{bind} gives a C{DatagramProtocol} a L{FakeDatagramPort} as its
    transport; what it writes is queued and L{flush} delivers the queue
    (and whatever the deliveries send in turn) until it is empty.

    @ivar sent: every datagram written, in order, dropped ones included.
    @ivar pending: datagrams waiting for L{flush}.
    @ivar dropped: datagrams the C{drop} hook dropped.
    @ivar undeliverable: datagrams sent to an address nobody is bound to.
    """

    def __init__(
        self,
        *,
        drop: DropHook | None = None,
        reorder: ReorderHook | None = None,
        default_ipv4: str = "127.0.0.1",
        default_ipv6: str = "::1",
    ) -> None:
        """
        @param drop: called as C{drop(n, data, source, destination)} for
            the C{n}th datagram written (from 0); true drops it (e.g.
            C{lambda n, *_: n == 2} loses exactly the third datagram).
        @param reorder: called with each batch of pending datagrams before
            they are delivered; returns them in the order to deliver (it
            may also leave some out: they are lost).
        @param default_ipv4: the source address of datagrams from a port
            bound to the IPv4 wildcard.
        @param default_ipv6: the same for IPv6.
        """
        self.drop = drop
        self.reorder = reorder
        self._default = {4: default_ipv4, 6: default_ipv6}
        self._ports: dict[Address, FakeDatagramPort] = {}
        self._next_port = 49152
        self.sent: list[Datagram] = []
        self.pending: list[Datagram] = []
        self.dropped: list[Datagram] = []
        self.undeliverable: list[Datagram] = []

    def bind(
        self, host: str, port: int, protocol: Any, *, max_packet_size: int = 65535
    ) -> FakeDatagramPort:
        """
        Bind C{protocol} to C{host:port} (C{""} is the IPv4 wildcard; port
        0 picks a free one) and start it.

        @raise CannotListenError: if the address is taken.
        """
        host = host or _WILDCARD[4]
        if _version(host) is None:
            raise CannotListenError(host, port, ValueError("not an IP address"))
        if port == 0:
            port = self._free_port(host)
        if (host, port) in self._ports:
            raise CannotListenError(host, port, OSError(errno.EADDRINUSE, "address in use"))
        bound = FakeDatagramPort(self, host, port, protocol, max_packet_size)
        self._ports[(host, port)] = bound
        protocol.makeConnection(bound)
        return bound

    def port_at(self, host: str, port: int) -> FakeDatagramPort | None:
        """The port bound to C{host:port} (or the wildcard of its family)."""
        found = self._ports.get((host, port))
        if found is None:
            version = _version(host)
            if version is not None:
                found = self._ports.get((_WILDCARD[version], port))
        return found

    def flush(self, max_rounds: int = 1000) -> int:
        """
        Deliver pending datagrams, and those their delivery sends, until
        none is left.

        @return: how many were delivered.
        @raise AssertionError: if datagrams are still being sent after
            C{max_rounds} rounds (an endless ping-pong).
        """
        delivered = 0
        for _ in range(max_rounds):
            if not self.pending:
                return delivered
            batch, self.pending = self.pending, []
            if self.reorder is not None:
                batch = list(self.reorder(batch))
            for datagram in batch:
                if self._deliver(datagram):
                    delivered += 1
        raise AssertionError(f"datagrams still flowing after {max_rounds} rounds")

    def _free_port(self, host: str) -> int:
        while (host, self._next_port) in self._ports:
            self._next_port += 1
        port = self._next_port
        self._next_port += 1
        return port

    def _unbind(self, port: FakeDatagramPort) -> None:
        if self._ports.get((port.host, port.port)) is port:
            del self._ports[(port.host, port.port)]

    def _send(self, port: FakeDatagramPort, data: bytes, destination: Address) -> None:
        host = port.host
        if host == _WILDCARD[port.version]:
            host = self._default[port.version]
        datagram = Datagram(data, (host, port.port), destination)
        n = len(self.sent)
        self.sent.append(datagram)
        if self.drop is not None and self.drop(n, data, datagram.source, destination):
            self.dropped.append(datagram)
            return
        self.pending.append(datagram)

    def _deliver(self, datagram: Datagram) -> bool:
        port = self.port_at(*datagram.destination)
        if port is None or port.closed:
            self.undeliverable.append(datagram)
            return False
        try:
            port.protocol.datagramReceived(
                datagram.data[: port.max_packet_size], datagram.source
            )
        except Exception:
            # As udp.Port.doRead does: log, and go on with the next one.
            _log.failure("Unhandled error delivering {datagram}", datagram=datagram)
        return True


@implementer(IListeningPort)
class _FakeStreamPort:
    """A TCP listener of a L{FakeReactor}."""

    def __init__(self, reactor: FakeReactor, host: str, port: int, factory: Any) -> None:
        self._reactor = reactor
        self.host = host
        self.port = port
        self.factory = factory
        self.listening = True

    def startListening(self) -> None:
        """Already listening."""

    def stopListening(self) -> Deferred[None]:
        if self.listening:
            self.listening = False
            self._reactor._stream_ports.pop((self.host, self.port), None)
            self.factory.doStop()
        return succeed(None)

    def getHost(self) -> IPv4Address | IPv6Address:
        return _address("TCP", self.host, self.port)


@implementer(IConnector)
class _FakeStreamConnector:
    """An outgoing connection of a L{FakeReactor}, until L{FakeReactor.flush}."""

    def __init__(
        self, reactor: FakeReactor, host: str, port: int, factory: Any,
        bind: Address | None,
    ) -> None:
        self._reactor = reactor
        self.host = host
        self.port = port
        self.factory = factory
        self.bind = bind
        self.state = "connecting"

    def stopConnecting(self) -> None:
        if self.state != "connecting":
            raise NotConnectingError()
        self.state = "disconnected"
        self.factory.clientConnectionFailed(self, Failure(UserError()))
        self.factory.doStop()

    def disconnect(self) -> None:
        if self.state == "connecting":
            self.stopConnecting()

    def connect(self) -> None:
        """Connections are made by L{FakeReactor.flush}."""

    def getDestination(self) -> IPv4Address | IPv6Address:
        return _address("TCP", self.host, self.port)


@implementer(IReactorUDP)
class FakeReactor(MemoryReactorClock):
    """
    A C{MemoryReactorClock} with a network in memory.

    C{listenUDP} binds on L{network} (a L{FakeDatagramNetwork}).
    C{listenTCP} registers an in-memory listener; C{connectTCP} to a
    listener's address connects on the next L{flush}, through a
    C{twisted.test.iosim} pump (so TLS made with C{TLSMemoryBIOFactory}
    handshakes for real), and is refused if nothing listens there. Calls
    are still recorded in C{tcpServers}/C{tcpClients} as
    C{MemoryReactorClock} does.

    @ivar pumps: the live connections' pumps.
    """

    def __init__(self, network: FakeDatagramNetwork | None = None) -> None:
        super().__init__()
        self.network = network if network is not None else FakeDatagramNetwork()
        self.udpPorts: list[FakeDatagramPort] = []
        self._stream_ports: dict[Address, _FakeStreamPort] = {}
        self._connecting: list[_FakeStreamConnector] = []
        self._next_port = 50000
        self.pumps: list[iosim.IOPump] = []

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> FakeDatagramPort:
        bound = self.network.bind(interface, port, protocol, max_packet_size=maxPacketSize)
        self.udpPorts.append(bound)
        return bound

    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> _FakeStreamPort:
        self.tcpServers.append((port, factory, backlog, interface))
        host = interface or _WILDCARD[4]
        if _version(host) is None:
            raise CannotListenError(host, port, ValueError("not an IP address"))
        if port == 0:
            port = self._ephemeral_port()
        if (host, port) in self._stream_ports:
            raise CannotListenError(host, port, OSError(errno.EADDRINUSE, "address in use"))
        listening = _FakeStreamPort(self, host, port, factory)
        self._stream_ports[(host, port)] = listening
        factory.doStart()
        return listening

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: Any,
        timeout: float = 30,
        bindAddress: Address | None = None,
    ) -> _FakeStreamConnector:
        self.tcpClients.append(
            (host, port, factory, timeout, bindAddress)  # type: ignore[arg-type]
        )
        connector = _FakeStreamConnector(self, host, port, factory, bindAddress)
        self.connectors.append(connector)
        self._connecting.append(connector)
        factory.doStart()
        factory.startedConnecting(connector)
        return connector

    def flush(self, max_rounds: int = 1000) -> None:
        """
        Make pending connections, then move bytes on every connection and
        deliver datagrams, until nothing moves (running calls due now).

        @raise AssertionError: if things still move after C{max_rounds}.
        """
        for _ in range(max_rounds):
            self.advance(0)
            moved = self._connect_pending()
            for pump in list(self.pumps):
                if pump.flush(advanceClock=False):
                    moved = True
                if pump.clientIO.disconnected and pump.serverIO.disconnected:
                    self.pumps.remove(pump)
            if self.network.flush():
                moved = True
            if not moved and not self._due():
                return
        raise AssertionError(f"the network is still busy after {max_rounds} rounds")

    def advance_and_flush(self, seconds: float) -> None:
        """Move the clock on by C{seconds}, then L{flush}."""
        self.advance(seconds)
        self.flush()

    def _due(self) -> bool:
        now = self.seconds()
        return any(call.getTime() <= now for call in self.getDelayedCalls())

    def _ephemeral_port(self) -> int:
        port = self._next_port
        self._next_port += 1
        return port

    def _listener_at(self, host: str, port: int) -> _FakeStreamPort | None:
        found = self._stream_ports.get((host, port))
        if found is None:
            version = _version(host)
            if version is not None:
                found = self._stream_ports.get((_WILDCARD[version], port))
        return found

    def _connect_pending(self) -> bool:
        if not self._connecting:
            return False
        pending, self._connecting = self._connecting, []
        for connector in pending:
            if connector.state != "connecting":
                continue
            self._connect(connector)
        return True

    def _connect(self, connector: _FakeStreamConnector) -> None:
        factory = connector.factory
        version = _version(connector.host) or 4
        listener = self._listener_at(connector.host, connector.port)
        if listener is None:
            connector.state = "disconnected"
            factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
            factory.doStop()
            return
        local = self.network._default[version]
        if connector.bind is not None and connector.bind[0] not in ("", _WILDCARD[version]):
            local = connector.bind[0]
        client_address = _address("TCP", local, self._ephemeral_port())
        server_address = _address("TCP", connector.host, connector.port)
        connector.state = "connected"
        server = listener.factory.buildProtocol(client_address)
        client = factory.buildProtocol(server_address)
        client_io = iosim.FakeTransport(client, False, client_address, server_address)
        if server is None:
            # Accepted, then closed at once (the listener refused it).
            client.makeConnection(client_io)
            client_io.disconnecting = client_io.disconnected = True
            client.connectionLost(Failure(ConnectionLost("closed by the listener")))
            return
        server_io = iosim.FakeTransport(server, True, server_address, client_address)
        pump = iosim.connect(server, server_io, client, client_io, greet=False, clock=self)
        self.pumps.append(pump)


@implementer(IMessageReceiver)
class RecordingReceiver:
    """
    An L{IMessageReceiver} that keeps everything it gets.

    @ivar messages: C{(message, flow)} pairs, in order.
    @ivar malformed: C{(data, flow, error)} triples, in order.
    """

    def __init__(
        self,
        on_message: Callable[[Any, Any], object] | None = None,
        on_malformed: Callable[[bytes, Any, Any], object] | None = None,
    ) -> None:
        """
        @param on_message: also called with each C{(message, flow)}.
        @param on_malformed: also called with each C{(data, flow, error)}.
        """
        self.messages: list[tuple[Any, Any]] = []
        self.malformed: list[tuple[bytes, Any, Any]] = []
        self._on_message = on_message
        self._on_malformed = on_malformed

    def message_received(self, message: Any, flow: Any) -> None:
        self.messages.append((message, flow))
        if self._on_message is not None:
            self._on_message(message, flow)

    def malformed_message(self, data: bytes, flow: Any, error: Any) -> None:
        self.malformed.append((data, flow, error))
        if self._on_malformed is not None:
            self._on_malformed(data, flow, error)


@attrs.frozen
class CertificateSet:
    """
    A CA and a certificate it issued, PEM-encoded.

    @ivar ca_pem: the CA certificate (the trust root to verify with).
    @ivar cert_pem: the issued certificate.
    @ivar key_pem: its private key.
    """

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_options(self, **options: Any) -> CertificateOptions:
        """C{CertificateOptions} for a server that presents this certificate."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from twisted.internet.ssl import TLSVersion

        options.setdefault("raiseMinimumTo", TLSVersion.TLSv1_2)
        # pyOpenSSL takes cryptography objects (Twisted's annotations lag).
        return CertificateOptions(
            privateKey=load_pem_private_key(self.key_pem, None),  # type: ignore[arg-type]
            certificate=x509.load_pem_x509_certificate(self.cert_pem),  # type: ignore[arg-type]
            **options,
        )

    def trust_root(self) -> Certificate:
        """The CA, as a trust root for C{optionsForClientTLS}."""
        return Certificate.loadPEM(self.ca_pem)

    def write(self, directory: str) -> tuple[str, str, str]:
        """
        Write C{ca.pem}, C{cert.pem} and C{key.pem} (mode 0600) to
        C{directory} (made if missing).

        @return: their paths, in that order.
        """
        os.makedirs(directory, exist_ok=True)
        paths = []
        for name, data, mode in (
            ("ca.pem", self.ca_pem, 0o644),
            ("cert.pem", self.cert_pem, 0o644),
            ("key.pem", self.key_pem, 0o600),
        ):
            path = os.path.join(directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            paths.append(path)
        return paths[0], paths[1], paths[2]


def make_certificates(
    *dns_names: str,
    ip_addresses: Sequence[str] = (),
    common_name: str | None = None,
    ca_name: str = "sipedge test CA",
    key_type: str = "ec",
) -> CertificateSet:
    """
    A new CA and a certificate for C{dns_names} and C{ip_addresses}
    (subjectAltName; the common name is the first DNS name unless given),
    valid from 2000 to 2100 and usable by servers and clients.

    @param key_type: C{"ec"} (P-256, fast) or C{"rsa"} (2048 bits).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def new_key() -> Any:
        if key_type == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    not_before = datetime(2000, 1, 1, tzinfo=UTC)
    not_after = datetime(2100, 1, 1, tzinfo=UTC)
    ca_key = new_key()
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = new_key()
    cn = common_name or (dns_names[0] if dns_names else (ip_addresses[0] if ip_addresses
                                                          else "sipedge test"))
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    return CertificateSet(
        ca_pem=ca.public_bytes(pem),
        cert_pem=certificate.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
