# -*- test-case-name: tests.test_upstream -*-
"""
The HTTP client both leaves use: treq over an C{Agent} with the service's pool, and the
mapping of a failed upstream request to the 502 or 504 a client can act on.

treq is driven with no redirects (passed through, never followed: a redirect must not
carry the key elsewhere), a cookie jar that stores nothing (the proxy serves many callers),
and its streaming (unbuffered) responses. Content coding is the proxy's: treq asks for gzip
and decodes it as it arrives, so the key scrubber and the dumps see plain bytes and the
client gets them without C{Content-Encoding}. The connect deadline is the proxy's own, on
the monotonic clock, applied through a public endpoint factory that keeps one endpoint per
upstream origin (an https endpoint builds a TLS context and loads the trust store).
Per request, only what treq and C{Agent} cannot be given ready is computed: the upstream
URL is parsed once, and C{Host} is sent ready so C{Agent} need not copy the headers.
"""

from __future__ import annotations

import io
from http.cookiejar import CookieJar
from typing import Any

import attrs
from hyperlink import EncodedURL
from treq.client import HTTPClient
from twisted.internet import error as ierror
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Cooperator
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    FileBodyProducer,
    HTTPConnectionPool,
    RequestNotSent,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from responses_proxy.config import MEMORY_BODY_MAX
from responses_proxy.web._twistedpool import UpstreamPool
from responses_proxy.web.timers import Clock

HeaderPairs = list[tuple[bytes, list[bytes]]]


@implementer(IStreamClientEndpoint)
class _DeadlineEndpoint:
    """
    An endpoint whose connection attempt is given up after a monotonic deadline, with
    C{TimeoutError} (reported as 504).
    """

    def __init__(self, endpoint: IStreamClientEndpoint, clock: Clock, seconds: float) -> None:
        self._endpoint = endpoint
        self._clock = clock
        self._seconds = seconds

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        attempt = self._endpoint.connect(protocolFactory)
        timedOut = []

        def expired() -> None:
            timedOut.append(True)
            attempt.cancel()

        deadline = self._clock.deadline(self._seconds, expired)
        deadline.start()

        def settled(result: Any) -> Any:
            deadline.cancel()
            if timedOut and isinstance(result, Failure):
                return Failure(ierror.TimeoutError("connecting to the upstream"))
            return result

        return attempt.addBoth(settled)


@implementer(IAgentEndpointFactory)
class UpstreamEndpoints:
    """
    What C{Agent} does by default (a C{HostnameEndpoint}, wrapped in TLS for https with
    certificates verified against the platform's trust store), with the proxy's own
    connect deadline.

    C{Agent} asks for an endpoint on every request, even when the pool then hands it a
    connection it already has. An endpoint can connect any number of times, so one is
    built per upstream origin and kept: building it cost a TLS context (the trust store
    loaded again) per request.
    """

    _MAX_ORIGINS = 16

    def __init__(self, clock: Clock, connectTimeout: float) -> None:
        self._clock = clock
        self._connectTimeout = connectTimeout
        self._tls = BrowserLikePolicyForHTTPS()
        self._endpoints: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        origin = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(origin)
        if endpoint is None:
            endpoint = self._newEndpoint(uri)
            if len(self._endpoints) < self._MAX_ORIGINS:
                self._endpoints[origin] = endpoint
        return endpoint

    def _newEndpoint(self, uri: Any) -> IStreamClientEndpoint:
        # Twisted's own attempt limit stays as a backstop well behind the deadline.
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            self._clock.reactor,
            uri.host.decode("ascii"),
            uri.port,
            timeout=self._connectTimeout + 60,
        )
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self._tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return _DeadlineEndpoint(endpoint, self._clock, self._connectTimeout)


def makeAgent(clock: Clock, connectTimeout: float) -> tuple[IAgent, HTTPConnectionPool]:
    """
    The production agent and the pool the service owns (closed when it stops).
    """
    pool = UpstreamPool(clock.reactor, persistent=True)
    agent = Agent.usingEndpointFactory(
        clock.reactor, UpstreamEndpoints(clock, connectTimeout), pool=pool
    )
    return agent, pool


class _NoCookies(CookieJar):
    """
    A cookie jar that stores and sends nothing: an upstream cookie must never be replayed
    on someone else's request (the proxy serves many callers). Its methods do nothing at
    all, rather than asking a policy per request: treq consults the jar on every request
    and every response.
    """

    def add_cookie_header(self, request: Any) -> None:
        pass

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def set_cookie(self, cookie: Any) -> None:
        pass

    def set_cookie_if_ok(self, cookie: Any, request: Any) -> None:
        pass


