"""
The transport layer (RFC 3261 18): thin Twisted adapters for SIP over UDP,
TCP and TLS. They hand C{(message, flow)} to an L{IMessageReceiver} and know
nothing of transactions, pipeline or proxy.
"""

from sipedge.flow import RELIABLE_TRANSPORTS, Flow, format_hostport
from sipedge.transport._destination import DEFAULT_PORTS, Destination
from sipedge.transport._glance import Glance, glance
from sipedge.transport._locate import ServerLocator
from sipedge.transport._manager import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
    StreamListener,
    TransportManager,
)
from sipedge.transport._ocsp import (
    OcspError,
    OcspStapler,
    check_ocsp_response,
    http_fetch,
    ocsp_url,
)
from sipedge.transport._reply import ROUTES_KEPT, MessageSender, is_broadcast, response_flow
from sipedge.transport._size import UDP_REQUEST_LIMIT, too_large_for_udp, wire_size
from sipedge.transport._stamp import stamp_via
from sipedge.transport._stream import DEFAULT_IDLE_TIMEOUT, SipStreamProtocol
from sipedge.transport._tls import (
    CERTIFICATE_FILE,
    MINIMUM_TLS_VERSION,
    ClientTLSContexts,
    TLSSettings,
    ensure_self_signed,
    generate_self_signed,
    server_context_factory,
)
from sipedge.transport._tls_reload import ReloadableServerContext, certificate_fingerprint
from sipedge.transport._udp import MAX_DATAGRAM_SIZE, SipDatagramProtocol

__all__ = [
    "CERTIFICATE_FILE",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_CONNECTIONS_PER_SOURCE",
    "DEFAULT_PORTS",
    "MAX_DATAGRAM_SIZE",
    "MINIMUM_TLS_VERSION",
    "RELIABLE_TRANSPORTS",
    "ROUTES_KEPT",
    "UDP_REQUEST_LIMIT",
    "ClientTLSContexts",
    "Destination",
    "Flow",
    "Glance",
    "MessageSender",
    "OcspError",
    "OcspStapler",
    "ReloadableServerContext",
    "ServerLocator",
    "SipDatagramProtocol",
    "SipStreamProtocol",
    "StreamListener",
    "TLSSettings",
    "TransportManager",
    "certificate_fingerprint",
    "check_ocsp_response",
    "ensure_self_signed",
    "format_hostport",
    "generate_self_signed",
    "glance",
    "http_fetch",
    "is_broadcast",
    "ocsp_url",
    "response_flow",
    "server_context_factory",
    "stamp_via",
    "too_large_for_udp",
    "wire_size",
]
