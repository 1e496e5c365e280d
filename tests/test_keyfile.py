"""
Tests for L{responses_proxy.keyfile}: the original's unit cases and the RFC 6750 set.
"""

from __future__ import annotations

import os
import pickle

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy import keyfile
from responses_proxy.keyfile import (
    MSG_EMPTY,
    MSG_INVALID,
    MSG_TOO_LARGE,
    KeyReadError,
    readAuthorization,
)


def scripted(*chunks: bytes | Exception):
    """
    A reader returning the given chunks one read at a time, then EOF.
    """
    pending = list(chunks)
    calls = []

    def read(view: memoryview) -> int:
        calls.append(len(view))
        if not pending:
            return 0
        item = pending.pop(0)
        if isinstance(item, Exception):
            raise item
        n = min(len(item), len(view))
        view[:n] = item[:n]
        if n < len(item):
            pending.insert(0, item[n:])
        return n

    read.calls = calls  # type: ignore[attr-defined]
    return read


class OriginalCasesTests(SynchronousTestCase):
    """
    The eight cases of the original's C{read_api_key.rs}.
    """

    def test_readsKeyWithNoNewlines(self) -> None:
        """A key followed by EOF becomes C{Bearer <key>}."""
        self.assertEqual(
            readAuthorization(reader=scripted(b"sk-abc123")).value, b"Bearer sk-abc123"
        )

    def test_readsKeyWithShortReads(self) -> None:
        """Short reads are joined until the newline."""
        header = readAuthorization(reader=scripted(b"sk-", b"abc", b"123\n"))
        self.assertEqual(header.value, b"Bearer sk-abc123")

    def test_readsKeyAndTrimsNewlines(self) -> None:
        """A trailing CRLF is trimmed."""
        self.assertEqual(
            readAuthorization(reader=scripted(b"sk-abc123\r\n")).value, b"Bearer sk-abc123"
        )

    def test_errorsWhenNoInputProvided(self) -> None:
        """Empty input is refused with the 'must be provided' message."""
        e = self.assertRaises(KeyReadError, readAuthorization, reader=scripted())
        self.assertEqual(str(e), MSG_EMPTY)
        self.assertIn("must be provided via stdin", str(e))

    def test_errorsWhenBufferFilled(self) -> None:
        """A key that fills the buffer without newline or EOF is too large."""
        e = self.assertRaises(KeyReadError, readAuthorization, reader=scripted(*[b"a" * 1017] * 3))
        self.assertEqual(str(e), MSG_TOO_LARGE)
        self.assertIn("1024-byte buffer", str(e))

    def test_propagatesIOError(self) -> None:
        """An I/O error is reported with its own text."""
        e = self.assertRaises(
            KeyReadError, readAuthorization, reader=scripted(b"sk-", OSError("boom"))
        )
        self.assertIn("boom", str(e))
        self.assertNotIn("sk-", str(e))

    def test_errorsOnInvalidUTF8(self) -> None:
        """A non-ASCII byte is refused with the character-set message."""
        e = self.assertRaises(KeyReadError, readAuthorization, reader=scripted(b"sk-abc\xff"))
        self.assertEqual(str(e), MSG_INVALID)

    def test_errorsOnInvalidCharacters(self) -> None:
        """C{!} is not a bearer-token character."""
        e = self.assertRaises(KeyReadError, readAuthorization, reader=scripted(b"sk-abc!23"))
        self.assertEqual(str(e), MSG_INVALID)


