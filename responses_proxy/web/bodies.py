# -*- test-case-name: tests.test_bodies -*-
"""
Every protocol an upstream response body is delivered to (C{IResponse.deliverBody}).

Each one tells its owner when the body begins (C{started}, with the body's transport, a
push producer the owner can register, pause or stop), and reports what it read; none of
them writes to the client.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import PotentialDataLoss, ResponseDone

from responses_proxy.sse import DEFAULT_MAX_LINE_LENGTH, SSEParser

Started = Callable[[IPushProducer], None]


def endedCleanly(reason: Failure) -> bool:
    """
    Whether a body ended as a whole: C{ResponseDone}, or C{PotentialDataLoss} (no length,
    and the upstream closed).
    """
    return isinstance(reason.value, (ResponseDone, PotentialDataLoss))


class DiscardBody(Protocol):
    """
    Throw a body away at once (the client it was for has gone).
    """

    def connectionMade(self) -> None:
        self.transport.stopProducing()


class RelayBody(Protocol):
    """
    Hand each read on as it arrives (pass-through).
    """

    def __init__(
        self,
        started: Started,
        data: Callable[[bytes], None],
        ended: Callable[[Failure], None],
    ) -> None:
        self._started = started
        self._data = data
        self._ended = ended

    def connectionMade(self) -> None:
        self._started(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self._data(data)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._ended(reason)


class BodyTooLarge(Exception):
    """
    A body read whole was over its limit.
    """


class CollectBody(Protocol):
    """
    Read a whole body, up to a limit.

    @ivar finished: fires with the bytes at a clean end; fails with L{BodyTooLarge} (the
        upstream was stopped) or with the reason the body was cut.
    """

    def __init__(
        self, limit: int, started: Started, data: Callable[[bytes], None] | None = None
    ) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit
        self._started = started
        self._data = data
        self.finished: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self._started(self.transport)

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        if self._data is not None:
            self._data(data)
        self._size += len(data)
        if self._size > self._limit:
            self.transport.stopProducing()
            self.finished.errback(BodyTooLarge())
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        if self.finished.called:
            return
        if endedCleanly(reason):
            self.finished.callback(b"".join(self._parts))
        else:
            self.finished.errback(reason)


class SSEReceiver(Protocol):
    """
    The body protocol for an upstream C{text/event-stream} reply.

    Use as C{response.deliverBody(SSEReceiver(onData))}. Each completed
    event's data payload goes to C{onData} as soon as it is complete. The
    C{transport} is Twisted's C{TransportProxyProducer}; it stays untouched,
    so the caller can register it as the request's producer for backpressure.

    @ivar finished: fires with L{None} when the body ended cleanly (a
        C{ResponseDone}, or a C{PotentialDataLoss}: no length and the upstream
        closed). Errbacks with L{SSELineTooLong} when the limit was hit, with
        whatever C{onData} raised, or with the original failure (such as
        C{ResponseFailed}) when the body was cut. In the first two cases
        C{transport.stopProducing()} was called first, which closes the
        upstream connection.
    """

    _log = Logger()

    def __init__(
        self,
        onData: Callable[[bytes], None],
        maxLineLength: int = DEFAULT_MAX_LINE_LENGTH,
    ) -> None:
        """
        @param onData: called with each event's data payload, in order.
        @param maxLineLength: the bound on one line and one event's data.
        """
        self._onData = onData
        self._parser = SSEParser(maxLineLength)
        self._done = False
        self.finished: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        """
        Parse a read and hand on the events it completes.

        @param data: the bytes read from the body.
        """
        if self._done:
            return
        try:
            payloads = self._parser.feed(data)
        except Exception:
            self._stop(Failure())
            return
        self._deliver(payloads)

    def connectionLost(self, reason: Failure) -> None:
        """
        The body ended: fire L{finished}, after the last event at a clean end.

        @param reason: C{ResponseDone} or C{PotentialDataLoss} for a clean end,
            anything else (usually C{ResponseFailed}) for a cut one.
        """
        if self._done:
            return
        if reason.check(ResponseDone, PotentialDataLoss) is None:
            self._done = True
            self.finished.errback(reason)
            return
        if not self._deliver(self._parser.close()):
            return
        self._done = True
        self.finished.callback(None)

    def _deliver(self, payloads: list[bytes]) -> bool:
        """
        Call C{onData} for each payload, stopping at the first error.

        @param payloads: completed events' data.
        @return: C{True} if every payload was delivered.
        """
        for payload in payloads:
            if self._done:
                # onData ended the body from inside (say, stopProducing
                # leading to a synchronous connectionLost).
                return False
            try:
                self._onData(payload)
            except Exception:
                self._stop(Failure())
                return False
        return not self._done

    def _stop(self, failure: Failure) -> None:
        """
        Close the upstream, ignore whatever else arrives, and fail L{finished}.

        @param failure: what went wrong.
        """
        self._done = True
        try:
            self.transport.stopProducing()
        except Exception:
            self._log.failure("Stopping the upstream body failed")
        self.finished.errback(failure)


class SSEBody(SSEReceiver):
    """
    The SSE receiver, reporting the raw bytes too (for the dump and the silence limit).
    """

    def __init__(
        self,
        started: Started,
        raw: Callable[[bytes], None],
        payload: Callable[[bytes], None],
        maxLineLength: int = DEFAULT_MAX_LINE_LENGTH,
    ) -> None:
        super().__init__(payload, maxLineLength)
        self._started = started
        self._raw = raw

    def connectionMade(self) -> None:
        self._started(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self._raw(data)
        super().dataReceived(data)


_BOM = b"\xef\xbb\xbf"


class SniffedBody(Protocol):
    """
    A 2xx reply to a streaming request whose content type is not C{text/event-stream}.

    Some servers label their chat stream C{application/json} or C{text/plain}. The first
    byte that is not whitespace (or a byte order mark) decides: C{{} or C{[} is a whole
    JSON reply, read to its end; anything else is SSE, parsed and relayed as it arrives
    like a correctly labelled stream.
    """

    def __init__(
        self,
        started: Started,
        asStream: Callable[[], Protocol],
        asJSON: Callable[[], Protocol],
    ) -> None:
        self._started = started
        self._asStream = asStream
        self._asJSON = asJSON
        self._head = b""
        self._target: Protocol | None = None

    def connectionMade(self) -> None:
        self._started(self.transport)

    def _choose(self, target: Protocol) -> None:
        self._target = target
        target.makeConnection(self.transport)
        head, self._head = self._head, b""
        if head:
            target.dataReceived(head)

    def dataReceived(self, data: bytes) -> None:
        if self._target is not None:
            self._target.dataReceived(data)
            return
        self._head += data
        text = self._head.lstrip(b" \t\r\n")
        if text.startswith(_BOM):
            text = text[3:].lstrip(b" \t\r\n")
        if not text or _BOM.startswith(text):
            return
        self._choose(self._asJSON() if text[:1] in (b"{", b"[") else self._asStream())

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        if self._target is None:
            self._choose(self._asJSON())
        assert self._target is not None
        self._target.connectionLost(reason)
