# -*- test-case-name: tests.test_wire -*-
"""
The one parser of what the proxy writes, for every test and benchmark: HTTP/1.x responses
and server-sent events, from bytes, with no I/O.

Socket clients (L{tests.support.http}), in-memory tests (the bytes a C{StringTransport}
received) and the benchmarks' clients all parse with these, so a framing rule is checked
the same way everywhere:

  - L{ResponseParser}: incremental (feed bytes as they arrive); Content-Length, chunked
    (noting whether the last chunk came) or close-delimited bodies, C{1xx} responses, the
    body kept, counted only, or handed to a callback piece by piece;
  - L{parseResponse}, L{parseResponses}: every byte a connection received, at once;
  - L{SSESplitter}, L{parseSSE}, L{SSEEvent}: events split at blank lines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NO_BODY_STATUSES = frozenset({204, 304}) | frozenset(range(100, 200))

HeaderList = list[tuple[str, str]]


class ProtocolError(ValueError):
    """
    The bytes are not a well-formed HTTP/1.x response.
    """


def headerValues(headers: HeaderList, name: str) -> list[str]:
    """
    @return: every value of header C{name} (case-insensitive), in order.
    """
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


@dataclass
class RawResponse:
    """
    A parsed HTTP/1.x response.

    @ivar status: the status code (0 if no status line arrived).
    @ivar headers: C{(name, value)} pairs in order, names as sent.
    @ivar body: the body with the transfer coding removed.
    @ivar chunked: whether it used C{Transfer-Encoding: chunked}.
    @ivar complete: whether the body ended by its framing (last chunk C{0\\r\\n\\r\\n}, or
        Content-Length reached; a close-delimited body counts as complete when closed).
    @ivar raw: the bytes this response was parsed from (its head and body).
    @ivar interim: C{1xx} responses that came before it.
    """

    status: int = 0
    reason: str = ""
    version: str = ""
    headers: HeaderList = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False
    complete: bool = False
    raw: bytes = b""
    interim: list[RawResponse] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """
        @return: the first value of header C{name} (case-insensitive), or L{None}.
        """
        values = headerValues(self.headers, name)
        return values[0] if values else None

    def headerValues(self, name: str) -> list[str]:
        """
        @return: every value of header C{name} (case-insensitive), in order.
        """
        return headerValues(self.headers, name)

    def json(self) -> Any:
        """
        @return: the body decoded as JSON.
        """
        return json.loads(self.body)

    def events(self) -> list[SSEEvent]:
        """
        @return: the body's server-sent events.
        """
        return parseSSE(self.body)


# Parser states.
_HEAD, _SIZE, _DATA, _DATA_END, _TRAILER, _LENGTH, _TO_EOF, _DONE = range(8)


class ResponseParser:
    """
    An incremental HTTP/1.x response parser: call L{feed} with bytes as they arrive until it
    returns true, or L{eof} when the connection closes.

    @ivar status: the status code, once the head has arrived (C{1xx} heads are skipped into
        C{interim}); 0 before.
    @ivar headers: the final head's C{(name, value)} pairs.
    @ivar complete: whether the response ended by its framing (or, close-delimited, by EOF).
    @ivar chunked: whether the body is chunked.
    @ivar chunks: how many chunks (the last, empty one included) have begun.
    @ivar bodyBytes: how many body bytes have arrived.
    @ivar firstBodyAt: C{time.perf_counter()} when the first body byte arrived.
    @ivar rest: once complete, the bytes fed after the end of this response.
    """

    def __init__(
        self,
        head: bool = False,
        keep: bool = True,
        onBody: Callable[[bytes], object] | None = None,
        wholeChunks: bool = False,
    ) -> None:
        """
        @param head: the request was C{HEAD}: no body follows the head.
        @param keep: keep the body (L{body}); otherwise it is only counted.
        @param onBody: called with each body piece as it arrives (the body is then not
            kept).
        @param wholeChunks: with C{onBody}, call it once per whole chunk of a chunked body.
        """
        self.status = 0
        self.reason = ""
        self.version = ""
        self.headers: HeaderList = []
        self.interim: list[RawResponse] = []
        self.complete = False
        self.chunked = False
        self.chunks = 0
        self.bodyBytes = 0
        self.firstBodyAt = 0.0
        self.rest = b""
        self._head = head
        self._onBody = onBody
        self._keep: list[bytes] | None = [] if keep and onBody is None else None
        self._whole: list[bytes] | None = [] if wholeChunks and onBody is not None else None
        self._state = _HEAD
        self._remaining = 0
        self._buf = b""

    @property
    def headDone(self) -> bool:
        """
        Whether the final (non-C{1xx}) head has been parsed.
        """
        return self._state != _HEAD

    @property
    def body(self) -> bytes:
        """
        The body so far (empty unless kept).
        """
        return b"".join(self._keep or ())

    def header(self, name: str) -> str | None:
        """
        @return: the first value of header C{name} (case-insensitive), or L{None}.
        """
        values = headerValues(self.headers, name)
        return values[0] if values else None

    def response(self, raw: bytes = b"") -> RawResponse:
        """
        @param raw: the bytes it was parsed from, if the caller kept them.
        @return: what has been parsed, as a L{RawResponse}.
        """
        return RawResponse(
            self.status, self.reason, self.version, self.headers, self.body, self.chunked,
            self.complete, raw, self.interim,
        )

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self.bodyBytes:
            self.firstBodyAt = time.perf_counter()
        self.bodyBytes += end - start
        if self._whole is not None and self._state == _DATA:
            self._whole.append(data[start:end])
        elif self._onBody is not None:
            self._onBody(data[start:end])
        elif self._keep is not None:
            self._keep.append(data[start:end])

    def _finish(self, data: bytes, pos: int) -> bool:
        self.complete = True
        self._state = _DONE
        self.rest = data[pos:]
        return True

    def _parseHead(self, block: bytes) -> None:
        lines = block.split(b"\r\n")
        statusLine = lines[0].decode("latin-1")
        parts = statusLine.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line: {statusLine!r}")
        self.version, self.status = parts[0], int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise ProtocolError(f"bad header line: {line!r}")
            self.headers.append((name, value.strip(" \t")))

    def feed(self, data: bytes) -> bool:
        """
        @param data: the next bytes received.
        @return: whether the response is complete (the bytes after it are in C{rest}).
        @raise ProtocolError: if the bytes are not a response.
        """
        if self._state == _DONE:
            self.rest += data
            return True
        if self._buf:
            data = self._buf + data
            self._buf = b""
        pos, n = 0, len(data)
        while True:
            state = self._state
            if state == _DATA or state == _LENGTH:
                take = min(self._remaining, n - pos)
                if take <= 0:
                    return False
                self._data(data, pos, pos + take)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    if state == _LENGTH:
                        return self._finish(data, pos)
                    self._state = _DATA_END
            elif state == _SIZE:
                nl = data.find(b"\r\n", pos)
                if nl < 0:
                    self._buf = data[pos:]
                    return False
                try:
                    size = int(data[pos:nl].split(b";", 1)[0].strip(), 16)
                except ValueError as e:
                    raise ProtocolError(f"bad chunk size line: {data[pos:nl]!r}") from e
                pos = nl + 2
                self.chunks += 1
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._remaining = size
                    self._state = _DATA
            elif state == _DATA_END:
                if n - pos < 2:
                    self._buf = data[pos:]
                    return False
                if data[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                pos += 2
                if self._whole:
                    piece = b"".join(self._whole)
                    self._whole.clear()
                    assert self._onBody is not None
                    self._onBody(piece)
                self._state = _SIZE
            elif state == _HEAD:
                end = data.find(b"\r\n\r\n", pos)
                if end < 0:
                    self._buf = data[pos:]
                    return False
                self._parseHead(data[pos:end])
                head = data[pos : end + 4]
                pos = end + 4
                if 100 <= self.status < 200 and self.status != 101:
                    self.interim.append(
                        RawResponse(self.status, self.reason, self.version, self.headers,
                                    complete=True, raw=head)
                    )
                    self.status = 0
                    continue
                te = ",".join(headerValues(self.headers, "transfer-encoding")).lower()
                length = self.header("content-length")
                if self._head or self.status in NO_BODY_STATUSES:
                    return self._finish(data, pos)
                if "chunked" in te:
                    self.chunked = True
                    self._state = _SIZE
                elif length is not None:
                    self._remaining = int(length)
                    self._state = _LENGTH
                    if self._remaining == 0:
                        return self._finish(data, pos)
                else:
                    self._state = _TO_EOF
            elif state == _TRAILER:
                # Trailer lines, up to an empty line.
                nl = data.find(b"\r\n", pos)
                if nl < 0:
                    self._buf = data[pos:]
                    return False
                if nl == pos:
                    return self._finish(data, pos + 2)
                pos = nl + 2
            else:  # _TO_EOF
                if n > pos:
                    self._data(data, pos, n)
                return False

    def eof(self) -> bool:
        """
        The connection closed.

        @return: whether that completes the response (only a close-delimited body).
        """
        if self._state == _TO_EOF:
            self.complete = True
            self._state = _DONE
        return self.complete


def _parseAt(data: bytes, start: int, head: bool) -> tuple[RawResponse, int]:
    """
    Parse one response (after any C{1xx}) from C{start} of all the bytes a connection
    received before it closed.

    @return: the response and the offset after it.
    """
    parser = ResponseParser(head=head)
    if not parser.feed(data[start:]):
        parser.eof()
    end = len(data) - len(parser.rest)
    skip = sum(len(i.raw) for i in parser.interim)
    return parser.response(data[start + skip : end]), end


def parseResponse(data: bytes, head: bool = False) -> RawResponse:
    """
    Parse the first response in C{data}, all the bytes received before the connection
    closed: a body cut short gives C{complete=False}.

    @param data: the bytes.
    @param head: the request was C{HEAD} (no body follows the headers).
    @return: the response.
    """
    return _parseAt(data, 0, head)[0]


def parseResponses(data: bytes, head: bool = False) -> list[RawResponse]:
    """
    Parse every response in C{data} (pipelined responses on one connection).

    @param data: all the bytes received before the connection closed.
    @param head: the requests were C{HEAD}.
    @return: the responses, in order.
    """
    out = []
    pos = 0
    while pos < len(data):
        resp, pos = _parseAt(data, pos, head)
        out.append(resp)
    return out


@dataclass
class SSEEvent:
    """
    One server-sent event.

    @ivar event: its C{event:} field, or L{None}.
    @ivar data: its C{data:} lines joined by newlines.
    @ivar t: when it was complete (C{time.monotonic()}).
    """

    event: str | None
    data: str
    t: float = 0.0
    id: str | None = None

    def json(self) -> Any:
        """
        @return: the data decoded as JSON.
        """
        return json.loads(self.data)


def parseEventBlock(block: bytes, t: float = 0.0) -> SSEEvent | None:
    """
    Parse one event's lines (without the blank line that ends it).

    @return: the event, or L{None} for a block of comments only.
    """
    name: str | None = None
    eid: str | None = None
    data: list[str] = []
    for line in block.decode("utf-8").split("\n"):
        if not line or line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if key == "data":
            data.append(value)
        elif key == "event":
            name = value
        elif key == "id":
            eid = value
    if data or name is not None:
        return SSEEvent(name, "\n".join(data), t, eid)
    return None


class SSESplitter:
    """
    Splits an SSE body into event blocks as its bytes arrive (any line ends).
    """

    def __init__(self) -> None:
        self._buf = b""
        self._cr = False

    @property
    def pending(self) -> bytes:
        """
        What has arrived of an event not yet ended.
        """
        return self._buf

    def feed(self, data: bytes) -> list[bytes]:
        """
        @param data: the next body bytes.
        @return: the blocks completed by them (C{\\n}-separated lines, no blank line).
        """
        if self._cr or b"\r" in data:
            if self._cr and data.startswith(b"\n"):
                data = data[1:]
            self._cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._buf:
            data = self._buf + data
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buf = data
            return []
        self._buf = data[end + 2 :]
        return data[:end].split(b"\n\n")

    def events(self, data: bytes) -> list[SSEEvent]:
        """
        @return: the events completed by C{data} (comment-only blocks dropped).
        """
        now = time.monotonic()
        out = []
        for block in self.feed(data):
            event = parseEventBlock(block, now)
            if event is not None:
                out.append(event)
        return out


def parseSSE(text: str | bytes) -> list[SSEEvent]:
    """
    Parse complete SSE text into events (a trailing incomplete event is dropped).
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    return SSESplitter().events(data)
