# -*- test-case-name: tests.test_passthrough_memory -*-
"""
One client request's trip to the upstream and back, as an object both leaves own.

It holds what every forwarded request needs, whatever the mode: the response-header
deadline, cancelling the upstream when the client leaves, a 502/504 for an upstream that
fails, the upstream body as the client request's producer (so a slow client pauses the
upstream and a gone one stops it), coalesced and redacted writes, and the dump record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer, IResponse

from responses_proxy.config import Limits
from responses_proxy.dump import Dumper, DumpRecord
from responses_proxy.keyfile import AuthorizationHeader
from responses_proxy.redact import StreamRedactor
from responses_proxy.replies import errorBody
from responses_proxy.web.bodies import DiscardBody
from responses_proxy.web.front import StrictRequest, writeError
from responses_proxy.web.timers import Clock
from responses_proxy.web.upstream import (
    HeaderPairs,
    UpstreamClient,
    classifyFailure,
    undecodedCoding,
)

_log = Logger(namespace="responses_proxy")


@attrs.frozen
class Upstream:
    """
    Where and how requests go upstream; what a leaf needs to open an exchange.
    """

    clock: Clock
    client: UpstreamClient
    url: str
    authorization: AuthorizationHeader
    limits: Limits
    dumper: Dumper | None = None
    redactor: StreamRedactor = attrs.field(
        init=False,
        repr=False,
        eq=False,
        default=attrs.Factory(lambda self: StreamRedactor(self.authorization.key), takes_self=True),
    )

    def open(self, request: StrictRequest) -> UpstreamExchange:
        """
        Start an exchange for a client request (it watches the client from now on).
        """
        return UpstreamExchange(self, request)


class UpstreamExchange:
    """
    One forwarded request: see the module docstring.

    @ivar request: the client's request.
    @ivar dump: the C{--dump-dir} record, if dumping.
    @ivar clientGone: the client left before its response was finished.
    """

    def __init__(self, upstream: Upstream, request: StrictRequest) -> None:
        self.upstream = upstream
        self.request = request
        self.clock = upstream.clock
        self.limits = upstream.limits
        self.redactor = upstream.redactor.fresh()
        self.dump: DumpRecord | None = upstream.dumper.begin() if upstream.dumper else None
        self.clientGone = False
        self._pendingRequest: Deferred[IResponse] | None = None
        self._body: IPushProducer | None = None
        self._registered = False
        self._timedOut = False
        self._headerDeadline = self.clock.deadline(
            self.limits.responseTimeout, self._headersTooSlow
        )
        self._goneCallbacks: list[Callable[[], None]] = []
        self._pending: list[bytes] = []
        self._flushCall: IDelayedCall | None = None
        request.notifyFinish().addCallbacks(self._clientDone, self._clientLeft)

    # -- the upstream request --------------------------------------------------------------

    def send(self, headers: HeaderPairs, body: IBodyProducer) -> Deferred[IResponse | None]:
        """
        Send the request upstream.

        @return: fires with the response, or with L{None} when the exchange is already
            over: the client left (the body is discarded), or the upstream failed and the
            client got its 502/504.
        """
        self._headerDeadline.start()
        d = self.upstream.client.request(b"POST", self.upstream.url, headers, body)
        self._pendingRequest = d
        return d.addCallbacks(self._gotResponse, self._failed)

    def _headersTooSlow(self) -> None:
        self._timedOut = True
        if self._pendingRequest is not None:
            self._pendingRequest.cancel()

    def _gotResponse(self, response: IResponse) -> IResponse | None:
        self._headerDeadline.cancel()
        self._pendingRequest = None
        self.request.upstreamStatus = response.code
        if self.dump is not None:
            self.dump.responseStarted(response.code, response.headers.getAllRawHeaders())
        if self.clientGone:
            response.deliverBody(DiscardBody())
            return None
        coding = undecodedCoding(response)
        if coding is not None:
            # Bytes the proxy cannot decode cannot be scrubbed of the key either.
            response.deliverBody(DiscardBody())
            name = coding.decode("ascii", "replace")[:40]
            _log.info("upstream answered with content coding {coding}", coding=name)
            self.sendError(
                502,
                errorBody(
                    f"the upstream answered with a content coding the proxy cannot decode "
                    f"({name}); it only asked for gzip",
                    "proxy_error",
                    "upstream_bad_encoding",
                ),
            )
            self.finishDump("upstream_bad_encoding")
            return None
        return response

    def _failed(self, failure: Failure) -> None:
        self._headerDeadline.cancel()
        self._pendingRequest = None
        if self.clientGone:
            return  # expected: the cancellation we asked for
        outcome = classifyFailure(failure, self._timedOut)
        _log.info(
            "upstream request failed: {code} ({kind})",
            code=outcome.code,
            kind=type(failure.value).__name__,
        )
        self.sendError(outcome.status, errorBody(outcome.message, "proxy_error", outcome.code))
        self.finishDump(outcome.code)

    # -- the client ------------------------------------------------------------------------

    def whenClientGone(self, callback: Callable[[], None]) -> None:
        """
        Call C{callback} if the client leaves before its response is finished.
        """
        self._goneCallbacks.append(callback)

    def _clientDone(self, result: None) -> None:
        # The response was finished: nothing is left to call, and the callbacks (methods
        # of the leaf's handler, which holds this exchange) must not keep it alive.
        self._goneCallbacks = []

    def _clientLeft(self, reason: Failure) -> None:
        self.clientGone = True
        self._headerDeadline.cancel()
        self._pending = []
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        if self._body is not None:
            self._body.stopProducing()
        elif self._pendingRequest is not None:
            # Also when "called": a Deferred chained on the connection's own request
            # Deferred forwards the cancellation to it, which aborts the connection.
            self._pendingRequest.cancel()
        callbacks, self._goneCallbacks = self._goneCallbacks, []
        for callback in callbacks:
            callback()
        self.finishDump("client_disconnected")

    # -- the upstream body -----------------------------------------------------------------

    def holdBody(self, transport: IPushProducer) -> None:
        """
        The upstream body has begun: stop it if the client leaves (not yet a producer).
        """
        self._body = transport
        if self.clientGone:
            transport.stopProducing()

    def streamBody(self, transport: IPushProducer) -> None:
        """
        The upstream body flows to the client: its transport becomes the client request's
        producer, so a slow client pauses the upstream and a gone one stops it.
        """
        self.holdBody(transport)
        if not self.clientGone:
            self.request.registerProducer(transport, True)
            self._registered = True

    def releaseBody(self) -> None:
        """
        The upstream body no longer paces the client (it ended, or is being drained).
        """
        if self._registered:
            self._registered = False
            if not self.clientGone:
                self.request.unregisterProducer()

    def drainBody(self) -> None:
        """
        The client's reply is complete: let the rest of the upstream body arrive unpaced
        (it is discarded), so its connection can go back to the pool.
        """
        self.releaseBody()
        if self._body is not None:
            self._body.resumeProducing()

    def bodyDone(self) -> None:
        """
        The upstream body ended by itself: nothing is left to stop.
        """
        self.releaseBody()
        self._body = None

    def stopUpstream(self) -> None:
        """
        Let go of the upstream body now, closing its connection.
        """
        self.releaseBody()
        transport, self._body = self._body, None
        if transport is not None:
            transport.stopProducing()

    # -- writing to the client -------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """
        Queue bytes for the client. They leave together at the end of this reactor turn:
        one HTTP chunk and one redaction pass per socket read, instead of one per upstream
        chunk or event, which is most of the relaying cost.
        """
        if self.clientGone or not data:
            return
        self._pending.append(data)
        if self._flushCall is None:
            self._flushCall = self.clock.callSoon(self.flush)

    def flush(self) -> None:
        """
        Write what is queued now (redacted).
        """
        call, self._flushCall = self._flushCall, None
        if call is not None and call.active():
            call.cancel()
        pending, self._pending = self._pending, []
        if not pending or self.clientGone:
            return
        out = self.redactor.feed(pending[0] if len(pending) == 1 else b"".join(pending))
        if out:
            self.request.write(out)

    def finish(self) -> None:
        """
        End the client's response: everything queued or held back by the redactor, then
        the final chunk.
        """
        self.flush()
        if self.clientGone:
            return
        tail = self.redactor.flush()
        if tail:
            self.request.write(tail)
        self.request.finish()

    def abortClient(self) -> None:
        """
        The upstream cut the stream: end the client's connection without the final
        chunk, so it can never mistake this for a complete response.
        """
        self.flush()
        if self.clientGone:
            return
        request = self.request
        transport = getattr(request.channel, "transport", None)
        if request.clientproto != b"HTTP/1.1" and transport is not None:
            transport.abortConnection()
        else:
            request.loseConnection()

    def sendError(self, status: int, body: bytes) -> None:
        """
        Answer with a JSON error of this status (redacted, and recorded in the dump).
        """
        body = self.redactor.redact(body)
        if self.dump is not None:
            self.dump.clientData(body)
        writeError(self.request, status, body)

    def setResponseHeaders(self, pairs: HeaderPairs) -> None:
        """
        Set response headers from the upstream's, with any echo of the key redacted.
        """
        redact = self.redactor.redact
        for name, values in pairs:
            self.request.responseHeaders.setRawHeaders(name, [redact(v) for v in values])

    def finishDump(self, outcome: str) -> None:
        """
        Write the dump's response file (once), if dumping.
        """
        if self.dump is not None:
            self.dump.finish(outcome)


def requestBody(request: StrictRequest) -> Any:
    """
    The client's buffered body as a file object at its start.
    """
    content = request.content
    content.seek(0)
    return content
