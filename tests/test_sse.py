"""
Tests for L{responses_proxy.sse}: the linear SSE parser and its body protocol.
"""

from __future__ import annotations

from itertools import pairwise

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.sse import (
    DEFAULT_MAX_LINE_LENGTH,
    SSEEventTooLong,
    SSELineTooLong,
    SSEParser,
)

BOM = b"\xef\xbb\xbf"

# A realistic chat stream: keep-alive comments, OpenRouter's PROCESSING
# comments, event/id/retry lines, multi-byte text, a multi-line event, [DONE].
REALISTIC = (
    b": OPENROUTER PROCESSING\n"
    b"\n"
    b"retry: 3000\n"
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n'
    b"\n"
    b": ping\n"
    b"id: 7\n"
    b"event: chunk\n"
    + 'data:{"choices":[{"delta":{"content":"h\u00e9llo \u2713 \U0001f600"}}]}\n'.encode()
    + b"\n"
    b":\n"
    b"data: line one\n"
    b"data:  line two\n"
    b"data\n"
    b"\n"
    b"event: nothing\n"
    b"\n"
    b"\n"
    b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n'
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)

REALISTIC_PAYLOADS = [
    b'{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"}}]}',
    '{"choices":[{"delta":{"content":"h\u00e9llo \u2713 \U0001f600"}}]}'.encode(),
    b"line one\n line two\n",
    b'{"choices":[{"delta":{},"finish_reason":"stop"}]}',
    b"[DONE]",
]


def parseAll(chunks: list[bytes], maxLineLength: int = DEFAULT_MAX_LINE_LENGTH) -> list[bytes]:
    """
    Feed C{chunks} to a new parser, close it, and collect every payload.
    """
    parser = SSEParser(maxLineLength)
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    out.extend(parser.close())
    return out


def splitAt(data: bytes, points: list[int]) -> list[bytes]:
    """
    Cut C{data} at the given offsets.
    """
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def pieces(data: bytes, size: int) -> list[bytes]:
    """
    Cut C{data} into pieces of C{size} bytes.
    """
    return [data[i:i + size] for i in range(0, len(data), size)]


