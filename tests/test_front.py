"""
In-memory tests of L{responses_proxy.web.front} and L{responses_proxy.web.shutdown}: the
strict channel, request and site, on a fake clock.
"""

from __future__ import annotations

import io
import random
import re
import tempfile

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IAgent
from zope.interface import implementer

from responses_proxy.config import MEMORY_BODY_MAX, Limits
from responses_proxy.web import front
from tests.memoryproxy import KEY, MemoryProxy, request, upstreamBody


@implementer(IAgent)
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
        self.assertEqual(proxy.upstreamRequests, [], raw)
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
        """No Host or two Hosts is a malformed request (400, RFC 9112 section 3.2); a name
        that is not loopback is refused (403)."""
        self.refused(request(host=None), 400)
        self.refused(request(headers=[(b"Host", b"127.0.0.1")]), 400)
        self.refused(request(host=b"evil.example:8080"))
        self.refused(request(host=b"127.0.0.1.nip.io"))

    def test_browserHeaders(self) -> None:
        """Origin or Sec-Fetch-Site marks a browser: refused."""
        self.refused(request(headers=[(b"Origin", b"http://127.0.0.1:8080")]))
        self.refused(request(headers=[(b"Origin", b"null")]))
        self.refused(request(headers=[(b"Sec-Fetch-Site", b"same-origin")]))

    def test_http10WithoutHostRefused(self) -> None:
        """HTTP/1.0 without Host is refused like any request without Host."""
        self.refused(request(host=None, version=b"HTTP/1.0"), 400)

    def test_allowedVariantsAccepted(self) -> None:
        """localhost and [::1] hosts are fine."""
        for host in [b"localhost:1234", b"[::1]:1234", b"127.0.0.2"]:
            proxy = MemoryProxy()
            client = proxy.connect()
            client.send(request(host=host))
            proxy.pump()
            self.assertEqual(len(proxy.upstreamRequests), 1, host)


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
        resp = client.response()
        self.assertEqual(resp.status, 413)
        self.assertIn(b"request_too_large", resp.body)
        self.assertEqual(proxy.upstreamRequests, [])
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
        self.assertEqual(client.response().status, 413)
        self.assertEqual(proxy.upstreamRequests, [])

    def test_bodyAtCapAccepted(self) -> None:
        """A body exactly at the cap is forwarded."""
        proxy = MemoryProxy(limits=Limits(maxBodyBytes=100))
        client = proxy.connect()
        client.send(request(body=b"a" * 100))
        proxy.pump()
        self.assertEqual(len(proxy.upstreamRequests), 1)

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
        self.assertEqual(proxy.upstreamRequests, [])

    def test_bodyIdleDeadline(self) -> None:
        """A client silent in the middle of its body is disconnected; data resets it."""
        proxy = MemoryProxy(limits=Limits(bodyIdleTimeout=60, bodyMinRate=0.01))
        client = proxy.connect()
        client.send(request(body=b"", headers=[(b"Content-Length", b"10")]))
        client.send(b"12345")
        proxy.clock.advance(59)
        client.send(b"6")
        proxy.clock.advance(59)
        self.assertEqual(client.received(), b"")
        proxy.clock.advance(2)
        self.assertTrue(client.received().startswith(b"HTTP/1.1 408 "))
        self.assertEqual(proxy.upstreamRequests, [])

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


