# -*- test-case-name: tests.test_redact -*-
"""
Keep the key out of everything the proxy writes, even when an upstream echoes it.

An upstream error page may quote the request headers back, key included. Every byte
the proxy sends to a client or writes to a dump passes through a L{StreamRedactor}.
The key is matched through a C{memoryview} of the one header object, so no second
copy of it is made. To stay streaming, only a chunk's tail that could be the start of
the key is held back until the next chunk; an SSE event ends in C{\\n\\n}, which cannot
start a key, so events are never delayed.
"""

from __future__ import annotations

REDACTED = b"[REDACTED]"
_TAIL = 8


class StreamRedactor:
    """
    Replace the key (and its last characters on their own) in a byte stream.
    """

    def __init__(self, key: memoryview) -> None:
        self._key = key
        # A masked key ("sk-...wxyz") or a cut one still shows its last characters.
        self._tail = key[-_TAIL:] if len(key) >= 2 * _TAIL else None
        # Single bytes (as 1-byte strings) that can occur in the key.
        self._keyBytes = frozenset(bytes((b,)) for b in key)
        self._held = b""

    def fresh(self) -> StreamRedactor:
        """
        A redactor for a new stream, with this one's key: its tables are shared, not
        built again (once per request otherwise).
        """
        other = StreamRedactor.__new__(StreamRedactor)
        other._key = self._key
        other._tail = self._tail
        other._keyBytes = self._keyBytes
        other._held = b""
        return other

    def feed(self, data: bytes) -> bytes:
        """
        Return the redacted bytes that can be released now.
        """
        if self._held:
            data = self._held + data
            self._held = b""
        if not self._key:
            return data
        data = self.redact(data)
        if data[-1:] not in self._keyBytes:
            # The last byte cannot be part of a key (an SSE event ends in "\n", JSON
            # in "}"), so nothing needs holding back: the common case, kept cheap.
            return data
        keep = self._partialAt(data)
        if keep < len(data):
            self._held = data[keep:]
            return data[:keep]
        return data

    def flush(self) -> bytes:
        """
        Release whatever is held back (the stream ended).
        """
        held, self._held = self._held, b""
        return held

    def redact(self, data: bytes) -> bytes:
        """
        Redact whole occurrences in one buffer (no state).
        """
        key = self._key
        tail = self._tail
        if not key or len(data) < len(tail if tail is not None else key):
            return data
        if tail is not None:
            # The tail is part of the key: no tail, no key (one scan in the usual case).
            if data.find(tail) < 0:
                return data
        if data.find(key) >= 0:
            data = data.replace(key, REDACTED)
        if tail is not None and data.find(tail) >= 0:
            data = data.replace(tail, REDACTED)
        return data

    def _partialAt(self, data: bytes) -> int:
        """
        The offset where a possible, still incomplete, occurrence of the key or its
        tail begins at the end of C{data}; C{len(data)} if there is none.
        """
        end = len(data)
        best = end
        for pattern in (self._key, self._tail):
            if pattern is None:
                continue
            window = len(pattern) - 1
            lo = max(0, end - window)
            first = pattern[0]
            i = data.find(bytes((first,)), lo)
            while 0 <= i < end:
                n = end - i
                if pattern[:n] == data[i:end]:
                    best = min(best, i)
                    break
                i = data.find(bytes((first,)), i + 1)
        return best
