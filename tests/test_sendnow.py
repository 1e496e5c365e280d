"""
Tests for L{responses_proxy.web._sendnow}: queued bytes leave at once over real TCP and
TLS connections, a closing transport is left to the reactor, and the private names it
reads still exist (this fails loudly if Twisted changes them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile

from twisted.internet import abstract, tcp
from twisted.protocols import tls
from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.web._sendnow import sendNow


class _Wrapper:
    """Stands for a wrapping transport (as TLS is): the TCP one is its C{transport}."""

    def __init__(self, transport: object) -> None:
        self.transport = transport


class RealConnectionTests(SynchronousTestCase):
    """
    Over real connections on 127.0.0.1 with a real reactor (L{tests.sendnowprobe}, a
    child process): the peer's socket holds the bytes before the callback that wrote them
    returns; without C{sendNow} it does not (Twisted only queued them).
    """

    def test_probe(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        done = subprocess.run(
            [sys.executable, "-m", "tests.sendnowprobe", directory],
            capture_output=True,
            timeout=60,
            check=False,
        )
        self.assertEqual(done.returncode, 0, done.stderr.decode(errors="replace")[-2000:])
        self.assertEqual(
            json.loads(done.stdout),
            {
                "tcp": True,
                "tcpWrapped": True,
                "tcpControl": False,
                "tls": True,
                "tlsControl": False,
            },
        )


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

    def test_closingOrClosed(self) -> None:
        """Closing, half-closed or no longer connected: nothing is sent."""
        for name, value in [
            ("disconnecting", True),
            ("_writeDisconnecting", True),
            ("connected", False),
        ]:
            d = _Descriptor()
            d.write(b"x")
            setattr(d, name, value)
            sendNow(d)
            self.assertEqual(d.sent, [], name)

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
        """Anything else (None, an object without a transport, a wrapping deeper than a
        real one) is left alone; a wrapped descriptor within reach is sent."""
        sendNow(None)
        sendNow(object())
        buried = _Descriptor()
        buried.write(b"x")
        sendNow(_Wrapper(_Wrapper(_Wrapper(_Wrapper(buried)))))
        self.assertEqual(buried.sent, [], "looked deeper than any real wrapping")
        near = _Descriptor()
        near.write(b"y")
        sendNow(_Wrapper(_Wrapper(near)))
        self.assertEqual(near.sent, [b"y"])


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

    def test_tlsGatherer(self) -> None:
        """Twisted's TLS transport gathers small writes in C{_aggregator}, which
        C{flush()} writes through (the transport also claims the TCP transport's
        interfaces, so the TCP one is found by its class)."""
        self.assertIs(tls.TLSMemoryBIOFactory.protocol, tls.BufferingTLSTransport)
        self.assertTrue(callable(tls._AggregateSmallWrites.flush))
        self.assertIn("_aggregator", tls.BufferingTLSTransport.__annotations__)
