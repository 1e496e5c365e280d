# -*- test-case-name: tests.test_bridge_memory -*-
"""
The bridge leaf: C{POST /v1/responses} converted to a Chat Completions request, and the
chat reply converted back as it arrives.

Thin glue around the pure modules in L{responses_proxy.bridge}: the request is converted by
L{convertRequest} and sent through the same L{UpstreamExchange} as pass-through mode; the
upstream's SSE body is split by L{SSEBody} and fed, one event at a time, to a
L{ResponsesStream} whose bytes are written to the client at once. The timers here are the
only state the pure modules do not own: keep-alive events while the client would otherwise
hear nothing, the upstream silence limit, the wait for usage after C{finish_reason}, and
the short drain that lets a finished upstream connection go back to the pool.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed
from twisted.web.iweb import IRequest, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from responses_proxy.bridge.completion import (
    chunksToResponse,
    completionToResponse,
    failedResponse,
)
from responses_proxy.bridge.errors import mapUpstreamError
from responses_proxy.bridge.profiles import DEFAULT_PROFILE, Profile
from responses_proxy.bridge.request import (
    BridgeRequestError,
    ChatConversion,
    convertRequest,
    parseRequestBody,
)
from responses_proxy.bridge.state import (
    Found,
    References,
    ResolvedRequest,
    recordFor,
    referencesIn,
    resolve,
)
from responses_proxy.bridge.stream import ResponsesStream
from responses_proxy.headers import bridgeRequestHeaders, bridgeResponseHeaders
from responses_proxy.replies import encodeJSON, errorBody
from responses_proxy.sse import SSELineTooLong, SSEParser
from responses_proxy.web.bodies import BodyTooLarge, CollectBody, SniffedBody, SSEBody
from responses_proxy.web.exchange import Upstream, UpstreamExchange, requestBody
from responses_proxy.web.front import internalError
from responses_proxy.web.store import IResponseStore

_log = Logger(namespace="responses_proxy")

# Upstream error bodies and whole JSON completions are read into memory up to this.
MAX_JSON_BODY = 64 * 1024 * 1024

# After the terminal event, how long the rest of the upstream body ([DONE]) may take
# before the connection is cut instead of returned to the pool.
_DRAIN_SECONDS = 2.0


def _isEventStream(response: IResponse) -> bool:
    for value in response.headers.getRawHeaders(b"content-type", []):
        if b"text/event-stream" in value.lower():
            return True
    return False


def _looksLikeSSE(body: bytes) -> bool:
    return body.lstrip().startswith((b"data:", b":", b"event:"))


def _bodyFailureMessage(failure: Failure) -> str:
    if failure.check(BodyTooLarge):
        return "the upstream reply was too large"
    return "the upstream reply was cut off"


class _Bridge:
    """
    One bridged request.
    """

    def __init__(
        self, exchange: UpstreamExchange, profile: Profile, store: IResponseStore
    ) -> None:
        self._exchange = exchange
        self._profile = profile
        self._store = store
        self._resolved: ResolvedRequest | None = None
        self._now = 0.0
        clock, limits = exchange.clock, exchange.limits
        self._conversion: ChatConversion | None = None
        self._stream: ResponsesStream | None = None
        self._finished = False
        self._keepAlive = clock.deadline(limits.keepAliveInterval, self._keepAliveDue)
        self._silence = clock.deadline(limits.streamIdleTimeout, self._silenceDue)
        self._noData = clock.deadline(limits.streamDataTimeout, self._noDataDue)
        self._tail = clock.deadline(limits.tailWait, self._tailDue)
        self._drain = clock.deadline(_DRAIN_SECONDS, exchange.stopUpstream)
        exchange.whenClientGone(self._clientGone)

    def _stopTimers(self) -> None:
        for deadline in (self._keepAlive, self._silence, self._noData, self._tail):
            deadline.cancel()

    def _clientGone(self) -> None:
        self._stopTimers()
        self._drain.cancel()

    # -- request ---------------------------------------------------------------------------

    def start(self) -> None:
        """
        Parse the request and look up the stored state it refers to, if any.
        """
        exchange = self._exchange
        raw = requestBody(exchange.request).read()
        try:
            request = parseRequestBody(raw)
            references = referencesIn(request)
        except BridgeRequestError as e:
            self._refuse(raw, e)
            return
        if not references.needsLookup():
            self._convert(raw, request, references, Found())
            return
        d = self._store.load(references)
        d.addCallbacks(
            lambda found: self._convert(raw, request, references, found),
            lambda failure: self._storeFailed(raw, failure),
        ).addErrback(self._bug)

    def _refuse(self, raw: bytes, error: BridgeRequestError) -> None:
        exchange = self._exchange
        _log.info("bridge refused the request: {message}", message=error.message)
        self._dumpRequest(raw)
        self._finished = True
        exchange.sendError(400, encodeJSON(error.errorBody()))
        exchange.finishDump("bad_request")

    def _dumpRequest(
        self,
        raw: bytes,
        upstreamBody: bytes | None = None,
        upstreamHeaders: list[tuple[bytes, list[bytes]]] | None = None,
    ) -> None:
        """
        The C{--dump-dir} request file: the client's request, and the chat request it
        became (if it became one).
        """
        exchange = self._exchange
        if exchange.dump is None:
            return
        client = exchange.request
        exchange.dump.writeRequest(
            client.method,
            client.uri,
            list(client.requestHeaders.getAllRawHeaders()),
            raw,
            exchange.upstream.url,
            upstreamBody=upstreamBody,
            upstreamHeaders=upstreamHeaders,
        )

    def _storeFailed(self, raw: bytes, failure: Failure) -> None:
        """
        The store could not answer (never reported as "not found": that would be a lie).
        """
        _log.failure("the response store failed", failure=failure)
        if self._exchange.clientGone:
            return
        self._answerError(500, "the bridge's response store failed", "server_error")

    def _convert(
        self, raw: bytes, request: dict[str, Any], references: References, found: Found
    ) -> None:
        exchange = self._exchange
        if exchange.clientGone:
            return
        try:
            resolved = resolve(request, references, found)
            conversion = convertRequest(resolved.body, self._profile, resolved=True)
        except BridgeRequestError as e:
            self._refuse(raw, e)
            return
        for note in conversion.dropped:
            _log.debug("bridge dropped {note}", note=note)
        self._resolved = resolved
        self._conversion = conversion
        upstream = exchange.upstream
        body = encodeJSON(conversion.body)
        pairs = bridgeRequestHeaders(
            exchange.request.requestHeaders.getAllRawHeaders(),
            upstream.authorization.value,
            conversion.context.stream,
        )
        self._dumpRequest(raw, body, pairs)
        d = exchange.send(pairs, upstream.client.bodyProducer(io.BytesIO(body)))
        d.addCallback(self._gotResponse).addErrback(self._bug)

    def _keep(self, response: dict[str, Any] | None) -> None:
        """
        Store a finished response (when its request allows it) for later
        C{previous_response_id} and C{item_reference} lookups.
        """
        if response is None or self._resolved is None:
            return
        record = recordFor(self._resolved, response, self._exchange.redactor.redact)
        if record is not None:
            self._store.save(record).addErrback(
                lambda f: _log.failure("could not store a response", failure=f)
            )

    # -- response --------------------------------------------------------------------------

    def _gotResponse(self, response: IResponse | None) -> None:
        if response is None:
            return
        exchange = self._exchange
        exchange.setResponseHeaders(bridgeResponseHeaders(response.headers.getAllRawHeaders()))
        if not 200 <= response.code < 300:
            self._collect(response, lambda body: self._upstreamError(response, body))
            return
        assert self._conversion is not None
        context = self._conversion.context
        if not context.stream:
            self._collect(response, lambda body: self._wholeReply(response, body))
            return
        self._stream = ResponsesStream(context)
        request = exchange.request
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        self._write(self._stream.start())
        self._keepAlive.start()
        self._silence.start()
        self._noData.start()
        if _isEventStream(response):
            response.deliverBody(self._streamBody())
        else:
            response.deliverBody(
                SniffedBody(
                    exchange.holdBody,
                    self._streamBody,
                    lambda: self._collector(self._streamedJSON, exchange.streamBody),
                )
            )

    def _streamBody(self) -> SSEBody:
        body = SSEBody(self._exchange.streamBody, self._upstreamBytes, self._streamData)
        body.finished.addCallbacks(self._streamEnded, self._streamBroken).addErrback(self._bug)
        return body

    def _bug(self, failure: Failure) -> None:
        """
        A bug in this glue: log it, end the client's request, drop the upstream.
        """
        exchange = self._exchange
        exchange.stopUpstream()
        self._stopTimers()
        if self._stream is not None and not self._finished and not exchange.clientGone:
            _log.failure("internal error in the bridge", failure=failure)
            self._endStream(self._stream.fail("server_error", "internal proxy error"))
            return
        self._finished = True
        internalError(exchange.request, failure)

    def _collect(self, response: IResponse, then: Callable[[bytes], None]) -> None:
        """
        Read a whole error body or C{stream: false} reply, then call C{then}. An upstream
        that stops sending it for the silence limit gets a 504, not an endless wait.
        """
        self._silence.start()
        response.deliverBody(self._collector(then, self._exchange.holdBody))

    def _collector(
        self, then: Callable[[bytes], None], started: Callable[..., None]
    ) -> CollectBody:
        """
        A protocol reading a whole bounded body, then calling C{then} with it; its bytes
        count as upstream activity for the silence limit.
        """
        collector = CollectBody(MAX_JSON_BODY, started, self._upstreamBytes)
        collector.finished.addBoth(self._collected)
        collector.finished.addCallbacks(then, self._collectFailed).addErrback(self._bug)
        return collector

    def _collected(self, result: object) -> object:
        self._silence.cancel()
        self._exchange.bodyDone()
        return result

    def _silenceDue(self) -> None:
        exchange = self._exchange
        if self._finished or exchange.clientGone:
            return
        limit = self._silence.seconds
        _log.info("upstream silent for {seconds:.0f} s; giving up on it", seconds=limit)
        exchange.stopUpstream()
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

    def _noDataDue(self) -> None:
        stream = self._stream
        if self._finished or self._exchange.clientGone or stream is None:
            return
        limit = self._noData.seconds
        _log.info("upstream sent no data for {seconds:.0f} s; giving up on it", seconds=limit)
        self._exchange.stopUpstream()
        self._endStream(
            stream.fail(
                "server_error",
                f"the upstream sent only keep-alive comments, no data, for {limit:.0f} seconds",
            )
        )

    def _answerError(self, status: int, message: str, code: str) -> None:
        """
        End the client's request with a JSON error of the proxy's own.
        """
        self._finished = True
        self._exchange.sendError(status, errorBody(message, "proxy_error", code))
        self._exchange.finishDump(code)

    def _collectFailed(self, failure: Failure) -> None:
        if self._exchange.clientGone or self._finished:
            return
        if self._stream is not None:
            self._endStream(self._stream.fail("server_error", _bodyFailureMessage(failure)))
            return
        self._answerError(502, _bodyFailureMessage(failure), "upstream_error")

    def _upstreamError(self, response: IResponse, body: bytes) -> None:
        exchange = self._exchange
        if exchange.clientGone:
            return
        retryAfter = response.headers.getRawHeaders(b"retry-after")
        status, document = mapUpstreamError(
            response.code, body, retryAfter[0].decode("latin-1") if retryAfter else None
        )
        _log.info(
            "upstream answered {status} ({code})",
            status=response.code,
            code=document.get("error", {}).get("code"),
        )
        self._finished = True
        exchange.sendError(status, encodeJSON(document))
        exchange.finishDump("complete")

    def _wholeReply(self, response: IResponse, body: bytes) -> None:
        """
        C{stream: false}: one chat completion (or an SSE body, if the upstream streamed
        anyway) becomes one Responses object.
        """
        exchange = self._exchange
        if exchange.clientGone:
            return
        assert self._conversion is not None
        context = self._conversion.context
        healed: list[str] = []
        if _isEventStream(response) or _looksLikeSSE(body):
            payloads = _ssePayloads(body)
            if payloads is None:
                document = failedResponse(context, "server_error", _LINE_TOO_LONG)
            else:
                document = chunksToResponse(context, payloads, healed=healed)
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
            document = completionToResponse(context, completion, healed=healed)
        _logHealed(healed)
        self._keep(document)
        payload = exchange.redactor.redact(encodeJSON(document))
        if exchange.dump is not None:
            exchange.dump.clientData(payload)
        self._finished = True
        exchange.finishDump("complete")
        request = exchange.request
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-length", b"%d" % len(payload))
        request.write(payload)
        request.finish()

    def _streamedJSON(self, body: bytes) -> None:
        """
        A 2xx reply to a streaming request that is not SSE: convert its JSON.
        """
        stream = self._stream
        if self._exchange.clientGone or stream is None or stream.done:
            return
        try:
            completion = json.loads(body)
        except ValueError:
            if _looksLikeSSE(body):
                self._write(_feedWholeSSE(stream, body))
                self._endStream(stream.end())
                return
            completion = None
        if not isinstance(completion, dict):
            self._endStream(stream.fail("server_error", "upstream reply is neither SSE nor JSON"))
            return
        self._endStream(stream.feedCompletion(completion))

    # -- the streaming path ----------------------------------------------------------------

    def _upstreamBytes(self, data: bytes) -> None:
        """
        Any bytes of the stream, comments included: llama.cpp servers send only C{: ping}
        while they evaluate a long prompt, and that is life, not silence.
        """
        # One clock read per read serves the deadlines this read's events touch.
        self._now = now = self._exchange.clock.monotonic()
        self._silence.touch(now)
        if self._exchange.dump is not None:
            self._exchange.dump.upstreamData(data)

    def _streamData(self, payload: bytes) -> None:
        stream = self._stream
        if stream is None or stream.done or self._exchange.clientGone:
            return
        self._noData.touch(self._now)
        step = stream.feed(payload)
        if step.events:
            self._write(step.events)
        if step.done:
            self._endStream(b"", drain=True)
        elif step.tailStarted:
            self._tail.start()

    def _streamEnded(self, _: None) -> None:
        if self._finished:
            self._drained()
            return
        if self._stream is not None and not self._exchange.clientGone:
            self._endStream(self._stream.end())

    def _streamBroken(self, failure: Failure) -> None:
        if self._finished:
            self._drained()
            return
        stream = self._stream
        if stream is None or self._exchange.clientGone or stream.done:
            return
        if failure.check(SSELineTooLong):
            out = stream.fail("server_error", _LINE_TOO_LONG)
        elif not failure.check(ResponseFailed, ConnectionLost, ConnectionDone):
            self._bug(failure)
            return
        else:
            # A cut body is still an end: end() decides from the finish_reason seen.
            _log.info("upstream stream ended abnormally")
            out = stream.end()
        self._endStream(out)

    def _drained(self) -> None:
        """
        The upstream body ended after the client's response: nothing left to cut.
        """
        self._drain.cancel()
        self._exchange.bodyDone()

    def _keepAliveDue(self) -> None:
        stream = self._stream
        if stream is None or stream.done or self._exchange.clientGone:
            return
        self._write(stream.keepAlive())
        self._keepAlive.start()

    def _tailDue(self) -> None:
        stream = self._stream
        if stream is None or stream.done or self._exchange.clientGone:
            return
        self._exchange.stopUpstream()
        self._endStream(stream.end())

    def _write(self, data: bytes) -> None:
        exchange = self._exchange
        if not data or exchange.clientGone:
            return
        # Writes come from an upstream read (self._now is its time) or from a timer that
        # restarts or stops the keep-alive itself.
        self._keepAlive.touch(self._now)
        if exchange.dump is not None:
            exchange.dump.clientData(data)
        exchange.write(data)

    def _endStream(self, last: bytes, drain: bool = False) -> None:
        """
        Write the last events and end the response; the upstream is let go.

        @param drain: the reply is complete but the upstream body may not have ended
            (C{[DONE]} usually follows the usage chunk): give it a moment to end by
            itself, so its connection goes back to the pool, before cutting it.
        """
        if self._finished:
            return
        exchange = self._exchange
        self._write(last)
        self._finished = True
        self._stopTimers()
        if self._stream is not None:
            _logHealed(self._stream.healed)
            self._keep(self._stream.response)
        if drain:
            exchange.drainBody()
            self._drain.start()
        else:
            exchange.stopUpstream()
        if exchange.clientGone:
            return
        exchange.finishDump("complete")
        exchange.finish()


_LINE_TOO_LONG = "the upstream sent an SSE line over the size limit"


def _logHealed(formats: list[str]) -> None:
    """
    One line per response that had tool calls written as text (bridge-spec section 6).
    """
    if formats:
        _log.info(
            "bridge turned tool calls written as text into calls ({formats})",
            formats=", ".join(formats),
        )


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
    Feed an SSE body that was read whole (a 2xx reply to a streaming request, mislabelled);
    returns the events produced.
    """
    payloads = _ssePayloads(body)
    if payloads is None:
        return stream.fail("server_error", _LINE_TOO_LONG)
    return b"".join(stream.feed(payload).events for payload in payloads)


class BridgeLeaf(Resource):
    """
    The leaf at C{/v1/responses} in bridge mode.
    """

    isLeaf = True

    def __init__(
        self, upstream: Upstream, store: IResponseStore, profile: Profile = DEFAULT_PROFILE
    ) -> None:
        """
        @param store: where responses are kept for C{previous_response_id} and
            C{item_reference} (bridge-spec section 5).
        @param profile: what is known about the upstream's quirks (its host's profile, or
            C{--provider-config}).
        """
        super().__init__()
        self._upstream = upstream
        self._store = store
        self._profile = profile

    def render(self, request: IRequest) -> int:
        _Bridge(self._upstream.open(request), self._profile, self._store).start()
        return NOT_DONE_YET
