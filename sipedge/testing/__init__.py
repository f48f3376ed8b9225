# -*- test-case-name: sipedge.test.test_testing -*-
"""
sipedge's interop-lab harness, for people who test with sipedge: stage
authors, people testing their own SIP equipment, and sipedge's own tests.
C{doc/testing.md} is the tutorial.

In memory, with no socket and no wall clock (deterministic on a C{Clock},
every random choice seeded):

 - L{FakeReactor} and L{FakeDatagramNetwork}: UDP, TCP and TLS between
   protocols; L{NetworkModel} and L{NetworkRule} make the datagrams late,
   reordered, lost, duplicated or mangled by rule (L{sip_match});
   L{StreamFaults} resets streams and makes slow readers.
 - L{UAC}, L{UAS} and L{Phone}: scripted SIP user agents (on the fake
   network or real loopback sockets).
 - L{edge_in_memory}: a whole C{twistd sipedge} service from its TOML text;
   L{FakeResolver}: NAPTR, SRV, A and AAAA answers.
 - L{ProxyHarness}: a L{sipedge.proxy.ProxyCore} on L{FakeTransports} and
   L{FakeLocator}; L{sip_request}, L{sip_answer} and L{parse_message}
   build the messages.
 - L{AnchorTestCase} and L{AnchoredHarness}: the C{media-anchor} stage on
   an in-process relay, alone or in a proxy; L{LaterRelayMixin} and
   L{RemoteRelayMixin} give it a relay that answers later or is remote;
   L{RelayTestCase} and L{RemoteRelayTestCase}: the relay itself.
 - L{RecordingReceiver}, L{capture_log}, L{counting_random},
   L{make_certificates}.

With real tools on loopback (a missing tool skips the test, or fails it
under C{SIPEDGE_REQUIRE_TOOLS=1}):

 - L{SipEdgeProcess} and L{RelayProcess}: C{twistd sipedge} and
   C{twistd sipedge-relay} in child processes; L{TlsCaller}: whole calls
   over one TLS connection to it (Debian's SIPp has no TLS).
 - L{Sipp}, L{BaresipPhone}, L{LinphonePhone}, L{run_sipvicious}: real
   SIP peers.
 - L{NatLab} and L{NamespacePhone}: a home router doing NAT in network
   namespaces, baresip phones behind it and outside.
 - L{Capture}: C{tcpdump} on loopback; L{MediaCallTestCase}: two baresip
   phones calling each other through sipedge, captured.

The C{fault} stage (C{[pipeline.options.fault]}) brings the same faults
into a running C{twistd sipedge}.
"""

from sipedge.testing._agents import UAC, UAS, Call, Phone, SipAgent
from sipedge.testing._anchor import (
    A_TAG,
    A_TLS,
    A_UDP,
    ANCHOR_CONFIG,
    ANCHOR_PROXY,
    ANCHOR_RELAY,
    B_TAG,
    B_UDP,
    CALL_ID,
    INSIDE_HOST,
    KEY_A,
    AnchoredHarness,
    AnchorTestCase,
    anchor_request,
    anchor_response,
    sdp_a,
    sdp_b,
)
from sipedge.testing._baresip import BaresipPhone, free_rtp_ports, module_path
from sipedge.testing._capture import (
    Capture,
    CapturedDatagram,
    dominant_frequency,
    read_pcap,
    read_wav,
    tone_share,
    ulaw_decode,
)
from sipedge.testing._certificates import CertificateSet, make_certificates
from sipedge.testing._datagrams import Datagram, FakeDatagramNetwork, FakeDatagramPort
from sipedge.testing._dns import FakeResolver, naptr, rr, srv
from sipedge.testing._lab import LabEdge, edge_in_memory
from sipedge.testing._linphone import LinphonePhone
from sipedge.testing._logs import capture_log
from sipedge.testing._media import (
    A_HOST,
    B_HOST,
    MEDIA_LIMITS,
    RELAY_HOST,
    MediaEndpoint,
    counting_random,
    rtp_packet,
)
from sipedge.testing._media_call import (
    MEDIA_RELAY_HOST,
    TONE_A,
    TONE_B,
    MediaCall,
    MediaCallTestCase,
)
from sipedge.testing._messages import (
    OPTIONS_VIA,
    echo_response,
    options_bytes,
    options_request,
    parse_message,
    sip_answer,
    sip_request,
)
from sipedge.testing._netmodel import DatagramMatch, NetworkModel, NetworkRule, sip_match
from sipedge.testing._netns import EDGE as NAT_EDGE
from sipedge.testing._netns import LAN_PHONE as NAT_LAN_PHONE
from sipedge.testing._netns import OUTSIDE as NAT_OUTSIDE
from sipedge.testing._netns import THIRD as NAT_THIRD
from sipedge.testing._netns import NamespacePhone, NatLab, reap_stale_labs, require_netns
from sipedge.testing._processes import RelayProcess, SipEdgeProcess, add_user
from sipedge.testing._proxy import (
    ALICE,
    ALICE_CONTACT,
    BOB,
    BOB_CONTACT,
    BOB_TCP,
    BOB_TLS,
    BOB_UDP,
    CAROL,
    CAROL_UDP,
    DAVE,
    PROXY,
    PROXY6,
    SECRET,
    STAGES,
    TRUSTED,
    UPSTREAM,
    FakeLocator,
    FakeTransports,
    PendingLookupStore,
    ProxyHarness,
)
from sipedge.testing._reactor import FakeReactor, flush_on_advance
from sipedge.testing._receiver import RecordingReceiver
from sipedge.testing._relay_cases import (
    RelayTestCase,
    RemoteRelayTestCase,
    a_crypto,
    context_from,
)
from sipedge.testing._relays import LaterRelay, LaterRelayMixin, RemoteRelayMixin
from sipedge.testing._sipp import (
    SIPP_SCENARIOS,
    Sipp,
    media_port,
    sipp_counter,
    start_with_sipp,
)
from sipedge.testing._sipvicious import run_sipvicious, sipvicious_table, sipvicious_tool
from sipedge.testing._streams import StreamConnection, StreamFaults
from sipedge.testing._tls_caller import TlsCaller
from sipedge.testing._tools import ROOT, free_port, free_port_range, require_tool, tcp_listening