class _ReadyURL(EncodedURL):
    """
    The upstream URL already in the form treq sends: treq asks every URL it is given for
    its URI form and text on every request, and hyperlink recomputes both each time
    (host names through IDNA), about a tenth of a small request's CPU. This URL was made
    from that form, so it is its own URI form and its text is computed once.
    """

    _text = ""

    def to_uri(self) -> EncodedURL:
        # A URL derived from this one (hyperlink's replace() keeps the class) has no
        # remembered text and is converted as usual.
        return self if self._text else super().to_uri()

    def to_text(self, with_password: bool = False) -> str:
        if with_password or not self._text:
            return super().to_text(with_password)
        return self._text


def _readyURL(url: str) -> _ReadyURL:
    text = EncodedURL.from_text(url).to_uri().to_text()
    ready = _ReadyURL.from_text(text)
    ready._text = ready.to_text()
    return ready


@implementer(IAgent)
class _IdentityWhenAsked:
    """
    treq's decoder always offers gzip, appended to the caller's own C{Accept-Encoding}. The
    bridge asks for C{identity} (bridge-spec section 1: the stream is parsed as it
    arrives), and keeps exactly that; pass-through sends no coding of its own, so treq's
    gzip is the only one offered there (proxy-spec: the proxy owns content coding).
    """

    def __init__(self, agent: IAgent) -> None:
        self._agent = agent

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        if headers is not None:
            offered = headers.getRawHeaders(b"accept-encoding")
            if offered is not None and offered[0] == b"identity" and len(offered) > 1:
                headers.setRawHeaders(b"accept-encoding", [b"identity"])
        return self._agent.request(method, uri, headers, bodyProducer)


def _dropEmptyCoding(response: IResponse) -> IResponse:
    # treq's ContentDecoderAgent turns "no Content-Encoding" into an empty one.
    headers = response.headers
    if headers.getRawHeaders(b"content-encoding") in ([b""], [b"identity"]):
        headers.removeHeader(b"content-encoding")
    return response


def undecodedCoding(response: IResponse) -> bytes | None:
    """
    The content coding the client could not decode (it decodes gzip), or L{None}.

    Such a body cannot be scrubbed of the key, so it must never be relayed.
    """
    values = response.headers.getRawHeaders(b"content-encoding")
    if not values:
        return None
    codings = [c.strip().lower() for c in b",".join(values).split(b",")]
    left = [c for c in codings if c and c != b"identity"]
    return b", ".join(left) if left else None


@implementer(IBodyProducer)
class WholeBody:
    """
    A request body already in memory, written in one go when the request starts.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class UpstreamClient:
    """
    The upstream client as the proxy needs it: see the module docstring.

    @param agent: the L{IAgent} doing the work (see L{makeAgent}; an in-memory agent in
        tests).
    """

    def __init__(self, agent: IAgent, clock: Clock) -> None:
        self._cookies = _NoCookies()
        self._http = HTTPClient(_IdentityWhenAsked(agent), cookiejar=self._cookies)
        self._reactor = clock.reactor
        self._cooperator = Cooperator(scheduler=clock.callSoon)
        self._targets: dict[str, tuple[_ReadyURL, bytes]] = {}

    def bodyProducer(self, content: Any) -> IBodyProducer:
        """
        A buffered request body (a file object) to send upstream: a small one in memory
        is written at once, anything else streamed in pieces on this reactor.
        """
        if isinstance(content, io.BytesIO) and content.seek(0, io.SEEK_END) <= MEMORY_BODY_MAX:
            return WholeBody(content.getvalue())
        content.seek(0)
        return FileBodyProducer(content, cooperator=self._cooperator)

    def _target(self, url: str) -> tuple[_ReadyURL, bytes]:
        """
        The parsed upstream URL for treq, and the C{Host} value C{Agent} would compute for
        it, once per URL.
        """
        target = self._targets.get(url)
        if target is None:
            parsed = _readyURL(url)
            uri = URI.fromBytes(parsed.to_text().encode("ascii"))
            host = uri.host
            if isIPv6Address(host.decode("ascii")):
                host = b"[" + host + b"]"
            if (uri.scheme, uri.port) not in ((b"http", 80), (b"https", 443)):
                host = b"%b:%d" % (host, uri.port)
            target = (parsed, host)
            if len(self._targets) < 16:
                self._targets[url] = target
        return target

    def request(
        self, method: bytes, url: str, headers: HeaderPairs, body: IBodyProducer | bytes | None
    ) -> Deferred[IResponse]:
        """
        Send one request; the response body is not buffered, and a gzip body is
        decoded as it arrives (any other coding is left for L{undecodedCoding}).
        """
        parsed, host = self._target(url)
        raw = Headers()
        for name, values in headers:
            raw.setRawHeaders(name, values)
        raw.setRawHeaders(b"host", [host])
        d = self._http.request(
            method.decode("ascii"),
            parsed,
            headers=raw,
            data=body,
            cookies=self._cookies,
            allow_redirects=False,
            unbuffered=True,
            reactor=self._reactor,
        )
        return d.addCallback(_dropEmptyCoding)


@attrs.frozen
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

    @param timedOut: the proxy gave up waiting for the response headers.
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
