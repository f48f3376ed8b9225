# -*- test-case-name: sipedge.test.test_admin_fanout -*-
"""
Tests for L{sipedge.admin._fanout}: the supervisor's admin API asking its
workers and merging their answers, with workers answering in memory. The
real processes are tested in L{sipedge.test.test_e2e_workers}.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from sipedge.admin import WorkersAdminResource, sum_counters

TOKEN = "w" * 32

#: What a fake worker does with a request: C{(status, body)}, or a Deferred.
Handler = Callable[[str, str, Any], Any]


@attrs.frozen
class _Answer:
    status: int
    body: bytes


class _Workers:
    """Workers answering in memory; records what each was asked."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = list(handlers)
        self.asked: list[tuple[int, str, str, Any]] = []
        self.serving = list(range(len(handlers)))

    def ask(self, index: int, method: str, path: str, *, headers: dict[str, str],
            body: bytes | None) -> Deferred[Any]:
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        decoded = None if body is None else json.loads(body)
        self.asked.append((index, method, path, decoded))
        result = self.handlers[index](method, path, decoded)
        if isinstance(result, Deferred):
            return result
        status, answer = result
        return succeed(_Answer(status, json.dumps(answer).encode()))


def _request(method: str, path: str, body: Any = None) -> Any:
    path_only, _, query = path.partition("?")
    request: Any = DummyRequest([p.encode() for p in path_only.strip("/").split("/")])
    request.method = method.encode()
    request.path = path_only.encode()
    request.args = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        request.args[key.encode()] = [value.encode()]
    request.requestHeaders.addRawHeader(b"authorization", f"Bearer {TOKEN}".encode())
    request.content = io.BytesIO(b"" if body is None else json.dumps(body).encode())
    return request


