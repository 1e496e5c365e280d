"""
Tests for L{responses_proxy.web._twistedpool}: the private Twisted hooks, which must fail
loudly here if Twisted changes them.
"""

from __future__ import annotations

import inspect

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import _newclient
from twisted.web.client import HTTPConnectionPool
from twisted.web.http_headers import Headers

from responses_proxy.web._twistedpool import UpstreamPool, _ConnectionHeaderProtocol


class _Transport:
    def __init__(self, disconnecting: bool) -> None:
        self.disconnecting = disconnecting

    def loseConnection(self) -> None:
        pass


class _Connection:
    state = "QUIESCENT"

    def __init__(self, disconnecting: bool) -> None:
        self.transport = _Transport(disconnecting)


class TwistedInternalsTests(SynchronousTestCase):
    """
    The private names the hooks rely on still exist and are still used as assumed.
    """

    def test_poolBuildsProtocolsThroughFactoryAttribute(self) -> None:
        """C{HTTPConnectionPool._newConnection} builds its factory from C{self._factory}
        with (quiescentCallback, metadata), and puts connections back with
        C{_putConnection(key, connection)}."""
        source = inspect.getsource(HTTPConnectionPool._newConnection)
        self.assertIn("self._factory(", source)
        self.assertIn("self._putConnection(key, protocol)", source)
        self.assertEqual(
            list(inspect.signature(HTTPConnectionPool._putConnection).parameters),
            ["self", "key", "connection"],
        )

    def test_factoryBuildsTheHookProtocol(self) -> None:
        """The pool's factory builds the protocol that keeps C{Connection}, quietly."""
        factory = UpstreamPool._factory(lambda p: None, "metadata")
        self.assertFalse(factory.noisy)
        self.assertIsInstance(factory.buildProtocol(None), _ConnectionHeaderProtocol)


class ConnectionHeaderTests(SynchronousTestCase):
    """
    The upstream's C{Connection} header reaches C{response.headers}.
    """

    def test_connectionHeaderRestored(self) -> None:
        """A response with C{Connection: x-hop} has it in its headers, so the header filter
        can drop C{x-hop}."""
        protocol = _ConnectionHeaderProtocol(lambda p: None)
        protocol.makeConnection(StringTransport())
        request = _newclient.Request(
            b"POST", b"/v1/responses", Headers({b"host": [b"up"]}), None, persistent=True
        )
        responses: list = []
        protocol.request(request).addCallback(responses.append)
        protocol.dataReceived(
            b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n"
        )
        [response] = responses
        self.assertEqual(response.headers.getRawHeaders(b"connection"), [b"x-hop"])
        self.assertEqual(response.headers.getRawHeaders(b"x-hop"), [b"1"])

    def test_noConnectionHeader(self) -> None:
        """Without C{Connection}, nothing is added."""
        protocol = _ConnectionHeaderProtocol(lambda p: None)
        protocol.makeConnection(StringTransport())
        request = _newclient.Request(b"POST", b"/", Headers({b"host": [b"up"]}), None)
        responses: list = []
        protocol.request(request).addCallback(responses.append)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertFalse(responses[0].headers.hasHeader(b"connection"))


class PoolTests(SynchronousTestCase):
    """
    The upstream pool never caches a connection that is closing.
    """

    def test_closingConnectionNotCached(self) -> None:
        """A quiescent connection whose transport is disconnecting is dropped; an open
        one is kept."""
        pool = UpstreamPool(MemoryReactorClock())
        pool._putConnection("k", _Connection(True))
        self.assertEqual(pool._connections.get("k", []), [])
        kept = _Connection(False)
        pool._putConnection("k", kept)
        self.assertEqual(pool._connections["k"], [kept])
