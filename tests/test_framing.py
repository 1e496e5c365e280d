"""
Tests for L{responses_proxy.framing} and the channel that applies it: proxy-spec "Message
framing is strict", slow bodies and idle connections.
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.config import Limits
from responses_proxy.framing import ChunkedCheck, HeadCheck
from tests.memoryproxy import MemoryProxy

BODY = b'{"model":"m","stream":true}'


def head(version: bytes, *lines: bytes) -> str | None:
    check = HeadCheck(version)
    for line in lines:
        problem = check.line(line)
        if problem is not None:
            return problem
    return check.end()


class HeadCheckTests(SynchronousTestCase):
    """
    The header section's rules, line by line.
    """

    def test_fine(self) -> None:
        """An ordinary request, chunked or with a length, passes."""
        self.assertIsNone(head(b"HTTP/1.1", b"Host: 127.0.0.1", b"Content-Length: 2"))
        self.assertIsNone(head(b"HTTP/1.1", b"Host: x", b"Transfer-Encoding: Chunked"))
        self.assertIsNone(head(b"HTTP/1.0", b"Host: x", b"X-Tab: a\tb"))

    def test_rows(self) -> None:
        """Every row of the spec's table is refused, naming the problem."""
        rows = [
            ((b"Host: x", b"Transfer-Encoding: identity", b"Content-Length: 2"), "exactly chunked"),
            ((b"Host: x", b"Transfer-Encoding: gzip, chunked"), "exactly chunked"),
            ((b"Host: x", b"Transfer-Encoding: chunked, chunked"), "exactly chunked"),
            ((b"Host: x", b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"), "exactly"),
            ((b"Host: x", b"Transfer-Encoding: chunked", b"Content-Length: 2"), "together"),
            ((b"Host: x", b"Content-Length: 2", b"Content-Length: 2"), "more than one"),
            ((b"Host: x", b"Content-Length: +2"), "plain decimal"),
            ((b"Host: x", b"Content-Length: 0x2"), "plain decimal"),
            ((b"Host: x", b"X-A: 1", b" folded"), "folding"),
            ((b"Host: x", b"X-A: 1", b"\tfolded"), "folding"),
            ((b"Host: x", b"X-A: a\x7fb"), "control character"),
            ((b"Host: x", b"X-A: a\x10b"), "control character"),
            ((b"Host: x", b"X-A: \x1b[31m"), "control character"),
            ((b"X-A: 1",), "missing Host"),
            ((b"Host: a", b"Host: a"), "more than one Host"),
        ]
        for lines, expected in rows:
            problem = head(b"HTTP/1.1", *lines)
            self.assertIsNotNone(problem, lines)
            self.assertIn(expected, problem, lines)

    def test_transferEncodingOnHTTP10(self) -> None:
        """HTTP/1.0 has no chunked framing."""
        self.assertIn("HTTP/1.0", head(b"HTTP/1.0", b"Host: x", b"Transfer-Encoding: chunked"))


class ChunkedCheckTests(SynchronousTestCase):
    """
    A chunked body's framing, fed in pieces.
    """

    def feedAll(self, body: bytes, sizes: list[int]) -> str | None:
        check = ChunkedCheck()
        pos = 0
        for size in sizes:
            problem = check.feed(body[pos : pos + size])
            pos += size
            if problem is not None:
                return problem
        return check.feed(body[pos:])

    def test_splitsAnywhere(self) -> None:
        """A well-framed body passes however it is split (extensions and trailers too)."""
        body = b"5;ext=1\r\nhello\r\n0A\r\n" + b"x" * 10 + b"\r\n0\r\nX-T: 1\r\n\r\nNEXT"
        rng = random.Random(9)
        for _ in range(200):
            cuts = [rng.randint(0, 6) for _ in range(20)]
            self.assertIsNone(self.feedAll(body, cuts))

    def test_bareLF(self) -> None:
        """A bare LF anywhere in the framing is refused as soon as it arrives."""
        for body in [
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\n\r\n",
            b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
        ]:
            self.assertIn("bare LF", ChunkedCheck().feed(body), body)

    def test_badSizesAndOverruns(self) -> None:
        """A size that is not hex, or data longer than its size, is refused."""
        self.assertIn("hexadecimal", ChunkedCheck().feed(b"0x5\r\nhello\r\n"))
        self.assertIn("hexadecimal", ChunkedCheck().feed(b"\r\n"))
        self.assertIn("longer", ChunkedCheck().feed(b"2\r\nhello\r\n"))

    def test_longLine(self) -> None:
        """A chunk line that never ends is bounded."""
        self.assertIn("64 KiB", ChunkedCheck().feed(b"1" * (65 * 1024)))


class ChannelFramingTests(SynchronousTestCase):
    """
    The channel answers 400 and closes at once; nothing reaches the upstream.
    """

    def send(self, raw: bytes, limits: Limits | None = None) -> tuple[MemoryProxy, object]:
        proxy = MemoryProxy(limits=limits)
        client = proxy.connect()
        client.send(raw)
        proxy.pump()
        return proxy, client

    def assertBadRequest(self, raw: bytes, why: str) -> None:
        proxy, client = self.send(raw)
        resp = client.response()
        self.assertEqual(resp.status, 400, raw)
        self.assertIn(why.encode(), resp.body, raw)
        self.assertEqual(resp.headerValues("connection"), ["close"])
        self.assertTrue(client.transport.disconnecting, raw)
        self.assertEqual(proxy.upstreamRequests, [], raw)

    def test_rows(self) -> None:
        """Each malformed framing is a 400 and a close."""
        start = b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        cases = [
            (start + b"Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}", "chunked"),
            (start + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "chunked"),
            (
                b"POST /v1/responses HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                "HTTP/1.0",
            ),
            (start + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", "together"),
            (start + b"X-A: 1\r\n  folded\r\nContent-Length: 2\r\n\r\n{}", "folding"),
            (start + b"X-A: \x7f\r\nContent-Length: 2\r\n\r\n{}", "control"),
            (b"POST /v1/responses HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", "missing Host"),
            (start + b"Host: localhost\r\nContent-Length: 2\r\n\r\n{}", "more than one Host"),
        ]
        for raw, why in cases:
            self.assertBadRequest(raw, why)

    def test_chunkedBareLFClosesAtOnce(self) -> None:
        """A chunk line ended by a bare LF closes now, not when the body timer runs out."""
        self.assertBadRequest(
            b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\n{}\n0\n\n",
            "bare LF",
        )

    def test_fuzzedHeaderValues(self) -> None:
        """Random bytes in a header value: a 400 or a forwarded request whose header is
        clean, never a 500 or a control character upstream."""
        rng = random.Random(7)
        for _ in range(300):
            value = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            value = value.replace(b"\r", b"").replace(b"\n", b"")
            raw = (
                b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nX-F: "
                + value
                + b"\r\nContent-Length: %d\r\n\r\n" % len(BODY)
                + BODY
            )
            proxy, client = self.send(raw)
            out = client.received()
            requests = proxy.upstreamRequests
            if requests:
                sent = requests[0].requestHeaders.getRawHeaders(b"x-f", [b""])[0]
                self.assertNotRegex(sent, rb"[\x00-\x08\x0a-\x1f\x7f]", value)
                self.assertEqual(out, b"", value)
            else:
                self.assertRegex(out[:12], rb"HTTP/1\.1 400", value)


class SlowClientTests(SynchronousTestCase):
    """
    A trickled body and an idle connection are bounded.
    """

    def test_trickleRefused(self) -> None:
        """64 bytes per second: past the grace, under the floor, 408 and close."""
        limits = Limits(bodyMinRate=256, bodyRateGrace=10, bodyIdleTimeout=60)
        proxy = MemoryProxy(limits=limits)
        client = proxy.connect()
        client.send(
            b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
        )
        for _ in range(9):
            client.send(b"x" * 64)
            proxy.clock.advance(1)
        self.assertEqual(client.received(), b"")
        client.send(b"x" * 64)
        proxy.clock.advance(1)
        self.assertTrue(client.received().startswith(b"HTTP/1.1 408 "))
        self.assertEqual(proxy.upstreamRequests, [])

    def test_fastEnoughBodyPasses(self) -> None:
        """A body well above the floor, even spread over minutes, is forwarded."""
        limits = Limits(bodyMinRate=256, bodyRateGrace=10, bodyIdleTimeout=60)
        proxy = MemoryProxy(limits=limits)
        client = proxy.connect()
        size = 1024 * 120
        client.send(
            b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % size
        )
        for _ in range(120):
            client.send(b"x" * 1024)
            proxy.clock.advance(1)
        proxy.pump()
        self.assertEqual(len(proxy.upstreamRequests), 1)

    def test_idleKeepAliveClosesAfter30s(self) -> None:
        """A connection waiting for its next request is closed after 30 s (the default)."""
        proxy = MemoryProxy()
        client = proxy.connect()
        proxy.clock.advance(29.9)
        self.assertFalse(client.transport.disconnecting)
        proxy.clock.advance(0.1)
        self.assertTrue(client.transport.disconnecting)
