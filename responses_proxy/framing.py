# -*- test-case-name: tests.test_framing -*-
"""
Strict HTTP/1.1 request framing (RFC 9112 section 6, RFC 9110 section 5.5), as pure checks.

Twisted's parser is lenient where a proxy must not be: it ignores C{Transfer-Encoding:
identity}, accepts C{Transfer-Encoding} on HTTP/1.0, unfolds obsolete line folding, accepts
control characters other than NUL, CR and LF in header values, and waits forever for the CRLF
of a chunk line ended by a bare LF. A message another parser could frame differently is a
smuggling risk, so these are refused with 400 before anything reaches the upstream. The
channel feeds the raw lines and body bytes here as they arrive; nothing is decoded.
"""

from __future__ import annotations

import re

# Any control character but HTAB, and DEL (RFC 9110 section 5.5).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_DECIMAL = re.compile(rb"[0-9]+\Z")
_HEX = re.compile(rb"[0-9A-Fa-f]+\Z")


class HeadCheck:
    """
    The header section of one request: fed line by line, it names the first problem.

    @ivar contentLength: the declared body length once L{end} found no problem, L{None}
        for a chunked body.
    """

    def __init__(self, version: bytes) -> None:
        self._version = version
        self._hosts = 0
        self._lengths: list[bytes] = []
        self._codings: list[bytes] = []
        self._encoded = False
        self.contentLength: int | None = 0

    def line(self, line: bytes) -> str | None:
        """
        One header line as received, without its CRLF.

        @return: why the request must be refused, or L{None}.
        """
        if line[:1] in (b" ", b"\t"):
            return "obsolete line folding in the header section"
        name, colon, value = line.partition(b":")
        if not colon:
            return "a header line without a colon"
        if _CONTROL.search(value):
            return "a control character in a header value"
        lower = name.lower()
        if lower == b"host":
            self._hosts += 1
        elif lower == b"content-length":
            self._lengths.append(value.strip(b" \t"))
        elif lower == b"transfer-encoding":
            self._encoded = True
            self._codings.extend(c.strip(b" \t").lower() for c in value.split(b","))
        return None

    def end(self) -> str | None:
        """
        The blank line: the rules that need the whole section.

        @return: why the request must be refused, or L{None}.
        """
        if self._hosts == 0:
            return "missing Host header"
        if self._hosts > 1:
            return "more than one Host header"
        if self._encoded:
            if self._version != b"HTTP/1.1":
                return "Transfer-Encoding on an HTTP/1.0 request"
            if self._codings != [b"chunked"]:
                return "Transfer-Encoding must be exactly chunked"
            if self._lengths:
                return "Content-Length together with Transfer-Encoding"
            self.contentLength = None
            return None
        if len(self._lengths) > 1:
            return "more than one Content-Length"
        if self._lengths:
            if not _DECIMAL.match(self._lengths[0]):
                return "Content-Length is not a plain decimal number"
            self.contentLength = int(self._lengths[0])
        return None


_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)
_MAX_LINE = 64 * 1024


class ChunkedCheck:
    """
    A chunked body's framing, checked as its bytes arrive: every chunk-size line, chunk end
    and trailer line must end in CRLF (a bare LF is refused at once, instead of waiting
    forever for the CR), sizes are hex, lines are bounded.
    """

    def __init__(self) -> None:
        self._state = _SIZE
        self._line = b""
        self._left = 0

    def feed(self, data: bytes) -> str | None:
        """
        The next body bytes.

        @return: why the body must be refused, or L{None}.
        """
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == _DATA:
                step = min(self._left, end - pos)
                self._left -= step
                pos += step
                if self._left == 0:
                    self._state = _DATA_END
                continue
            if state == _DONE:
                return None
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._line += data[pos:]
                if len(self._line) > _MAX_LINE:
                    return "a chunk line over 64 KiB"
                return None
            line = self._line + data[pos:newline]
            self._line = b""
            pos = newline + 1
            if not line.endswith(b"\r"):
                return "a chunk line ended by a bare LF"
            problem = self._lineDone(line[:-1])
            if problem is not None:
                return problem
        return None

    def _lineDone(self, line: bytes) -> str | None:
        state = self._state
        if state == _DATA_END:
            if line:
                return "chunk data longer than its size"
            self._state = _SIZE
        elif state == _SIZE:
            size = line.split(b";", 1)[0].strip(b" \t")
            if not _HEX.match(size):
                return "a chunk size that is not hexadecimal"
            self._left = int(size, 16)
            self._state = _DATA if self._left else _TRAILER
        elif state == _TRAILER:
            if not line:
                self._state = _DONE
            elif _CONTROL.search(line):
                return "a control character in a trailer"
        return None
