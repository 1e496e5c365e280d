"""
In-memory tests of the strict front and the pass-through relay: the real site, channel
and treq client, with a fake upstream resource and a fake clock.
"""

from __future__ import annotations

import gzip

from twisted.internet import error as ierror
from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IAgent
from zope.interface import implementer

from responses_proxy.config import Limits
from tests.memoryproxy import KEY, CapturingAgent, MemoryProxy, dechunk, parseResponse, request


class ForwardingTests(SynchronousTestCase):
    """
    What goes upstream and what comes back.
    """

    def setUp(self) -> None:
        self.proxy = MemoryProxy()
        self.client = self.proxy.connect()

    def forward(self, raw: bytes):
        self.client.send(raw)
        self.proxy.pump()
        self.assertEqual(len(self.proxy.upstreamResource.requests), 1)
        return self.proxy.upstreamResource.requests[0]

    def test_injectsKeyAndDropsClientAuthorization(self) -> None:
        """Exactly one Authorization goes up: the key's, never the client's."""
        up = self.forward(
            request(headers=[(b"Authorization", b"Bearer client-own"), (b"Session-Id", b"s1")])
        )
        self.assertEqual(up.requestHeaders.getRawHeaders(b"authorization"), [b"Bearer " + KEY])
        self.assertEqual(up.requestHeaders.getRawHeaders(b"session-id"), [b"s1"])
        self.assertEqual(up.requestHeaders.getRawHeaders(b"host"), [b"upstream.test"])
        self.assertEqual(up.uri, b"/v1/responses?api-version=1")
        self.assertEqual(up.method, b"POST")

    def test_bodyForwardedUnchanged(self) -> None:
        """The body arrives byte for byte, with a recomputed Content-Length."""
        body = b'{"model":"m","input":"\xc3\xa9\\u0000"}'
        up = self.forward(request(body=body, headers=[(b"Content-Length", b"%d" % len(body))]))
        self.assertEqual(up.bodyBytes, body)
        self.assertEqual(up.requestHeaders.getRawHeaders(b"content-length"), [b"%d" % len(body)])

    def test_chunkedClientBodyIsReframed(self) -> None:
        """A chunked upload goes up with a Content-Length and no Transfer-Encoding."""
        raw = request(body=b"5\r\nhello\r\n0\r\n\r\n", headers=[(b"Transfer-Encoding", b"chunked")])
        up = self.forward(raw)
        self.assertEqual(up.bodyBytes, b"hello")
        self.assertEqual(up.requestHeaders.getRawHeaders(b"content-length"), [b"5"])

    def test_largeBodyStreamedFromFile(self) -> None:
        """A body Twisted spooled to a temporary file (over 100 kB) is forwarded whole."""
        body = b"x" * 300_000
        up = self.forward(request(body=body))
        self.assertEqual(up.bodyBytes, body)

    def test_acceptEncodingForwardedAsIs(self) -> None:
        """treq's own gzip request is removed; the client's value goes up unchanged."""
        up = self.forward(request(headers=[(b"Accept-Encoding", b"br")]))
        self.assertEqual(up.requestHeaders.getRawHeaders(b"accept-encoding"), [b"br"])
        self.client = self.proxy.connect()
        self.client.send(request())
        self.proxy.pump()
        second = self.proxy.upstreamResource.requests[1]
        self.assertIsNone(second.requestHeaders.getRawHeaders(b"accept-encoding"))

    def test_gzipBodyRelayedUndecoded(self) -> None:
        """An encoded body and its Content-Encoding reach the client untouched."""
        up = self.forward(request(headers=[(b"Accept-Encoding", b"gzip")]))
        payload = gzip.compress(b"data: hello\n\n")
        up.setResponseCode(200)
        up.setHeader(b"content-encoding", b"gzip")
        up.setHeader(b"content-type", b"text/event-stream")
        up.write(payload)
        up.finish()
        self.proxy.pump()
        status, headers, rest = parseResponse(self.client.received())
        self.assertEqual(headers[b"content-encoding"], [b"gzip"])
        self.assertEqual(dechunk(rest), (payload, True))

    def test_noEmptyContentEncoding(self) -> None:
        """No Content-Encoding appears when the upstream sent none."""
        up = self.forward(request())
        up.write(b"{}")
        up.finish()
        self.proxy.pump()
        _, headers, _ = parseResponse(self.client.received())
        self.assertNotIn(b"content-encoding", headers)

    def test_statusAndHeadersMirrored(self) -> None:
        """Status, phrase and ordinary headers are mirrored; hop-by-hop ones are not."""
        up = self.forward(request())
        up.setResponseCode(429, b"Too Many Requests")
        up.setHeader(b"retry-after", b"7")
        up.setHeader(b"x-request-id", b"req_1")
        up.setHeader(b"keep-alive", b"timeout=5")
        up.setHeader(b"content-type", b"application/json")
        up.write(b'{"error":{}}')
        up.finish()
        self.proxy.pump()
        raw = self.client.received()
        status, headers, rest = parseResponse(raw)
        self.assertTrue(raw.startswith(b"HTTP/1.1 429 Too Many Requests\r\n"))
        self.assertEqual(headers[b"retry-after"], [b"7"])
        self.assertEqual(headers[b"x-request-id"], [b"req_1"])
        self.assertNotIn(b"keep-alive", headers)
        self.assertEqual(dechunk(rest), (b'{"error":{}}', True))

    def test_streamsEachWriteAsItArrives(self) -> None:
        """Each upstream write reaches the client before the upstream finishes."""
        up = self.forward(request())
        up.setHeader(b"content-type", b"text/event-stream")
        up.write(b"data: one\n\n")
        self.proxy.pump()
        self.assertIn(b"data: one\n\n", self.client.received())
        self.assertNotIn(b"data: two", self.client.received())
        up.write(b"data: two\n\n")
        self.proxy.pump()
        self.assertIn(b"data: two\n\n", self.client.received())
        self.assertNotIn(b"0\r\n\r\n", self.client.received())
        up.finish()
        self.proxy.pump()
        _, _, rest = parseResponse(self.client.received())
        self.assertEqual(dechunk(rest), (b"data: one\n\ndata: two\n\n", True))

    def test_redirectPassedThroughNotFollowed(self) -> None:
        """A 307 goes back to the client; the upstream sees one request."""
        up = self.forward(request())
        up.setResponseCode(307)
        up.setHeader(b"location", b"https://elsewhere.test/v1/responses")
        up.finish()
        self.proxy.pump()
        status, headers, _ = parseResponse(self.client.received())
        self.assertEqual(status, 307)
        self.assertEqual(headers[b"location"], [b"https://elsewhere.test/v1/responses"])
        self.assertEqual(len(self.proxy.upstreamResource.requests), 1)

    def test_cookiesNeverStoredOrReplayed(self) -> None:
        """An upstream Set-Cookie is relayed but never sent on a later request."""
        up = self.forward(request())
        up.setHeader(b"set-cookie", b"__cf_bm=abc; Path=/; Domain=upstream.test")
        up.finish()
        self.proxy.pump()
        self.client = self.proxy.connect()
        self.client.send(request())
        self.proxy.pump()
        second = self.proxy.upstreamResource.requests[1]
        self.assertIsNone(second.requestHeaders.getRawHeaders(b"cookie"))

    def test_echoedKeyIsRedacted(self) -> None:
        """An upstream that echoes the request headers cannot leak the key to the client."""
        up = self.forward(request())
        auth = up.requestHeaders.getRawHeaders(b"authorization")[0]
        up.setResponseCode(401)
        up.setHeader(b"x-echo", auth)
        up.write(b'{"seen": "' + auth[:20])
        self.proxy.pump()
        up.write(auth[20:] + b'"}')
        up.finish()
        self.proxy.pump()
        raw = self.client.received()
        self.assertNotIn(KEY, raw)
        self.assertNotIn(KEY[-8:], raw)
        self.assertIn(b"[REDACTED]", raw)