__all__ = [
    "ALICE",
    "ALICE_CONTACT",
    "ANCHOR_CONFIG",
    "ANCHOR_PROXY",
    "ANCHOR_RELAY",
    "A_HOST",
    "A_TAG",
    "A_TLS",
    "A_UDP",
    "BOB",
    "BOB_CONTACT",
    "BOB_TCP",
    "BOB_TLS",
    "BOB_UDP",
    "B_HOST",
    "B_TAG",
    "B_UDP",
    "CALL_ID",
    "CAROL",
    "CAROL_UDP",
    "DAVE",
    "INSIDE_HOST",
    "KEY_A",
    "MEDIA_LIMITS",
    "MEDIA_RELAY_HOST",
    "NAT_EDGE",
    "NAT_LAN_PHONE",
    "NAT_OUTSIDE",
    "NAT_THIRD",
    "OPTIONS_VIA",
    "PROXY",
    "PROXY6",
    "RELAY_HOST",
    "ROOT",
    "SECRET",
    "SIPP_SCENARIOS",
    "STAGES",
    "TONE_A",
    "TONE_B",
    "TRUSTED",
    "UAC",
    "UAS",
    "UPSTREAM",
    "AnchorTestCase",
    "AnchoredHarness",
    "BaresipPhone",
    "Call",
    "Capture",
    "CapturedDatagram",
    "CertificateSet",
    "Datagram",
    "DatagramMatch",
    "FakeDatagramNetwork",
    "FakeDatagramPort",
    "FakeLocator",
    "FakeReactor",
    "FakeResolver",
    "FakeTransports",
    "LabEdge",
    "LaterRelay",
    "LaterRelayMixin",
    "LinphonePhone",
    "MediaCall",
    "MediaCallTestCase",
    "MediaEndpoint",
    "NamespacePhone",
    "NatLab",
    "NetworkModel",
    "NetworkRule",
    "PendingLookupStore",
    "Phone",
    "ProxyHarness",
    "RecordingReceiver",
    "RelayProcess",
    "RelayTestCase",
    "RemoteRelayMixin",
    "RemoteRelayTestCase",
    "SipAgent",
    "SipEdgeProcess",
    "Sipp",
    "StreamConnection",
    "StreamFaults",
    "TlsCaller",
    "a_crypto",
    "add_user",
    "anchor_request",
    "anchor_response",
    "capture_log",
    "context_from",
    "counting_random",
    "dominant_frequency",
    "echo_response",
    "edge_in_memory",
    "flush_on_advance",
    "free_port",
    "free_port_range",
    "free_rtp_ports",
    "make_certificates",
    "media_port",
    "module_path",
    "naptr",
    "options_bytes",
    "options_request",
    "parse_message",
    "read_pcap",
    "read_wav",
    "reap_stale_labs",
    "require_netns",
    "require_tool",
    "rr",
    "rtp_packet",
    "run_sipvicious",
    "sdp_a",
    "sdp_b",
    "sip_answer",
    "sip_match",
    "sip_request",
    "sipp_counter",
    "sipvicious_table",
    "sipvicious_tool",
    "srv",
    "start_with_sipp",
    "tcp_listening",
    "tone_share",
    "ulaw_decode",
]
