"""
In-memory tests of L{responses_proxy.web.passthrough} and L{responses_proxy.web.exchange}:
the real site and treq client, a fake upstream resource and a fake clock.
"""

from __future__ import annotations

import gzip
import json

from twisted.internet import error as ierror
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IAgent
from zope.interface import implementer

from responses_proxy.config import MEMORY_BODY_MAX, Limits
from tests.memoryproxy import KEY, CapturingAgent, MemoryProxy, request, upstreamBody
from tests.support import wire


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


@implementer(IAgent)
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
        self.assertEqual(len(self.proxy.upstreamRequests), 1)
        return self.proxy.upstreamRequests[0]

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
        self.assertEqual(upstreamBody(up), body)
        self.assertEqual(up.requestHeaders.getRawHeaders(b"content-length"), [b"%d" % len(body)])

    def test_chunkedClientBodyIsReframed(self) -> None:
        """A chunked upload goes up with a Content-Length and no Transfer-Encoding."""
        raw = request(body=b"5\r\nhello\r\n0\r\n\r\n", headers=[(b"Transfer-Encoding", b"chunked")])
        up = self.forward(raw)
        self.assertEqual(upstreamBody(up), b"hello")
        self.assertEqual(up.requestHeaders.getRawHeaders(b"content-length"), [b"5"])

    def test_largeBodyStreamedFromFile(self) -> None:
        """A body held in a temporary file (over C{MEMORY_BODY_MAX}) is forwarded whole."""
        body = b"x" * (MEMORY_BODY_MAX + 1000)
        up = self.forward(request(body=body))
        self.assertEqual(upstreamBody(up), body)

    def test_proxyAsksForGzipOnly(self) -> None:
        """The client's Accept-Encoding (Codex 0.171 sends zstd,gzip) is not forwarded: the
        proxy asks for gzip, once."""
        for sent in [b"zstd,gzip", b"br", None]:
            self.setUp()
            up = self.forward(request(headers=[(b"Accept-Encoding", sent)] if sent else []))
            self.assertEqual(up.requestHeaders.getRawHeaders(b"accept-encoding"), [b"gzip"])

    def test_gzipBodyDecodedAndScrubbed(self) -> None:
        """A gzip body is decoded, scrubbed of an echoed key, and relayed plain."""
        up = self.forward(request(headers=[(b"Accept-Encoding", b"zstd,gzip")]))
        echo = b'{"error":{"message":"Incorrect API key provided: Bearer ' + KEY + b'"}}'
        up.setResponseCode(401)
        up.setHeader(b"content-encoding", b"gzip")
        up.setHeader(b"content-type", b"application/json")
        up.write(gzip.compress(echo))
        up.finish()
        self.proxy.pump()
        resp = self.client.response()
        body = resp.body
        self.assertEqual((resp.status, resp.complete), (401, True))
        self.assertEqual(resp.headerValues("content-encoding"), [])
        self.assertNotIn(KEY, body)
        self.assertNotIn(KEY[-8:], body)
        self.assertIn(b"Incorrect API key provided: Bearer [REDACTED]", body)

    def test_undecodableCodingIs502(self) -> None:
        """A coding the proxy did not ask for and cannot decode is never relayed."""
        for coding in [b"zstd", b"br", b"deflate", b"gzip, zstd"]:
            self.setUp()
            up = self.forward(request())
            up.setResponseCode(200)
            up.setHeader(b"content-encoding", coding)
            up.write(b"\x28\xb5\x2f\xfd" + KEY)
            up.finish()
            self.proxy.pump()
            resp = self.client.response()
            self.assertEqual(resp.status, 502, coding)
            self.assertEqual(resp.headerValues("content-encoding"), [])
            document = json.loads(resp.body)
            self.assertEqual(document["error"]["code"], "upstream_bad_encoding")
            self.assertIn(coding.split(b",")[-1].strip().decode(), document["error"]["message"])
            self.assertNotIn(KEY, resp.body)

    def test_noEmptyContentEncoding(self) -> None:
        """No Content-Encoding appears when the upstream sent none."""
        up = self.forward(request())
        up.write(b"{}")
        up.finish()
        self.proxy.pump()
        self.assertIsNone(self.client.response().header("content-encoding"))

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
        resp = wire.parseResponse(raw)
        self.assertTrue(raw.startswith(b"HTTP/1.1 429 Too Many Requests\r\n"))
        self.assertEqual(resp.headerValues("retry-after"), ["7"])
        self.assertEqual(resp.headerValues("x-request-id"), ["req_1"])
        self.assertEqual(resp.headerValues("keep-alive"), [])
        self.assertEqual((resp.body, resp.complete), (b'{"error":{}}', True))

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
        resp = self.client.response()
        self.assertEqual((resp.body, resp.complete), (b"data: one\n\ndata: two\n\n", True))

    def test_redirectPassedThroughNotFollowed(self) -> None:
        """A 307 goes back to the client; the upstream sees one request."""
        up = self.forward(request())
        up.setResponseCode(307)
        up.setHeader(b"location", b"https://elsewhere.test/v1/responses")
        up.finish()
        self.proxy.pump()
        resp = self.client.response()
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.headerValues("location"), ["https://elsewhere.test/v1/responses"])
        self.assertEqual(len(self.proxy.upstreamRequests), 1)

    def test_cookiesNeverStoredOrReplayed(self) -> None:
        """An upstream Set-Cookie is relayed but never sent on a later request."""
        up = self.forward(request())
        up.setHeader(b"set-cookie", b"__cf_bm=abc; Path=/; Domain=upstream.test")
        up.finish()
        self.proxy.pump()
        self.client = self.proxy.connect()
        self.client.send(request())
        self.proxy.pump()
        second = self.proxy.upstreamRequests[1]
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
        return client.response(), proxy

    def test_refusedIs502(self) -> None:
        """Connection refused: 502 with a JSON error."""
        resp, _ = self.answer(ierror.ConnectionRefusedError())
        self.assertEqual(resp.status, 502)
        self.assertEqual(resp.headerValues("content-type"), ["application/json"])
        self.assertIn(b'"upstream_unreachable"', resp.body)

    def test_connectTimeoutIs504(self) -> None:
        """A connect timeout: 504."""
        resp, _ = self.answer(ierror.TimeoutError())
        self.assertEqual(resp.status, 504)
        self.assertIn(b"upstream_timeout", resp.body)

    def test_noHeadersIs504(self) -> None:
        """No response headers within the limit: 504, and the request is cancelled."""
        proxy = MemoryProxy(agent=FailingAgent(None), limits=Limits(responseTimeout=300))
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        proxy.clock.advance(299)
        self.assertEqual(client.received(), b"")
        proxy.clock.advance(1)
        self.assertEqual(client.response().status, 504)
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
        up = proxy.upstreamRequests[0]
        up.write(b"data: partial\n\n")
        proxy.pump()
        up.channel.transport.abortConnection()
        proxy.pump()
        resp = client.response()
        self.assertEqual(resp.body, b"data: partial\n\n")
        self.assertFalse(resp.complete)
        self.assertTrue(client.transport.disconnecting)

    def test_clientGoneMidStreamStopsUpstream(self) -> None:
        """The client leaving mid-stream closes the upstream connection."""
        proxy = MemoryProxy()
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        up = proxy.upstreamRequests[0]
        lost = up.notifyFinish()
        up.write(b"data: 1\n\n")
        proxy.pump()
        client.disconnect()
        proxy.pump()
        self.failureResultOf(lost)


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


class ReferenceCycleTests(SynchronousTestCase):
    """
    A finished exchange and a closed connection are freed by reference counting alone.
    """

    def test_noCyclesLeftAfterARequest(self) -> None:
        """With the collector off, nothing of a relayed request or its connection survives."""
        import gc

        from responses_proxy.web.exchange import UpstreamExchange
        from responses_proxy.web.front import StrictHTTPChannel, StrictRequest

        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        proxy = MemoryProxy()
        client = proxy.connect()
        client.send(request())
        proxy.pump()
        [up] = proxy.upstreamRequests
        up.write(b'{"ok": true}')
        up.finish()
        proxy.pump()
        self.assertTrue(client.response().complete)
        client.disconnect()
        del client
        proxy.pump()
        kinds = (UpstreamExchange, StrictRequest, StrictHTTPChannel)
        survivors = [type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds)]
        self.assertEqual(survivors, [])