class StrictnessTests(SynchronousTestCase):
    """
    Everything but the exact request is refused and the upstream is never contacted.
    """

    def refused(self, raw: bytes, status: int = 403) -> bytes:
        proxy = MemoryProxy(httpShutdown=False)
        client = proxy.connect()
        client.send(raw)
        proxy.pump()
        out = client.received()
        self.assertRegex(out[:13], rb"^HTTP/1\.[01] %d " % status, (raw, out[:80]))
        self.assertEqual(proxy.upstreamResource.requests, [], raw)
        return out

    def test_methodsTargetsAndForms(self) -> None:
        """Other methods, query strings, encodings, dot segments, absolute form, case."""
        cases = [
            (b"GET", b"/v1/responses"),
            (b"PUT", b"/v1/responses"),
            (b"DELETE", b"/v1/responses"),
            (b"PATCH", b"/v1/responses"),
            (b"OPTIONS", b"/v1/responses"),
            (b"HEAD", b"/v1/responses"),
            (b"post", b"/v1/responses"),
            (b"POST", b"/v1/responses?"),
            (b"POST", b"/v1/responses?stream=true"),
            (b"POST", b"/v1/responses/"),
            (b"POST", b"/v1/responses/x"),
            (b"POST", b"/v1/%72esponses"),
            (b"POST", b"/v1%2Fresponses"),
            (b"POST", b"/v1/./responses"),
            (b"POST", b"/v1/../v1/responses"),
            (b"POST", b"//v1/responses"),
            (b"POST", b"/V1/Responses"),
            (b"POST", b"/v1"),
            (b"POST", b"/"),
            (b"POST", b"/v1/responses;x"),
            (b"POST", b"/v1/responses%00"),
            (b"POST", b"http://127.0.0.1:8080/v1/responses"),
            (b"POST", b"*"),
            (b"OPTIONS", b"*"),
            (b"GET", b"*"),
            (b"GET", b"/shutdown"),
            (b"POST", b"/v1/chat/completions"),
        ]
        for method, target in cases:
            out = self.refused(request(method=method, target=target))
            self.assertIn(b"Content-Length: 0", out)
            self.assertNotIn(b"Server:", out)
            self.assertNotIn(b"Content-Type:", out)

    def test_headIsRefusedNot500(self) -> None:
        """HEAD gets a 403, not Twisted's missing render_GET 500."""
        self.refused(request(method=b"HEAD", body=b""))

    def test_hostRules(self) -> None:
        """No Host, a DNS name, two Hosts: refused."""
        self.refused(request(host=None))
        self.refused(request(host=b"evil.example:8080"))
        self.refused(request(host=b"127.0.0.1.nip.io"))
        self.refused(request(headers=[(b"Host", b"127.0.0.1")]))

    def test_browserHeaders(self) -> None:
        """Origin or Sec-Fetch-Site marks a browser: refused."""
        self.refused(request(headers=[(b"Origin", b"http://127.0.0.1:8080")]))
        self.refused(request(headers=[(b"Origin", b"null")]))
        self.refused(request(headers=[(b"Sec-Fetch-Site", b"same-origin")]))

    def test_http10WithoutHostRefused(self) -> None:
        """HTTP/1.0 without Host is refused like any request without Host."""
        self.refused(request(host=None, version=b"HTTP/1.0"))

    def test_allowedVariantsAccepted(self) -> None:
        """localhost and [::1] hosts are fine."""
        for host in [b"localhost:1234", b"[::1]:1234", b"127.0.0.2"]:
            proxy = MemoryProxy()
            client = proxy.connect()
            client.send(request(host=host))
            proxy.pump()
            self.assertEqual(len(proxy.upstreamResource.requests), 1, host)


