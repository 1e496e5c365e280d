"""
Tests for L{responses_proxy.web._sendnow}: queued bytes leave at once over a real socket,
a closing transport is left to the reactor, and the private names it reads still exist
(this fails loudly if Twisted changes them).
"""

from __future__ import annotations

import socket

from twisted.internet import abstract, protocol, reactor, tcp
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from responses_proxy.web._sendnow import sendNow


class _Wrapper:
    """Stands for a TLS transport: the TCP transport is its C{transport}."""

    def __init__(self, transport: object) -> None:
        self.transport = transport


class _Answer(protocol.Protocol):
    """Answers the first read with C{pong}, then reports what the peer could read
    before control went back to the reactor."""

    def __init__(self, peer: socket.socket, wrap: bool, send: bool, done: Deferred[bytes]) -> None:
        self.peer = peer
        self.wrap = wrap
        self.send = send
        self.done = done

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"pong")
        if self.send:
            sendNow(_Wrapper(self.transport) if self.wrap else self.transport)
        try:
            got = self.peer.recv(100, socket.MSG_DONTWAIT)
        except BlockingIOError:
            got = b""
        self.transport.loseConnection()
        self.done.callback(got)


class RealSocketTests(TestCase):
    """
    Over a real connection on 127.0.0.1, with the real reactor.
    """

    def exchange(self, wrap: bool = False, send: bool = True) -> Deferred[bytes]:
        done: Deferred[bytes] = Deferred()
        peer = socket.socket()
        self.addCleanup(peer.close)
        factory = protocol.Factory.forProtocol(lambda: _Answer(peer, wrap, send, done))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        peer.connect(("127.0.0.1", port.getHost().port))
        peer.sendall(b"ping")
        return done

    def test_sentBeforeTheReactorTurns(self) -> None:
        """The peer can read the bytes before the callback that wrote them returns."""
        return self.exchange().addCallback(self.assertEqual, b"pong")

    def test_throughAWrapper(self) -> None:
        """A wrapping transport (as TLS is) is looked through to the TCP transport."""
        return self.exchange(wrap=True).addCallback(self.assertEqual, b"pong")

    def test_withoutItTwistedWaits(self) -> None:
        """The control: a plain write is still queued when the callback returns, so the
        test above shows this module's doing, not Twisted's."""
        return self.exchange(send=False).addCallback(self.assertEqual, b"")


class _Descriptor(abstract.FileDescriptor):
    """A descriptor that records writes instead of having a socket."""

    connected = True

    def __init__(self) -> None:
        super().__init__(reactor=_NoReactor())
        self.sent: list[bytes] = []

    def writeSomeData(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        return len(data)


class _NoReactor:
    def addWriter(self, writer: object) -> None:
        pass

    def removeWriter(self, writer: object) -> None:
        pass

    def addReader(self, reader: object) -> None:
        pass

    def removeReader(self, reader: object) -> None:
        pass


class ClosingTests(SynchronousTestCase):
    """
    A transport that is closing keeps its bytes for the reactor, whose call ends it.
    """

    def test_disconnecting(self) -> None:
        d = _Descriptor()
        d.write(b"x")
        d.disconnecting = True
        sendNow(d)
        self.assertEqual(d.sent, [])

    def test_halfClosed(self) -> None:
        d = _Descriptor()
        d.write(b"x")
        d._writeDisconnecting = True
        sendNow(d)
        self.assertEqual(d.sent, [])

    def test_notConnected(self) -> None:
        d = _Descriptor()
        d.write(b"x")
        d.connected = False
        sendNow(d)
        self.assertEqual(d.sent, [])

    def test_nothingQueued(self) -> None:
        """No bytes queued: no system call at all."""
        d = _Descriptor()
        sendNow(d)
        self.assertEqual(d.sent, [])

    def test_queuedBytesSent(self) -> None:
        d = _Descriptor()
        d.write(b"ab")
        d.writeSequence([b"c", b"d"])
        sendNow(d)
        self.assertEqual(d.sent, [b"abcd"])

    def test_notADescriptor(self) -> None:
        """Anything else (a test's string transport, None) is left alone."""
        sendNow(None)
        sendNow(object())
        sendNow(_Wrapper(_Wrapper(_Wrapper(_Wrapper(_Descriptor())))))


class TwistedInternalsTests(SynchronousTestCase):
    """
    The private names read here still exist and still mean what is assumed.
    """

    def test_privateAttributes(self) -> None:
        """C{_tempDataLen} counts queued bytes; C{_writeDisconnecting} marks a half-close."""
        d = _Descriptor()
        self.assertEqual(d._tempDataLen, 0)
        self.assertIs(d._writeDisconnecting, False)
        d.write(b"abc")
        self.assertEqual(d._tempDataLen, 3)
        self.assertTrue(issubclass(tcp.Connection, abstract.FileDescriptor))
        self.assertIn("_writeDisconnecting", vars(abstract.FileDescriptor))
