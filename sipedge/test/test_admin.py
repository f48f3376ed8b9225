# -*- test-case-name: sipedge.test.test_admin -*-
"""
Tests for L{sipedge.admin} (the admin API on a service built in memory) and
C{sipedge ctl} against the real C{twistd sipedge}.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from sipedge._reload import ReloadReport
from sipedge.admin import AdminResource, read_or_make_token
from sipedge.config import parse_config
from sipedge.error import ConfigError
from sipedge.media import DirectionStats, MediaMode, RelayStats, SessionStats
from sipedge.security import KernelBans
from sipedge.service import build_service
from sipedge.store import Binding
from sipedge.testing import FakeReactor, SipEdgeProcess

TOKEN = "t" * 32


def _request(method: str, path: str, token: str | None = TOKEN, body: Any = None,
             raw: bytes | None = None) -> Any:
    path_only, _, query = path.partition("?")
    request: Any = DummyRequest([p.encode() for p in path_only.strip("/").split("/")])
    request.method = method.encode()
    request.path = path_only.encode()
    request.args = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        request.args[key.encode()] = [value.encode()]
    if token is not None:
        request.requestHeaders.addRawHeader(b"authorization", f"Bearer {token}".encode())
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    request.content = io.BytesIO(content)
    return request


class _FakeDialog:
    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.caller_tag = "a1"
        self.callee_tag = "b1"
        self.session_expires = None


class _FakeDialogs:
    def __init__(self) -> None:
        self.dialogs = (_FakeDialog("call-1@x"), _FakeDialog("call-2@x"))
        self.ended: list[tuple[str, str, str, str]] = []
        self.stats = {"confirmed": 2}

    def end(self, call_id: str, tag: str, other: str, text: str) -> bool:
        self.ended.append((call_id, tag, other, text))
        return True


def _session(key: str, ports: tuple[int, ...]) -> SessionStats:
    return SessionStats(
        session_key=key, state="answered", a_mode=MediaMode.PLAIN, b_mode=MediaMode.PLAIN,
        created=1.0, answered=2.0, last_activity=3.0, ports=ports,
        a_to_b=DirectionStats(150, 25800, {"foreign-source": 3}),
        b_to_a=DirectionStats(149, 25628),
    )


class _FakeRelay:
    """The two reading calls of an L{sipedge.interfaces.IMediaRelay}."""

    def __init__(self) -> None:
        self.live = {
            "call-1@x;a1": _session("call-1@x;a1", (20000, 20001, 20002, 20003)),
            "call-1@x;a1;1": _session("call-1@x;a1;1", (20004, 20005)),
            "call-10@x;a1": _session("call-10@x;a1", (20008, 20009)),
        }
        self.broken = False

    def sessions(self) -> Deferred[Any]:
        if self.broken:
            return fail(ConnectionError("the relay is gone"))
        return succeed(dict(self.live))

    def stats(self) -> Deferred[RelayStats]:
        totals = DirectionStats(10, 1720, {"foreign-source": 3})
        return succeed(RelayStats(sessions=3, allocated=5, ended={"released": 2},
                                  open_ports=8, a_to_b=totals, b_to_a=DirectionStats(9, 1548)))

    def close(self) -> Deferred[None]:
        return succeed(None)


class ApiTests(SynchronousTestCase):
    """The admin API of a service built in memory."""

    def setUp(self) -> None:
        state = Path(self.mktemp()).absolute()
        self.reactor = FakeReactor()
        self.reactor.advance(1_800_000_000)
        self.service = build_service(parse_config({
            "sip": {"domains": ["example.test"], "listen": ["udp:127.0.0.1:5070"]},
            "state": {"path": str(state)},
        }), self.reactor)
        self.addCleanup(self.service.stopService)
        self.resource = AdminResource(self.service, TOKEN, self.reactor)
        self.events: list[dict[str, Any]] = []
        observer: Any = self.events.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        request = _request(method, path, **kw)
        result = self.resource.render(request)
        if result is not NOT_DONE_YET:
            request.write(result)
            request.finish()
        self.assertTrue(request.finished)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"),
                         [b"application/json"])
        return request.responseCode or 200, json.loads(b"".join(request.written))

    def test_token_required(self) -> None:
        """No token, or a wrong one, is 401 with a challenge, and logged."""
        self.assertEqual(self.call("GET", "/api/v1/bans", token=None)[0], 401)
        status, body = self.call("GET", "/api/v1/bans", token="x" * 32)
        self.assertEqual((status, body), (401, {"error": "a valid bearer token is required"}))
        self.assertTrue(any(e.get("why") == "wrong token" for e in self.events))

    def test_unknown(self) -> None:
        """Unknown resources are 404, wrong methods 405, bad bodies 400."""
        self.assertEqual(self.call("GET", "/api/v1/nothing")[0], 404)
        self.assertEqual(self.call("GET", "/other")[0], 404)
        self.assertEqual(self.call("DELETE", "/api/v1/counters/x")[0], 405)
        status, body = self.call("POST", "/api/v1/bans", raw=b"{not json")
        self.assertEqual(status, 400)
        self.assertIn("not JSON", body["error"])
        self.assertEqual(self.call("POST", "/api/v1/bans", body=[1])[0], 400)

    def test_registrations(self) -> None:
        """Registrations are listed, filtered by AOR, and removed; unknown ones are 404."""
        now = self.reactor.seconds()
        binding = Binding(aor="sip:alice@example.test", contact="<sip:alice@192.0.2.5:5062>",
                          expires_at=now + 300, call_id="r1", cseq=1)
        self.successResultOf(self.service.store.update(binding.aor, [binding], now))
        status, body = self.call("GET", "/api/v1/registrations")
        self.assertEqual((status, body["count"]), (200, 1))
        self.assertEqual(body["registrations"][0]["aor"], "sip:alice@example.test")
        self.assertEqual(body["registrations"][0]["expires_in"], 300)
        self.assertEqual(self.call("GET", "/api/v1/registrations?aor=bob")[1]["count"], 0)
        status, body = self.call("DELETE", "/api/v1/registrations/sip%3Aalice%40example.test")
        self.assertEqual((status, body["removed"]), (200, "sip:alice@example.test"))
        self.assertEqual(self.successResultOf(self.service.store.lookup(binding.aor, now)), [])
        self.assertEqual(self.call("DELETE", "/api/v1/registrations/sip%3Ax%40y")[0], 404)

    def test_bans(self) -> None:
        """
        A ban added through the API stops the address at admission; it is
        listed, and lifted; bad addresses and durations are 400.
        """
        status, body = self.call("POST", "/api/v1/bans",
                                 body={"address": "192.0.2.99", "duration": 600})
        self.assertEqual((status, body["banned"]["address"]), (200, "192.0.2.99"))
        self.assertEqual(body["banned"]["expires_in"], 600)
        self.assertFalse(self.service.security.admit("192.0.2.99"))
        listed = self.call("GET", "/api/v1/bans")[1]
        self.assertEqual([b["address"] for b in listed["bans"]], ["192.0.2.99"])
        self.assertEqual(self.call("DELETE", "/api/v1/bans/192.0.2.99")[0], 200)
        self.assertTrue(self.service.security.admit("192.0.2.99"))
        self.assertEqual(self.call("DELETE", "/api/v1/bans/192.0.2.99")[0], 404)
        for bad in ({"address": "example.test"}, {"address": 5},
                    {"address": "192.0.2.1", "duration": -1},
                    {"address": "192.0.2.1", "duration": "long"}):
            self.assertEqual(self.call("POST", "/api/v1/bans", body=bad)[0], 400, bad)

    def test_bans_reach_kernel(self) -> None:
        """
        With kernel bans, a ban added or lifted through the API reaches the
        nftables set within the batching delay, not at the next purge.
        """
        security = self.service.security
        scripts: list[str] = []
        security.kernel = KernelBans(self.reactor, security.bans.list, run=scripts.append)
        security.kernel.start([5070])
        self.addCleanup(security.kernel.stop)
        self.assertEqual(self.call("POST", "/api/v1/bans",
                                   body={"address": "192.0.2.98", "duration": 600})[0], 200)
        self.reactor.advance(0.2)
        self.assertLess(0.2, security.config.purge_interval)
        self.assertIn("add element inet sipedge banned4 { 192.0.2.98 timeout 600s }",
                      scripts[-1])
        self.assertEqual(self.call("DELETE", "/api/v1/bans/192.0.2.98")[0], 200)
        self.reactor.advance(0.2)
        self.assertIn("delete element inet sipedge banned4 { 192.0.2.98 }", scripts[-1])
        self.assertTrue(any(e.get("rule") == "admin" for e in self.events))

    def test_listing_bans_loads_others(self) -> None:
        """
        Listing the bans brings this process's view up to date: a ban
        another process (another worker) made in the shared file stops the
        address here at once, not at the next purge.
        """
        other = build_service(self.service.config, self.reactor)
        self.addCleanup(other.stopService)
        self.assertIsNotNone(other.security.bans.ban("192.0.2.98", "other", 1_800_000_000.0,
                                                     duration=600))
        self.assertTrue(self.service.security.admit("192.0.2.98"))
        listed = self.call("GET", "/api/v1/bans")[1]
        self.assertEqual([b["address"] for b in listed["bans"]], ["192.0.2.98"])
        self.assertFalse(self.service.security.admit("192.0.2.98"))

    def test_calls(self) -> None:
        """Calls are listed and ended through the dialog table; unknown ones are 404."""
        fake = _FakeDialogs()
        service: Any = self.service
        service.dialogs = fake
        status, body = self.call("GET", "/api/v1/calls")
        self.assertEqual([c["call_id"] for c in body["calls"]], ["call-1@x", "call-2@x"])
        status, body = self.call("DELETE", "/api/v1/calls/call-2%40x")
        self.assertEqual((status, body), (200, {"ended": "call-2@x", "dialogs": 1}))
        self.assertEqual(fake.ended, [("call-2@x", "a1", "b1", "ended by the operator")])
        self.assertEqual(self.call("DELETE", "/api/v1/calls/none")[0], 404)

    def test_calls_media(self) -> None:
        """
        With a media relay, each call lists the relay sessions of its media
        (keys of its Call-ID and caller tag, no other call's), their state,
        ports and packet, byte and drop counters; without a relay, none.
        """
        fake = _FakeDialogs()
        service: Any = self.service
        service.dialogs = fake
        self.assertEqual(self.call("GET", "/api/v1/calls")[1]["calls"][0]["media"], [])
        service.media = _FakeRelay()
        status, body = self.call("GET", "/api/v1/calls")
        self.assertEqual(status, 200)
        first, second = body["calls"]
        self.assertEqual([m["key"] for m in first["media"]], ["call-1@x;a1", "call-1@x;a1;1"])
        self.assertEqual(first["media"][0], {
            "key": "call-1@x;a1", "state": "answered", "modes": "plain/plain",
            "ports": [20000, 20001, 20002, 20003],
            "a_to_b": {"packets": 150, "bytes": 25800, "dropped": {"foreign-source": 3}},
            "b_to_a": {"packets": 149, "bytes": 25628, "dropped": {}},
        })
        self.assertEqual(second["media"], [])

    def test_calls_media_unknown(self) -> None:
        """
        A relay that cannot say its sessions (a remote relay gone) leaves
        the calls listed, their media C{null}, and the failure logged.
        """
        service: Any = self.service
        service.dialogs = _FakeDialogs()
        service.media = _FakeRelay()
        service.media.broken = True
        status, body = self.call("GET", "/api/v1/calls")
        self.assertEqual(status, 200)
        self.assertEqual([c["media"] for c in body["calls"]], [None, None])
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)

    def test_counters_relay(self) -> None:
        """With a media relay, the counters have its totals, flat."""
        service: Any = self.service
        service.media = _FakeRelay()
        status, body = self.call("GET", "/api/v1/counters")
        self.assertEqual(status, 200)
        self.assertEqual(body["relay"], {
            "sessions": 3, "allocated": 5, "open_ports": 8, "ended:released": 2,
            "packets:a_to_b": 10, "bytes:a_to_b": 1720, "dropped:a_to_b:foreign-source": 3,
            "packets:b_to_a": 9, "bytes:b_to_a": 1548,
        })

    def test_counters(self) -> None:
        """The counters are the proxy's, transactions', security's and dialogs'."""
        status, body = self.call("GET", "/api/v1/counters")
        self.assertEqual(status, 200)
        self.assertEqual(set(body), {"sip_requests", "sip_responses", "proxy", "transactions",
                                     "security", "dialogs"})
        self.assertIn("bans_created", body["security"])

    def test_reload(self) -> None:
        """
        Reload answers what changed and what needs a restart; a reload the service
        refuses (a bad file) is 400 with its reason, the service unchanged.
        """
        service: Any = self.service
        service.reload = lambda why: ReloadReport(("routes: 1",), ("state.path: needs a restart",))
        self.assertEqual(
            self.call("POST", "/api/v1/reload"),
            (200, {"reloaded": ["routes: 1"], "needs_restart": ["state.path: needs a restart"]}),
        )

        def broken(why: str) -> list[str]:
            raise ConfigError("tls.certificate: cannot read cert.pem")

        service.reload = broken
        status, body = self.call("POST", "/api/v1/reload")
        self.assertEqual(status, 400)
        self.assertIn("tls.certificate", body["error"])


class TokenTests(SynchronousTestCase):
    """L{read_or_make_token}."""

    def test_made_once(self) -> None:
        """A missing default token file is made, mode 0600, and read back next time."""
        path = Path(self.mktemp())
        token = read_or_make_token(path, make=True)
        self.assertGreaterEqual(len(token), 32)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(read_or_make_token(path, make=True), token)

    def test_errors(self) -> None:
        """A configured file that is missing or too short is an error naming the key."""
        path = Path(self.mktemp())
        self.assertIn("admin.token_file",
                      str(self.assertRaises(ConfigError, read_or_make_token, path, make=False)))
        path.write_text("short\n")
        self.assertIn("16", str(self.assertRaises(ConfigError, read_or_make_token, path,
                                                  make=False)))


class CtlTests(SynchronousTestCase):
    """C{sipedge ctl} against the real C{twistd sipedge}."""

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sipedge.cli", "ctl", "--url", self.url,
             "--token-file", str(self.token), *args],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )

    def test_ctl(self) -> None:
        """
        C{sipedge ctl} bans an address and lists it, lifts the ban, lists no
        registrations and prints the counters; a malformed request (an
        address that is none, a body that is not JSON) is 400 with the
        reason; a wrong token is refused (401) and logged.
        """
        work = Path(self.mktemp()).absolute()
        work.mkdir(parents=True)
        proxy = SipEdgeProcess(work, """
[sip]
listen = ["udp:127.0.0.1:0"]
domains = ["example.test"]
[state]
path = "state"
[admin]
listen = "tcp:127.0.0.1:0"
""")
        self.addCleanup(proxy.stop)
        proxy.start()
        found = re.search(r"admin API on http://127\.0\.0\.1:(\d+)/", proxy.log())
        assert found is not None, proxy.log()[-2000:]
        self.url = f"http://127.0.0.1:{found.group(1)}"
        self.token = work / "state" / "admin.token"

        result = self.ctl("ban", "192.0.2.77", "--duration", "300")
        self.assertEqual(result.returncode, 0, result.stderr)
        result = self.ctl("bans")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("192.0.2.77", result.stdout)
        self.assertIn("ADDRESS", result.stdout)
        result = self.ctl("--json", "bans")
        self.assertEqual(json.loads(result.stdout)["bans"][0]["address"], "192.0.2.77")
        self.assertEqual(self.ctl("unban", "192.0.2.77").returncode, 0)
        self.assertEqual(json.loads(self.ctl("--json", "bans").stdout)["count"], 0)
        result = self.ctl("registrations")
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "(none)"))
        self.assertIn("security.bans_created 1", self.ctl("counters").stdout)

        # Malformed requests: 400 with the reason.
        result = self.ctl("ban", "not-an-address")
        self.assertEqual(result.returncode, 1)
        self.assertIn("400: address: 'not-an-address' is not an IP address", result.stderr)
        request = urllib.request.Request(
            f"{self.url}/api/v1/bans", data=b'{"address": ', method="POST",
            headers={"Authorization": f"Bearer {self.token.read_text().strip()}"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        error = self.assertRaises(urllib.error.HTTPError, opener.open, request, timeout=15)
        self.assertEqual(error.code, 400)
        self.assertIn("body is not JSON", json.loads(error.read())["error"])
        error.close()

        self.token = work / "wrong.token"
        self.token.write_text("w" * 40)
        result = self.ctl("bans")
        self.assertEqual(result.returncode, 1)
        self.assertIn("401", result.stderr)
        self.assertIn("wrong token", proxy.log())