class LimitTests(SynchronousTestCase):
    """
    Body cap, header and body deadlines, and 100-continue.
    """

    def test_contentLengthOverCap(self) -> None:
        """A declared body over the cap gets 413 at once; nothing is forwarded."""
        proxy = MemoryProxy(limits=Limits(maxBodyBytes=100))
        client = proxy.connect()
        client.send(request(body=b"", headers=[(b"Content-Length", b"101")]))
        proxy.pump()
        status, headers, body = parseResponse(client.received())
        self.assertEqual(status, 413)
        self.assertIn(b"request_too_large", body)
        self.assertEqual(proxy.upstreamResource.requests, [])
        self.assertTrue(client.transport.disconnecting)

    def test_chunkedOverCap(self) -> None:
        """A chunked body that grows over the cap gets 413; nothing is forwarded."""
        proxy = MemoryProxy(limits=Limits(maxBodyBytes=100))
        client = proxy.connect()
        client.send(request(body=b"", headers=[(b"Transfer-Encoding", b"chunked")]))
        client.send(b"64\r\n" + b"a" * 100 + b"\r\n")
        self.assertEqual(client.received(), b"")
        client.send(b"1\r\nb\r\n0\r\n\r\n")
        proxy.pump()
        self.assertEqual(parseResponse(client.received())[0], 413)
        self.assertEqual(proxy.upstreamResource.requests, [])

    def test_bodyAtCapAccepted(self) -> None:
        """A body exactly at the cap is forwarded."""
        proxy = MemoryProxy(limits=Limits(maxBodyBytes=100))
        client = proxy.connect()
        client.send(request(body=b"a" * 100))
        proxy.pump()
        self.assertEqual(len(proxy.upstreamResource.requests), 1)

    def test_headerDeadline(self) -> None:
        """Headers trickling in for longer than the deadline: 408 and closed."""
        proxy = MemoryProxy(limits=Limits(headerTimeout=30))
        client = proxy.connect()
        client.send(b"POST /v1/responses HTTP/1.1\r\n")
        for _ in range(5):
            proxy.clock.advance(5)
            client.send(b"X-Slow: 1\r\n")
        self.assertEqual(client.received(), b"")
        proxy.clock.advance(5.1)
        self.assertTrue(client.received().startswith(b"HTTP/1.1 408 "))
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(proxy.upstreamResource.requests, [])

    def test_bodyIdleDeadline(self) -> None:
        """A client silent in the middle of its body is disconnected; data resets it."""
        proxy = MemoryProxy(limits=Limits(bodyIdleTimeout=60))
        client = proxy.connect()
        client.send(request(body=b"", headers=[(b"Content-Length", b"10")]))
        client.send(b"12345")
        proxy.clock.advance(59)
        client.send(b"6")
        proxy.clock.advance(59)
        self.assertEqual(client.received(), b"")
        proxy.clock.advance(2)
        self.assertTrue(client.received().startswith(b"HTTP/1.1 408 "))
        self.assertEqual(proxy.upstreamResource.requests, [])

    def test_continueOnlyForAcceptableRequests(self) -> None:
        """100 Continue goes to an allowed request, not to a refused or oversized one."""
        proxy = MemoryProxy(limits=Limits(maxBodyBytes=100))
        client = proxy.connect()
        client.send(
            request(body=b"", headers=[(b"Expect", b"100-continue"), (b"Content-Length", b"2")])
        )
        self.assertTrue(client.received().startswith(b"HTTP/1.1 100 Continue"))
        for raw in [
            request(
                target=b"/v1/x",
                body=b"",
                headers=[(b"Expect", b"100-continue"), (b"Content-Length", b"2")],
            ),
            request(
                body=b"",
                headers=[
                    (b"Expect", b"100-continue"),
                    (b"Origin", b"x"),
                    (b"Content-Length", b"2"),
                ],
            ),
        ]:
            client = proxy.connect()
            client.send(raw)
            self.assertEqual(client.received(), b"")
        client = proxy.connect()
        client.send(
            request(body=b"", headers=[(b"Expect", b"100-continue"), (b"Content-Length", b"101")])
        )
        self.assertTrue(client.received().startswith(b"HTTP/1.1 413 "))


