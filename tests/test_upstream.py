"""
Tests for L{responses_proxy.web.upstream}: the connect deadline, the endpoints, and how a
failed upstream request is reported.
"""

from __future__ import annotations

from twisted.internet import error as ierror
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI, ResponseFailed, ResponseNeverReceived

from responses_proxy.web.upstream import (
    UpstreamClient,
    UpstreamEndpoints,
    _DeadlineEndpoint,
    classifyFailure,
)
from tests.support.clocks import SteppingClocks


class _PendingEndpoint:
    """An endpoint whose connection attempt is settled by the test."""

    def __init__(self) -> None:
        self.attempts: list[Deferred[object]] = []
        self.cancelled = 0

    def connect(self, factory: object) -> Deferred[object]:
        def cancel(d: Deferred[object]) -> None:
            self.cancelled += 1
            d.errback(ierror.ConnectingCancelledError(None))

        d: Deferred[object] = Deferred(cancel)
        self.attempts.append(d)
        return d


class ConnectDeadlineTests(SynchronousTestCase):
    """
    The proxy's own connect deadline, on the monotonic clock.
    """

    def setUp(self) -> None:
        self.clocks = SteppingClocks()
        self.inner = _PendingEndpoint()
        self.endpoint = _DeadlineEndpoint(self.inner, self.clocks.clock, 15)
        self.results: list[object] = []
        self.endpoint.connect(object()).addBoth(self.results.append)

    def test_timeoutIsTimeoutError(self) -> None:
        """No connection after 15 s: the attempt is cancelled and reported as a timeout."""
        self.clocks.elapse(15)
        self.assertEqual(self.inner.cancelled, 1)
        [result] = self.results
        self.assertIsInstance(result, Failure)
        result.trap(ierror.TimeoutError)

    def test_wallClockStepDoesNotTimeOut(self) -> None:
        """A wall clock jumping 18 s does not end a connection attempt 2 s old."""
        self.clocks.elapse(2)
        self.clocks.stepWall(18)
        self.assertEqual((self.inner.cancelled, self.results), (0, []))

    def test_connectedInTime(self) -> None:
        """A connection made in time passes through and leaves no timer behind."""
        protocol = object()
        self.inner.attempts[0].callback(protocol)
        self.assertEqual(self.results, [protocol])
        self.assertEqual(self.clocks.reactor.getDelayedCalls(), [])

    def test_otherFailuresPassThrough(self) -> None:
        """A refused connection is reported as such, not as a timeout."""
        self.inner.attempts[0].errback(ierror.ConnectionRefusedError())
        self.results[0].trap(ierror.ConnectionRefusedError)


class EndpointTests(SynchronousTestCase):
    """
    What C{Agent} would connect with, plus the deadline.
    """

    def test_schemes(self) -> None:
        """http and https URIs both get a deadline-guarded endpoint; https is TLS."""
        factory = UpstreamEndpoints(SteppingClocks().clock, 15)
        plain = factory.endpointForURI(URI.fromBytes(b"http://127.0.0.1:8/v1/responses"))
        tls = factory.endpointForURI(URI.fromBytes(b"https://api.example/v1/responses"))
        self.assertIsInstance(plain, _DeadlineEndpoint)
        self.assertIsInstance(tls, _DeadlineEndpoint)
        self.assertNotEqual(type(plain._endpoint), type(tls._endpoint))

    def test_oneEndpointPerOrigin(self) -> None:
        """The endpoint of an origin is built once and reused (C{Agent} asks on every
        request); another scheme, host or port gets its own."""
        factory = UpstreamEndpoints(SteppingClocks().clock, 15)
        first = factory.endpointForURI(URI.fromBytes(b"https://api.example/v1/responses"))
        again = factory.endpointForURI(URI.fromBytes(b"https://api.example/v1/other?x=1"))
        self.assertIs(first, again)
        others = {
            id(factory.endpointForURI(URI.fromBytes(url)))
            for url in (
                b"http://api.example/v1/responses",
                b"https://api.example:8443/v1/responses",
                b"https://other.example/v1/responses",
            )
        }
        self.assertEqual(len(others | {id(first)}), 4)


