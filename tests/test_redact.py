"""
Tests for L{responses_proxy.redact}: the key scrubber.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.redact import REDACTED, StreamRedactor

KEY = b"Bearer sk-TESTKEY0123456789abcdefXYZ"


class RedactorTests(SynchronousTestCase):
    """
    L{StreamRedactor}: the key never passes, even split across chunks.
    """

    def setUp(self) -> None:
        self.key = memoryview(KEY)[7:]
        self.raw = bytes(self.key)

    def feedAll(self, data: bytes, step: int) -> bytes:
        r = StreamRedactor(self.key)
        out = b"".join(r.feed(data[i : i + step]) for i in range(0, len(data), step))
        return out + r.flush()

    def test_wholeAndSplitOccurrences(self) -> None:
        """At every chunk size the key and its tail are redacted and nothing else changes."""
        data = b'{"headers": {"authorization": "Bearer ' + self.raw + b'"}}, tail ' + self.raw[-8:]
        expected = data.replace(self.raw, REDACTED).replace(self.raw[-8:], REDACTED)
        for step in range(1, len(data) + 1):
            out = self.feedAll(data, step)
            self.assertEqual(out, expected, step)
            self.assertNotIn(self.raw[-8:], out)

    def test_eventsAreNotHeldBack(self) -> None:
        """Data that cannot start the key is released at once."""
        r = StreamRedactor(self.key)
        self.assertEqual(r.feed(b"data: {}\n\n"), b"data: {}\n\n")
        self.assertEqual(r.feed(b"abc s"), b"abc ")
        self.assertEqual(r.feed(b"k-T"), b"")
        self.assertEqual(r.flush(), b"sk-T")

    def test_freshStartsEmpty(self) -> None:
        """A fresh redactor has the same key but none of the held-back bytes."""
        r = StreamRedactor(self.key)
        self.assertEqual(r.feed(b"abc sk-T"), b"abc ")
        fresh = r.fresh()
        self.assertEqual(fresh.flush(), b"")
        self.assertEqual(fresh.feed(self.raw + b"\n"), REDACTED + b"\n")
        self.assertEqual(fresh.feed(b"x " + self.raw[:5]), b"x ")
        self.assertEqual(fresh.feed(self.raw[5:] + b"."), REDACTED + b".")
        self.assertEqual(r.flush(), b"sk-T")