@implementer(IAgent)
class FailingAgent:
    """An agent whose requests fail with a given exception, or never answer."""

    def __init__(self, exc: Exception | None) -> None:
        self.exc = exc
        self.pending: list[Deferred] = []
        self.cancelled: list[Deferred] = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        if self.exc is not None:
            return fail(self.exc)
        d: Deferred = Deferred(lambda d: self.cancelled.append(d))
        self.pending.append(d)
        return d


class UpstreamFailureTests(SynchronousTestCase):
    """
    Unreachable, slow and broken upstreams give defined answers.
    """

    def answer(self, exc: Exception | None, advance: float = 0):
        proxy = MemoryProxy(agent=FailingAgent(exc))
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        if advance:
            proxy.clock.advance(advance)
        return parseResponse(client.received()), proxy

    def test_refusedIs502(self) -> None:
        """Connection refused: 502 with a JSON error."""
        (status, headers, body), _ = self.answer(ierror.ConnectionRefusedError())
        self.assertEqual(status, 502)
        self.assertEqual(headers[b"content-type"], [b"application/json"])
        self.assertIn(b'"upstream_unreachable"', body)

    def test_connectTimeoutIs504(self) -> None:
        """A connect timeout: 504."""
        (status, _, body), _ = self.answer(ierror.TimeoutError())
        self.assertEqual(status, 504)
        self.assertIn(b"upstream_timeout", body)

    def test_noHeadersIs504(self) -> None:
        """No response headers within the limit: 504, and the request is cancelled."""
        proxy = MemoryProxy(agent=FailingAgent(None), limits=Limits(responseTimeout=300))
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        proxy.clock.advance(299)
        self.assertEqual(client.received(), b"")
        proxy.clock.advance(1)
        status, _, body = parseResponse(client.received())
        self.assertEqual(status, 504)
        self.assertTrue(proxy.agent.pending[0].called)

    def test_clientGoneBeforeHeadersCancelsUpstream(self) -> None:
        """The client leaving before the upstream answers cancels the upstream request."""
        proxy = MemoryProxy(agent=FailingAgent(None))
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        pending = proxy.agent.pending[0]
        self.assertFalse(pending.called)
        client.disconnect()
        self.assertEqual(proxy.agent.cancelled, [pending])

    def test_upstreamCutMidStream(self) -> None:
        """The upstream dying mid-body: the client's connection ends without the final chunk."""
        proxy = MemoryProxy()
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        up = proxy.upstreamResource.requests[0]
        up.write(b"data: partial\n\n")
        proxy.pump()
        up.channel.transport.abortConnection()
        proxy.pump()
        _, _, rest = parseResponse(client.received())
        body, complete = dechunk(rest)
        self.assertEqual(body, b"data: partial\n\n")
        self.assertFalse(complete)
        self.assertTrue(client.transport.disconnecting)

    def test_clientGoneMidStreamStopsUpstream(self) -> None:
        """The client leaving mid-stream closes the upstream connection."""
        proxy = MemoryProxy()
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        up = proxy.upstreamResource.requests[0]
        lost = up.notifyFinish()
        up.write(b"data: 1\n\n")
        proxy.pump()
        client.disconnect()
        proxy.pump()
        self.failureResultOf(lost)