class ShutdownTests(SynchronousTestCase):
    """
    C{GET /shutdown} with and without the flag.
    """

    def test_shutdownStopsAfterClose(self) -> None:
        """200 with Connection: close; the stop runs once the connection has closed."""
        proxy = MemoryProxy(httpShutdown=True)
        client = proxy.connect()
        client.send(request(method=b"GET", target=b"/shutdown", body=b""))
        resp = client.response()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.headerValues("connection"), ["close"])
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
        up = proxy.upstreamRequests[0]
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
        self.assertRegex(
            formatEvent(event),
            rf"\APOST /v1/responses 201 {event['bytesOut']}B [0-9]+\.[0-9]{{3}}s upstream=201\Z",
        )
        self.assertNotIn(KEY.decode(), repr(list(observer)))
        self.assertNotIn("client", repr(list(observer)))

    def test_refusalsLoggedWithReason(self) -> None:
        """Every 403 is logged with why it was refused; its body stays empty."""
        cases = [
            (request(target=b"/v1/models"), "target not allowed"),
            (request(host=b"evil.example"), "Host is not a loopback name"),
            (request(headers=[(b"Origin", b"http://x")]), "Origin header present"),
            (
                request(headers=[(b"Sec-Fetch-Site", b"cross-site")]),
                "Sec-Fetch-Site header present",
            ),
            (request(method=b"GET", target=b"/shutdown", body=b""), "shutdown is disabled"),
        ]
        for raw, reason in cases:
            observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
            proxy = MemoryProxy()
            client = proxy.connect()
            client.send(raw)
            proxy.pump()
            resp = client.response()
            self.assertEqual(
                (resp.status, resp.headerValues("content-length"), resp.body), (403, ["0"], b"")
            )
            [line] = [e for e in observer if "bytesOut" in e]
            self.assertEqual(line["refusal"], f" refused: {reason}", reason)
            self.assertEqual(proxy.upstreamRequests, [])


class KeepAliveTests(SynchronousTestCase):
    """
    Persistent client connections keep working and still time out when idle.
    """

    def test_localAddressAskedOnce(self) -> None:
        """Requests on one connection share its local address, asked of the transport
        once (Twisted's request asks for it every time)."""
        proxy = MemoryProxy()
        client = proxy.connect()
        asked = []
        getHost = client.transport.getHost
        client.transport.getHost = lambda: asked.append(1) or getHost()  # type: ignore[method-assign]
        hosts = []
        for n in range(3):
            client.send(request())
            proxy.pump()
            hosts.append(client.channel.requests[-1].getHost())
            up = proxy.upstreamRequests[n]
            up.write(b"{}")
            up.finish()
            proxy.pump()
        self.assertEqual(len(asked), 1)
        self.assertEqual({(h.host, h.port) for h in hosts}, {("127.0.0.1", 8080)})

    def test_secondRequestOnSameConnection(self) -> None:
        """Two requests in a row on one connection are both forwarded and answered."""
        proxy = MemoryProxy()
        client = proxy.connect()
        for n in range(2):
            client.send(request())
            proxy.pump()
            up = proxy.upstreamRequests[n]
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
        up = proxy.upstreamRequests[0]
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
        up = proxy.upstreamRequests[0]
        for _ in range(10):
            proxy.clock.advance(100)
            up.write(b"data: tick\n\n")
            proxy.pump()
        self.assertFalse(client.transport.disconnecting)
        self.assertEqual(client.received().count(b"data: tick"), 10)


