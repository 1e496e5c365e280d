"""
Tests for L{tests.support.wire}, the parser every test and benchmark reads responses and
server-sent events with.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.support import wire

CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: a\r\nX: b\r\n\r\n"
    b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
)


class ParseResponseTests(SynchronousTestCase):
    """
    L{wire.parseResponse} and L{wire.parseResponses} on all the bytes of a connection.
    """

    def test_chunkedComplete(self) -> None:
        """A chunked body with extensions and trailers is de-framed and complete."""
        resp = wire.parseResponse(CHUNKED)
        self.assertEqual((resp.status, resp.reason, resp.version), (200, "OK", "HTTP/1.1"))
        self.assertEqual(resp.headerValues("x"), ["a", "b"])
        self.assertEqual(resp.body, b"abcde")
        self.assertTrue(resp.chunked and resp.complete)
        self.assertEqual(resp.raw, CHUNKED)

    def test_chunkedTruncated(self) -> None:
        """A chunked body cut anywhere before the last chunk's blank line is incomplete."""
        for cut in [b"3\r\nabc\r\n", b"3\r\nab", b"3\r\nabc\r\n0\r\n"]:
            resp = wire.parseResponse(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + cut
            )
            self.assertTrue(resp.chunked)
            self.assertFalse(resp.complete, cut)
            self.assertEqual(resp.body, b"abc"[: len(resp.body)], cut)

    def test_contentLengthAndClose(self) -> None:
        """Content-Length bounds the body; a close-delimited body ends at the close."""
        full = wire.parseResponse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA")
        self.assertEqual((full.body, full.complete), (b"abc", True))
        short = wire.parseResponse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc")
        self.assertEqual((short.body, short.complete), (b"abc", False))
        closeDelimited = wire.parseResponse(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
        self.assertEqual((closeDelimited.body, closeDelimited.complete), (b"until close", True))
        noBody = wire.parseResponse(b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertTrue(noBody.complete)
        empty = wire.parseResponse(b"")
        self.assertEqual((empty.status, empty.complete), (0, False))

    def test_head(self) -> None:
        """The answer to HEAD has no body whatever its Content-Length says."""
        data = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\n"
        resp = wire.parseResponse(data, head=True)
        self.assertEqual((resp.status, resp.body, resp.complete), (403, b"", True))
        self.assertFalse(wire.parseResponse(data).complete)

    def test_interimAndPipelined(self) -> None:
        """1xx heads are kept apart; pipelined responses are split at their framing."""
        data = (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
        )
        first, second = wire.parseResponses(data)
        self.assertEqual([i.status for i in first.interim], [100])
        self.assertEqual(first.interim[0].raw, b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertEqual((first.status, first.body), (200, b"a"))
        self.assertEqual(first.raw, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
        self.assertEqual(second.status, 403)

    def test_badFraming(self) -> None:
        """A bad status line, header line or chunk size is a ProtocolError."""
        for data in [
            b"HTTX/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
        ]:
            self.assertRaises(wire.ProtocolError, wire.parseResponse, data)


class ResponseParserTests(SynchronousTestCase):
    """
    L{wire.ResponseParser} fed as bytes arrive.
    """

    def test_byteByByte(self) -> None:
        """Fed one byte at a time, the result is the same as at once, and rest is kept."""
        parser = wire.ResponseParser()
        data = CHUNKED + b"NEXT"
        done = [parser.feed(data[i : i + 1]) for i in range(len(data))]
        self.assertEqual(done.index(True), len(CHUNKED) - 1)
        self.assertEqual((parser.body, parser.chunks, parser.rest), (b"abcde", 3, b"NEXT"))
        self.assertEqual(parser.headDone, True)

    def test_wholeChunks(self) -> None:
        """With wholeChunks the callback gets each chunk once, however it was split."""
        pieces: list[bytes] = []
        parser = wire.ResponseParser(onBody=pieces.append, wholeChunks=True)
        for i in range(0, len(CHUNKED), 5):
            parser.feed(CHUNKED[i : i + 5])
        self.assertEqual(pieces, [b"abc", b"de"])
        self.assertEqual(parser.body, b"")
        self.assertTrue(parser.complete)

    def test_countOnly(self) -> None:
        """keep=False counts the body without keeping it."""
        parser = wire.ResponseParser(keep=False)
        self.assertTrue(parser.feed(CHUNKED))
        self.assertEqual((parser.bodyBytes, parser.body), (5, b""))
        self.assertGreater(parser.firstBodyAt, 0)

    def test_eof(self) -> None:
        """EOF completes only a close-delimited body."""
        closeDelimited = wire.ResponseParser()
        closeDelimited.feed(b"HTTP/1.0 200 OK\r\n\r\nabc")
        self.assertTrue(closeDelimited.eof())
        chunked = wire.ResponseParser()
        chunked.feed(CHUNKED[:-5])
        self.assertFalse(chunked.eof())


class SSETests(SynchronousTestCase):
    """
    L{wire.parseSSE} and L{wire.SSESplitter}.
    """

    def test_parseSSE(self) -> None:
        """Fields, comments, multi-line data and CRLF; a trailing partial event is dropped."""
        events = wire.parseSSE(
            ": comment\r\nevent: e\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata:x\n\nincomplete"
        )
        self.assertEqual([(e.event, e.data) for e in events], [("e", '{"a":\n1}'), (None, "x")])
        self.assertEqual(events[0].json(), {"a": 1})

    def test_splitAcrossFeeds(self) -> None:
        """A CRLF, an event and a multi-byte character split across feeds."""
        data = "data: caf\u00e9\r\n\r\nevent: t\r\ndata: 2\r\n\r\n".encode()
        for step in (1, 2, 3, 7):
            splitter = wire.SSESplitter()
            events = []
            for i in range(0, len(data), step):
                events += splitter.events(data[i : i + step])
            self.assertEqual(
                [(e.event, e.data) for e in events], [(None, "caf\u00e9"), ("t", "2")], step
            )
            self.assertEqual(splitter.pending, b"")

    def test_responseEvents(self) -> None:
        """A parsed response's events() reads its de-framed body."""
        resp = wire.parseResponse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\ndata: \r\n5\r\none\n\n\r\n0\r\n\r\n"
        )
        self.assertEqual([e.data for e in resp.events()], ["one"])