class CharacterSetTests(SynchronousTestCase):
    """
    The RFC 6750 grammar, a superset of the original's C{[A-Za-z0-9_-]}.
    """

    def test_acceptsRFC6750Characters(self) -> None:
        """Letters, digits and C{- . _ ~ + /} are accepted."""
        key = b"AZaz09-._~+/xyz"
        self.assertEqual(readAuthorization(reader=scripted(key + b"\n")).value, b"Bearer " + key)

    def test_acceptsTrailingEquals(self) -> None:
        """A base64 key (Amazon Bedrock's) with trailing C{=} padding is accepted."""
        key = b"QmVkcm9ja0FQSUtleS1hYmM+/w=="
        self.assertEqual(readAuthorization(reader=scripted(key)).value, b"Bearer " + key)

    def test_refusesInnerEquals(self) -> None:
        """C{=} is only allowed at the end."""
        self.assertRaises(KeyReadError, readAuthorization, reader=scripted(b"ab=cd"))

    def test_refusesOnlyEquals(self) -> None:
        """At least one token character must come before the padding."""
        self.assertRaises(KeyReadError, readAuthorization, reader=scripted(b"=="))

    def test_refusesInnerCR(self) -> None:
        """A CR inside the key is refused."""
        e = self.assertRaises(KeyReadError, readAuthorization, reader=scripted(b"sk-a\rb\n"))
        self.assertEqual(str(e), MSG_INVALID)

    def test_refusesNUL(self) -> None:
        """A NUL byte is refused."""
        self.assertRaises(KeyReadError, readAuthorization, reader=scripted(b"sk-a\x00b"))

    def test_refusesSpace(self) -> None:
        """A space is refused (it would split the header value)."""
        self.assertRaises(KeyReadError, readAuthorization, reader=scripted(b"sk-a b"))

    def test_refusesUnicodeDigit(self) -> None:
        """A Unicode digit is refused even though C{str.isalnum} accepts it."""
        self.assertRaises(KeyReadError, readAuthorization, reader=scripted("sk-١".encode()))

    def test_onlyNewlinesIsEmpty(self) -> None:
        """CRLF alone is empty input."""
        e = self.assertRaises(KeyReadError, readAuthorization, reader=scripted(b"\r\n"))
        self.assertEqual(str(e), MSG_EMPTY)


class LengthAndStopTests(SynchronousTestCase):
    """
    Buffer bounds and what is read.
    """

    def test_longestAcceptedKey(self) -> None:
        """A 1016-byte key with a newline fits (1024 minus C{Bearer } minus one)."""
        key = b"k" * 1016
        self.assertEqual(len(readAuthorization(reader=scripted(key + b"\n")).value), 1023)

    def test_1017ByteKeyWithEOFIsTooLarge(self) -> None:
        """As in the original, the loop stops on a full buffer before it sees EOF."""
        e = self.assertRaises(KeyReadError, readAuthorization, reader=scripted(b"k" * 1017))
        self.assertEqual(str(e), MSG_TOO_LARGE)

    def test_stopsAtFirstNewline(self) -> None:
        """Bytes after the first newline are ignored and no further read happens."""
        reader = scripted(b"sk-one\nsk-two\n", b"more")
        self.assertEqual(readAuthorization(reader=reader).value, b"Bearer sk-one")
        self.assertEqual(len(reader.calls), 1)

    def test_errorMessagesNeverContainInput(self) -> None:
        """No error message echoes any of the input."""
        for data in [b"sk-SECRETPART!", b"sk-SECRETPART \n", "sk-SECRETPARTé".encode()]:
            e = self.assertRaises(KeyReadError, readAuthorization, reader=scripted(data))
            self.assertNotIn("SECRETPART", str(e))
            self.assertNotIn("SECRETPART", repr(e))

    def test_realPipeWithSplitWrites(self) -> None:
        """Reading from a real pipe fd works with the key written in pieces."""
        r, w = os.pipe()
        try:
            os.write(w, b"sk-pi")
            os.write(w, b"pe-key\r\n")
            os.close(w)
            w = -1
            self.assertEqual(readAuthorization(fd=r).value, b"Bearer sk-pipe-key")
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)


class HeaderObjectTests(SynchronousTestCase):
    """
    The header object never shows the key by accident.
    """

    def test_reprAndStrRedacted(self) -> None:
        """repr, str and format do not show the key."""
        header = readAuthorization(reader=scripted(b"sk-VISIBLE"))
        for text in (repr(header), str(header), f"{header}", repr([header])):
            self.assertNotIn("VISIBLE", text)

    def test_notPicklable(self) -> None:
        """Pickling (a way into dumps and caches) is refused."""
        header = readAuthorization(reader=scripted(b"sk-VISIBLE"))
        self.assertRaises(TypeError, pickle.dumps, header)

    def test_keyView(self) -> None:
        """C{key} is a view of the key part of the one header object."""
        header = readAuthorization(reader=scripted(b"sk-abc"))
        self.assertEqual(bytes(header.key), b"sk-abc")

    def test_headerIsLockedAndKeptAlive(self) -> None:
        """The header's pages are mlocked (where allowed) and the object stays referenced."""
        before = keyfile.lockedKilobytes()
        header = readAuthorization(reader=scripted(b"sk-locked"))
        self.assertIn(header.value, keyfile._LIVE)
        if before is None:
            raise self.skipTest("no /proc/self/status here")
        self.assertTrue(header.locked)
        self.assertGreaterEqual(keyfile.lockedKilobytes() or 0, 4)
