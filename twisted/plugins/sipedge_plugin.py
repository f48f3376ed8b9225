"""
The twistd plugin dropin: C{twistd sipedge}. The tap module is imported
lazily, so C{twistd --help} stays cheap.
"""

from twisted.application.service import ServiceMaker

sipedge = ServiceMaker("sipedge", "sipedge.tap", "A SIP edge proxy.", "sipedge")
