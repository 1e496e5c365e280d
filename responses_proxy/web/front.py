# -*- test-case-name: tests.test_front -*-
"""
The strict HTTP front: the channel's limits, admission, the resource tree, and the one way
an error is written to a client.

Twisted's own request processing decodes the path, short-cuts C{*}, adds C{Server} and a
default C{Content-Type}, sends C{100 Continue} to any request, and has no header deadline,
body deadline or body cap. The classes here keep Twisted's parser and resource dispatch but
decide on the raw request line (L{admission.admit}), so nothing a decoder would accept gets
past the allow-list. They override only public hooks of C{HTTPChannel} and C{Request}.
"""

from __future__ import annotations

import io
import tempfile
import time
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, ITCPTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from responses_proxy import admission
from responses_proxy.config import MEMORY_BODY_MAX, Limits
from responses_proxy.framing import ChunkedCheck, HeadCheck
from responses_proxy.replies import errorBody, rawResponse
from responses_proxy.web._sendnow import sendNow
from responses_proxy.web.timers import Clock

_log = Logger(namespace="responses_proxy")

_MAX_TARGET_LOG = 200


def bodyBuffer(length: int | None) -> Any:
    """
    Where a request body of this declared length (L{None}: chunked) is kept while it
    arrives: in memory up to L{MEMORY_BODY_MAX}, else in a temporary file.
    """
    if length is None:
        return tempfile.SpooledTemporaryFile(max_size=MEMORY_BODY_MAX)
    if length <= MEMORY_BODY_MAX:
        return io.BytesIO()
    return tempfile.TemporaryFile()


# A read holding a request's head and more than this much after it is split in two (see
# StrictHTTPChannel.dataReceived); below it the copies cost less than the extra call.
_SPLIT_AFTER_HEAD = 2048


def _text(value: bytes, limit: int = _MAX_TARGET_LOG) -> str:
    return value[:limit].decode("ascii", "backslashreplace")


def writeError(request: IRequest, status: int, body: bytes) -> None:
    """
    Answer a request with a JSON error body and finish it (nothing if it is over).
    """
    if request.finished or getattr(request, "clientGone", False):
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()


def internalError(request: IRequest, failure: Failure) -> None:
    """
    The last errback of every chain that answers a client: a bug must end the client's
    request (500, or a cut connection once a body has started), never leave it hanging.
    The failure is logged without local variables.
    """
    _log.failure("internal error while handling a request", failure=failure)
    if request.finished or getattr(request, "clientGone", False):
        return
    if request.startedWriting:
        request.loseConnection()
        return
    writeError(
        request,
        http.INTERNAL_SERVER_ERROR,
        errorBody("internal proxy error", "server_error", "server_error"),
    )


def forbid(request: IRequest) -> bytes:
    """
    The empty 403 of the original.
    """
    request.setResponseCode(http.FORBIDDEN)
    request.setHeader(b"content-length", b"0")
    return b""


class Forbidden(Resource):
    """
    A leaf that refuses every method on every sub-path (only reached if the tree and
    L{admission.admit} ever disagree).
    """

    isLeaf = True

    def render(self, request: IRequest) -> bytes:
        return forbid(request)


class StrictNode(Resource):
    """
    An inner node: only its explicit children exist; a direct hit is refused.
    """

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        return Forbidden()

    def render(self, request: IRequest) -> bytes:
        return forbid(request)


def buildRoot(responses: IResource, shutdown: IResource | None) -> Resource:
    """
    The tree: C{/v1/responses} and, with C{--http-shutdown}, C{/shutdown}.
    """
    root = StrictNode()
    v1 = StrictNode()
    root.putChild(b"v1", v1)
    v1.putChild(b"responses", responses)
    if shutdown is not None:
        root.putChild(b"shutdown", shutdown)
    return root


