# -*- test-case-name: tests.test_sse -*-
"""
A linear SSE line receiver for chat-completion streams.

Twisted's C{LineReceiver} and C{LineOnlyReceiver} rescan their whole buffer on
every read, so one long C{data:} line costs quadratic time (an 8 MiB line took
1.5 s of reactor time). L{SSEParser} searches only the newly received bytes
for line ends and keeps an unfinished line as a list of parts, joined once, so
any line length costs linear time. It does no I/O and uses nothing from
Twisted; L{responses_proxy.web.bodies.SSEReceiver} is the thin protocol that
feeds it from C{IResponse.deliverBody}.

Framing decisions (the SSE spec, plus what real chat servers send):

  - Line ends are C{\\n}, C{\\r\\n} and a lone C{\\r}. A C{\\r} ends its line at
    once; one C{\\n} straight after it, even in the next read, is swallowed
    (the spec's own rule), so a C{\\r\\n} split across reads is one line end.
  - A UTF-8 byte order mark at the very start of the stream is dropped, even
    when it is split across reads; anywhere else it is data.
  - C{data:} with or without one space; several data lines of one event are
    joined with C{\\n}; a bare C{data} line is an empty data line. Comments
    (C{: ping}, OpenRouter's C{: OPENROUTER PROCESSING}), C{event:}, C{id:},
    C{retry:} and unknown fields are ignored. A blank line dispatches; an event
    without data lines dispatches nothing. Payloads stay bytes, so multi-byte
    characters split across reads are never decoded early.
  - End of stream: the spec discards an unfinished event, but some chat servers
    omit the blank line after their last C{data:} line. If the stream ends at a
    line end, the pending event is dispatched. If it ends in the middle of a
    line, the line may have been cut, so that line and its event are discarded.
  - Limits: a line (without its line end) longer than C{maxLineLength} raises
    L{SSELineTooLong} as soon as the unfinished line crosses the limit, so no
    more than the limit plus one read is ever held. The data of one event is
    bounded by the same number (L{SSEEventTooLong}). Production needs at least
    16 MiB (bridge-spec.md section 2.7), the default.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "SSEEventTooLong",
    "SSELineTooLong",
    "SSEParser",
]

DEFAULT_MAX_LINE_LENGTH = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_LF = 0x0A

# Reads shorter than this are appended to a short last part instead of becoming
# parts of their own, so a line arriving a few bytes at a time does not cost an
# object per read. Copying at most this much per read keeps the cost linear.
_SMALL_PART = 512


class SSELineTooLong(Exception):
    """
    An SSE line was longer than the parser's limit.

    Carries the limit only, never any of the stream's content, so it is safe
    to log.

    @ivar limit: the limit in bytes that was exceeded.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit

    def __str__(self) -> str:
        return f"SSE line longer than {self.limit} bytes"


class SSEEventTooLong(SSELineTooLong):
    """
    The data lines of one SSE event added up to more than the parser's limit.

    A subclass of L{SSELineTooLong}, so one C{except} or C{Failure.check}
    covers both ways a stream can be too big.
    """

    def __str__(self) -> str:
        return f"SSE event data longer than {self.limit} bytes"


