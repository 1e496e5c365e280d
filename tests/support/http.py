"""
Blocking HTTP clients for integration tests.

  - L{rawExchange}: send exact bytes over a socket, read one response back (parsing the
    framing, so a keep-alive connection does not make it wait for a close);
  - L{RawConnection}: the same, step by step, on one connection (pipelining, slow
    senders, aborts, waiting for the server to close);
  - L{parseResponse}: parse the bytes of a response, noting whether a chunked body ended
    cleanly with C{0\\r\\n\\r\\n} or was cut;
  - L{post}, L{request}: C{http.client}, for ordinary requests;
  - L{openStream}: read a response's body chunk by chunk or SSE event by event as they
    arrive, each read with its own timeout (to prove events are relayed while the
    upstream is still sending).

Everything connects to 127.0.0.1 only and every read has a deadline.
"""

from __future__ import annotations

import codecs
import http.client
import json
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"

NO_BODY_STATUSES = frozenset({204, 304}) | frozenset(range(100, 200))


class TruncatedBody(AssertionError):
    """
    The connection closed before the response body was complete.
    """


class ReadTimeout(AssertionError):
    """
    No data arrived within the read timeout.
    """


HeaderList = list[tuple[str, str]]


def _headerValues(headers: HeaderList, name: str) -> list[str]:
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
        values = _headerValues(self.headers, name)
        return values[0] if values else None

    def headerValues(self, name: str) -> list[str]:
        """
        @return: every value of header C{name} (case-insensitive), in order.
        """
        return _headerValues(self.headers, name)

    def json(self) -> Any:
        """
        @return: the body decoded as JSON.
        """
        return json.loads(self.body)


class _Incomplete(Exception):
    """
    More bytes are needed.
    """


def _parseHead(data: bytes, start: int) -> tuple[RawResponse, int]:
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise _Incomplete()
    lines = data[start:end].split(b"\r\n")
    statusLine = lines[0].decode("latin-1")
    parts = statusLine.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line: {statusLine!r}")
    resp = RawResponse(
        status=int(parts[1]),
        reason=parts[2] if len(parts) > 2 else "",
        version=parts[0],
    )
    for line in lines[1:]:
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ValueError(f"bad header line: {line!r}")
        resp.headers.append((name, value.strip(" \t")))
    return resp, end + 4


def _parseChunked(data: bytes, pos: int, resp: RawResponse) -> int:
    """
    Parse a chunked body from C{pos}; fill C{resp.body}; set C{complete} when the last
    chunk and the trailers have arrived.

    @return: the offset after what was consumed.
    """
    body = bytearray()
    while True:
        lineEnd = data.find(b"\r\n", pos)
        if lineEnd < 0:
            break
        sizeText = data[pos:lineEnd].split(b";", 1)[0].strip()
        try:
            size = int(sizeText, 16)
        except ValueError as e:
            raise ValueError(f"bad chunk size line: {data[pos:lineEnd]!r}") from e
        if size == 0:
            trailersEnd = data.find(b"\r\n", lineEnd + 2)
            # trailers: lines until an empty one
            p = lineEnd + 2
            while trailersEnd >= 0 and trailersEnd != p:
                p = trailersEnd + 2
                trailersEnd = data.find(b"\r\n", p)
            if trailersEnd < 0:
                break
            resp.body = bytes(body)
            resp.complete = True
            return trailersEnd + 2
        chunkStart = lineEnd + 2
        if len(data) < chunkStart + size + 2:
            body += data[chunkStart : chunkStart + size]
            pos = len(data)
            resp.body = bytes(body)
            raise _Incomplete()
        body += data[chunkStart : chunkStart + size]
        if data[chunkStart + size : chunkStart + size + 2] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        pos = chunkStart + size + 2
    resp.body = bytes(body)
    raise _Incomplete()