class StrictRequest(server.Request):
    """
    A request admitted on its raw request line and headers before the tree sees it.

    @ivar upstreamStatus: the upstream's status, for the access log line.
    @ivar clientGone: the client went away before the response was finished.
    @ivar refusal: why the request was refused, for the access log line.
    """

    defaultContentType = None
    upstreamStatus: int | None = None
    clientGone = False
    refusal: str | None = None
    _started: float = 0.0
    _bodySize = 0

    def gotLength(self, length: int | None) -> None:
        self._started = time.monotonic()
        self.content = bodyBuffer(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._bodySize += len(data)
        channel = self.channel
        if isinstance(channel, StrictHTTPChannel) and self._bodySize > channel.limits.maxBodyBytes:
            channel.refuseBodyTooLarge()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        self.site = self.channel.site
        self.notifyFinish().addBoth(self._ended)
        headers = self.requestHeaders
        refused = admission.admit(
            self.method,
            self.uri,
            headers.getRawHeaders(b"host"),
            headers.hasHeader(b"origin"),
            headers.hasHeader(b"sec-fetch-site"),
            self.site.shutdownEnabled,
        )
        if refused is not None:
            self.refusal = refused.reason
            self.setResponseCode(refused.status)
            self.setHeader(b"content-length", b"0")
            self.finish()
            return
        self.prepath = []
        # Raw segments: no percent-decoding (admit() already matched the exact target).
        self.postpath = self.path[1:].split(b"/")
        try:
            self.render(self.site.getResourceFor(self))
        except BaseException:
            self.processingFailed(Failure())

    def processingFailed(self, reason: Failure) -> None:
        """
        A bug: log it (no locals are captured) and answer 500 without detail.
        """
        internalError(self, reason)

    def _ended(self, result: object) -> None:
        """
        The access log line. It is rendered here (an f-string), and the event's format is
        just C{{line}}: Twisted's formatter parses a format in Python, and seven fields
        with a format spec made the line a tenth of a small request's CPU. The fields are
        still in the event for other observers.
        """
        if isinstance(result, Failure):
            self.clientGone = True
        method = _text(self.method)
        target = _text(self.uri)
        duration = time.monotonic() - self._started if self._started else 0.0
        upstream = self.upstreamStatus if self.upstreamStatus is not None else "-"
        refusal = f" refused: {self.refusal}" if self.refusal else ""
        _log.info(
            "{line}",
            line=f"{method} {target} {self.code} {self.sentLength}B {duration:.3f}s "
            f"upstream={upstream}{refusal}",
            method=method,
            target=target,
            status=self.code,
            bytesOut=self.sentLength,
            duration=duration,
            upstream=upstream,
            refusal=refusal,
            disconnected=self.clientGone,
        )


class StrictHTTPChannel(http.HTTPChannel):
    """
    An HTTP/1.1 channel with the limits Twisted does not have: a deadline for the request
    line and headers, an idle deadline while a body is being sent, a body size cap and an
    idle deadline between requests, all on the monotonic clock. C{100 Continue} is only
    sent to requests that could be accepted.

    The request line is parsed here as it arrives (Twisted keeps its own parse private),
    so admission can be decided before the body is read.
    """

    limits: Limits = Limits()
    clock: Clock
    _refused = False
    _busy = False
    _head: HeadCheck | None = None
    _chunked: ChunkedCheck | None = None
    _receivingBody = False
    _bodyStart = 0.0
    _bodyBytes = 0
    _bodyLength: int | None = 0
    _requestLine: tuple[bytes, bytes, bytes] = (b"-", b"-", b"-")

    def __init__(self) -> None:
        super().__init__()
        self._closedWaiters: list[Deferred[None]] = []

    def connectionMade(self) -> None:
        limits = self.limits
        self._headerDeadline = self.clock.deadline(limits.headerTimeout, self._tooSlow)
        self._bodyDeadline = self.clock.deadline(limits.bodyIdleTimeout, self._tooSlow)
        self._rateDeadline = self.clock.deadline(limits.bodyRateGrace, self._checkRate)
        self._idleDeadline = self.clock.deadline(limits.idleTimeout, self._idle)
        self._abortDeadline = self.clock.deadline(self.abortTimeout, self._forceClose)
        super().connectionMade()
        self._idleDeadline.start()

    _host: IAddress | None = None

    def getHost(self) -> IAddress:
        """
        The local address, asked of the socket once per connection (Twisted's request
        asks for it on every request, a system call each time; it cannot change).
        """
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def notifyClosed(self) -> Deferred[None]:
        """
        A L{Deferred} that fires when the connection is closed.
        """
        d: Deferred[None] = Deferred()
        self._closedWaiters.append(d)
        return d

    def dataReceived(self, data: bytes) -> None:
        """
        A read that holds a whole request head and a large body after it is handed on as
        two reads, the head and then the body, which is the same byte stream. Twisted's
        line parser copies everything left in its buffer for every line it takes off, so
        a 40 KB Codex request read at once was copied twenty times (once per header line)
        before its body was reached.
        """
        if self.line_mode and len(data) > _SPLIT_AFTER_HEAD:
            end = data.find(b"\r\n\r\n") + 4
            if 4 <= end < len(data) - _SPLIT_AFTER_HEAD:
                self._received(data[:end])
                data = data[end:]
        self._received(data)

    def _received(self, data: bytes) -> None:
        transport = self.transport
        if self._refused or transport is None or transport.disconnecting:
            # Twisted refused the request itself (a raw 400) and is closing: nothing more
            # is read, as a TCP transport stops reading once it is told to close.
            return
        if not self._busy:
            # A request begins: its own deadlines replace the idle one until the whole
            # request has arrived.
            self._busy = True
            self._idleDeadline.stop()
            self._headerDeadline.start()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        head = self._head
        if head is None:
            if line:
                parts = line.split(b" ")
                if len(parts) == 3:
                    self._requestLine = (parts[0], parts[1], parts[2])
                self._head = HeadCheck(self._requestLine[2])
        elif line:
            problem = head.line(line)
            if problem is not None:
                self._badRequest(problem)
                return
        else:
            self._head = None
            problem = head.end()
            if problem is not None:
                self._badRequest(problem)
                return
            self._chunked = ChunkedCheck() if head.contentLength is None else None
            self._bodyLength = head.contentLength
        super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        self._headerDeadline.stop()
        request = self.requests[-1]
        length = self._bodyLength
        if length is not None and length > self.limits.maxBodyBytes:
            self.refuseBodyTooLarge()
            return
        headers = request.requestHeaders
        if headers.hasHeader(b"expect") and not self._couldAccept(request):
            # Twisted answers "Expect: 100-continue" itself; a request that will be
            # refused must not be invited to send its body.
            headers.removeHeader(b"expect")
        super().allHeadersReceived()
        if length != 0:
            self._receivingBody = True
            self._bodyStart = self.clock.monotonic()
            self._bodyBytes = 0
            self._bodyDeadline.start()
            self._rateDeadline.start()

    def _couldAccept(self, request: http.Request) -> bool:
        method, target, _ = self._requestLine
        headers = request.requestHeaders
        return (
            admission.admit(
                method,
                target,
                headers.getRawHeaders(b"host"),
                headers.hasHeader(b"origin"),
                headers.hasHeader(b"sec-fetch-site"),
                self.site.shutdownEnabled,
            )
            is None
        )

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._receivingBody:
            self._bodyDeadline.touch()
            self._bodyBytes += len(data)
            if self._chunked is not None:
                problem = self._chunked.feed(data)
                if problem is not None:
                    self._badRequest(problem)
                    return
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self._refused:
            return
        self._receivingBody = False
        self._chunked = None
        self._bodyDeadline.stop()
        self._rateDeadline.stop()
        super().allContentReceived()

    def _checkRate(self) -> None:
        """
        The body must average at least C{bodyMinRate} bytes per second after the grace;
        check again when, without more bytes, it would fall below.
        """
        if not self._receivingBody:
            return
        rate = self.limits.bodyMinRate
        elapsed = self.clock.monotonic() - self._bodyStart
        if self._bodyBytes < rate * elapsed:
            self._tooSlow()
            return
        self._rateDeadline.start(max(0.5, self._bodyBytes / rate - elapsed))

    def requestDone(self, request: http.Request) -> None:
        # The response is complete: its last bytes leave before the bookkeeping that
        # follows (the next request's set-up, the access log line, the upstream
        # connection going back to the pool).
        sendNow(self.transport)
        self._busy = False
        super().requestDone(request)
        if not self._busy and self.persistent and self.transport is not None:
            self._idleDeadline.start()

    def refuseBodyTooLarge(self) -> None:
        """
        The body is, or has grown, over the cap: answer 413 before it is forwarded.
        """
        self._refuse(
            413,
            b"Payload Too Large",
            errorBody(
                f"request body exceeds {self.limits.maxBodyBytes} bytes",
                "invalid_request_error",
                "request_too_large",
            ),
        )

    def _tooSlow(self) -> None:
        self._refuse(408, b"Request Timeout")

    def _badRequest(self, problem: str) -> None:
        self._refuse(
            400,
            b"Bad Request",
            errorBody(f"bad request: {problem}", "invalid_request_error", "bad_request"),
            problem,
        )

    def _idle(self) -> None:
        self._closeAndWatch()

    def _refuse(
        self, status: int, phrase: bytes, body: bytes = b"", reason: str | None = None
    ) -> None:
        """
        Answer from the channel itself and close: the request never reaches the tree.
        """
        if self._refused:
            return
        self._refused = True
        self._stopDeadlines()
        self.transport.write(rawResponse(status, phrase, body))
        method, target, _ = self._requestLine
        _log.info(
            "{method} {target} {status} refused by the channel{why}",
            method=_text(method),
            target=_text(target),
            status=status,
            why=f": {reason}" if reason else "",
        )
        self._closeAndWatch(halfClose=True)

    def _closeAndWatch(self, halfClose: bool = False) -> None:
        """
        Close the connection, and force it shut if the client never lets go.

        @param halfClose: send FIN after the reply but keep reading, so a client still
            sending its body reads the answer instead of a reset.
        """
        self._abortDeadline.start()
        transport = self.transport
        if transport is None or getattr(transport, "disconnecting", False):
            return
        if halfClose and ITCPTransport.providedBy(transport):
            transport.unregisterProducer()
            transport.loseWriteConnection()
        else:
            self.loseConnection()

    def _forceClose(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()

    def _stopDeadlines(self) -> None:
        # Between requests the deadlines are only stopped (their wake-ups are reused by
        # the next request); a closing connection drops them.
        self._headerDeadline.cancel()
        self._bodyDeadline.cancel()
        self._rateDeadline.cancel()
        self._idleDeadline.cancel()

    def connectionLost(self, reason: Failure) -> None:
        self._stopDeadlines()
        self._abortDeadline.cancel()
        super().connectionLost(reason)
        waiters, self._closedWaiters = self._closedWaiters, []
        for d in waiters:
            d.callback(None)


class StrictSite(server.Site):
    """
    A site speaking only HTTP/1.x through L{StrictHTTPChannel}, with no access log of its
    own (the request logs one line itself), no Twisted idle timer (the channel keeps its
    own, monotonic) and no form parsing.

    @ivar shutdownEnabled: whether C{GET /shutdown} is admitted.
    """

    protocol = StrictHTTPChannel  # type: ignore[assignment]
    requestFactory = StrictRequest
    noisy = False
    displayTracebacks = False

    def __init__(
        self, root: IResource, limits: Limits, clock: Clock, shutdownEnabled: bool
    ) -> None:
        # No form parsing: a multipart body must be forwarded as bytes, not refused.
        super().__init__(root, timeout=None, reactor=clock.reactor, parsePOSTFormSubmission=False)
        self.limits = limits
        self.clock = clock
        self.shutdownEnabled = shutdownEnabled

    def buildProtocol(self, addr: Any) -> StrictHTTPChannel:
        channel = super().buildProtocol(addr)
        channel.limits = self.limits
        channel.clock = self.clock
        return channel

    def log(self, request: Any) -> None:
        """
        No combined-log-format line; L{StrictRequest} logs its own.
        """