class FramingTests(SynchronousTestCase):
    """
    Line ends, fields and events, fed in one piece.
    """

    def test_dataWithSpace(self) -> None:
        self.assertEqual(parseAll([b"data: hello\n\n"]), [b"hello"])

    def test_dataWithoutSpace(self) -> None:
        self.assertEqual(parseAll([b"data:hello\n\n"]), [b"hello"])

    def test_onlyOneSpaceStripped(self) -> None:
        self.assertEqual(parseAll([b"data:  two\n\n"]), [b" two"])

    def test_trailingSpaceKept(self) -> None:
        self.assertEqual(parseAll([b"data: x \n\n"]), [b"x "])

    def test_lf(self) -> None:
        self.assertEqual(parseAll([b"data: a\n\ndata: b\n\n"]), [b"a", b"b"])

    def test_crlf(self) -> None:
        self.assertEqual(parseAll([b"data: a\r\n\r\ndata: b\r\n\r\n"]), [b"a", b"b"])

    def test_loneCR(self) -> None:
        self.assertEqual(parseAll([b"data: a\r\rdata: b\r\r"]), [b"a", b"b"])

    def test_mixedLineEnds(self) -> None:
        self.assertEqual(
            parseAll([b"data: a\r\ndata: b\rdata: c\n\r\n: x\r\r\ndata: d\r\r"]),
            [b"a\nb\nc", b"d"],
        )

    def test_crBeforeCRLF(self) -> None:
        """
        C{\\r\\r\\n} is a lone CR then a CRLF: two line ends, so a blank line.
        """
        self.assertEqual(parseAll([b"data: a\r\r\ndata: b\n\n"]), [b"a", b"b"])

    def test_comments(self) -> None:
        stream = b": ping\n:\n: OPENROUTER PROCESSING\ndata: x\n: mid-event\n\n"
        self.assertEqual(parseAll([stream]), [b"x"])

    def test_otherFieldsIgnored(self) -> None:
        stream = (
            b"event: message\nid: 42\nretry: 1000\nfoo: bar\nnocolon\n"
            b"Data: wrong case\ndata : spaced name\ndatax: y\ndata: x\n\n"
        )
        self.assertEqual(parseAll([stream]), [b"x"])

    def test_multiLineDataJoined(self) -> None:
        self.assertEqual(parseAll([b"data: a\ndata:b\ndata:  c\n\n"]), [b"a\nb\n c"])

    def test_bareDataLineIsEmptyData(self) -> None:
        self.assertEqual(parseAll([b"data\n\n"]), [b""])
        self.assertEqual(parseAll([b"data: a\ndata\ndata: b\n\n"]), [b"a\n\nb"])

    def test_emptyDataDispatchesEmptyPayload(self) -> None:
        self.assertEqual(parseAll([b"data:\n\n", b"data: \n\n"]), [b"", b""])

    def test_blankLinesWithoutData(self) -> None:
        self.assertEqual(parseAll([b"\n\n\r\n\r\r\n\n"]), [])

    def test_eventWithoutDataDispatchesNothing(self) -> None:
        self.assertEqual(parseAll([b"event: x\nid: 1\n\n: c\n\ndata: y\n\n"]), [b"y"])

    def test_done(self) -> None:
        self.assertEqual(parseAll([b"data: {}\n\ndata: [DONE]\n\n"]), [b"{}", b"[DONE]"])

    def test_colonsInValueKept(self) -> None:
        self.assertEqual(parseAll([b'data: {"a":"b: c"}\n\n']), [b'{"a":"b: c"}'])

    def test_dispatchedByTheFeedThatCompletesIt(self) -> None:
        parser = SSEParser()
        self.assertEqual(parser.feed(b"data: a\n"), [])
        self.assertEqual(parser.feed(b"\ndata: b\n"), [b"a"])
        self.assertEqual(parser.feed(b"\n"), [b"b"])

    def test_emptyFeeds(self) -> None:
        parser = SSEParser()
        self.assertEqual(parser.feed(b""), [])
        self.assertEqual(parser.feed(b"data: a\r"), [])
        self.assertEqual(parser.feed(b""), [])
        self.assertEqual(parser.feed(b"\n"), [])
        self.assertEqual(parser.feed(b""), [])
        self.assertEqual(parser.feed(b"\n"), [b"a"])

    def test_realistic(self) -> None:
        self.assertEqual(parseAll([REALISTIC]), REALISTIC_PAYLOADS)

    def test_payloadIsBytes(self) -> None:
        for payload in parseAll([REALISTIC]):
            self.assertIs(type(payload), bytes)

    def test_badLimit(self) -> None:
        self.assertRaises(ValueError, SSEParser, 0)


