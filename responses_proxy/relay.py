# -*- test-case-name: tests.test_relay -*-
"""
The pass-through leaf: C{POST /v1/responses} forwarded through treq, streamed both ways.

The request body goes up through a body producer; the response comes back through a
C{deliverBody} protocol whose transport is registered as the client request's producer,
so a slow client pauses the upstream read (and a gone client stops it). treq is driven
with no redirects, no cookie jar and no content decoding: the proxy relays bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import attrs
from treq.client import HTTPClient
from treq.cookies import IndexableCookieJar
from twisted.internet import error as ierror
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    FileBodyProducer,
    PotentialDataLoss,
    RequestNotSent,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IRequest, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from responses_proxy import policy
from responses_proxy.config import Limits
from responses_proxy.dump import Dumper, Exchange
from responses_proxy.headers import clientResponseHeaders, upstreamRequestHeaders
from responses_proxy.keyfile import AuthorizationHeader
from responses_proxy.redact import StreamRedactor
from responses_proxy.resource import errorBody, forbid, internalError, sendError

_log = Logger(namespace="responses_proxy")


class _RefuseAllCookies(DefaultCookiePolicy):
    """
    A cookie policy that stores nothing: the proxy serves many callers, and an
    upstream cookie must never be replayed on someone else's request.
    """

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


@implementer(IAgent)
class _VerbatimAgent:
    """
    Undo what treq's C{ContentDecoderAgent} does around this agent.

    treq always asks for gzip and decodes it. Below that wrapper this agent removes the
    C{Accept-Encoding} it appended (the client's own is forwarded as sent) and hides the
    response's C{Content-Encoding} under a private name, which L{UpstreamClient} puts
    back, so the body is relayed exactly as the upstream encoded it.
    """

    def __init__(self, agent: IAgent, marker: bytes) -> None:
        self._agent = agent
        self._marker = marker

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        if headers is not None:
            values = headers.getRawHeaders(b"accept-encoding")
            if values and values[-1] == b"gzip":
                headers = headers.copy()
                if len(values) == 1:
                    headers.removeHeader(b"accept-encoding")
                else:
                    headers.setRawHeaders(b"accept-encoding", values[:-1])
        d = self._agent.request(method, uri, headers, bodyProducer)
        return d.addCallback(self._hideEncoding)

    def _hideEncoding(self, response: IResponse) -> IResponse:
        values = response.headers.getRawHeaders(b"content-encoding")
        if values is not None:
            response.headers.removeHeader(b"content-encoding")
            response.headers.setRawHeaders(self._marker, values)
        return response


class UpstreamClient:
    """
    treq configured as a proxy needs it.

    @param agent: the L{IAgent} doing the work (an C{Agent} with a pool in
        production, an in-memory agent in tests).
    """

    def __init__(self, agent: IAgent, reactor: IReactorTime) -> None:
        self._marker = b"x-responses-proxy-encoding-" + os.urandom(8).hex().encode()
        jar = IndexableCookieJar(policy=_RefuseAllCookies())
        self._http = HTTPClient(_VerbatimAgent(agent, self._marker), cookiejar=jar)
        self._reactor = reactor

    def request(
        self, method: bytes, url: str, headers: Headers, body: IBodyProducer | bytes | None
    ) -> Deferred[IResponse]:
        """
        Send one request; the response body is not buffered.
        """
        d = self._http.request(
            method.decode("ascii"),
            url,
            headers=headers,
            data=body,
            allow_redirects=False,
            unbuffered=True,
            reactor=self._reactor,
        )
        return d.addCallback(self._restoreEncoding)

    def _restoreEncoding(self, response: IResponse) -> IResponse:
        headers = response.headers
        # Whatever Content-Encoding is here now was made up by ContentDecoderAgent
        # (it turns "none" into an empty header): the real one is under the marker.
        headers.removeHeader(b"content-encoding")
        values = headers.getRawHeaders(self._marker)
        if values is not None:
            headers.removeHeader(self._marker)
            headers.setRawHeaders(b"content-encoding", values)
        return response


def connectionTokensOf(response: Any) -> frozenset[bytes]:
    """
    The names the upstream's C{Connection} header listed, noted on Twisted's own
    response object under treq's wrappers (see C{service._ConnectionAwareProtocol}).
    """
    for _ in range(8):
        tokens = getattr(response, "connectionTokens", None)
        if tokens is not None:
            return tokens
        response = getattr(response, "original", None)
        if response is None:
            break
    return frozenset()


def makeHeaders(pairs: list[tuple[bytes, list[bytes]]]) -> Headers:
    headers = Headers()
    for name, values in pairs:
        headers.setRawHeaders(name, values)
    return headers


@attrs.define
class UpstreamFailure:
    """
    How an upstream failure is reported to the client: status, code and message.
    """

    status: int
    code: str
    message: str


def _reasons(failure: Failure) -> list[Failure]:
    reasons = getattr(failure.value, "reasons", None)
    return list(reasons) if reasons else [failure]


def _isTLSFailure(failure: Failure) -> bool:
    try:
        from OpenSSL.SSL import Error as SSLError
    except ImportError:  # pragma: no cover
        return False
    for reason in _reasons(failure):
        if reason.check(SSLError):
            return True
        name = type(reason.value).__name__
        if "Verification" in name or "CertificateError" in name:
            return True
    return False


def classifyFailure(failure: Failure, timedOut: bool) -> UpstreamFailure:
    """
    Map a failed upstream request to a 502 or 504 the client can act on.

    The message names the kind of failure, never headers or the key.
    """
    if timedOut:
        return UpstreamFailure(
            504, "upstream_timeout", "the upstream did not send response headers in time"
        )
    if failure.check(ierror.TimeoutError):
        return UpstreamFailure(504, "upstream_timeout", "timed out connecting to the upstream")
    if failure.check(ierror.DNSLookupError):
        return UpstreamFailure(
            502, "upstream_unreachable", "the upstream host name does not resolve"
        )
    if failure.check(ierror.ConnectionRefusedError):
        return UpstreamFailure(502, "upstream_unreachable", "the upstream refused the connection")
    if failure.check(ierror.ConnectError):
        return UpstreamFailure(
            502,
            "upstream_unreachable",
            f"could not connect to the upstream ({type(failure.value).__name__})",
        )
    if _isTLSFailure(failure):
        return UpstreamFailure(
            502,
            "upstream_tls_error",
            "TLS with the upstream failed (certificate verification or handshake)",
        )
    if failure.check(ResponseNeverReceived, RequestNotSent):
        return UpstreamFailure(
            502, "upstream_error", "the upstream closed the connection without a response"
        )
    if failure.check(ResponseFailed):
        return UpstreamFailure(502, "upstream_error", "the upstream response could not be read")
    return UpstreamFailure(502, "upstream_error", "the upstream request failed")


class BodyProducerFactory:
    """
    Streams a buffered request body upstream in 64 KiB pieces on the injected reactor.
    """

    def __init__(self, reactor: IReactorTime) -> None:
        self._cooperator = Cooperator(scheduler=lambda f: reactor.callLater(0, f))

    def __call__(self, content: Any) -> IBodyProducer:
        content.seek(0)
        return FileBodyProducer(content, cooperator=self._cooperator)


class _BodyRelay(Protocol):
    """
    Relays the upstream body to the client as it arrives.
    """

    def __init__(self, exchange: _PassThrough) -> None:
        self._exchange = exchange

    def connectionMade(self) -> None:
        self._exchange.bodyStarted(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self._exchange.bodyData(data)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._exchange.bodyEnded(reason)


class UpstreamExchange:
    """
    What both leaves share for one client request: sending it upstream with the
    response-header deadline, cancelling the upstream when the client leaves, mapping
    an upstream failure to a 502/504, producer registration, timers, key redaction and
    the dump record.

    Subclasses implement L{gotResponse}; L{timers} names every timer attribute so
    one call cancels them all.
    """

    timers: tuple[str, ...] = ("_headerTimer",)

    def __init__(self, resource: Any, request: IRequest) -> None:
        self._resource = resource
        self._request = request
        self._reactor = resource.reactor
        self._limits: Limits = resource.limits
        self._redactor = StreamRedactor(resource.authorization.key)
        self._dump: Exchange | None = resource.dumper.begin() if resource.dumper else None
        self._upstream: Deferred[IResponse] | None = None
        self._bodyTransport: Any = None
        self._registered = False
        self._clientGone = False
        self._timedOut = False
        self._pending: list[bytes] = []
        self._flushCall: IDelayedCall | None = None
        for name in self.timers:
            setattr(self, name, None)

    def send(self, headers: list[tuple[bytes, list[bytes]]], body: IBodyProducer) -> None:
        """
        Send the request upstream; L{gotResponse} or L{upstreamFailed} follows, and a
        bug in either ends the client's request instead of leaving it hanging.
        """
        request = self._request
        self._headerTimer = self._reactor.callLater(
            self._limits.responseTimeout, self._headersTooSlow
        )
        self._upstream = self._resource.upstream.request(
            b"POST", self._resource.upstreamURL, makeHeaders(headers), body
        )
        self._upstream.addCallbacks(self._gotResponse, self.upstreamFailed).addErrback(
            lambda f: internalError(request, f)
        )

    def watchClient(self) -> None:
        self._request.notifyFinish().addErrback(self._clientLeft)

    def _headersTooSlow(self) -> None:
        self._headerTimer = None
        self._timedOut = True
        if self._upstream is not None:
            self._upstream.cancel()

    def _clientLeft(self, reason: Failure) -> None:
        self._clientGone = True
        self.cancelTimers()
        self._pending = []
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        if self._bodyTransport is not None:
            self._bodyTransport.stopProducing()
        elif self._upstream is not None:
            # Also when "called": a Deferred chained on the connection's own request
            # Deferred forwards the cancellation to it, which aborts the connection.
            self._upstream.cancel()
        self.finishDump("client_disconnected")

    def _gotResponse(self, response: IResponse) -> None:
        self.cancel("_headerTimer")
        self._request.upstreamStatus = response.code
        if self._dump is not None:
            self._dump.responseStarted(response.code, response.headers.getAllRawHeaders())
        if self._clientGone:
            response.deliverBody(_Discard())
            return
        self.gotResponse(response)

    def gotResponse(self, response: IResponse) -> None:
        raise NotImplementedError

    def upstreamFailed(self, failure: Failure) -> None:
        """
        No response from the upstream: a JSON 502 or 504 the client can act on.
        """
        self.cancel("_headerTimer")
        if self._clientGone:
            return  # expected: the cancellation we asked for
        outcome = classifyFailure(failure, self._timedOut)
        _log.info(
            "upstream request failed: {code} ({kind})",
            code=outcome.code,
            kind=type(failure.value).__name__,
        )
        self.finishDump(outcome.code)
        self.sendJSONError(outcome.status, errorBody(outcome.message, "proxy_error", outcome.code))

    def writeToClient(self, data: bytes) -> None:
        """
        Queue bytes for the client. They leave together at the end of this reactor
        turn: one HTTP chunk and one redaction pass per socket read, instead of one per
        upstream chunk or event, which is most of the relaying cost.
        """
        if self._clientGone or not data:
            return
        self._pending.append(data)
        if self._flushCall is None:
            self._flushCall = self._reactor.callLater(0, self.flushToClient)

    def flushToClient(self) -> None:
        """
        Write what is queued now (redacted).
        """
        call, self._flushCall = self._flushCall, None
        if call is not None and call.active():
            call.cancel()
        pending, self._pending = self._pending, []
        if not pending or self._clientGone:
            return
        out = self._redactor.feed(pending[0] if len(pending) == 1 else b"".join(pending))
        if out:
            self._request.write(out)

    def endClientBody(self) -> None:
        """
        Write everything still queued or held back by the redactor (the body ends).
        """
        self.flushToClient()
        tail = self._redactor.flush()
        if tail and not self._clientGone:
            self._request.write(tail)

    def sendJSONError(self, status: int, body: bytes) -> None:
        sendError(self._request, status, self._redactor.redact(body))

    def bodyStarted(self, transport: Any) -> None:
        """
        The upstream body flows: its transport becomes the client request's producer,
        so a slow client pauses the upstream and a gone one stops it.
        """
        self._bodyTransport = transport
        if self._clientGone:
            transport.stopProducing()
            return
        self._request.registerProducer(transport, True)
        self._registered = True

    def unregister(self) -> None:
        if self._registered:
            self._registered = False
            if not self._clientGone:
                self._request.unregisterProducer()

    def stopUpstream(self) -> None:
        """
        Let go of the upstream body now, closing its connection.
        """
        self.unregister()
        transport, self._bodyTransport = self._bodyTransport, None
        if transport is not None:
            transport.stopProducing()

    def cancel(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            if timer.active():
                timer.cancel()
            setattr(self, name, None)

    def cancelTimers(self) -> None:
        for name in self.timers:
            self.cancel(name)

    def finishDump(self, outcome: str) -> None:
        if self._dump is not None:
            self._dump.finish(outcome)


class _PassThrough(UpstreamExchange):
    """
    One forwarded request, from the client's body to the end of the upstream's.
    """

    def start(self) -> None:
        resource, request = self._resource, self._request
        pairs = upstreamRequestHeaders(
            request.requestHeaders.getAllRawHeaders(), resource.authorization.value
        )
        content = request.content
        if self._dump is not None:
            content.seek(0)
            self._dump.writeRequest(
                request.method,
                request.uri,
                request.requestHeaders.getAllRawHeaders(),
                content.read(),
                resource.upstreamURL,
            )
        self.watchClient()
        self.send(pairs, resource.bodyProducer(content))

    def gotResponse(self, response: IResponse) -> None:
        request = self._request
        request.setResponseCode(response.code, _phrase(response.phrase))
        pairs = clientResponseHeaders(
            response.headers.getAllRawHeaders(), connectionTokensOf(response)
        )
        for name, values in pairs:
            request.responseHeaders.setRawHeaders(name, [self._redactor.redact(v) for v in values])
        response.deliverBody(_BodyRelay(self))

    def bodyData(self, data: bytes) -> None:
        if self._dump is not None:
            self._dump.upstreamData(data)
        self.writeToClient(data)

    def bodyEnded(self, reason: Failure) -> None:
        request = self._request
        if self._clientGone:
            return
        self.unregister()
        self.endClientBody()
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finishDump("complete")
            request.finish()
            return
        # The upstream cut the stream: end the client's connection without the
        # terminating chunk, so it can never mistake this for a complete response.
        _log.info("upstream stream ended abnormally; closing the client connection")
        self.finishDump("upstream_failed")
        self._abortClient()

    def _abortClient(self) -> None:
        request = self._request
        channel = getattr(request, "channel", None)
        transport = getattr(channel, "transport", None)
        if request.clientproto != b"HTTP/1.1" and transport is not None:
            transport.abortConnection()
        else:
            request.loseConnection()


class _Discard(Protocol):
    def connectionMade(self) -> None:
        self.transport.stopProducing()


def _phrase(phrase: bytes | None) -> bytes | None:
    if not phrase:
        return None
    if any(b < 0x20 or b == 0x7F for b in phrase):
        return None
    return phrase


class ProxyLeaf(Resource):
    """
    The leaf at C{/v1/responses}: checks the raw request line again (defence in
    depth behind the tree), then hands the request to one L{UpstreamExchange}.

    @cvar exchange: the exchange class for this mode.
    """

    isLeaf = True
    exchange: Callable[[Any, IRequest], Any]

    def __init__(
        self,
        *,
        reactor: IReactorTime,
        upstream: UpstreamClient,
        upstreamURL: str,
        authorization: AuthorizationHeader,
        limits: Limits,
        dumper: Dumper | None = None,
        bodyProducer: Callable[[Any], IBodyProducer] | None = None,
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.upstream = upstream
        self.upstreamURL = upstreamURL
        self.authorization = authorization
        self.limits = limits
        self.dumper = dumper
        self.bodyProducer = bodyProducer or BodyProducerFactory(reactor)

    def render(self, request: IRequest) -> bytes | int:
        if not policy.isResponsesRequest(request.method, request.uri):
            return forbid(request)
        self.exchange(self, request).start()
        return NOT_DONE_YET


class ResponsesResource(ProxyLeaf):
    """
    The leaf in pass-through mode.
    """

    exchange = _PassThrough
