# -*- test-case-name: tests.test_twistedpool -*-
"""
The only place that reaches into Twisted's private HTTP client internals; each reach is
checked by C{tests/test_twistedpool.py}, which fails loudly if Twisted changes it.

Why no public API will do:

  - The upstream's C{Connection} header: Twisted's response parser keeps the
    connection-control headers out of C{response.headers}, so the proxy could not drop the
    hop-by-hop headers C{Connection} names (RFC 9110 section 7.6.1). The client protocol here
    puts C{Connection} back into the response's headers, where the ordinary header filter
    sees it. The pool builds its protocols through the private C{_factory} attribute, the
    only way to choose the protocol class.
  - A closing connection must never be cached: a body cut with C{stopProducing()} may still
    end in the same read, and the connection then comes back "quiescent" while it is
    closing; the next request written on it would fail with a 502. The pool's private
    C{_putConnection} is the one place that sees a connection come back.
  - The factory is quiet: Twisted's logs "Starting factory" for every upstream connection.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

from responses_proxy.web._sendnow import sendNow


class _ConnectionHeaderProtocol(HTTP11ClientProtocol):
    """
    A client protocol whose responses keep their C{Connection} header.
    """

    def request(self, request: Any) -> Deferred[Any]:
        d = super().request(request)
        # The request (with a body already in memory) has been written: send it now,
        # before the Deferred plumbing of the layers above runs.
        sendNow(self.transport)
        return d.addCallback(self._restore, self._parser)

    @staticmethod
    def _restore(response: Any, parser: Any) -> Any:
        if parser is not None:
            values = parser.connHeaders.getRawHeaders(b"connection")
            if values:
                response.headers.setRawHeaders(b"connection", values)
        return response


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False

    def buildProtocol(self, addr: Any) -> HTTP11ClientProtocol:
        return _ConnectionHeaderProtocol(self._quiescentCallback)


class UpstreamPool(HTTPConnectionPool):
    """
    The upstream connection pool: persistent connections, as many idle ones as the
    concurrency needs (bounded), dropped a little before a typical server's keep-alive
    timeout so a reused connection is rarely a dead one.

    Every connection a burst of concurrent requests opened is kept when it comes back
    (up to L{maxPersistentPerHost}), so the next burst of the same size finds one idle
    connection per request and opens none: with a smaller cap, each burst closed the
    connections over it and opened them again (a TLS handshake each). Idle connections
    beyond what the traffic uses expire after L{cachedConnectionTimeout}.
    """

    _factory = _QuietClientFactory
    maxPersistentPerHost = 128
    cachedConnectionTimeout = 50

    def _putConnection(self, key: Any, connection: Any) -> None:
        transport = getattr(connection, "transport", None)
        if transport is None or getattr(transport, "disconnecting", False):
            return
        super()._putConnection(key, connection)
