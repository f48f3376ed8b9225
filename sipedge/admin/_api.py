# -*- test-case-name: sipedge.test.test_admin -*-
"""
The admin API: JSON over HTTP (twisted.web), every request with
C{Authorization: Bearer <token>}. Registrations, live calls, bans and
counters; each answer is a JSON object, each error C{{"error": "..."}} with
its status. C{doc/admin-api.md} and C{doc/admin-api.yaml} describe it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
from typing import Any
from urllib.parse import unquote

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from sipedge.error import ConfigError

__all__ = ["API_PREFIX", "AdminResource", "admin_site"]

API_PREFIX = b"/api/v1/"
_MAX_BODY = 64 * 1024


class _Error(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _binding(binding: Any, now: float) -> dict[str, Any]:
    flow = binding.flow
    return {
        "aor": binding.aor,
        "contact": binding.contact,
        "expires_in": max(0, round(binding.expires_at - now)),
        "q": binding.q,
        "flow": None if flow is None else str(flow),
        "user_agent": getattr(binding, "user_agent", None),
    }


def _dialog(dialog: Any, now: float) -> dict[str, Any]:
    return {
        "call_id": dialog.call_id,
        "caller_tag": dialog.caller_tag,
        "callee_tag": dialog.callee_tag,
        "session_expires": dialog.session_expires,
    }


def _direction(stats: Any) -> dict[str, Any]:
    return {"packets": stats.packets, "bytes": stats.bytes, "dropped": dict(stats.drops)}


def _media_session(key: str, stats: Any) -> dict[str, Any]:
    return {
        "key": key,
        "state": stats.state,
        "modes": f"{stats.a_mode.value}/{stats.b_mode.value}",
        "ports": list(stats.ports),
        "a_to_b": _direction(stats.a_to_b),
        "b_to_a": _direction(stats.b_to_a),
    }


def _relay_counters(stats: Any) -> dict[str, int]:
    """The relay's totals, flat: C{sessions}, C{packets:a_to_b}, C{dropped:b_to_a:reason}..."""
    counters = {"sessions": stats.sessions, "allocated": stats.allocated,
                "open_ports": stats.open_ports}
    counters.update({f"ended:{reason}": n for reason, n in sorted(stats.ended.items())})
    for name, direction in (("a_to_b", stats.a_to_b), ("b_to_a", stats.b_to_a)):
        counters[f"packets:{name}"] = direction.packets
        counters[f"bytes:{name}"] = direction.bytes
        counters.update({f"dropped:{name}:{reason}": n
                         for reason, n in sorted(direction.drops.items())})
    return counters


def _ban(ban: Any, now: float) -> dict[str, Any]:
    return {
        "address": ban.source,
        "reason": ban.reason,
        "banned_at": ban.banned_at,
        "expires_in": None if math.isinf(ban.expires_at) else max(0, round(ban.expires_at - now)),
        "count": ban.count,
    }