class OneReadTests(SynchronousTestCase):
    """
    A request that arrives in one read, head and large body together, is the same byte
    stream as one arriving in pieces; the channel hands the head and the body to Twisted
    separately, so its line parser does not copy the body once per header line.
    """

    BODY = b'{"model":"m","input":"' + b"x" * 40_000 + b'"}'

    def test_bodyNotCopiedPerHeaderLine(self) -> None:
        """While header lines are parsed, the line parser's buffer holds the head only."""
        proxy = MemoryProxy()
        client = proxy.connect()
        seen: list[int] = []
        channel = client.channel
        lineReceived = channel.lineReceived
        channel.lineReceived = lambda line: seen.append(len(channel._buffer)) or lineReceived(line)  # type: ignore[method-assign]
        headers = [(b"x-h%d" % n, b"v" * 40) for n in range(16)]
        client.send(request(body=self.BODY, headers=headers))
        proxy.pump()
        self.assertEqual(len(seen), 20)
        self.assertLess(max(seen), 2048)
        self.assertEqual(upstreamBody(proxy.upstreamRequests[0]), self.BODY)

    def test_pipelinedRequestsInOneRead(self) -> None:
        """Two requests with large bodies in one read are both forwarded whole, in order."""
        proxy = MemoryProxy()
        client = proxy.connect()
        second = self.BODY.replace(b"x", b"y")
        client.send(request(body=self.BODY) + request(body=second))
        proxy.pump()
        first = proxy.upstreamRequests[0]
        self.assertEqual(upstreamBody(first), self.BODY)
        first.write(b"{}")
        first.finish()
        proxy.pump()
        self.assertEqual(upstreamBody(proxy.upstreamRequests[1]), second)
        proxy.upstreamRequests[1].finish()
        proxy.pump()
        self.assertEqual(client.received().count(b"HTTP/1.1 200 OK"), 2)

    def test_refusedHeadWithBodyInOneRead(self) -> None:
        """A refused head followed by its body in the same read: the refusal, nothing
        upstream, and the body is not parsed as another request."""
        proxy = MemoryProxy()
        client = proxy.connect()
        client.send(request(target=b"/v1/models", body=b"GET / HTTP/1.1\r\n\r\n" * 200))
        proxy.pump()
        out = client.received()
        self.assertEqual(out.count(b"HTTP/1.1 "), 1, out[:200])
        self.assertTrue(out.startswith(b"HTTP/1.1 403 "))
        self.assertEqual(proxy.upstreamRequests, [])

    def test_badHeadWithBodyInOneRead(self) -> None:
        """A malformed head followed by a large body in one read: 400 and close, and the
        body is never read as a request."""
        proxy = MemoryProxy()
        client = proxy.connect()
        raw = request(body=self.BODY, headers=[(b"x-bad", b"a\x10b")])
        client.send(raw)
        proxy.pump()
        out = client.received()
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:80])
        self.assertEqual(out.count(b"HTTP/1.1 "), 1)
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(proxy.upstreamRequests, [])