class ShutdownTests(SynchronousTestCase):
    """
    C{GET /shutdown} with and without the flag.
    """

    def test_shutdownStopsAfterClose(self) -> None:
        """200 with Connection: close; the stop runs once the connection has closed."""
        proxy = MemoryProxy(httpShutdown=True)
        client = proxy.connect()
        client.send(request(method=b"GET", target=b"/shutdown", body=b""))
        status, headers, _ = parseResponse(client.received())
        self.assertEqual(status, 200)
        self.assertEqual(headers[b"connection"], [b"close"])
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(proxy.stopped, 0)
        client.disconnect()
        self.assertEqual(proxy.stopped, 1)
        proxy.clock.advance(10)
        self.assertEqual(proxy.stopped, 1)

    def test_shutdownFallbackTimer(self) -> None:
        """A client that never closes does not keep the proxy alive."""
        proxy = MemoryProxy(httpShutdown=True)
        client = proxy.connect()
        client.send(request(method=b"GET", target=b"/shutdown", body=b""))
        proxy.clock.advance(2)
        self.assertEqual(proxy.stopped, 1)

    def test_shutdownVariantsRefused(self) -> None:
        """POST, query strings, browser headers, or no flag: 403, no stop."""
        proxy = MemoryProxy(httpShutdown=True)
        for raw in [
            request(method=b"POST", target=b"/shutdown"),
            request(method=b"GET", target=b"/shutdown?x", body=b""),
            request(method=b"GET", target=b"/shutdown/", body=b""),
            request(method=b"HEAD", target=b"/shutdown", body=b""),
            request(
                method=b"GET",
                target=b"/shutdown",
                body=b"",
                headers=[(b"Sec-Fetch-Site", b"cross-site")],
            ),
            request(method=b"GET", target=b"/shutdown", body=b"", host=b"evil.test"),
        ]:
            client = proxy.connect()
            client.send(raw)
            self.assertTrue(client.received().startswith(b"HTTP/1.1 403 "), raw)
        proxy.clock.advance(10)
        self.assertEqual(proxy.stopped, 0)
        plain = MemoryProxy(httpShutdown=False)
        client = plain.connect()
        client.send(request(method=b"GET", target=b"/shutdown", body=b""))
        self.assertTrue(client.received().startswith(b"HTTP/1.1 403 "))


class LoggingTests(SynchronousTestCase):
    """
    One line per request, never the key.
    """

    def test_oneLinePerRequestWithoutKey(self) -> None:
        """Method, target, status, bytes, duration and upstream status; no key."""
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        proxy = MemoryProxy()
        client = proxy.connect()
        client.send(request(headers=[(b"Authorization", b"Bearer client")]))
        proxy.pump()
        up = proxy.upstreamResource.requests[0]
        up.setResponseCode(201)
        up.write(b"x" * 10)
        up.finish()
        proxy.pump()
        lines = [e for e in observer if "bytesOut" in e]
        self.assertEqual(len(lines), 1)
        event = lines[0]
        self.assertEqual(
            (event["method"], event["target"], event["status"], event["upstream"]),
            ("POST", "/v1/responses", 201, 201),
        )
        self.assertGreater(event["bytesOut"], 0)
        self.assertNotIn(KEY.decode(), repr(list(observer)))
        self.assertNotIn("client", repr(list(observer)))