def _parseOne(
    data: bytes, start: int, closed: bool, head: bool
) -> tuple[RawResponse, int]:
    """
    Parse one response (after any 1xx) starting at C{start}.

    @raise _Incomplete: if more bytes are needed (and the connection is not closed).
    """
    interim: list[RawResponse] = []
    while True:
        try:
            resp, pos = _parseHead(data, start)
        except _Incomplete:
            if closed:
                resp = RawResponse(raw=data[start:], interim=interim)
                return resp, len(data)
            raise
        if 100 <= resp.status < 200 and resp.status != 101:
            resp.raw = data[start:pos]
            resp.complete = True
            interim.append(resp)
            start = pos
            continue
        break
    resp.interim = interim
    te = ",".join(resp.headerValues("transfer-encoding")).lower()
    cl = resp.header("content-length")
    if head or resp.status in NO_BODY_STATUSES:
        resp.complete = True
        end = pos
    elif "chunked" in te:
        resp.chunked = True
        try:
            end = _parseChunked(data, pos, resp)
        except _Incomplete:
            if not closed:
                raise
            end = len(data)
    elif cl is not None:
        length = int(cl)
        resp.body = data[pos : pos + length]
        if len(data) - pos >= length:
            resp.complete = True
            end = pos + length
        elif closed:
            end = len(data)
        else:
            raise _Incomplete()
    else:
        if not closed:
            raise _Incomplete()
        resp.body = data[pos:]
        resp.complete = True
        end = len(data)
    resp.raw = data[start:end]
    return resp, end


def parseResponse(data: bytes, head: bool = False) -> RawResponse:
    """
    Parse the first response in C{data}, all the bytes received before the connection
    closed: a body cut short gives C{complete=False}.

    @param data: the bytes.
    @param head: the request was C{HEAD} (no body follows the headers).
    @return: the response.
    """
    resp, _ = _parseOne(data, 0, True, head)
    return resp


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
        resp, pos = _parseOne(data, pos, True, head)
        out.append(resp)
    return out