class HoweverReadTests(SynchronousTestCase):
    """
    The same bytes give the same outcome in one read or in many small ones: the split a
    large read gets (L{OneReadTests}) is only an optimisation. Random request streams,
    well-formed and not, a fixed seed, a bounded number of cases.
    """

    CASES = 150

    def stream(self, rng: random.Random) -> bytes:
        out = b""
        for _ in range(rng.randint(1, 3)):
            size = rng.choice([0, 40, 3000, 9000])
            body = bytes(rng.choice(b'ab{}"\r\n: ') for _ in range(size))
            if rng.random() < 0.3:
                body = body[: size // 2] + b"\r\n\r\nPOST / HTTP/1.1\r\n" + body[size // 2 :]
            headers = [(b"Content-Type", b"application/json")]
            fault = rng.choice(
                ["", "", "", "lf", "fold", "ctl", "twoLengths", "chunked", "teAndLength"]
            )
            if fault == "fold":
                headers.append((b"X-A", b"b\r\n c"))
            elif fault == "ctl":
                headers.append((b"X-A", b"b\x10c"))
            elif fault == "twoLengths":
                headers.append((b"Content-Length", b"%d" % len(body)))
            raw = request(
                method=rng.choice([b"POST", b"POST", b"POST", b"GET"]),
                target=rng.choice([b"/v1/responses", b"/v1/responses", b"/x"]),
                body=body,
                headers=headers,
            )
            if fault == "lf":
                head, _, rest = raw.partition(b"\r\n\r\n")
                raw = head.replace(b"\r\n", b"\n") + b"\n\n" + rest
            elif fault in ("chunked", "teAndLength"):
                head, _, rest = raw.partition(b"\r\n\r\n")
                if fault == "chunked":
                    head = head.replace(b"Content-Length", b"X-Length")
                framed = b"%x\r\n%b\r\n0\r\n\r\n" % (len(rest), rest) if rest else b"0\r\n\r\n"
                raw = head + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + framed
            out += raw
        return out

    def outcome(self, data: bytes, sizes: list[int]) -> tuple[bytes, list[bytes], bool]:
        proxy = MemoryProxy()
        client = proxy.connect()
        start = 0
        for size in sizes:
            client.send(data[start : start + size])
            start += size
        client.send(data[start:])
        proxy.pump()
        bodies: list[bytes] = []
        for _ in range(8):
            pending = proxy.upstreamRequests[len(bodies) :]
            if not pending:
                break
            for up in pending:
                bodies.append(upstreamBody(up))
                up.write(b"ok")
                up.finish()
            proxy.pump()
        text = re.sub(rb"(?im)^date: [^\r\n]*\r\n", b"", client.received())
        return text, bodies, client.transport.disconnecting

    def test_sameOutcome(self) -> None:
        rng = random.Random(9112)
        for case in range(self.CASES):
            data = self.stream(rng)
            pieces = []
            while sum(pieces) < len(data):
                pieces.append(rng.randint(1, 97))
            whole = self.outcome(data, [])
            self.assertEqual(whole, self.outcome(data, pieces), (case, data[:300]))


class BodyBufferTests(SynchronousTestCase):
    """
    Request bodies are held in memory up to C{MEMORY_BODY_MAX} (Twisted wrote anything
    over 100 KB to a file), and forwarded intact whichever way they were held.
    """

    def test_choice(self) -> None:
        """Declared lengths up to the bound: memory; over it: a file; chunked: memory
        until it grows past the bound, then a file."""
        self.assertIsInstance(front.bodyBuffer(0), io.BytesIO)
        self.assertIsInstance(front.bodyBuffer(300_000), io.BytesIO)
        self.assertIsInstance(front.bodyBuffer(MEMORY_BODY_MAX), io.BytesIO)
        big = front.bodyBuffer(MEMORY_BODY_MAX + 1)
        self.addCleanup(big.close)
        self.assertNotIsInstance(big, (io.BytesIO, tempfile.SpooledTemporaryFile))
        self.patch(front, "MEMORY_BODY_MAX", 10)
        spooled = front.bodyBuffer(None)
        self.addCleanup(spooled.close)
        self.assertIsInstance(spooled, tempfile.SpooledTemporaryFile)
        spooled.write(b"x" * 10)
        self.assertFalse(spooled._rolled)
        spooled.write(b"x")
        self.assertTrue(spooled._rolled)

    def forwarded(self, raw: bytes) -> bytes:
        proxy = MemoryProxy()
        client = proxy.connect()
        for start in range(0, len(raw), 65536):
            client.send(raw[start : start + 65536])
        proxy.pump()
        return upstreamBody(proxy.upstreamRequests[0])

    def test_largeBodyInMemoryForwardedWhole(self) -> None:
        body = b'{"input":"' + bytes(range(97, 123)) * 12_000 + b'"}'
        self.assertEqual(self.forwarded(request(body=body)), body)

    def test_bodyOverTheBoundForwardedFromAFile(self) -> None:
        self.patch(front, "MEMORY_BODY_MAX", 1000)
        body = b'{"input":"' + b"y" * 300_000 + b'"}'
        self.assertEqual(self.forwarded(request(body=body)), body)

    def test_chunkedBodySpilledToAFileForwardedWhole(self) -> None:
        self.patch(front, "MEMORY_BODY_MAX", 1000)
        data = b'{"input":"' + b"z" * 5000 + b'"}'
        chunks = b"".join(
            b"%x\r\n%b\r\n" % (len(data[i : i + 700]), data[i : i + 700])
            for i in range(0, len(data), 700)
        )
        raw = request(body=chunks + b"0\r\n\r\n", headers=[(b"Transfer-Encoding", b"chunked")])
        self.assertEqual(self.forwarded(raw), data)


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
        resp = client.response()
        self.assertEqual(resp.status, 500)
        self.assertIn(b"internal proxy error", resp.body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
