"""
Tests for L{responses_proxy.web.bodies}: the protocols upstream bodies are delivered to.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import Response, TransportProxyProducer
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from responses_proxy.sse import SSEEventTooLong, SSELineTooLong
from responses_proxy.web.bodies import (
    BodyTooLarge,
    CollectBody,
    DiscardBody,
    RelayBody,
    SniffedBody,
    SSEReceiver,
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


class Collector:
    """
    An C{onData} that records payloads and can be told to raise.
    """

    def __init__(self, raiseOn: bytes | None = None) -> None:
        self.payloads: list[bytes] = []
        self.raiseOn = raiseOn

    def __call__(self, payload: bytes) -> None:
        if payload == self.raiseOn:
            raise ValueError("onData failed")
        self.payloads.append(payload)


class ReceiverTests(SynchronousTestCase):
    """
    L{SSEReceiver} as an C{IResponse.deliverBody} protocol.
    """

    def receiver(self, raiseOn: bytes | None = None, maxLineLength: int = 64) -> tuple[
        SSEReceiver, Collector, StringTransport
    ]:
        collector = Collector(raiseOn)
        receiver = SSEReceiver(collector, maxLineLength)
        transport = StringTransport()
        receiver.makeConnection(transport)
        return receiver, collector, transport

    def test_deliveredAsDataArrives(self) -> None:
        receiver, collector, transport = self.receiver()
        receiver.dataReceived(b"data: a\n")
        self.assertEqual(collector.payloads, [])
        receiver.dataReceived(b"\ndata: b\n\ndata: c\n\n: ping\n")
        self.assertEqual(collector.payloads, [b"a", b"b", b"c"])
        receiver.dataReceived(b"data: [DONE]\n\n")
        self.assertEqual(collector.payloads, [b"a", b"b", b"c", b"[DONE]"])
        self.assertNoResult(receiver.finished)
        self.assertEqual(transport.producerState, "producing")

    def test_responseDone(self) -> None:
        receiver, collector, transport = self.receiver()
        receiver.dataReceived(b"data: a\n\n")
        receiver.connectionLost(Failure(ResponseDone()))
        self.assertIsNone(self.successResultOf(receiver.finished))
        self.assertEqual(collector.payloads, [b"a"])
        self.assertEqual(transport.producerState, "producing")

    def test_potentialDataLoss(self) -> None:
        receiver, collector, _ = self.receiver()
        receiver.dataReceived(b"data: a\n\n")
        receiver.connectionLost(Failure(PotentialDataLoss()))
        self.assertIsNone(self.successResultOf(receiver.finished))
        self.assertEqual(collector.payloads, [b"a"])

    def test_pendingEventDispatchedBeforeFinished(self) -> None:
        receiver, collector, _ = self.receiver()
        seen: list[list[bytes]] = []
        receiver.finished.addCallback(lambda _: seen.append(list(collector.payloads)))
        receiver.dataReceived(b"data: a\n\ndata: [DONE]\n")
        self.assertEqual(collector.payloads, [b"a"])
        receiver.connectionLost(Failure(ResponseDone()))
        self.assertEqual(seen, [[b"a", b"[DONE]"]])

    def test_responseFailed(self) -> None:
        receiver, collector, _ = self.receiver()
        receiver.dataReceived(b"data: a\n\ndata: b\n")
        reason = Failure(ResponseFailed([Failure(ConnectionLost())]))
        receiver.connectionLost(reason)
        failure = self.failureResultOf(receiver.finished, ResponseFailed)
        self.assertIs(failure.value, reason.value)
        # The cut stream's pending event is not delivered.
        self.assertEqual(collector.payloads, [b"a"])

    def test_lineTooLong(self) -> None:
        receiver, collector, transport = self.receiver()
        receiver.dataReceived(b"data: a\n\n")
        receiver.dataReceived(b"data: " + b"x" * 100)
        self.assertEqual(transport.producerState, "stopped")
        failure = self.failureResultOf(receiver.finished, SSELineTooLong)
        self.assertEqual(failure.value.limit, 64)
        # Later data and the connection's loss are ignored.
        receiver.dataReceived(b"\n\ndata: c\n\n")
        receiver.connectionLost(Failure(ResponseFailed([Failure(ConnectionLost())])))
        self.assertEqual(collector.payloads, [b"a"])

    def test_eventTooLong(self) -> None:
        receiver, _, transport = self.receiver()
        receiver.dataReceived(b"data: " + b"x" * 40 + b"\n")
        receiver.dataReceived(b"data: " + b"x" * 40 + b"\n")
        self.assertEqual(transport.producerState, "stopped")
        self.failureResultOf(receiver.finished, SSEEventTooLong)

    def test_onDataRaises(self) -> None:
        receiver, collector, transport = self.receiver(raiseOn=b"bad")
        receiver.dataReceived(b"data: a\n\ndata: bad\n\ndata: c\n\n")
        self.assertEqual(transport.producerState, "stopped")
        failure = self.failureResultOf(receiver.finished, ValueError)
        self.assertEqual(str(failure.value), "onData failed")
        receiver.dataReceived(b"data: d\n\n")
        receiver.connectionLost(Failure(ResponseDone()))
        self.assertEqual(collector.payloads, [b"a"])

    def test_onDataRaisesAtEndOfStream(self) -> None:
        receiver, collector, transport = self.receiver(raiseOn=b"bad")
        receiver.dataReceived(b"data: a\n\ndata: bad\n")
        receiver.connectionLost(Failure(ResponseDone()))
        self.assertEqual(transport.producerState, "stopped")
        self.failureResultOf(receiver.finished, ValueError)
        self.assertEqual(collector.payloads, [b"a"])

    def test_stopProducingFailsStillErrbacks(self) -> None:
        """
        Even if stopping the transport raises, L{SSEReceiver.finished} fires.
        """

        class BrokenTransport(StringTransport):
            def stopProducing(self) -> None:
                raise RuntimeError("boom")

        receiver = SSEReceiver(Collector(), 64)
        receiver.makeConnection(BrokenTransport())
        receiver.dataReceived(b"data: " + b"x" * 100)
        self.failureResultOf(receiver.finished, SSELineTooLong)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_throughResponseDeliverBody(self) -> None:
        """
        Through a real C{Response}, the transport is a
        C{TransportProxyProducer}, and stopping it stops the connection.
        """
        connection = StringTransport()
        response = Response._construct(
            (b"HTTP", 1, 1), 200, b"OK", Headers(), TransportProxyProducer(connection), None
        )
        collector = Collector()
        receiver = SSEReceiver(collector, 64)
        response._bodyDataReceived(b"data: a\n\n")
        response.deliverBody(receiver)
        self.assertEqual(collector.payloads, [b"a"])
        response._bodyDataReceived(b"data: " + b"x" * 100)
        self.assertEqual(connection.producerState, "stopped")
        self.failureResultOf(receiver.finished, SSELineTooLong)

    def test_throughResponseCleanEnd(self) -> None:
        connection = StringTransport()
        response = Response._construct(
            (b"HTTP", 1, 1), 200, b"OK", Headers(), TransportProxyProducer(connection), None
        )
        collector = Collector()
        receiver = SSEReceiver(collector)
        response.deliverBody(receiver)
        response._bodyDataReceived(b"data: a\r\n\r\ndata: [DONE]\r\n")
        response._bodyDataFinished()
        self.assertIsNone(self.successResultOf(receiver.finished))
        self.assertEqual(collector.payloads, [b"a", b"[DONE]"])
        self.assertEqual(connection.producerState, "producing")