class FanoutTests(SynchronousTestCase):
    """L{WorkersAdminResource} with two workers."""

    def resource(self, workers: _Workers, count: int = 2, **kw: Any) -> WorkersAdminResource:
        return WorkersAdminResource(TOKEN, Clock(), workers.ask, lambda: workers.serving,
                                    count, **kw)

    def call(self, resource: WorkersAdminResource, method: str, path: str,
             body: Any = None) -> tuple[int, Any]:
        request = _request(method, path, body)
        result = resource.render(request)
        if result is not NOT_DONE_YET:
            request.write(result)
            request.finish()
        self.assertTrue(request.finished)
        return request.responseCode or 200, json.loads(b"".join(request.written))

    def test_calls_listed_with_their_worker(self) -> None:
        """Every worker's calls are listed, each with the worker holding it."""
        workers = _Workers(
            lambda m, p, b: (200, {"calls": [{"call_id": "a"}], "count": 1}),
            lambda m, p, b: (200, {"calls": [{"call_id": "b"}, {"call_id": "c"}], "count": 2}),
        )
        status, body = self.call(self.resource(workers), "GET", "/api/v1/calls?call_id=x")
        self.assertEqual(status, 200)
        self.assertEqual(body["calls"], [{"call_id": "a", "worker": 0},
                                         {"call_id": "b", "worker": 1},
                                         {"call_id": "c", "worker": 1}])
        self.assertEqual(body["count"], 3)
        self.assertEqual(body["workers"], {"answered": 2, "missing": 0})
        self.assertEqual([a[2] for a in workers.asked], ["/api/v1/calls?call_id=x"] * 2)

    def test_hangup_reaches_the_owner(self) -> None:
        """
        Ending a call asks every worker: the one holding it ends it (the
        others answer 404); a call no worker holds is 404.
        """
        workers = _Workers(
            lambda m, p, b: (404, {"error": "no call c@x"}),
            lambda m, p, b: ((200, {"ended": "c@x", "dialogs": 1}) if p.endswith("c%40x")
                             else (404, {"error": "no call"})),
        )
        resource = self.resource(workers)
        status, body = self.call(resource, "DELETE", "/api/v1/calls/c%40x")
        self.assertEqual((status, body["dialogs"]), (200, 1))
        self.assertEqual({(a[0], a[1], a[2]) for a in workers.asked},
                         {(0, "DELETE", "/api/v1/calls/c%40x"),
                          (1, "DELETE", "/api/v1/calls/c%40x")})
        status, body = self.call(resource, "DELETE", "/api/v1/calls/other")
        self.assertEqual((status, body), (404, {"error": "no call c@x"}))

    def test_hangup_with_a_worker_missing(self) -> None:
        """A call not found while a worker did not answer is 503, not 404."""
        workers = _Workers(lambda m, p, b: (404, {"error": "no call"}),
                           lambda m, p, b: fail(ConnectionRefusedError()))
        status, body = self.call(self.resource(workers), "DELETE", "/api/v1/calls/x")
        self.assertEqual(status, 503)
        self.assertIn("1 did not", body["error"])

    def test_counters_summed(self) -> None:
        """Counters are summed across workers; C{workers} says who answered."""
        workers = _Workers(
            lambda m, p, b: (200, {"proxy": {"requests": 3, "forwarded": 2}, "dialogs": {}}),
            lambda m, p, b: (200, {"proxy": {"requests": 4}, "dialogs": {"confirmed": 1}}),
        )
        status, body = self.call(self.resource(workers), "GET", "/api/v1/counters")
        self.assertEqual(status, 200)
        self.assertEqual(body, {"proxy": {"forwarded": 2, "requests": 7},
                                "dialogs": {"confirmed": 1},
                                "workers": {"answered": 2, "missing": 0}})

    def test_shared_relay_counted_once(self) -> None:
        """With one relay for all workers, its counters are one worker's, not a sum."""
        workers = _Workers(*[lambda m, p, b: (200, {"relay": {"sessions": 2}})] * 2)
        body = self.call(self.resource(workers), "GET", "/api/v1/counters")[1]
        self.assertEqual(body["relay"], {"sessions": 4})
        body = self.call(self.resource(workers, shared_relay=True), "GET", "/api/v1/counters")[1]
        self.assertEqual(body["relay"], {"sessions": 2})

    def test_worker_not_answering(self) -> None:
        """
        A worker that fails (or is not serving) is left out and counted
        missing; the others' answer is given.
        """
        workers = _Workers(lambda m, p, b: fail(ConnectionRefusedError()),
                           lambda m, p, b: (200, {"proxy": {"requests": 4}}))
        body = self.call(self.resource(workers, count=3), "GET", "/api/v1/counters")[1]
        self.assertEqual(body, {"proxy": {"requests": 4},
                                "workers": {"answered": 1, "missing": 2}})

    def test_registrations_from_one_worker(self) -> None:
        """
        Registrations are in the shared store: one worker is asked, the
        next if it does not answer; its answer (or error) is passed on.
        """
        workers = _Workers(lambda m, p, b: fail(ConnectionRefusedError()),
                           lambda m, p, b: (200, {"registrations": [], "count": 0}))
        resource = self.resource(workers)
        status, body = self.call(resource, "GET", "/api/v1/registrations?aor=bob")
        self.assertEqual((status, body), (200, {"registrations": [], "count": 0}))
        self.assertEqual([a[:3] for a in workers.asked],
                         [(0, "GET", "/api/v1/registrations?aor=bob"),
                          (1, "GET", "/api/v1/registrations?aor=bob")])
        workers.handlers[1] = lambda m, p, b: (404, {"error": "no registration for x"})
        self.assertEqual(self.call(resource, "DELETE", "/api/v1/registrations/x"),
                         (404, {"error": "no registration for x"}))

    def test_no_worker_serving(self) -> None:
        """With no worker serving, the answer is 503."""
        workers = _Workers(lambda m, p, b: (200, {}))
        workers.serving = []
        resource = self.resource(workers)
        for method, path in (("GET", "/api/v1/registrations"), ("GET", "/api/v1/counters"),
                             ("POST", "/api/v1/reload")):
            self.assertEqual(self.call(resource, method, path)[0], 503, path)

    def test_ban_made_once_and_loaded_by_all(self) -> None:
        """
        A ban is made by one worker (its count is 1, not one per worker);
        then every worker lists the bans, which loads it at once.
        """
        banned: dict[str, Any] = {"banned": {"address": "192.0.2.7", "count": 1}}
        workers = _Workers(*[lambda m, p, b: (200, banned if m == "POST" else {"bans": []})] * 2)
        status, body = self.call(self.resource(workers), "POST", "/api/v1/bans",
                                 {"address": "192.0.2.7"})
        self.assertEqual((status, body), (200, banned))
        self.assertEqual([a[:3] for a in workers.asked],
                         [(0, "POST", "/api/v1/bans"), (0, "GET", "/api/v1/bans"),
                          (1, "GET", "/api/v1/bans")])
        self.assertEqual(workers.asked[0][3], {"address": "192.0.2.7"})

    def test_unban_everywhere(self) -> None:
        """Lifting a ban asks every worker; 404 only if none had it."""
        workers = _Workers(lambda m, p, b: (200, {"unbanned": "192.0.2.7"}),
                           lambda m, p, b: (404, {"error": "192.0.2.7 is not banned"}))
        resource = self.resource(workers)
        self.assertEqual(self.call(resource, "DELETE", "/api/v1/bans/192.0.2.7"),
                         (200, {"unbanned": "192.0.2.7"}))
        workers.handlers[0] = workers.handlers[1]
        self.assertEqual(self.call(resource, "DELETE", "/api/v1/bans/192.0.2.7")[0], 404)

    def test_reload_every_worker(self) -> None:
        """Reload asks every worker; their reports are merged; a refusal is passed on."""
        workers = _Workers(
            lambda m, p, b: (200, {"reloaded": ["users"], "needs_restart": []}),
            lambda m, p, b: (200, {"reloaded": ["users", "bans"], "needs_restart": ["x"]}),
        )
        resource = self.resource(workers)
        status, body = self.call(resource, "POST", "/api/v1/reload")
        self.assertEqual((status, body["reloaded"], body["needs_restart"]),
                         (200, ["users", "bans"], ["x"]))
        workers.handlers[1] = lambda m, p, b: (400, {"error": "not reloaded: bad key"})
        self.assertEqual(self.call(resource, "POST", "/api/v1/reload"),
                         (400, {"error": "not reloaded: bad key"}))

    def test_token_required(self) -> None:
        """The supervisor checks the token itself: a wrong one asks no worker."""
        workers = _Workers(lambda m, p, b: (200, {}))
        request = _request("GET", "/api/v1/counters")
        request.requestHeaders.setRawHeaders(b"authorization", [b"Bearer " + b"x" * 32])
        resource = self.resource(workers)
        resource.render(request)
        self.assertEqual((request.responseCode, workers.asked), (401, []))

    def test_worker_answer_not_json(self) -> None:
        """A worker answering what is not a JSON object is 502 when it alone is asked."""
        workers = _Workers(lambda m, p, b: succeed(_Answer(200, b"<html>")))
        status, body = self.call(self.resource(workers, count=1), "GET", "/api/v1/bans")
        self.assertEqual(status, 502)
        self.assertIn("worker 0", body["error"])


class SumCountersTests(SynchronousTestCase):
    """L{sum_counters}."""

    def test_sum(self) -> None:
        """Groups and names are summed; what is not a number is left out."""
        self.assertEqual(
            sum_counters([{"a": {"x": 1, "y": 2}, "b": {"z": True}, "c": 5},
                          {"a": {"x": 10}, "b": {"w": 0.5}}]),
            {"a": {"x": 11, "y": 2}, "b": {"w": 0.5}},
        )
