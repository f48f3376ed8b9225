# -*- test-case-name: sipedge.test.test_e2e_topology -*-
"""
End-to-end test of topology hiding: the real C{twistd sipedge} with
C{[topology_hiding]} on, an internal caller (SIPp on 127.0.0.10, the only
internal address here) and an external callee (SIPp on 127.0.0.1) that
hangs up itself, along the hidden route set, to the masked Contact; and
the other way round, to a phone registered from inside.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import (
    add_user,
    free_port,
    sipp_counter,
    start_with_sipp,
)

INTERNAL_IP = "127.0.0.10"

_CONFIG = f"""
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:0"]
trusted = ["{INTERNAL_IP}/32"]
[state]
path = "state"
[topology_hiding]
enabled = true
internal = ["{INTERNAL_IP}/32"]
"""

#: SDP lines may carry the address (the media stage's job, off here).
_SDP = ("o=", "c=")


class TopologyHidingTests(SynchronousTestCase):
    """Calls between inside and outside through sipedge with topology hiding."""

    def setUp(self) -> None:
        self.work, self.proxy, self.sipp = start_with_sipp(self, _CONFIG)

    def _why(self, result: object) -> str:
        errors = "\n".join(
            p.read_text(errors="replace")[-2000:] for p in self.work.glob("*errors.log")
        )
        stdout = getattr(result, "stdout", "")[-1500:]
        return f"{stdout}\n{errors}\n--- sipedge log:\n{self.proxy.log()[-4000:]}"

    def test_call_hidden(self) -> None:
        """
        Calls from the internal caller to the external callee complete,
        with the callee hanging up (its BYE to the masked Contact reaches
        the caller, and SIPp matches every message to its call by
        Call-ID on both sides), and nothing the callee receives names the
        internal address outside the SDP.
        """
        uas_port = free_port()
        self.sipp.start("th_uas.xml", "-m", 3, "-trace_msg", port=uas_port, timeout=60)
        result = self.sipp.run(
            "th_uac.xml",
            f"127.0.0.1:{self.proxy.ports['UDP']}",
            "-s", "service", "-key", "domain", f"127.0.0.1:{uas_port}",
            "-m", 3, "-r", 3,
            local_ip=INTERNAL_IP,
            timeout=40,
        )  # fmt: skip
        self.assertEqual(result.returncode, 0, self._why(result))
        self.assertEqual(sipp_counter(result.stdout, "Successful call"), 3, self._why(result))
        self.sipp.stop_all()
        text = self.assert_hidden("th_uas_*_messages.log")
        self.assertIn("INVITE sip:service@", text)
        self.assertIn("BYE sip:sth-", text)

    def assert_hidden(self, pattern: str) -> str:
        """The SIPp message trace C{pattern} names no internal address outside the SDP."""
        [trace] = self.work.glob(pattern)
        text = trace.read_text(errors="replace")
        leaks = [
            line.strip()
            for line in text.splitlines()
            if INTERNAL_IP in line and not line.strip().startswith(_SDP)
        ]
        self.assertEqual(leaks, [], text[-3000:])
        return text

    def test_call_from_outside(self) -> None:
        """
        A phone registered from inside is called from outside: the caller
        sees a masked Contact and no internal address outside the SDP; its
        ACK reaches the phone through the mask, and the phone's BYE reaches
        the caller with the caller's own Call-ID.
        """
        proxy = f"127.0.0.1:{self.proxy.ports['UDP']}"
        uas_port = free_port(INTERNAL_IP)
        add_user(self.proxy.config_path, "dave", "dave-secret")
        result = self.sipp.run(
            "register.xml", proxy, "-s", "dave", "-au", "dave", "-ap", "dave-secret",
            "-auth_uri", "sipedge.test", "-key", "domain", "sipedge.test",
            "-key", "contact_port", uas_port, "-key", "expires", 600, "-m", 1,
            local_ip=INTERNAL_IP, timeout=20,
        )  # fmt: skip
        self.assertEqual(result.returncode, 0, self._why(result))
        self.sipp.start("th_uas.xml", "-m", 3, port=uas_port, local_ip=INTERNAL_IP, timeout=60)
        result = self.sipp.run(
            "th_uac.xml", proxy, "-s", "dave", "-key", "domain", "sipedge.test",
            "-m", 3, "-r", 3, "-trace_msg", timeout=40,
        )  # fmt: skip
        self.assertEqual(result.returncode, 0, self._why(result))
        self.assertEqual(sipp_counter(result.stdout, "Successful call"), 3, self._why(result))
        text = self.assert_hidden("th_uac_*_messages.log")
        self.assertIn("Contact: <sip:sth-", text)
