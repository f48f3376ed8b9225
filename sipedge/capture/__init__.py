"""
Capture: copies of the SIP traffic for an operator's tools. HEPv3 to a
Homer (or sngrep, Wireshark) collector: L{HepCapture} is an
C{IMessageTap} the transport manager shows every message to, and
L{HepSender} sends the packets without ever holding up the proxy.
"""

from sipedge.capture._config import HepConfig, HepDestination
from sipedge.capture._hep import HEP_SIP, HepError, HepPacket, decode_hep3, encode_hep3
from sipedge.capture._sender import HepSender
from sipedge.capture._tap import HepCapture

__all__ = [
    "HEP_SIP",
    "HepCapture",
    "HepConfig",
    "HepDestination",
    "HepError",
    "HepPacket",
    "HepSender",
    "decode_hep3",
    "encode_hep3",
]
