# -*- test-case-name: tests.test_resource -*-
"""
The strict HTTP front: channel limits, the request's admission check, and the
resource tree.

Twisted's own request processing decodes the path, short-cuts C{*}, adds C{Server} and
a default C{Content-Type}, and has no header deadline, body deadline or body cap. The
classes here keep Twisted's parser and resource dispatch but decide on the raw request
line, so nothing a decoder would accept gets past the allow-list.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from responses_proxy import policy
from responses_proxy.config import Limits

_log = Logger(namespace="responses_proxy")

# Twisted keeps request bodies under this size in memory, larger ones in a temp file.
_MAX_TARGET_LOG = 200


def errorBody(message: str, type: str, code: str | None, param: str | None = None) -> bytes:
    """
    A Responses-style JSON error: C{{"error": {"message", "type", "code", "param"}}}.
    """
    return json.dumps(
        {"error": {"message": message, "type": type, "code": code, "param": param}}
    ).encode("utf-8")


def sendError(request: IRequest, status: int, body: bytes) -> None:
    """
    Answer a request with a JSON error body and finish it.
    """
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()


def internalError(request: IRequest, failure: Failure) -> None:
    """
    The last errback of every chain that answers a client: a bug must end the
    client's request (500, or a cut connection once a body has started), never
    leave it hanging. The failure is logged without local variables.
    """
    _log.failure("internal error while handling a request", failure=failure)
    if getattr(request, "finished", False) or getattr(request, "_disconnected", False):
        return
    if getattr(request, "startedWriting", False):
        request.loseConnection()
        return
    sendError(
        request,
        http.INTERNAL_SERVER_ERROR,
        errorBody("internal proxy error", "server_error", "server_error"),
    )


def forbid(request: IRequest) -> bytes:
    """
    The empty 403 of the original, for everything that is not allowed.
    """
    request.setResponseCode(http.FORBIDDEN)
    request.setHeader(b"content-length", b"0")
    return b""


class Forbidden(Resource):
    """
    A leaf that refuses every method on every sub-path.
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


