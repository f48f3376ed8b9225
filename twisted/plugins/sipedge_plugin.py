"""
The twistd plugin dropin: C{twistd sipedge} and C{twistd sipedge-relay}.
The tap modules are imported lazily, so C{twistd --help} stays cheap.
"""

from twisted.application.service import ServiceMaker

sipedge = ServiceMaker("sipedge", "sipedge.tap", "A SIP edge proxy.", "sipedge")
sipedge_relay = ServiceMaker(
    "sipedge-relay",
    "sipedge.relay_tap",
    "sipedge's media relay, controlled by proxies over a documented protocol.",
    "sipedge-relay",
)