def _connect(port: int, timeout: float, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    try:
        sock.connect((HOST, port))
    except BaseException:
        sock.close()
        raise
    return sock


class RawConnection:
    """
    One client connection to 127.0.0.1 with exact bytes and explicit steps.

    @ivar received: everything received so far that no L{readResponse} consumed.
    @ivar closed: whether the server closed the connection (EOF or reset).
    @ivar reset: whether the close was a reset (C{ECONNRESET}).
    """

    def __init__(self, port: int, timeout: float = 10.0, rcvbuf: int | None = None) -> None:
        """
        @param port: the port on 127.0.0.1.
        @param timeout: the default timeout of each read, in seconds.
        @param rcvbuf: C{SO_RCVBUF} to set before connecting (a small one makes a slow
            reader apply backpressure sooner).
        """
        self.timeout = timeout
        self.sock = _connect(port, timeout, rcvbuf)
        self.received = b""
        self.closed = False
        self.reset = False

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        """
        Send C{data} (all of it).
        """
        self.sock.sendall(data)

    def shutdownWrite(self) -> None:
        """
        Half-close: send FIN, keep reading.
        """
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """
        Close the connection (FIN).
        """
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """
        Abort the connection: C{SO_LINGER} zero, then close, so the server gets a reset.
        """
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def recvSome(self, timeout: float | None = None, size: int = 65536) -> bytes:
        """
        Receive what is available (at least one byte), appending it to C{received}.

        @return: the new bytes; C{b""} once the server has closed.
        @raise ReadTimeout: if nothing arrives within C{timeout}.
        """
        if self.closed:
            return b""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(size)
        except TimeoutError:
            raise ReadTimeout(
                f"no data within {self.timeout if timeout is None else timeout} s"
            ) from None
        except ConnectionResetError:
            self.closed = self.reset = True
            return b""
        if not data:
            self.closed = True
        self.received += data
        return data

    def readResponse(self, timeout: float | None = None, head: bool = False) -> RawResponse:
        """
        Read one complete response (or what arrives before the server closes).

        @param timeout: the overall deadline in seconds (default: this connection's).
        @param head: the request was C{HEAD}.
        @return: the response; the bytes after it stay in C{received}.
        @raise ReadTimeout: if it is not complete by the deadline.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            try:
                resp, end = _parseOne(self.received, 0, self.closed, head)
            except _Incomplete:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReadTimeout(
                        f"incomplete response after {limit} s; got {self.received[:500]!r}"
                    ) from None
                self.recvSome(remaining)
                continue
            self.received = self.received[end:]
            return resp

    def readUntilClosed(self, timeout: float | None = None) -> bytes:
        """
        Read until the server closes the connection.

        @return: everything in C{received} (which is then emptied).
        @raise ReadTimeout: if the server has not closed by the deadline.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReadTimeout(f"connection still open after {limit} s")
            self.recvSome(remaining)
        data, self.received = self.received, b""
        return data

    def waitClosed(self, timeout: float | None = None) -> bool:
        """
        Wait for the server to close, discarding what arrives.

        @return: whether it was a reset.
        """
        self.readUntilClosed(timeout)
        return self.reset


def rawExchange(
    port: int,
    requestBytes: bytes,
    timeout: float = 10.0,
    head: bool = False,
    untilClose: bool = False,
) -> bytes:
    """
    Send C{requestBytes} on a new connection and read one response back.

    Stops when a full response has arrived (its framing parsed: Content-Length, chunked,
    no-body statuses) or the server closes, whichever comes first.

    @param port: the port on 127.0.0.1.
    @param requestBytes: the exact request.
    @param timeout: the overall deadline in seconds.
    @param head: the request is C{HEAD}.
    @param untilClose: read until the server closes instead (pipelining, or to see
        whether the server closes the connection).
    @return: the bytes received (parse them with L{parseResponse}).
    @raise ReadTimeout: if neither happens by the deadline.
    """
    with RawConnection(port, timeout) as conn:
        conn.send(requestBytes)
        if untilClose:
            return conn.readUntilClosed(timeout)
        resp = conn.readResponse(timeout, head)
        return resp.raw if not resp.interim else b"".join(
            [i.raw for i in resp.interim] + [resp.raw]
        )


def buildRequest(
    method: str,
    target: str,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] | Mapping[str, str] = (),
    host: str | None = "127.0.0.1",
    contentLength: bool = True,
) -> bytes:
    """
    Build the bytes of an HTTP/1.1 request.

    @param host: the C{Host} header (L{None}: none).
    @param contentLength: add C{Content-Length} when the body is not empty or the method
        is C{POST} (and the caller did not give one).
    """
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    names = {k.lower() for k, _ in items}
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None and "host" not in names:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in items]
    if (
        contentLength
        and "content-length" not in names
        and "transfer-encoding" not in names
        and (body or method == "POST")
    ):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Response:
    """
    A response read with C{http.client}.
    """

    status: int
    reason: str
    headers: HeaderList
    body: bytes

    def header(self, name: str) -> str | None:
        """
        @return: the first value of header C{name} (case-insensitive), or L{None}.
        """
        values = _headerValues(self.headers, name)
        return values[0] if values else None

    def headerValues(self, name: str) -> list[str]:
        """
        @return: every value of header C{name}, in order.
        """
        return _headerValues(self.headers, name)

    def json(self) -> Any:
        """
        @return: the body decoded as JSON.
        """
        return json.loads(self.body)


def _connection(
    port: int, timeout: float, tls: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    if tls is not None:
        return http.client.HTTPSConnection(HOST, port, timeout=timeout, context=tls)
    return http.client.HTTPConnection(HOST, port, timeout=timeout)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | str | Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    tls: ssl.SSLContext | None = None,
) -> Response:
    """
    One request with C{http.client} on a new connection, body read completely.

    @param body: bytes, text, or any other value sent as JSON (with its content type).
    @param tls: an SSL context for HTTPS.
    """
    hdrs = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body).encode("utf-8")
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = _connection(port, timeout, tls)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.reason, list(resp.getheaders()), data)
    finally:
        conn.close()


