# -*- test-case-name: sipedge.test.test_admin_fanout -*-
"""
The admin API of several workers, served by their supervisor: each request
is asked of the workers (on their private ports) and their answers are
merged, so that C{sipedge ctl} sees and acts on all of them.

What lives in the shared stores (registrations, bans) is asked of one
worker; what lives in each worker's memory (calls, counters) of every
worker, merged: calls listed with the worker holding them, a call ended by
the worker holding it, counters summed. A worker that does not answer in
time is left out and counted in C{workers.missing}. See
C{doc/workers.md} and C{doc/admin-api.md}.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from twisted.internet.defer import Deferred, DeferredList
from twisted.python.failure import Failure

from sipedge.admin._api import API_PREFIX, AdminResource, _Error

__all__ = ["WorkersAdminResource", "sum_counters"]

#: How a worker is asked: C{ask(index, method, path, headers=..., body=...)}
#: gives a Deferred firing with its answer (C{.status}, C{.body}).
Ask = Callable[..., "Deferred[Any]"]

_Answers = list[tuple[int, int, dict[str, Any]]]


def sum_counters(answers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """
    The counters of several workers summed, group by group and name by
    name (a name missing from a worker counts 0 there).
    """
    total: dict[str, Any] = {}
    for answer in answers:
        for group, counters in answer.items():
            if not isinstance(counters, Mapping):
                continue
            into = total.setdefault(group, {})
            for name, value in counters.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    into[name] = into.get(name, 0) + value
    return {group: dict(sorted(counters.items())) for group, counters in total.items()}


def _ban_key(row: Mapping[str, Any]) -> tuple[int, float]:
    expires = row.get("expires_in")
    return (row.get("count") or 0, math.inf if expires is None else expires)


class WorkersAdminResource(AdminResource):
    """
    Everything under C{/api/v1/} for C{count} workers, asked through
    C{ask} with the same bearer token as ours.
    """

    def __init__(
        self,
        token: str,
        clock: Any,
        ask: Ask,
        serving: Callable[[], Sequence[int]],
        count: int,
        *,
        shared_relay: bool = False,
    ) -> None:
        """
        @param serving: the indexes of the workers serving now.
        @param count: how many workers there are.
        @param shared_relay: whether the workers share one media relay
            (C{[media] relay}): its counters are then counted once.
        """
        super().__init__(None, token, clock)
        self._ask = ask
        self._serving = serving
        self._count = count
        self._shared_relay = shared_relay

    # -- asking ---------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self._token.decode(),
                "Content-Type": "application/json"}

    def _send(self, index: int, method: str, path: str, body: Any) -> Deferred[Any]:
        data = None if body is None else json.dumps(body).encode()
        return self._ask(index, method, path, headers=self._headers(), body=data)

    def _decoded(self, index: int, answer: Any) -> tuple[int, int, dict[str, Any]]:
        try:
            body = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise _Error(502, f"worker {index} answered {answer.status} without a JSON object")
        return index, answer.status, body

    def _missed(self, index: int, failure: Failure) -> None:
        self._log.warn("Admin API: worker {index} did not answer: {why}",
                       index=index, why=failure.getErrorMessage() or repr(failure.value))

    def _one(self, method: str, path: str, body: Any = None) -> Deferred[Any]:
        """Ask the first serving worker (the next if it does not answer)."""
        indexes = list(self._serving())
        if not indexes:
            raise _Error(503, "no worker is serving")

        def attempt(remaining: list[int]) -> Deferred[Any]:
            index = remaining[0]

            def failed(failure: Failure) -> Any:
                self._missed(index, failure)
                if remaining[1:]:
                    return attempt(remaining[1:])
                raise _Error(503, "no worker answered")

            def judged(answer: Any) -> dict[str, Any]:
                _, status, decoded = self._decoded(index, answer)
                if status != 200:
                    raise _Error(status, str(decoded.get("error", f"worker said {status}")))
                return decoded

            return self._send(index, method, path, body).addCallbacks(judged, failed)

        return attempt(indexes)

    def _every(self, method: str, path: str, body: Any = None) -> Deferred[_Answers]:
        """Ask every serving worker; the answers of those that answered."""
        indexes = list(self._serving())
        asked = [self._send(index, method, path, body) for index in indexes]

        def collect(results: list[tuple[bool, Any]]) -> _Answers:
            answers = []
            for index, (ok, value) in zip(indexes, results, strict=True):
                if not ok:
                    self._missed(index, value)
                    continue
                try:
                    answers.append(self._decoded(index, value))
                except _Error as e:
                    self._missed(index, Failure(e))
            return answers

        return DeferredList(asked, consumeErrors=True).addCallback(collect)

    def _workers(self, answers: _Answers) -> dict[str, int]:
        return {"answered": len(answers), "missing": self._count - len(answers)}

    def _good(self, answers: _Answers) -> list[tuple[int, dict[str, Any]]]:
        """The 200 answers; if there is none, the first worker's error."""
        good = [(index, body) for index, status, body in answers if status == 200]
        if good:
            return good
        for _, status, body in answers:
            raise _Error(status, str(body.get("error", f"worker said {status}")))
        raise _Error(503, "no worker answered")

    # -- resources ------------------------------------------------------

    def _get_registrations(self, query: dict[str, str]) -> Any:
        return self._one("GET", _path("registrations", query=query))

    def _delete_registrations(self, aor: str) -> Any:
        return self._one("DELETE", _path("registrations", aor))

    def _get_calls(self, query: dict[str, str]) -> Any:
        def merge(answers: _Answers) -> dict[str, Any]:
            rows = [{**row, "worker": index}
                    for index, body in self._good(answers) for row in body.get("calls", ())]
            return {"calls": rows, "count": len(rows), "workers": self._workers(answers)}

        return self._every("GET", _path("calls", query=query)).addCallback(merge)

    def _delete_calls(self, call_id: str) -> Any:
        def merge(answers: _Answers) -> dict[str, Any]:
            ended = sum(body.get("dialogs", 0) for _, status, body in answers if status == 200)
            workers = self._workers(answers)
            if not ended:
                if workers["missing"]:
                    raise _Error(503, f"no call {call_id} in the workers that answered"
                                      f" ({workers['missing']} did not)")
                self._good(answers)  # all agree: their error (404, or 409)
            self._log.info("Admin API: call {call_id} ended by the operator", call_id=call_id)
            return {"ended": call_id, "dialogs": ended, "workers": workers}

        return self._every("DELETE", _path("calls", call_id)).addCallback(merge)

    def _get_bans(self, query: dict[str, str]) -> Any:
        return self._one("GET", _path("bans", query=query))

    def _post_bans(self, body: dict[str, Any]) -> Any:
        banned = self._one("POST", _path("bans"), body)

        def spread(answer: dict[str, Any]) -> Deferred[Any]:
            # The others load the new ban now (listing the bans reloads
            # a worker's mirror), not at their next purge.
            return self._every("GET", _path("bans")).addCallback(lambda _: answer)

        return banned.addCallback(spread)

    def _delete_bans(self, address: str) -> Any:
        def merge(answers: _Answers) -> dict[str, Any]:
            self._good(answers)
            return {"unbanned": address}

        return self._every("DELETE", _path("bans", address)).addCallback(merge)

    def _get_counters(self, query: dict[str, str]) -> Any:
        def merge(answers: _Answers) -> dict[str, Any]:
            good = self._good(answers)
            counters = sum_counters([body for _, body in good])
            if self._shared_relay and "relay" in good[0][1]:
                counters["relay"] = dict(good[0][1]["relay"])
            counters["workers"] = self._workers(answers)
            return counters

        return self._every("GET", _path("counters")).addCallback(merge)

    def _post_reload(self, body: dict[str, Any]) -> Any:
        def merge(answers: _Answers) -> Any:
            refused = [(status, b) for _, status, b in answers if status != 200]
            for status, b in refused:
                raise _Error(status, str(b.get("error", f"worker said {status}")))
            reloaded: list[str] = []
            needs_restart: list[str] = []
            for _, _, b in answers:
                reloaded += [r for r in b.get("reloaded", ()) if r not in reloaded]
                needs_restart += [r for r in b.get("needs_restart", ()) if r not in needs_restart]
            if not answers:
                raise _Error(503, "no worker answered")
            return {"reloaded": reloaded, "needs_restart": needs_restart,
                    "workers": self._workers(answers)}

        return self._every("POST", _path("reload"), body).addCallback(merge)


def _path(name: str, item: str | None = None, *, query: Mapping[str, str] | None = None) -> str:
    """The worker's path for resource C{name} (and C{item}, and C{query})."""
    path = API_PREFIX.decode() + name
    if item is not None:
        path += "/" + quote(item, safe="")
    if query:
        path += "?" + urlencode(dict(query))
    return path
