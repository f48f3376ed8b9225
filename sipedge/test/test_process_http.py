# -*- test-case-name: sipedge.test.test_process_http -*-
"""
Tests for L{sipedge.process._http}: the supervisor's requests to its
workers' private HTTP ports, against a real site on loopback.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from sipedge.process import WorkerAnswer, WorkerHTTP


class _Echo(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        assert request.content is not None
        request.setResponseCode(201)
        token = request.getHeader(b"authorization") or b""
        return b" ".join([request.method, request.uri, token, request.content.read()])


class _Silent(Protocol):
    """Accepts a connection and never answers."""


class WorkerHTTPTests(TestCase):
    """L{WorkerHTTP} on the real reactor, loopback only."""

    def listen(self, factory: Any) -> int:
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        address: Any = port.getHost()
        return int(address.port)

    @defer.inlineCallbacks
    def test_request(self) -> Any:
        """A request reaches the worker's port with its headers and body; the answer comes back."""
        site = Site(_Echo())
        site.log = lambda request: None  # type: ignore[method-assign]
        http = WorkerHTTP(reactor, {3: self.listen(site)})
        answer = yield http.request(3, "POST", "/api/v1/bans?x=1",
                                    headers={"Authorization": "Bearer t"}, body=b"{}")
        self.assertEqual(answer, WorkerAnswer(201, b"POST /api/v1/bans?x=1 Bearer t {}"))

    @defer.inlineCallbacks
    def test_unknown_worker(self) -> Any:
        """A worker with no port fails at once."""
        http = WorkerHTTP(reactor, {})
        with self.assertRaises(KeyError):
            yield http.request(1, "GET", "/")

    @defer.inlineCallbacks
    def test_timeout(self) -> Any:
        """A worker that does not answer fails the request after the timeout."""
        connections: list[Any] = []

        class Silent(_Silent):
            def connectionMade(self) -> None:
                connections.append(self.transport)

        http = WorkerHTTP(reactor, {0: self.listen(Factory.forProtocol(Silent))}, timeout=0.5)
        try:
            with self.assertRaises(TimeoutError):
                yield http.request(0, "GET", "/metrics")
        finally:
            for transport in connections:
                transport.abortConnection()