class ShutdownResource(Resource):
    """
    C{GET /shutdown}: answer 200, and stop the reactor once the reply has left.

    The stop waits for the client connection to close (the reply is sent with
    C{Connection: close}), because stopping the reactor drops unflushed buffers; a
    short fallback covers a client that never closes.
    """

    isLeaf = True

    def __init__(self, clock: IReactorTime, stop: Callable[[], None], grace: float = 2.0) -> None:
        super().__init__()
        self._clock = clock
        self._stop = stop
        self._grace = grace
        self._stopping = False

    def render(self, request: IRequest) -> bytes:
        if not policy.isShutdownRequest(request.method, request.uri):
            return forbid(request)
        request.setHeader(b"connection", b"close")
        request.setHeader(b"content-length", b"0")
        channel = getattr(request, "channel", None)
        if channel is not None:
            channel.persistent = False
        if isinstance(channel, StrictHTTPChannel):
            channel.notifyClosed().addBoth(lambda _: self._stopOnce())
        self._clock.callLater(self._grace, self._stopOnce)
        _log.info("shutdown requested over HTTP")
        return b""

    def _stopOnce(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._stop()


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


def headerRefusal(headers: Any) -> str | None:
    """
    L{policy.refusalReason} for a request's L{Headers}.
    """
    return policy.refusalReason(
        headers.getRawHeaders(b"host"),
        headers.hasHeader(b"origin"),
        headers.hasHeader(b"sec-fetch-site"),
    )


class StrictRequest(server.Request):
    """
    A request that is admitted on its raw request line and headers.

    @ivar upstreamStatus: the upstream's status, for the access log line.
    """

    defaultContentType = None
    upstreamStatus: int | None = None
    _started: float = 0.0
    _bodySize = 0

    def gotLength(self, length: int | None) -> None:
        self._started = time.monotonic()
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._bodySize += len(data)
        channel = self.channel
        if isinstance(channel, StrictHTTPChannel) and self._bodySize > channel.limits.maxBodyBytes:
            channel.refuseBodyTooLarge()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        self.site = self.channel.site
        self.notifyFinish().addBoth(self._logLine)
        reason = headerRefusal(self.requestHeaders)
        if reason is not None or not self.uri.startswith(b"/"):
            # Includes "*" and the absolute form; never reaches the tree.
            self.write(forbid(self))
            self.finish()
            return
        self.prepath = []
        # Raw segments: no percent-decoding, so /v1/%72esponses is a different path.
        self.postpath = self.path[1:].split(b"/")
        try:
            resrc = self.site.getResourceFor(self)
            self.render(resrc)
        except BaseException:
            self.processingFailed(Failure())

    def processingFailed(self, reason: Failure) -> None:
        """
        A bug: log the failure (no locals are captured) and answer 500 without detail.
        """
        _log.failure("request processing failed", failure=reason)
        if self.finished or self._disconnected:
            return
        if self.startedWriting:
            self.loseConnection()
            return
        body = errorBody("internal proxy error", "server_error", "server_error")
        self.setResponseCode(http.INTERNAL_SERVER_ERROR)
        self.responseHeaders.setRawHeaders(b"content-type", [b"application/json"])
        self.responseHeaders.setRawHeaders(b"content-length", [b"%d" % len(body)])
        self.write(body)
        self.finish()

    def _logLine(self, result: Any) -> None:
        target = self.uri[:_MAX_TARGET_LOG].decode("ascii", "backslashreplace")
        _log.info(
            "{method} {target} {status} {bytesOut}B {duration:.3f}s upstream={upstream}",
            method=self.method.decode("ascii", "backslashreplace"),
            target=target,
            status=self.code,
            bytesOut=self.sentLength,
            duration=time.monotonic() - self._started if self._started else 0.0,
            upstream=self.upstreamStatus if self.upstreamStatus is not None else "-",
            disconnected=isinstance(result, Failure),
        )


class StrictHTTPChannel(http.HTTPChannel):
    """
    An HTTP/1.1 channel with the limits Twisted does not have: a deadline for the
    request line and headers, an idle deadline while a body is being sent, and a body
    size cap. C{100 Continue} is only sent to requests that could be accepted.
    """

    limits: Limits = Limits()
    _headerTimer: IDelayedCall | None = None
    _bodyTimer: IDelayedCall | None = None
    _savedIdle: float | None = None
    _refused = False

    def __init__(self) -> None:
        super().__init__()
        self._closedWaiters: list[Deferred[None]] = []

    def notifyClosed(self) -> Deferred[None]:
        """
        A L{Deferred} that fires when the connection is closed.
        """
        d: Deferred[None] = Deferred()
        self._closedWaiters.append(d)
        return d

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._handlingRequest and self._headerTimer is None and self._bodyTimer is None:
            # A request begins: its own deadlines replace the idle timeout until the
            # whole request has arrived.
            self._savedIdle = self.setTimeout(None)
            self._headerTimer = self.callLater(self.limits.headerTimeout, self._headersTooSlow)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        self._cancel("_headerTimer")
        req = self.requests[-1]
        length = self.length
        if length is not None and length > self.limits.maxBodyBytes:
            self.refuseBodyTooLarge()
            return
        self.persistent = self.checkPersistence(req, self._version)
        req.gotLength(length)
        expect = req.requestHeaders.getRawHeaders(b"expect")
        if (
            expect
            and expect[0].lower() == b"100-continue"
            and self._version == b"HTTP/1.1"
            and self._couldAccept(req)
        ):
            self._send100Continue()
        if length != 0:
            self._bodyTimer = self.callLater(self.limits.bodyIdleTimeout, self._bodyTooSlow)

    def _couldAccept(self, req: http.Request) -> bool:
        method, target = self._command, self._path
        allowed = policy.isResponsesRequest(method, target) or policy.isShutdownRequest(
            method, target
        )
        return allowed and headerRefusal(req.requestHeaders) is None

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._bodyTimer is not None:
            self._bodyTimer.reset(self.limits.bodyIdleTimeout)
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self._refused:
            return
        self._cancel("_bodyTimer")
        if self._savedIdle is not None:
            # Hand the idle timeout back so Twisted saves it for after the response.
            self.setTimeout(self._savedIdle)
            self._savedIdle = None
        super().allContentReceived()

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

    def _headersTooSlow(self) -> None:
        self._headerTimer = None
        self._refuse(408, b"Request Timeout", b"")

    def _bodyTooSlow(self) -> None:
        self._bodyTimer = None
        self._refuse(408, b"Request Timeout", b"")

    def _refuse(self, code: int, phrase: bytes, body: bytes) -> None:
        """
        Answer from the channel itself and close: the request never reaches the tree.
        """
        if self._refused:
            return
        self._refused = True
        self._cancel("_headerTimer")
        self._cancel("_bodyTimer")
        head = b"HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: %d\r\n" % (
            code,
            phrase,
            len(body),
        )
        if body:
            head += b"Content-Type: application/json\r\n"
        self.transport.write(head + b"\r\n" + body)
        command = getattr(self, "_command", b"-")
        target = getattr(self, "_path", b"-")
        _log.info(
            "{method} {target} {status} refused by the channel",
            method=command.decode("ascii", "backslashreplace"),
            target=target[:_MAX_TARGET_LOG].decode("ascii", "backslashreplace"),
            status=code,
        )
        # Half-close after the reply so a client still sending its body reads the
        # answer instead of a reset; force the close if it never goes away.
        self.setTimeout(None)
        self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        loseWrite = getattr(self.transport, "loseWriteConnection", None)
        if getattr(self.transport, "disconnecting", False):
            return
        if loseWrite is not None:
            self._networkProducer.unregisterProducer()
            loseWrite()
        else:
            self.loseConnection()

    def _cancel(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            if timer.active():
                timer.cancel()
            setattr(self, name, None)

    def connectionLost(self, reason: Failure) -> None:
        self._cancel("_headerTimer")
        self._cancel("_bodyTimer")
        super().connectionLost(reason)
        waiters, self._closedWaiters = self._closedWaiters, []
        for d in waiters:
            d.callback(None)


class StrictSite(server.Site):
    """
    A site speaking only HTTP/1.x through L{StrictHTTPChannel}, with no access log of
    its own (the request logs one line itself) and no form parsing.
    """

    protocol = StrictHTTPChannel  # type: ignore[assignment]
    requestFactory = StrictRequest
    noisy = False
    displayTracebacks = False

    def __init__(self, root: IResource, limits: Limits, reactor: Any = None) -> None:
        # No form parsing: a multipart body must be forwarded as bytes, not refused.
        super().__init__(
            root, timeout=limits.idleTimeout, reactor=reactor, parsePOSTFormSubmission=False
        )
        self.limits = limits

    def buildProtocol(self, addr: Any) -> StrictHTTPChannel:
        channel = super().buildProtocol(addr)
        channel.limits = self.limits
        return channel

    def log(self, request: Any) -> None:
        """
        No combined-log-format line; L{StrictRequest} logs its own.
        """
