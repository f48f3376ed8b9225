# -*- test-case-name: sipedge.test.test_process_http -*-
"""
The supervisor asking its workers over HTTP on loopback: each worker
serves the admin API and the metrics on private ports of its own (bound by
the supervisor, see L{sipedge.process.bind_private}); the supervisor serves
the public ones and asks the workers there (C{doc/workers.md}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from sipedge.process._sockets import CHANNEL_HOST

__all__ = ["WorkerAnswer", "WorkerHTTP"]

@attrs.frozen
class WorkerAnswer:
    """
    A worker's HTTP answer.

    @ivar status: its status code.
    @ivar body: its body.
    """

    status: int
    body: bytes


@implementer(IBodyProducer)
class _Body:
    """A request body that is all there at once."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class WorkerHTTP:
    """
    Requests to the workers' private HTTP ports on L{CHANNEL_HOST}.

    Each request has C{timeout} seconds to be answered in full: a worker
    that is stuck or gone fails its request (the caller answers without
    it) instead of holding the operator's.
    """

    def __init__(self, reactor: Any, ports: Mapping[int, int], *, timeout: float = 5.0) -> None:
        """
        @param reactor: provides C{IReactorTCP} and C{IReactorTime}.
        @param ports: per worker index, its private port.
        """
        self._reactor = reactor
        self.ports = dict(ports)
        self._timeout = timeout
        self._agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))

    def request(
        self,
        index: int,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Deferred[WorkerAnswer]:
        """
        C{method} C{path} (with its query) to worker C{index}.

        @return: its answer; fails with C{KeyError} for a worker with no
            port, C{TimeoutError} after the timeout, or the connection's
            error.
        """
        try:
            port = self.ports[index]
        except KeyError:
            return fail(KeyError(f"worker {index} has no port"))
        url = f"http://{CHANNEL_HOST}:{port}{path}".encode()
        sent = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
        d = self._agent.request(
            method.encode(), url, sent, None if body is None else _Body(body)
        )

        def read(response: Any) -> Deferred[WorkerAnswer]:
            return readBody(response).addCallback(
                lambda data: WorkerAnswer(response.code, data)
            )

        def late(result: object, timeout: float) -> WorkerAnswer:
            raise TimeoutError(f"worker {index} did not answer within {timeout} s")

        answer: Deferred[WorkerAnswer] = d.addCallback(read)
        answer.addTimeout(self._timeout, self._reactor, onTimeoutCancel=late)
        return answer