class _CapturingAgent:
    """Records each request; never answers."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes, object, object]] = []

    def request(self, method, uri, headers=None, bodyProducer=None):  # type: ignore[no-untyped-def]
        self.requests.append((method, uri, headers, bodyProducer))
        return Deferred()


class UpstreamClientTests(SynchronousTestCase):
    """
    What the client hands to the agent.
    """

    def test_uriAndHost(self) -> None:
        """The URI is encoded once per URL (as treq did: a default port is dropped);
        C{Host} is the URI's host, with the port unless it is the scheme's default."""
        cases = [
            ("https://api.example/v1/responses", b"api.example"),
            ("http://127.0.0.1:8080/v1/responses", b"127.0.0.1:8080"),
            ("http://localhost/v1/responses", b"localhost"),
            ("https://api.example:8443/v1/responses?api-version=1", b"api.example:8443"),
            ("http://127.0.0.1:9/a%20b/v1/responses?q=x%2Fy", b"127.0.0.1:9"),
        ]
        agent = _CapturingAgent()
        client = UpstreamClient(agent, SteppingClocks().clock)
        for url, host in cases:
            client.request(b"post", url, [(b"x-one", [b"1"])], b"{}")
            method, uri, headers, body = agent.requests[-1]
            self.assertEqual(method, b"POST")
            self.assertEqual(uri, url.encode("ascii"))
            self.assertEqual(headers.getRawHeaders(b"host"), [host], url)
            self.assertEqual(headers.getRawHeaders(b"x-one"), [b"1"])
            self.assertEqual(headers.getRawHeaders(b"accept-encoding"), [b"gzip"])
            self.assertEqual(body.length, 2)
        client.request(b"POST", "https://api.example:443/v1/responses", [], None)
        _, uri, headers, body = agent.requests[-1]
        self.assertEqual(uri, b"https://api.example/v1/responses")
        self.assertEqual(headers.getRawHeaders(b"host"), [b"api.example"])
        self.assertIsNone(body)

    def test_internationalURL(self) -> None:
        """A URL with a non-ASCII host and path goes out in its URI form (IDNA host,
        percent-encoded path), as treq would send it, and C{Host} is the IDNA name."""
        agent = _CapturingAgent()
        client = UpstreamClient(agent, SteppingClocks().clock)
        client.request(b"POST", "https://b\u00fccher.example/v1/r\u00e9ponses", [], None)
        _, uri, headers, _ = agent.requests[-1]
        self.assertEqual(uri, b"https://xn--bcher-kva.example/v1/r%C3%A9ponses")
        self.assertEqual(headers.getRawHeaders(b"host"), [b"xn--bcher-kva.example"])

    def test_urlPreparedOnce(self) -> None:
        """The URL treq is handed is already its own URI form, so treq's per-request
        C{to_uri()} and C{to_text()} compute nothing (they were a tenth of a small
        request's CPU)."""
        agent = _CapturingAgent()
        client = UpstreamClient(agent, SteppingClocks().clock)
        url = "https://api.example:8443/v1/responses?api-version=1"
        client.request(b"POST", url, [], None)
        ready, _ = client._targets[url]
        self.assertIs(ready.to_uri(), ready)
        self.assertIs(ready.to_text(), ready.to_text())
        self.assertEqual(ready.to_text(), url)
        derived = ready.replace(path=("v1", "r\u00e9ponses"))
        self.assertEqual(derived.to_uri().to_text(), "https://api.example:8443/v1/r%C3%A9ponses?api-version=1")


class ContentCodingTests(SynchronousTestCase):
    """
    What the agent below treq is asked for: treq's gzip, or the bridge's identity alone.
    """

    def test_offer(self) -> None:
        """gzip is offered after the caller's codings; C{identity} first stays alone."""
        for offered, sent in [
            (None, [b"gzip"]),
            ([b"identity"], [b"identity"]),
        ]:
            agent = _CapturingAgent()
            client = UpstreamClient(agent, SteppingClocks().clock)
            pairs = [(b"accept-encoding", offered)] if offered is not None else []
            client.request(b"POST", "http://127.0.0.1:8/v1/responses", pairs, b"{}")
            headers = agent.requests[-1][2]
            self.assertEqual(headers.getRawHeaders(b"accept-encoding"), sent, offered)


class ClassifyFailureTests(SynchronousTestCase):
    """
    Each failure is a 502 or a 504 with a code the client can act on.
    """

    def test_table(self) -> None:
        """Refused, DNS, timeouts, cut responses and the rest."""
        cases = [
            (ierror.ConnectionRefusedError(), False, 502, "upstream_unreachable"),
            (ierror.DNSLookupError("x"), False, 502, "upstream_unreachable"),
            (ierror.TimeoutError(), False, 504, "upstream_timeout"),
            (CancelledError(), True, 504, "upstream_timeout"),
            (
                ResponseNeverReceived([Failure(ierror.ConnectionDone())]),
                False,
                502,
                "upstream_error",
            ),
            (ResponseFailed([Failure(ierror.ConnectionLost())]), False, 502, "upstream_error"),
            (RuntimeError("?"), False, 502, "upstream_error"),
        ]
        for exception, timedOut, status, code in cases:
            outcome = classifyFailure(Failure(exception), timedOut)
            self.assertEqual((outcome.status, outcome.code), (status, code), exception)