class AdminResource(Resource):
    """
    Everything under C{/api/v1/}, answering for C{service} (a
    L{sipedge.service.SipEdgeService}: its store, dialogs, security and
    counters).
    """

    isLeaf = True
    _log = Logger(namespace="sipedge.admin")

    def __init__(self, service: Any, token: str, clock: Any) -> None:
        super().__init__()
        self._service = service
        self._token = token.encode()
        self._clock = clock

    # -- plumbing ---------------------------------------------------------

    def render(self, request: Request) -> bytes | int:
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        try:
            self._authorize(request)
            result = self._dispatch(request)
        except _Error as e:
            return self._error(request, e.status, str(e))
        d = maybeDeferred(lambda: result)
        d.addCallbacks(lambda body: self._finish(request, 200, body),
                       lambda f: self._failed(request, f))
        return NOT_DONE_YET

    def _authorize(self, request: Request) -> None:
        raw = request.getHeader(b"authorization") or b""
        header = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 self._token):
            peer = request.getClientAddress()
            self._log.warn("Admin API: refused {method} {path} from {source}: {why}",
                           method=request.method.decode(errors="replace"),
                           path=request.path.decode(errors="replace"),
                           source=getattr(peer, "host", "?"),
                           why="no bearer token" if not given else "wrong token")
            raise _Error(401, "a valid bearer token is required")

    def _finish(self, request: Request, status: int, body: Any) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        request.setResponseCode(status)
        request.write(json.dumps(body, indent=None).encode() + b"\n")
        request.finish()

    def _failed(self, request: Request, failure: Failure) -> None:
        if failure.check(_Error):
            error: Any = failure.value
            self._finish(request, error.status, {"error": str(error)})
            return
        self._log.failure("Admin API: {path} failed", failure,
                          path=request.path.decode(errors="replace"))
        self._finish(request, 500, {"error": "internal error (logged)"})

    def _error(self, request: Request, status: int, message: str) -> bytes:
        request.setResponseCode(status)
        if status == 401:
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="sipedge"')
        return json.dumps({"error": message}).encode() + b"\n"

    def _body(self, request: Request) -> dict[str, Any]:
        assert request.content is not None
        raw = request.content.read(_MAX_BODY + 1)
        if len(raw) > _MAX_BODY:
            raise _Error(413, "request body too large")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as e:
            raise _Error(400, f"body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise _Error(400, "body must be a JSON object")
        return body

    def _dispatch(self, request: Request) -> Any:
        path = request.path
        if not path.startswith(API_PREFIX):
            raise _Error(404, f"no such resource: {path.decode(errors='replace')}")
        parts = [unquote(p.decode("utf-8", "replace")) for p in path[len(API_PREFIX):].split(b"/")]
        method = request.method.decode()
        name, rest = parts[0], parts[1:]
        handler = getattr(self, f"_{method.lower()}_{name}", None)
        if handler is None or (rest and rest != [""] and method == "GET"):
            if any(hasattr(self, f"_{m}_{name}") for m in ("get", "post", "delete")):
                raise _Error(405, f"{method} not allowed on {name}")
            raise _Error(404, f"no such resource: {name}")
        args: list[str] = [r for r in rest if r]
        if method in ("DELETE",) and len(args) != 1:
            raise _Error(400, f"DELETE needs one {name} item in the path")
        query = {k.decode(): v[0].decode("utf-8", "replace") for k, v in request.args.items()}
        if method == "POST":
            return handler(self._body(request))
        if method == "DELETE":
            return handler(args[0])
        return handler(query)

    # -- resources --------------------------------------------------------

    def _get_registrations(self, query: dict[str, str]) -> Deferred[Any]:
        now = self._clock.seconds()
        wanted = query.get("aor", "")

        def listed(bindings: list[Any]) -> dict[str, Any]:
            rows = [_binding(b, now) for b in bindings if wanted in b.aor]
            return {"registrations": rows, "count": len(rows)}

        return self._service.store.bindings(now).addCallback(listed)

    def _delete_registrations(self, aor: str) -> Deferred[Any]:
        now = self._clock.seconds()
        store = self._service.store

        def remove(bindings: list[Any]) -> Any:
            if not bindings:
                raise _Error(404, f"no registration for {aor}")
            self._log.info("Admin API: registration of {aor} removed", aor=aor)
            return store.remove_all(aor).addCallback(
                lambda _: {"removed": aor, "bindings": len(bindings)})

        return store.lookup(aor, now).addCallback(remove)

    def _dialogs(self) -> Any:
        dialogs = getattr(self._service, "dialogs", None)
        if dialogs is None:
            raise _Error(409, "calls are not tracked ([dialogs] track = false)")
        return dialogs

    def _get_calls(self, query: dict[str, str]) -> Any:
        now = self._clock.seconds()
        wanted = query.get("call_id", "")
        rows = [_dialog(d, now) for d in self._dialogs().dialogs if wanted in d.call_id]
        for row in rows:
            row["media"] = []
        media = self._service.media
        if media is None or not rows:
            return {"calls": rows, "count": len(rows)}

        def attach(sessions: Any) -> dict[str, Any]:
            # The anchor's session keys: "<Call-ID>;<caller tag>[;<n>]".
            for row in rows:
                base = f"{row['call_id']};{row['caller_tag']}"
                row["media"] = [_media_session(key, stats)
                                for key, stats in sorted(sessions.items())
                                if key == base or key.startswith(base + ";")]
            return {"calls": rows, "count": len(rows)}

        def unknown(failure: Failure) -> dict[str, Any]:
            self._log.failure("Admin API: the media relay's sessions are unknown", failure)
            for row in rows:
                row["media"] = None
            return {"calls": rows, "count": len(rows)}

        return maybeDeferred(media.sessions).addCallbacks(attach, unknown)

    def _delete_calls(self, call_id: str) -> dict[str, Any]:
        dialogs = self._dialogs()
        ended = 0
        for dialog in [d for d in dialogs.dialogs if d.call_id == call_id]:
            if dialogs.end(dialog.call_id, dialog.caller_tag, dialog.callee_tag,
                           "ended by the operator"):
                ended += 1
        if not ended:
            raise _Error(404, f"no call {call_id}")
        self._log.info("Admin API: call {call_id} ended by the operator", call_id=call_id)
        return {"ended": call_id, "dialogs": ended}

    def _get_bans(self, query: dict[str, str]) -> dict[str, Any]:
        # Bring this process's view up to date first (what the periodic
        # purge does): a ban made by another worker is in force here now.
        self._service.security.purge()
        now = self._clock.seconds()
        bans = self._service.security.bans
        rows = [_ban(b, now) for b in bans.list(now) if query.get("address", "") in b.source]
        return {"bans": rows, "count": len(rows)}

    def _post_bans(self, body: dict[str, Any]) -> dict[str, Any]:
        address = body.get("address")
        if not isinstance(address, str):
            raise _Error(400, "address: expected an IP address string")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise _Error(400, f"address: {address!r} is not an IP address") from None
        duration = body.get("duration")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, (int, float))
            or not duration > 0
        ):
            raise _Error(400, "duration: expected a positive number of seconds, or null")
        reason = body.get("reason", "banned by the operator")
        if not isinstance(reason, str) or len(reason) > 200:
            raise _Error(400, "reason: expected a string of at most 200 characters")
        # Through the security service, not its ban list alone: with kernel
        # bans the nftables set has it at once, not at the next purge.
        ban = self._service.security.ban(
            address, reason, float(duration) if duration else math.inf, rule="admin"
        )
        now = self._clock.seconds()
        if ban is None:
            raise _Error(409, f"{address} is trusted and cannot be banned")
        return {"banned": _ban(ban, now)}

    def _delete_bans(self, address: str) -> dict[str, Any]:
        if not self._service.security.unban(address):
            raise _Error(404, f"{address} is not banned")
        return {"unbanned": address}

    def _get_counters(self, query: dict[str, str]) -> Any:
        service = self._service
        messages = service.messages
        counters = {
            "sip_requests": {f"{d}:{m}": n for (d, m), n in sorted(messages.requests.items())},
            "sip_responses": {f"{d}:{c}": n for (d, c), n in sorted(messages.responses.items())},
            "proxy": dict(service.core.stats),
            "transactions": dict(service.core.transactions.stats),
            "security": dict(service.security.stats),
            "dialogs": dict(service.dialogs.stats) if service.dialogs is not None else {},
        }
        if service.media is None:
            return counters

        def relay(stats: Any) -> dict[str, Any]:
            counters["relay"] = _relay_counters(stats)
            return counters

        return maybeDeferred(service.media.stats).addCallback(relay)

    def _post_reload(self, body: dict[str, Any]) -> Any:
        reload = getattr(self._service, "reload", None)
        if reload is None:
            raise _Error(501, "reload is not built yet")

        def refused(failure: Failure) -> Failure:
            if failure.check(ConfigError):
                raise _Error(400, f"not reloaded, still running as before: {failure.value}")
            return failure

        d = maybeDeferred(reload, "admin API")
        d.addCallbacks(_reload_answer, refused)
        return d


def _reload_answer(report: Any) -> Any:
    """C{{"reloaded": [...], "needs_restart": [...]}} from the service's reload report."""
    as_json = getattr(report, "as_json", None)
    if as_json is not None:
        return as_json()
    return {"reloaded": list(report), "needs_restart": []}


def admin_site(resource: AdminResource) -> Site:
    """The site serving C{resource} for every path (it answers 404 itself)."""
    site = Site(resource)
    site.displayTracebacks = False
    return site
