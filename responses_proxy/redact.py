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
        self._held = b""

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
        if not key or len(data) < len(self._tail or key):
            return data
        if data.find(key) >= 0:
            data = data.replace(key, REDACTED)
        if self._tail is not None and data.find(self._tail) >= 0:
            data = data.replace(self._tail, REDACTED)
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
