"""
Tests for L{responses_proxy.web.bodies}: the protocols upstream bodies are delivered to.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss

from responses_proxy.web.bodies import (
    BodyTooLarge,
    CollectBody,
    DiscardBody,
    RelayBody,
    SniffedBody,
    endedCleanly,
)

DONE = Failure(ResponseDone())
CUT = Failure(ResponseFailed([Failure(ConnectionLost())]))


class _Transport:
    """The body's transport: a push producer that counts stops."""

    def __init__(self) -> None:
        self.stopped = 0

    def stopProducing(self) -> None:
        self.stopped += 1

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


class _Recorder(Protocol):
    def __init__(self, name: str, log: list) -> None:
        self.name = name
        self.log = log

    def connectionMade(self) -> None:
        self.log.append((self.name, "made"))

    def dataReceived(self, data: bytes) -> None:
        self.log.append((self.name, data))

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.log.append((self.name, "lost"))


class EndTests(SynchronousTestCase):
    """
    What counts as a whole body.
    """

    def test_endedCleanly(self) -> None:
        """ResponseDone and PotentialDataLoss are whole; a cut body is not."""
        self.assertTrue(endedCleanly(DONE))
        self.assertTrue(endedCleanly(Failure(PotentialDataLoss())))
        self.assertFalse(endedCleanly(CUT))


class RelayAndDiscardTests(SynchronousTestCase):
    """
    L{RelayBody} reports everything; L{DiscardBody} stops the upstream at once.
    """

    def test_relay(self) -> None:
        """Start, each read, and the end, in order."""
        log: list = []
        transport = _Transport()
        body = RelayBody(lambda t: log.append(("started", t)), log.append, log.append)
        body.makeConnection(transport)
        body.dataReceived(b"a")
        body.dataReceived(b"b")
        body.connectionLost(DONE)
        self.assertEqual(log, [("started", transport), b"a", b"b", DONE])

    def test_discard(self) -> None:
        """The body of a response nobody waits for is stopped."""
        transport = _Transport()
        DiscardBody().makeConnection(transport)
        self.assertEqual(transport.stopped, 1)


class CollectBodyTests(SynchronousTestCase):
    """
    L{CollectBody} reads a whole body up to its limit.
    """

    def collect(self, limit: int = 10) -> tuple[CollectBody, _Transport, list, list]:
        seen: list = []
        results: list = []
        transport = _Transport()
        body = CollectBody(limit, lambda t: None, seen.append)
        body.finished.addBoth(results.append)
        body.makeConnection(transport)
        return body, transport, seen, results

    def test_wholeBody(self) -> None:
        """The reads are joined at a clean end; each read is reported as it arrives."""
        body, _, seen, results = self.collect()
        body.dataReceived(b"{}")
        body.dataReceived(b"[]")
        body.connectionLost(DONE)
        self.assertEqual((seen, results), ([b"{}", b"[]"], [b"{}[]"]))

    def test_tooLarge(self) -> None:
        """Over the limit: the upstream is stopped and the result is BodyTooLarge; later
        reads and the end change nothing."""
        body, transport, _, results = self.collect(limit=3)
        body.dataReceived(b"abcd")
        body.dataReceived(b"e")
        body.connectionLost(CUT)
        self.assertEqual(transport.stopped, 1)
        [failure] = results
        failure.trap(BodyTooLarge)

    def test_cut(self) -> None:
        """A cut body fails with the cut."""
        body, _, _, results = self.collect()
        body.dataReceived(b"{")
        body.connectionLost(CUT)
        results[0].trap(ResponseFailed)


class SniffedBodyTests(SynchronousTestCase):
    """
    L{SniffedBody} sends a mislabelled body to the right reader.
    """

    def sniff(self, *reads: bytes) -> list:
        log: list = []
        body = SniffedBody(
            lambda t: log.append("held"),
            lambda: _Recorder("sse", log),
            lambda: _Recorder("json", log),
        )
        body.makeConnection(_Transport())
        for data in reads:
            body.dataReceived(data)
        body.connectionLost(DONE)
        return log

    def test_json(self) -> None:
        """A body starting with { (after whitespace and a BOM) is JSON, all of it."""
        self.assertEqual(
            self.sniff(b"\xef\xbb", b"\xbf  \n", b'{"a"', b":1}"),
            [
                "held",
                ("json", "made"),
                ("json", b'\xef\xbb\xbf  \n{"a"'),
                ("json", b":1}"),
                ("json", "lost"),
            ],
        )

    def test_sse(self) -> None:
        """Anything else is SSE, handed on as it arrives."""
        self.assertEqual(
            self.sniff(b"data: {}\n\n"),
            ["held", ("sse", "made"), ("sse", b"data: {}\n\n"), ("sse", "lost")],
        )

    def test_empty(self) -> None:
        """An empty body goes to the JSON reader, which reports it."""
        self.assertEqual(self.sniff(), ["held", ("json", "made"), ("json", "lost")])
