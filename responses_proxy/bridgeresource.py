# -*- test-case-name: tests.test_bridgeresource -*-
"""
The bridge leaf: C{POST /v1/responses} converted to a Chat Completions request, and the
chat reply converted back, as it arrives.

Thin Twisted glue around the pure modules in L{responses_proxy.bridge}: the request is
converted by L{convertRequest}, sent through the same L{UpstreamClient} as pass-through
mode, and the upstream's SSE body is split by L{SSEReceiver} and fed, one event at a time,
to a L{ResponsesStream} whose bytes are written to the client at once. Backpressure and
cancellation work as in pass-through mode; the timers here are the only state the pure
modules do not own: keep-alive events during upstream silence, the silence limit, and the
wait for usage after C{finish_reason}.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import PotentialDataLoss, ResponseDone, ResponseFailed
from twisted.web.iweb import IRequest, IResponse

from responses_proxy.bridge.completion import chunksToResponse, completionToResponse, failedResponse
from responses_proxy.bridge.errors import mapUpstreamError
from responses_proxy.bridge.request import (
    BridgeRequestError,
    ChatConversion,
    convertRequest,
    parseRequestBody,
)
from responses_proxy.bridge.stream import ResponsesStream
from responses_proxy.headers import bridgeRequestHeaders, bridgeResponseHeaders
from responses_proxy.relay import ProxyLeaf, UpstreamExchange
from responses_proxy.resource import errorBody, internalError, sendError
from responses_proxy.sse import SSELineTooLong, SSEParser, SSEReceiver

_log = Logger(namespace="responses_proxy")

# Upstream error bodies and whole JSON completions are read into memory up to this.
MAX_JSON_BODY = 64 * 1024 * 1024

# After the terminal event, how long the rest of the upstream body ([DONE]) may take
# before the connection is cut instead of returned to the pool.
_DRAIN_SECONDS = 2.0


class _BodyTooLarge(Exception):
    pass


class _Collect(Protocol):
    """
    Read a whole (bounded) body.
    """

    def __init__(self, limit: int, onData: Callable[[bytes], None] | None = None) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit
        self._onData = onData
        self.finished: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        if self._onData is not None:
            self._onData(data)
        self._size += len(data)
        if self._size > self._limit:
            self.transport.stopProducing()
            self.finished.errback(_BodyTooLarge())
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self._parts))
        else:
            self.finished.errback(reason)


class _StreamBody(SSEReceiver):
    """
    The SSE receiver, also registered as the client request's producer, so a slow
    client pauses the upstream and a gone one stops it.
    """

    def __init__(self, exchange: _Bridge, onData: Callable[[bytes], None]) -> None:
        super().__init__(onData)
        self._exchange = exchange

    def connectionMade(self) -> None:
        self._exchange.bodyStarted(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self._exchange.upstreamBytes(data)
        super().dataReceived(data)


class _SniffedBody(Protocol):
    """
    A 2xx reply to a streaming request whose content type is not C{text/event-stream}.

    Some servers label their chat stream C{application/json} or C{text/plain}. The first
    byte that is not whitespace (or a byte order mark) decides: C{{} or C{[} is a whole
    JSON reply, read to its end; anything else is SSE, parsed and relayed as it arrives
    like a correctly labelled stream (so its events are not held back to the end, and
    the silence limit sees its data).
    """

    def __init__(
        self,
        exchange: _Bridge,
        asStream: Callable[[], Protocol],
        asJSON: Callable[[], Protocol],
    ) -> None:
        self._exchange = exchange
        self._asStream = asStream
        self._asJSON = asJSON
        self._head = b""
        self._target: Protocol | None = None

    def connectionMade(self) -> None:
        # Not registered as the producer yet (the chosen body does that), but a client
        # that leaves in the meantime must still stop the upstream.
        self._exchange._bodyTransport = self.transport

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
        if text.startswith(b"\xef\xbb\xbf"):
            text = text[3:].lstrip(b" \t\r\n")
        if not text or b"\xef\xbb\xbf".startswith(text):
            return
        self._choose(self._asJSON() if text[:1] in (b"{", b"[") else self._asStream())

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        if self._target is None:
            self._choose(self._asJSON())
        assert self._target is not None
        self._target.connectionLost(reason)


def _isEventStream(response: IResponse) -> bool:
    for value in response.headers.getRawHeaders(b"content-type", []):
        if b"text/event-stream" in value.lower():
            return True
    return False


class _Bridge(UpstreamExchange):
    """
    One bridged request.
    """

    timers = (
        "_headerTimer",
        "_keepAliveTimer",
        "_idleTimer",
        "_tailTimer",
        "_drainTimer",
    )

    def __init__(self, resource: BridgeResource, request: IRequest) -> None:
        super().__init__(resource, request)
        self._conversion: ChatConversion | None = None
        self._stream: ResponsesStream | None = None
        self._finished = False
        self._lastWrite = 0.0
        self._lastUpstream = 0.0

    # -- request ------------------------------------------------------------------------

    def start(self) -> None:
        request = self._request
        self.watchClient()
        content = request.content
        content.seek(0)
        raw = content.read()
        try:
            conversion = convertRequest(parseRequestBody(raw))
        except BridgeRequestError as e:
            _log.info("bridge refused the request: {message}", message=e.message)
            if self._dump is not None:
                self._dump.writeRequest(
                    request.method,
                    request.uri,
                    request.requestHeaders.getAllRawHeaders(),
                    raw,
                    self._resource.upstreamURL,
                )
                self._dump.finish("bad_request")
            self._finished = True
            sendError(request, 400, json.dumps(e.errorBody()).encode("utf-8"))
            return
        for note in conversion.dropped:
            _log.debug("bridge dropped {note}", note=note)
        self._conversion = conversion
        body = json.dumps(conversion.body, separators=(",", ":")).encode("utf-8")
        pairs = bridgeRequestHeaders(
            request.requestHeaders.getAllRawHeaders(),
            self._resource.authorization.value,
            conversion.context.stream,
        )
        if self._dump is not None:
            self._dump.writeRequest(
                request.method,
                request.uri,
                request.requestHeaders.getAllRawHeaders(),
                raw,
                self._resource.upstreamURL,
                upstreamBody=body,
                upstreamHeaders=pairs,
            )
        self.send(pairs, self._resource.bodyProducer(io.BytesIO(body)))

    # -- response -----------------------------------------------------------------------

    def gotResponse(self, response: IResponse) -> None:
        request = self._request
        kept = bridgeResponseHeaders(response.headers.getAllRawHeaders())
        for name, values in kept:
            request.responseHeaders.setRawHeaders(name, [self._redactor.redact(v) for v in values])
        if not 200 <= response.code < 300:
            self._collect(response, lambda body: self._upstreamError(response, body))
            return
        assert self._conversion is not None
        context = self._conversion.context
        if not context.stream:
            self._collect(response, lambda body: self._wholeReply(response, body))
            return
        self._stream = ResponsesStream(context)
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        self._write(self._stream.start())
        self._keepAliveTimer = self._reactor.callLater(
            self._limits.keepAliveInterval, self._keepAliveDue
        )
        self._watchSilence()
        if _isEventStream(response):
            response.deliverBody(self._streamReceiver())
        else:
            response.deliverBody(
                _SniffedBody(
                    self,
                    self._streamReceiver,
                    lambda: self._collector(self._streamedJSON, register=True),
                )
            )

    def _streamReceiver(self) -> _StreamBody:
        receiver = _StreamBody(self, self._streamData)
        receiver.finished.addCallbacks(self._streamEnded, self._streamBroken).addErrback(self._bug)
        return receiver

    def _bug(self, failure: Failure) -> None:
        """
        A bug in this glue: log it, end the client's request, drop the upstream.
        """
        self.stopUpstream()
        if self._stream is not None and not self._finished and not self._clientGone:
            _log.failure("internal error in the bridge", failure=failure)
            self._endStream(self._stream.fail("server_error", "internal proxy error"))
            return
        self._finished = True
        internalError(self._request, failure)

    def _collect(self, response: IResponse, then: Callable[[bytes], None]) -> None:
        """
        Read a whole error body or C{stream: false} reply, then call C{then}. An upstream
        that stops sending it for the silence limit gets a 504, not an endless wait.
        """
        self._watchSilence()
        response.deliverBody(self._collector(then))

    def _watchSilence(self) -> None:
        """
        Start the silence limit: an upstream that sends nothing for that long, in a
        stream or in the middle of a whole reply, is given up on.
        """
        self._lastUpstream = self._reactor.seconds()
        self._idleTimer = self._reactor.callLater(self._limits.streamIdleTimeout, self._silenceDue)

    def _silenceDue(self) -> None:
        self._idleTimer = None
        if self._finished or self._clientGone:
            return
        silent = self._reactor.seconds() - self._lastUpstream
        limit = self._limits.streamIdleTimeout
        if silent < limit:
            self._idleTimer = self._reactor.callLater(limit - silent, self._silenceDue)
            return
        _log.info("upstream silent for {seconds:.0f} s; giving up on it", seconds=silent)
        self.stopUpstream()
        if self._stream is not None:
            self._endStream(
                self._stream.fail(
                    "server_error", f"the upstream sent nothing for {limit:.0f} seconds"
                )
            )
            return
        self._answerError(
            504,
            f"the upstream sent nothing for {limit:.0f} seconds in the middle of its reply",
            "upstream_timeout",
        )

    def _answerError(self, status: int, message: str, code: str) -> None:
        """
        End the client's request with a JSON error of the proxy's own.
        """
        self._finished = True
        self.finishDump(code)
        self.sendJSONError(status, errorBody(message, "proxy_error", code))

    def _collector(self, then: Callable[[bytes], None], register: bool = False) -> _Collect:
        """
        A protocol reading a whole bounded body, then calling C{then} with it.

        Its bytes count as upstream activity for the silence limits.

        @param register: the body belongs to a started stream: register it as the
            client request's producer.
        """
        collector = _Collect(MAX_JSON_BODY, self._bodyBytes)
        original = collector.connectionMade

        def made() -> None:
            original()
            if register:
                self.bodyStarted(collector.transport)
            else:
                self._bodyTransport = collector.transport

        collector.connectionMade = made  # type: ignore[method-assign]
        collector.finished.addBoth(self._bodyEnded)
        collector.finished.addCallbacks(then, self._collectFailed).addErrback(self._bug)
        return collector

    def _bodyEnded(self, result: Any) -> Any:
        self.cancel("_idleTimer")
        return result

    def _collectFailed(self, failure: Failure) -> None:
        if self._clientGone or self._finished:
            return
        if self._stream is not None:
            self.unregister()
            self._endStream(self._stream.fail("server_error", _bodyFailureMessage(failure)))
            return
        self._answerError(502, _bodyFailureMessage(failure), "upstream_error")

    def _upstreamError(self, response: IResponse, body: bytes) -> None:
        if self._clientGone:
            return
        retryAfter = response.headers.getRawHeaders(b"retry-after")
        status, document = mapUpstreamError(
            response.code, body, retryAfter[0].decode("latin-1") if retryAfter else None
        )
        error = document.get("error", {})
        _log.info(
            "upstream answered {status} ({code})", status=response.code, code=error.get("code")
        )
        self._finished = True
        self.finishDump("complete")
        self.sendJSONError(status, json.dumps(document, ensure_ascii=False).encode("utf-8"))

    def _wholeReply(self, response: IResponse, body: bytes) -> None:
        """
        C{stream: false}: one chat completion (or an SSE body, if the upstream streamed
        anyway) becomes one Responses object.
        """
        if self._clientGone:
            return
        assert self._conversion is not None
        context = self._conversion.context
        if _isEventStream(response) or _looksLikeSSE(body):
            payloads = _ssePayloads(body)
            if payloads is None:
                document = failedResponse(context, "server_error", _LINE_TOO_LONG)
            else:
                document = chunksToResponse(context, payloads)
        else:
            try:
                completion = json.loads(body)
            except ValueError:
                completion = None
            if not isinstance(completion, dict):
                self._answerError(
                    502, "upstream reply is not a JSON chat completion", "upstream_error"
                )
                return
            document = completionToResponse(context, completion)
        payload = self._redactor.redact(
            json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        )
        if self._dump is not None:
            self._dump.clientData(payload)
        self._finished = True
        self.finishDump("complete")
        request = self._request
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-length", b"%d" % len(payload))
        request.write(payload)
        request.finish()

    def _streamedJSON(self, body: bytes) -> None:
        """
        A 2xx reply to a streaming request that is not SSE: convert its JSON.
        """
        if self._clientGone or self._stream is None or self._stream.done:
            return
        self.unregister()
        try:
            completion = json.loads(body)
        except ValueError:
            if _looksLikeSSE(body):
                self._write(_feedWholeSSE(self._stream, body))
                self._endStream(self._stream.end())
                return
            completion = None
        if not isinstance(completion, dict):
            self._endStream(
                self._stream.fail("server_error", "upstream reply is neither SSE nor JSON")
            )
            return
        self._endStream(self._stream.feedCompletion(completion))

    # -- the streaming path ---------------------------------------------------------------

    def upstreamBytes(self, data: bytes) -> None:
        if self._dump is not None:
            self._dump.upstreamData(data)

    def _bodyBytes(self, data: bytes) -> None:
        """
        Bytes of a body read whole: the upstream is not silent.
        """
        self._lastUpstream = self._reactor.seconds()
        self.upstreamBytes(data)

    def _streamData(self, payload: bytes) -> None:
        stream = self._stream
        if stream is None or stream.done or self._clientGone:
            return
        self._lastUpstream = self._reactor.seconds()
        step = stream.feed(payload)
        if step.events:
            self._write(step.events)
        if step.done:
            self._endStream(b"", drain=True)
        elif step.tailStarted:
            self._tailTimer = self._reactor.callLater(self._limits.tailWait, self._tailDue)

    def _streamEnded(self, _: None) -> None:
        if self._finished:
            self._drained()
            return
        if self._stream is not None and not self._clientGone:
            self.unregister()
            self._endStream(self._stream.end())

    def _streamBroken(self, failure: Failure) -> None:
        if self._finished:
            self._drained()
            return
        if self._stream is None or self._clientGone or self._stream.done:
            return
        self.unregister()
        if failure.check(SSELineTooLong):
            out = self._stream.fail("server_error", _LINE_TOO_LONG)
        elif not failure.check(ResponseFailed, ConnectionLost, ConnectionDone):
            self._bug(failure)
            return
        else:
            # A cut body is still an end: end() decides from the finish_reason seen.
            _log.info("upstream stream ended abnormally")
            out = self._stream.end()
        self._endStream(out)

    def _drained(self) -> None:
        """
        The upstream body ended after the client's response: nothing left to cut.
        """
        self.cancel("_drainTimer")
        self._bodyTransport = None

    def _keepAliveDue(self) -> None:
        self._keepAliveTimer = None
        stream = self._stream
        if stream is None or stream.done or self._clientGone:
            return
        idle = self._reactor.seconds() - self._lastWrite
        interval = self._limits.keepAliveInterval
        if idle >= interval:
            self._write(stream.keepAlive())
            idle = 0.0
        self._keepAliveTimer = self._reactor.callLater(interval - idle, self._keepAliveDue)

    def _tailDue(self) -> None:
        self._tailTimer = None
        stream = self._stream
        if stream is None or stream.done or self._clientGone:
            return
        self.stopUpstream()
        self._endStream(stream.end())

    def _write(self, data: bytes) -> None:
        if not data or self._clientGone:
            return
        self._lastWrite = self._reactor.seconds()
        if self._dump is not None:
            self._dump.clientData(data)
        self.writeToClient(data)

    def _endStream(self, last: bytes, drain: bool = False) -> None:
        """
        Write the last events and end the response; the upstream is let go.

        @param drain: the reply is complete but the upstream body may not have ended
            (C{[DONE]} usually follows the usage chunk): give it a moment to end by
            itself, so its connection goes back to the pool, before cutting it.
        """
        if self._finished:
            return
        self._write(last)
        self._finished = True
        self.cancelTimers()
        if drain and self._bodyTransport is not None:
            self.unregister()
            self._bodyTransport.resumeProducing()
            self._drainTimer = self._reactor.callLater(_DRAIN_SECONDS, self.stopUpstream)
        else:
            self.stopUpstream()
        if self._clientGone:
            return
        self.endClientBody()
        self.finishDump("complete")
        self._request.finish()


def _looksLikeSSE(body: bytes) -> bool:
    return body.lstrip().startswith((b"data:", b":", b"event:"))


_LINE_TOO_LONG = "the upstream sent an SSE line over the size limit"


def _ssePayloads(body: bytes) -> list[bytes] | None:
    """
    The data payloads of an SSE body read whole, or L{None} if a line is too long.
    """
    parser = SSEParser()
    try:
        return parser.feed(body) + parser.close()
    except SSELineTooLong:
        return None


def _feedWholeSSE(stream: ResponsesStream, body: bytes) -> bytes:
    """
    Feed an SSE body that was read whole; returns the events produced.
    """
    payloads = _ssePayloads(body)
    if payloads is None:
        return stream.fail("server_error", _LINE_TOO_LONG)
    return b"".join(stream.feed(payload).events for payload in payloads)


def _bodyFailureMessage(failure: Failure) -> str:
    if failure.check(_BodyTooLarge):
        return "the upstream reply was too large"
    return "the upstream reply was cut off"


class BridgeResource(ProxyLeaf):
    """
    The leaf in bridge mode.
    """

    exchange = _Bridge