def post(
    port: int,
    path: str = "/v1/responses",
    body: bytes | str | Any = b"{}",
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    tls: ssl.SSLContext | None = None,
) -> Response:
    """
    C{POST} with C{http.client}; see L{request}.
    """
    return request(port, "POST", path, body, headers, timeout, tls)


def get(
    port: int,
    path: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    """
    C{GET} with C{http.client}; see L{request}.
    """
    return request(port, "GET", path, None, headers, timeout)


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


def parseSSE(text: str) -> list[SSEEvent]:
    """
    Parse complete SSE text into events (a trailing incomplete event is dropped).
    """
    events, _ = _splitSSE(text)
    return events


def _splitSSE(text: str) -> tuple[list[SSEEvent], str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    events = []
    while True:
        end = text.find("\n\n")
        if end < 0:
            return events, text
        block, text = text[:end], text[end + 2 :]
        name: str | None = None
        eid: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
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
            events.append(SSEEvent(name, "\n".join(data), time.monotonic(), eid))


class StreamingResponse:
    """
    A response whose body is read piece by piece as it arrives.

    @ivar status: the status code.
    @ivar headers: the headers.
    @ivar chunked: whether the body is chunked.
    @ivar complete: set once the body ended by its framing.
    @ivar conn: the underlying L{RawConnection}.
    """

    def __init__(self, conn: RawConnection, head: RawResponse, leftover: bytes) -> None:
        self.conn = conn
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.chunked = "chunked" in ",".join(head.headerValues("transfer-encoding")).lower()
        cl = head.header("content-length")
        self._remaining = int(cl) if cl is not None and not self.chunked else None
        self._buf = leftover
        self.complete = head.status in NO_BODY_STATUSES or self._remaining == 0
        self._ended = self.complete
        self._sseText = ""
        self._events: deque[SSEEvent] = deque()
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def header(self, name: str) -> str | None:
        """
        @return: the first value of header C{name} (case-insensitive), or L{None}.
        """
        values = _headerValues(self.headers, name)
        return values[0] if values else None

    def _fill(self, timeout: float) -> bool:
        data = self.conn.recvSome(timeout)
        self.conn.received = b""
        self._buf += data
        return bool(data)

    def readChunk(self, timeout: float = 10.0) -> bytes | None:
        """
        Read the next piece of the body: one chunk of a chunked body, or what the socket
        gives for other bodies.

        @param timeout: the deadline for this piece, in seconds.
        @return: the bytes, or L{None} at the clean end of the body.
        @raise TruncatedBody: if the connection closed first (the bytes of a chunk cut
            in the middle are not returned).
        @raise ReadTimeout: if nothing arrived in time.
        """
        if self._ended:
            return None
        deadline = time.monotonic() + timeout
        while True:
            piece = self._takePiece()
            if piece is not None:
                return piece or None
            if self.conn.closed:
                if self._remaining is None and not self.chunked:
                    self.complete = self._ended = True
                    return None
                self._ended = True
                raise TruncatedBody(
                    "connection closed before the end of the body"
                    + (" (reset)" if self.conn.reset else "")
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReadTimeout(f"no body data within {timeout} s")
            self._fill(remaining)

    def _takePiece(self) -> bytes | None:
        """
        @return: a piece, C{b""} for the clean end, or L{None} if more bytes are needed.
        """
        if not self.chunked:
            if not self._buf:
                return None
            data = self._buf
            if self._remaining is not None:
                data = data[: self._remaining]
                self._remaining -= len(data)
                if self._remaining == 0:
                    self.complete = self._ended = True
            self._buf = b""
            return data
        lineEnd = self._buf.find(b"\r\n")
        if lineEnd < 0:
            return None
        size = int(self._buf[:lineEnd].split(b";", 1)[0].strip(), 16)
        if size == 0:
            # the last chunk, then trailer lines up to an empty line
            p = lineEnd + 2
            while True:
                e = self._buf.find(b"\r\n", p)
                if e < 0:
                    return None
                if e == p:
                    break
                p = e + 2
            self.complete = self._ended = True
            self._buf = self._buf[p + 2 :]
            return b""
        if len(self._buf) < lineEnd + 2 + size + 2:
            return None
        data = self._buf[lineEnd + 2 : lineEnd + 2 + size]
        self._buf = self._buf[lineEnd + 2 + size + 2 :]
        return data

    def iterChunks(self, timeout: float = 10.0) -> Iterator[bytes]:
        """
        Yield body pieces as they arrive, each within C{timeout} seconds, until the end.
        """
        while True:
            piece = self.readChunk(timeout)
            if piece is None:
                return
            yield piece

    def readEvent(self, timeout: float = 10.0) -> SSEEvent | None:
        """
        Read the next SSE event.

        @param timeout: the deadline for this event, in seconds.
        @return: the event, or L{None} at the clean end of the body.
        """
        deadline = time.monotonic() + timeout
        while not self._events:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReadTimeout(f"no SSE event within {timeout} s")
            piece = self.readChunk(remaining)
            if piece is None:
                return None
            events, self._sseText = _splitSSE(self._sseText + self._decoder.decode(piece))
            self._events.extend(events)
        return self._events.popleft()

    def iterEvents(self, timeout: float = 10.0) -> Iterator[SSEEvent]:
        """
        Yield SSE events as they arrive, each within C{timeout} seconds, until the end.
        """
        while True:
            event = self.readEvent(timeout)
            if event is None:
                return
            yield event

    def readAll(self, timeout: float = 10.0) -> bytes:
        """
        Read the rest of the body.

        @param timeout: the deadline for each piece.
        """
        return b"".join(self.iterChunks(timeout))

    def close(self) -> None:
        """
        Close the connection.
        """
        self.conn.close()

    def __enter__(self) -> StreamingResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def openStream(
    port: int,
    path: str = "/v1/responses",
    body: bytes | Any = b"{}",
    headers: Sequence[tuple[str, str]] | Mapping[str, str] = (),
    method: str = "POST",
    timeout: float = 10.0,
    rcvbuf: int | None = None,
) -> StreamingResponse:
    """
    Send a request and read only the response head; read the body as it arrives with
    L{StreamingResponse.iterChunks} or L{StreamingResponse.iterEvents}.

    @param body: bytes, text (sent as UTF-8), or any other value sent as JSON.
    @param headers: extra headers (C{Host} and C{Content-Length} are added).
    @param timeout: the deadline for the head, in seconds.
    @param rcvbuf: C{SO_RCVBUF} for the client socket.
    @return: the response, to be closed by the caller (it is a context manager).
    """
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif not isinstance(body, bytes):
        body = json.dumps(body).encode("utf-8")
        if "content-type" not in {k.lower() for k, _ in items}:
            items.append(("Content-Type", "application/json"))
    conn = RawConnection(port, timeout, rcvbuf)
    try:
        conn.send(buildRequest(method, path, body, items))
        deadline = time.monotonic() + timeout
        while True:
            try:
                head, end = _parseHead(conn.received, 0)
            except _Incomplete:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or conn.closed:
                    raise ReadTimeout(
                        f"no complete response head within {timeout} s; got "
                        f"{conn.received[:500]!r}"
                    ) from None
                conn.recvSome(remaining)
                continue
            if 100 <= head.status < 200 and head.status != 101:
                conn.received = conn.received[end:]
                continue
            leftover = conn.received[end:]
            conn.received = b""
            return StreamingResponse(conn, head, leftover)
    except BaseException:
        conn.close()
        raise