class SplitTests(SynchronousTestCase):
    """
    Where the reads are cut never changes the result.
    """

    def test_crlfSplitAcrossFeeds(self) -> None:
        parser = SSEParser()
        self.assertEqual(parser.feed(b"data: a\r"), [])
        self.assertEqual(parser.feed(b"\n\r"), [b"a"])
        # The LF after that CR is swallowed, not a second blank line.
        self.assertEqual(parser.feed(b"\ndata: b\r"), [])
        self.assertEqual(parser.feed(b"\n\r\n"), [b"b"])
        self.assertEqual(parser.close(), [])

    def test_loneCRAtEndOfFeedThenData(self) -> None:
        parser = SSEParser()
        self.assertEqual(parser.feed(b"data: a\r"), [])
        self.assertEqual(parser.feed(b"data: b\r"), [])
        self.assertEqual(parser.feed(b"\r"), [b"a\nb"])

    def test_onlyOneLFSwallowed(self) -> None:
        parser = SSEParser()
        self.assertEqual(parser.feed(b"data: a\r"), [])
        self.assertEqual(parser.feed(b"\n\n"), [b"a"])

    def test_everyTwoWaySplit(self) -> None:
        for variant in (REALISTIC, REALISTIC.replace(b"\n", b"\r\n"),
                        REALISTIC.replace(b"\n", b"\r")):
            for point in range(len(variant) + 1):
                self.assertEqual(
                    parseAll(splitAt(variant, [point])), REALISTIC_PAYLOADS, point
                )

    def test_threeWaySplits(self) -> None:
        crlf = REALISTIC.replace(b"\n", b"\r\n")
        for first in range(0, len(crlf), 7):
            for second in range(first, len(crlf), 11):
                self.assertEqual(
                    parseAll(splitAt(crlf, [first, second])), REALISTIC_PAYLOADS,
                    (first, second),
                )

    def test_byteAtATime(self) -> None:
        for variant in (REALISTIC, REALISTIC.replace(b"\n", b"\r\n"),
                        REALISTIC.replace(b"\n", b"\r"), BOM + REALISTIC):
            self.assertEqual(parseAll(pieces(variant, 1)), parseAll([variant]))
            self.assertEqual(parseAll(pieces(variant, 1)), REALISTIC_PAYLOADS)

    def test_fixedPieceSizes(self) -> None:
        for size in (2, 3, 5, 13, 64, 100):
            self.assertEqual(parseAll(pieces(REALISTIC, size)), REALISTIC_PAYLOADS, size)

    def test_multiByteCharacterSplit(self) -> None:
        text = "\u00e9\u2713\U0001f600"
        stream = b"data: " + text.encode() + b"\n\n"
        start = len(b"data: ")
        for point in range(start, start + len(text.encode()) + 1):
            payloads = parseAll(splitAt(stream, [point]))
            self.assertEqual(payloads, [text.encode()], point)
            self.assertEqual(payloads[0].decode("utf-8"), text)

    def test_longLineInPieces(self) -> None:
        """
        A 5 MiB data line fed in 16 KiB pieces is the same as fed whole.
        """
        body = bytes(range(32, 127)) * (5 * 1024 * 1024 // 95 + 1)
        body = body[:5 * 1024 * 1024]
        stream = b"data: " + body + b"\n\ndata: [DONE]\n\n"
        self.assertEqual(parseAll(pieces(stream, 16 * 1024)), [body, b"[DONE]"])
        self.assertEqual(parseAll([stream]), [body, b"[DONE]"])

    def test_longLineInTinyPieces(self) -> None:
        """
        Tiny reads of one line are coalesced and still give the same line.
        """
        body = b"0123456789" * 2000
        stream = b"data: " + body + b"\n\n"
        self.assertEqual(parseAll(pieces(stream, 3)), [body])


class BOMTests(SynchronousTestCase):
    """
    A UTF-8 byte order mark at the start of the stream is dropped.
    """

    def test_stripped(self) -> None:
        self.assertEqual(parseAll([BOM + b"data: a\n\n"]), [b"a"])

    def test_strippedBeforeDataWithoutSpace(self) -> None:
        self.assertEqual(parseAll([BOM + b"data:a\n\n"]), [b"a"])

    def test_splitAcrossFeeds(self) -> None:
        stream = BOM + b"data: a\n\n"
        for point in range(1, len(BOM) + 1):
            self.assertEqual(parseAll(splitAt(stream, [point])), [b"a"], point)
        self.assertEqual(parseAll(pieces(stream, 1)), [b"a"])

    def test_onlyAtStart(self) -> None:
        """
        Later, a BOM is ordinary bytes: in data it is kept, before a field
        name it makes an unknown field.
        """
        self.assertEqual(parseAll([b"data: " + BOM + b"x\n\n"]), [BOM + b"x"])
        self.assertEqual(parseAll([b"\n" + BOM + b"data: x\n\n"]), [])
        self.assertEqual(parseAll([BOM + BOM + b"data: x\n\n"]), [])

    def test_notABOM(self) -> None:
        self.assertEqual(parseAll([b"\xef", b"\xbbdata: x\n\n"]), [])
        self.assertEqual(parseAll([b"d", b"ata: x\n\n"]), [b"x"])

    def test_shortStream(self) -> None:
        self.assertEqual(parseAll([b"\xef\xbb"]), [])
        self.assertEqual(parseAll([BOM]), [])


class EndOfStreamTests(SynchronousTestCase):
    """
    L{SSEParser.close}: what a stream's end does to a pending event.
    """

    def test_missingFinalBlankLine(self) -> None:
        parser = SSEParser()
        self.assertEqual(parser.feed(b"data: a\n\ndata: [DONE]\n"), [b"a"])
        self.assertEqual(parser.close(), [b"[DONE]"])

    def test_missingFinalBlankLineMultiLine(self) -> None:
        self.assertEqual(parseAll([b"data: a\ndata: b\r\n"]), [b"a\nb"])

    def test_missingFinalBlankLineAfterLoneCR(self) -> None:
        self.assertEqual(parseAll([b"data: a\r"]), [b"a"])

    def test_missingFinalBlankLineAfterComment(self) -> None:
        self.assertEqual(parseAll([b"data: a\n: ping\n"]), [b"a"])

    def test_cutMidLineDiscarded(self) -> None:
        """
        A stream ending inside a line may have been cut: its event is dropped.
        """
        self.assertEqual(parseAll([b'data: {"a":1}\n\ndata: {"b":']), [b'{"a":1}'])
        self.assertEqual(parseAll([b"data: a\ndata: b"]), [])
        self.assertEqual(parseAll([b"data: a\n: pin"]), [])

    def test_nothingPending(self) -> None:
        self.assertEqual(parseAll([]), [])
        self.assertEqual(parseAll([b"data: a\n\n"]), [b"a"])
        self.assertEqual(parseAll([b"event: x\nid: 1\n"]), [])

    def test_closeTwice(self) -> None:
        parser = SSEParser()
        parser.feed(b"data: a\n")
        self.assertEqual(parser.close(), [b"a"])
        self.assertEqual(parser.close(), [])

    def test_feedAfterClose(self) -> None:
        parser = SSEParser()
        parser.close()
        self.assertRaises(RuntimeError, parser.feed, b"data: a\n\n")

    def test_closeFreesBuffers(self) -> None:
        parser = SSEParser()
        parser.feed(b"data: a\ndata: partial")
        self.assertNotEqual(parser.bufferedBytes, 0)
        parser.close()
        self.assertEqual(parser.bufferedBytes, 0)


class LimitTests(SynchronousTestCase):
    """
    Lines and events are bounded; the error carries the limit, not content.
    """

    LIMIT = 64

    def line(self, length: int) -> bytes:
        """
        A C{data:} line of exactly C{length} bytes, without its line end.
        """
        return b"data: " + b"x" * (length - len(b"data: "))

    def test_lineAtLimit(self) -> None:
        line = self.line(self.LIMIT)
        self.assertEqual(parseAll([line + b"\n\n"], self.LIMIT), [line[6:]])
        self.assertEqual(parseAll(pieces(line + b"\r\n\r\n", 5), self.LIMIT), [line[6:]])
        self.assertEqual(parseAll([line, b"\n\n"], self.LIMIT), [line[6:]])

    def test_lineOverLimitInOneFeed(self) -> None:
        parser = SSEParser(self.LIMIT)
        self.assertRaises(
            SSELineTooLong, parser.feed, b"data: a\n\n" + self.line(self.LIMIT + 1) + b"\n\n"
        )

    def test_lineOverLimitCompletedAcrossFeeds(self) -> None:
        parser = SSEParser(self.LIMIT)
        line = self.line(self.LIMIT + 1)
        self.assertEqual(parser.feed(line[:10]), [])
        self.assertRaises(SSELineTooLong, parser.feed, line[10:] + b"\n")

    def test_partialLineOverLimitRaisesAtOnce(self) -> None:
        """
        The read that takes an unfinished line past the limit raises, before
        any line end arrives, and the parser never held more than the limit.
        """
        parser = SSEParser(self.LIMIT)
        line = self.line(self.LIMIT + 1)
        for piece in pieces(line[:self.LIMIT], 8):
            self.assertEqual(parser.feed(piece), [])
        self.assertEqual(parser.bufferedBytes, self.LIMIT)
        self.assertRaises(SSELineTooLong, parser.feed, line[self.LIMIT:])

    def test_otherLinesOverLimit(self) -> None:
        """
        Comments and other fields are bounded too.
        """
        parser = SSEParser(self.LIMIT)
        self.assertRaises(SSELineTooLong, parser.feed, b":" + b"p" * self.LIMIT + b"\n")

    def test_spent(self) -> None:
        """
        After the error the parser holds nothing, raises again, and closes
        with nothing.
        """
        parser = SSEParser(self.LIMIT)
        parser.feed(b"data: a\n")
        self.assertRaises(SSELineTooLong, parser.feed, self.line(self.LIMIT + 1))
        self.assertEqual(parser.bufferedBytes, 0)
        self.assertRaises(SSELineTooLong, parser.feed, b"\n\n")
        self.assertEqual(parser.close(), [])

    def test_eventAtLimit(self) -> None:
        # 3 lines of 20 bytes of data joined with 2 newlines: 62 bytes.
        stream = (self.line(26) + b"\n") * 3 + b"\n"
        self.assertEqual(parseAll([stream], self.LIMIT), [b"\n".join([b"x" * 20] * 3)])
        stream = (self.line(26) + b"\n") * 2 + self.line(28) + b"\n\n"
        self.assertEqual(len(parseAll([stream], self.LIMIT)[0]), self.LIMIT)

    def test_eventOverLimit(self) -> None:
        parser = SSEParser(self.LIMIT)
        self.assertEqual(parser.feed((self.line(26) + b"\n") * 2), [])
        error = self.assertRaises(SSEEventTooLong, parser.feed, self.line(29) + b"\n")
        self.assertIsInstance(error, SSELineTooLong)
        self.assertEqual(parser.bufferedBytes, 0)

    def test_manyEmptyDataLinesBounded(self) -> None:
        """
        Empty data lines still cost a separator each, so they are bounded.
        """
        parser = SSEParser(self.LIMIT)
        self.assertRaises(SSEEventTooLong, parser.feed, b"data:\n" * (self.LIMIT + 2))

    def test_errorCarriesLimitNotContent(self) -> None:
        parser = SSEParser(self.LIMIT)
        secret = b"data: " + b"s3cr3t" * 20
        error = self.assertRaises(SSELineTooLong, parser.feed, secret + b"\n")
        self.assertEqual(error.limit, self.LIMIT)
        self.assertEqual(error.args, (self.LIMIT,))
        self.assertNotIn("s3cr3t", str(error))
        self.assertNotIn("s3cr3t", repr(error))
        self.assertIn(str(self.LIMIT), str(error))

    def test_defaultLimitIs16MiB(self) -> None:
        self.assertEqual(DEFAULT_MAX_LINE_LENGTH, 16 * 1024 * 1024)
        self.assertEqual(SSEParser().maxLineLength, 16 * 1024 * 1024)

    def test_realBound(self) -> None:
        """
        With the real 16 MiB bound, a line of bound + 1 bytes fed in 64 KiB
        pieces raises, and the parser never holds more than bound + 64 KiB.
        """
        bound = DEFAULT_MAX_LINE_LENGTH
        piece = 64 * 1024
        line = b"data: " + b"x" * (bound + 1 - len(b"data: "))
        parser = SSEParser()
        held = 0
        with self.assertRaises(SSELineTooLong) as raised:
            for start in range(0, len(line), piece):
                parser.feed(line[start:start + piece])
                held = max(held, parser.bufferedBytes)
        self.assertEqual(raised.exception.limit, bound)
        self.assertLessEqual(held, bound + piece)
        self.assertEqual(parser.bufferedBytes, 0)