class SSEParser:
    """
    Incremental SSE parser: bytes in, completed events' data payloads out.

    @ivar maxLineLength: the bound on one line and on one event's data, bytes.
    """

    def __init__(self, maxLineLength: int = DEFAULT_MAX_LINE_LENGTH) -> None:
        if maxLineLength < 1:
            raise ValueError("maxLineLength must be positive")
        self.maxLineLength = maxLineLength
        # The unfinished line: parts in order, and their total length.
        self._parts: list[bytes] = []
        self._partsLength = 0
        # The pending event's data: None before its first data line, bytes
        # after one, a bytearray once a second one is appended (linear growth).
        self._event: bytes | bytearray | None = None
        # The last read ended with a lone CR: drop one LF at the next read.
        self._afterCR = False
        # The stream's first bytes until we know whether they start with a BOM;
        # None once we know.
        self._head: bytes | None = b""
        self._failed = False
        self._closed = False

    @property
    def bufferedBytes(self) -> int:
        """
        How many bytes of the stream the parser currently holds.

        @return: the unfinished line plus the pending event's data.
        """
        held = self._partsLength + len(self._head or b"")
        if self._event is not None:
            held += len(self._event)
        return held

    def feed(self, data: bytes) -> list[bytes]:
        """
        Parse the next bytes of the stream.

        If a line in C{data} is too long, the events completed earlier in the
        same C{data} are discarded with it: the stream is failed anyway.

        @param data: the bytes read, any size, split anywhere.
        @return: the data payloads of the events completed by C{data}, in
            order, each one's data lines joined with C{b"\\n"}.
        @raise SSELineTooLong: a line or an event is over the limit. The
            parser is then spent: it frees what it held, and every later
            C{feed} raises again.
        @raise RuntimeError: after L{close}.
        """
        if self._failed:
            raise SSELineTooLong(self.maxLineLength)
        if self._closed:
            raise RuntimeError("SSEParser.feed called after close")
        if self._head is not None:
            data = self._head + data
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._head = data
                return []
            self._head = None
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        if not data:
            return []
        if self._afterCR:
            self._afterCR = False
            if data[0] == _LF:
                data = data[1:]
                if not data:
                    return []
        if b"\r" in data:
            # A trailing CR ends its line now; remember it to swallow the LF
            # that may start the next read.
            self._afterCR = data[-1] == _CR
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

        lines = data.split(b"\n")
        partial = lines.pop()
        limit = self.maxLineLength
        if lines:
            if self._parts:
                if self._partsLength + len(lines[0]) > limit:
                    self._fail(SSELineTooLong(limit))
                self._parts.append(lines[0])
                lines[0] = b"".join(self._parts)
                self._parts = []
                self._partsLength = 0
            if len(data) > limit:
                # Only a read longer than the limit can hold a line too long.
                for line in lines:
                    if len(line) > limit:
                        self._fail(SSELineTooLong(limit))
            out = self._lines(lines, limit)
        else:
            out = []
        if partial:
            self._addPartial(partial, limit)
        return out

    def _lines(self, lines: list[bytes], limit: int) -> list[bytes]:
        """
        Interpret complete lines (without their line ends).

        @param lines: the lines, each no longer than C{limit}.
        @param limit: the bound on one event's data.
        @return: the payloads of the events they complete.
        """
        out: list[bytes] = []
        event = self._event
        for line in lines:
            if not line:
                if event is not None:
                    out.append(event if type(event) is bytes else bytes(event))
                    event = None
                continue
            if line.startswith(b"data: "):
                value = line[6:]
            elif line.startswith(b"data:"):
                value = line[5:]
            elif line == b"data":
                value = b""
            else:
                # A comment, event:, id:, retry: or an unknown field.
                continue
            if event is None:
                event = value
            else:
                if len(event) + 1 + len(value) > limit:
                    self._fail(SSEEventTooLong(limit))
                if type(event) is bytes:
                    event = bytearray(event)
                event += b"\n"
                event += value
        self._event = event
        return out

    def _addPartial(self, partial: bytes, limit: int) -> None:
        """
        Keep the unfinished end of a read, checking the limit first.

        @param partial: the bytes after the read's last line end.
        @param limit: the bound on one line.
        """
        total = self._partsLength + len(partial)
        if total > limit:
            self._fail(SSELineTooLong(limit))
        parts = self._parts
        if parts and len(partial) < _SMALL_PART and len(parts[-1]) < _SMALL_PART:
            parts[-1] += partial
        else:
            parts.append(partial)
        self._partsLength = total

    def _fail(self, error: SSELineTooLong) -> None:
        """
        Free everything held, spend the parser and raise.

        @param error: the exception to raise.
        """
        self._failed = True
        self._parts = []
        self._partsLength = 0
        self._event = None
        raise error

    def close(self) -> list[bytes]:
        """
        The stream ended: dispatch the pending event if its lines are whole.

        A pending event is dispatched when the stream ended at a line end
        (servers that omit the final blank line); when it ended inside a line,
        that line may have been cut, so the line and its event are discarded.
        Later calls return nothing; a spent parser returns nothing.

        @return: zero or one payload.
        """
        if self._closed or self._failed:
            return []
        self._closed = True
        cut = bool(self._parts) or bool(self._head)
        event = self._event
        self._parts = []
        self._partsLength = 0
        self._event = None
        self._head = None
        if cut or event is None:
            return []
        return [bytes(event)]