class KeepAliveTests(SynchronousTestCase):
    """
    Persistent client connections keep working and still time out when idle.
    """

    def test_secondRequestOnSameConnection(self) -> None:
        """Two requests in a row on one connection are both forwarded and answered."""
        proxy = MemoryProxy()
        client = proxy.connect()
        for n in range(2):
            client.send(request())
            proxy.pump()
            up = proxy.upstreamResource.requests[n]
            up.write(b"r%d" % n)
            up.finish()
            proxy.pump()
        self.assertEqual(client.received().count(b"HTTP/1.1 200 OK"), 2)
        self.assertFalse(client.transport.disconnecting)

    def test_idleConnectionTimesOut(self) -> None:
        """After a response, an idle connection is closed after the idle timeout."""
        proxy = MemoryProxy(limits=Limits(idleTimeout=60))
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        up = proxy.upstreamResource.requests[0]
        up.finish()
        proxy.pump()
        proxy.clock.advance(59)
        self.assertFalse(client.transport.disconnecting)
        proxy.clock.advance(2)
        self.assertTrue(client.transport.disconnecting)

    def test_longStreamIsNotCutByIdleTimeout(self) -> None:
        """A response streaming for longer than every client deadline is not cut."""
        proxy = MemoryProxy(limits=Limits(idleTimeout=60, headerTimeout=30, bodyIdleTimeout=60))
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        up = proxy.upstreamResource.requests[0]
        for _ in range(10):
            proxy.clock.advance(100)
            up.write(b"data: tick\n\n")
            proxy.pump()
        self.assertFalse(client.transport.disconnecting)
        self.assertEqual(client.received().count(b"data: tick"), 10)


@implementer(IAgent)
class BrokenResponseAgent:
    """An agent whose 'response' makes the relay's own code fail (a stand-in for a bug)."""

    def request(self, method, uri, headers=None, bodyProducer=None):
        from twisted.internet.defer import succeed
        from twisted.web.http_headers import Headers

        class Response:
            code = 200
            phrase = b"OK"
            headers = Headers()

            def deliverBody(self, protocol):
                raise RuntimeError("a bug")

        return succeed(Response())


class InternalErrorTests(SynchronousTestCase):
    """
    A bug in a callback ends the client's request instead of leaving it hanging.
    """

    def test_bugBecomes500(self) -> None:
        """An exception after the upstream answered gives a 500 and is logged."""
        proxy = MemoryProxy(agent=BrokenResponseAgent())
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        status, _, body = parseResponse(client.received())
        self.assertEqual(status, 500)
        self.assertIn(b"internal proxy error", body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class FormBodyTests(SynchronousTestCase):
    """
    Bodies are never parsed as forms: they are forwarded as bytes.
    """

    def test_multipartBodyForwarded(self) -> None:
        """A multipart/form-data body (which Twisted would parse, or refuse) goes up as is."""
        body = b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--xyz--\r\n"
        for contentType in [
            b"multipart/form-data; boundary=xyz",
            b"multipart/form-data",
            b"application/x-www-form-urlencoded",
        ]:
            # An agent that reads the body as bytes: a fake upstream behind twisted.web
            # would parse (or refuse) the form itself.
            agent = CapturingAgent()
            proxy = MemoryProxy(agent=agent)
            client = proxy.connect()
            client.send(request(body=body, headers=[(b"Content-Type", contentType)]))
            proxy.pump()
            self.assertEqual(agent.bodies, [body], contentType)


class PoolTests(SynchronousTestCase):
    """
    The upstream pool never caches a connection that is closing.
    """

    def test_closingConnectionNotCached(self) -> None:
        """A quiescent connection whose transport is disconnecting is dropped; an open
        one is kept."""
        from twisted.internet.testing import MemoryReactorClock

        from responses_proxy.web._twistedpool import UpstreamPool

        class Transport:
            def __init__(self, disconnecting: bool) -> None:
                self.disconnecting = disconnecting

            def loseConnection(self) -> None:
                pass

        class Connection:
            state = "QUIESCENT"

            def __init__(self, disconnecting: bool) -> None:
                self.transport = Transport(disconnecting)

        pool = UpstreamPool(MemoryReactorClock())
        pool._putConnection("k", Connection(True))
        self.assertEqual(pool._connections.get("k", []), [])
        kept = Connection(False)
        pool._putConnection("k", kept)
        self.assertEqual(pool._connections["k"], [kept])
