# -*- test-case-name: sipedge.test.test_e2e_ctl -*-
"""
End to end: C{sipedge ctl} against the real C{twistd sipedge} (defaults,
the admin API on, media anchored) with two real baresip phones registered
to it: it lists their registrations, ends their live call (both phones get
a BYE, the relay's ports close), bans one phone's address (its next request
goes unanswered) and lifts the ban (the request is answered again).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from typing import Any

from sipedge.testing import MEDIA_RELAY_HOST, MediaCallTestCase

_ADMIN = """
[admin]
listen = "tcp:127.0.0.1:0"
[accounting]
path = "calls.jsonl"
"""
_SERVING = re.compile(r"admin API on http://127\.0\.0\.1:(\d+)/")
_ALLOCATED = re.compile(r"Media session (\S+) allocated: (\S+), ports \(([\d, ]+)\)")


class CtlPhonesTests(MediaCallTestCase):
    """C{sipedge ctl} on a running sipedge with two baresip phones."""

    extra_config = _ADMIN

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """C{sipedge ctl} with the API's address and token file."""
        return subprocess.run(
            [sys.executable, "-m", "sipedge.cli", "ctl", "--url", self.url,
             "--token-file", str(self.work / "state" / "admin.token"), *args],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )

    def ctl_json(self, *args: str) -> Any:
        result = self.ctl("--json", *args)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def test_registrations_hangup_ban(self) -> None:
        """
        C{sipedge ctl registrations} lists both phones' bindings (from
        127.0.0.2 and 127.0.0.3); C{calls} lists their call with its relay
        session forwarding media both ways on the ports the relay
        allocated; C{hangup} ends it: both phones get a BYE (baresip closes
        the call as reset by its peer), the relay session ends (the relay's
        counters show none live and no port open), its ports are free and
        answer nothing, and the call record says the proxy ended it and has
        the relay's packet and byte counts each way; C{ban} of phone A's
        address makes its next INVITE go unanswered (B never rings, A hears
        nothing, the admission refusals counted), and C{unban} lets the
        INVITE's retransmission through (B rings).
        """
        a, b = self.start(None, "udp", "udp", a_srtp=False, b_srtp=False)
        found = _SERVING.search(self.proxy.log())
        assert found is not None, self.proxy.log()[-2000:]
        self.url = f"http://127.0.0.1:{found.group(1)}"

        # Registrations, as the phones made them.
        listed = self.ctl_json("registrations")
        contacts = {r["aor"]: r["contact"] for r in listed["registrations"]}
        self.assertEqual(set(contacts), {"sip:alice@sipedge.test", "sip:bob@sipedge.test"})
        self.assertIn("127.0.0.2", contacts["sip:alice@sipedge.test"])
        self.assertIn("127.0.0.3", contacts["sip:bob@sipedge.test"])
        table = self.ctl("registrations", "--aor", "alice")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn("sip:alice@sipedge.test", table.stdout)
        self.assertNotIn("bob", table.stdout)

        # A live call, anchored.
        a.command("dial", "sip:bob@sipedge.test")
        b.wait_event("CALL_INCOMING")
        b.command("accept")
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        [(key, _, ports_text)] = _ALLOCATED.findall(self.proxy.log())
        ports = sorted(int(p) for p in ports_text.split(","))
        call = self.wait_media(key)
        self.assertEqual(sorted(call["media"][0]["ports"]), ports)
        table = self.ctl("calls")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn(call["call_id"], table.stdout)
        self.assertIn("answered ports", table.stdout)
        self.assertEqual(self.ctl_json("counters")["relay"]["sessions"], 1)

        # Ended by the operator.
        result = self.ctl("hangup", call["call_id"])
        self.assertEqual(result.returncode, 0, result.stderr)
        closed_a = a.wait_event("CALL_CLOSED")
        closed_b = b.wait_event("CALL_CLOSED")
        for closed in (closed_a, closed_b):  # the peer's BYE, not a local hang-up
            self.assertIn("reset by peer", closed.get("param", ""), closed)
        log = self.wait_log(r"Media session .* ended \(released\).*")
        self.assertIn(key, log)
        self.assertIn("ended by the operator", self.proxy.log())
        self.assertEqual(self.proxy.log().count(" answered 200"), 2, self.proxy.log()[-3000:])
        self.wait_closed(ports)
        counters = self.ctl_json("counters")["relay"]
        self.assertEqual((counters["sessions"], counters["open_ports"]), (0, 0), counters)
        self.assertEqual(self.ctl_json("calls")["count"], 0)
        self.assert_unanswered(ports)
        record = self.wait_record()
        self.assertEqual((record["ended_by"], record["status"]), ("proxy", 200))
        self.assertIn("ended by the operator", record["reason"])
        media = record["media"]
        self.assertEqual(media["sessions"], 1, record)
        for direction in ("a_to_b", "b_to_a"):  # at least what the call listing showed
            self.assertGreaterEqual(media[direction]["packets"],
                                    call["media"][0][direction]["packets"], record)
            self.assertGreater(media[direction]["bytes"], 100 * media[direction]["packets"])

        # Banned: phone A's next request goes unanswered.
        for phone in (a, b):
            phone.events.clear()
        self.assertEqual(self.ctl("ban", "127.0.0.2", "--reason", "test").returncode, 0)
        refused = self.ctl_json("counters")["security"]["admission_refused"]
        a.command("dial", "sip:bob@sipedge.test")
        self.assertRaises(AssertionError, b.wait_event, "CALL_INCOMING", 3.0)
        a.command("reginfo")  # reads the events A has had meanwhile
        answered = {"CALL_RINGING", "CALL_PROGRESS", "CALL_ESTABLISHED", "CALL_CLOSED"}
        self.assertEqual([e["type"] for e in a.events if e["type"] in answered], [])
        self.assertGreater(self.ctl_json("counters")["security"]["admission_refused"], refused)
        self.assertIn("127.0.0.2", self.ctl("bans").stdout)

        # Lifted: the INVITE's next retransmission is answered.
        self.assertEqual(self.ctl("unban", "127.0.0.2").returncode, 0)
        self.assertEqual(self.ctl_json("bans")["count"], 0)
        b.wait_event("CALL_INCOMING", timeout=20.0)
        a.wait_event("CALL_RINGING", timeout=10.0)
        a.command("hangup")
        b.wait_event("CALL_CLOSED")

    def wait_media(self, key: str, timeout: float = 10.0) -> dict[str, Any]:
        """The call listed by C{ctl calls} once its relay session forwards both ways."""
        deadline = time.monotonic() + timeout
        calls: Any = None
        while time.monotonic() < deadline:
            calls = self.ctl_json("calls")
            if calls["count"] == 1 and calls["calls"][0]["media"]:
                [session] = calls["calls"][0]["media"]
                self.assertEqual(session["key"], key)
                if session["a_to_b"]["packets"] > 10 and session["b_to_a"]["packets"] > 10:
                    call: dict[str, Any] = calls["calls"][0]
                    return call
            time.sleep(0.3)
        self.fail(f"no call forwarding media both ways in {calls}")

    def wait_record(self, timeout: float = 10.0) -> Any:
        """The first call record in C{calls.jsonl} (written off the reactor: waited for)."""
        path = self.work / "calls.jsonl"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().strip():
                return json.loads(path.read_text().splitlines()[0])
            time.sleep(0.2)
        self.fail(f"no call record in {path}:\n{self.proxy.log()[-3000:]}")

    def assert_unanswered(self, ports: list[int]) -> None:
        """Nothing answers on C{ports}: a datagram there gets ICMP port unreachable."""
        for port in ports:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((MEDIA_RELAY_HOST, 0))
                s.connect((MEDIA_RELAY_HOST, port))
                s.settimeout(2.0)
                s.send(b"\x80\x00\x00\x01" + b"\x00" * 168)
                self.assertRaises(ConnectionRefusedError, s.recv, 2048)
