# -*- test-case-name: tests.test_fakeupstream -*-
"""
Blocking HTTP clients for integration tests (they parse with L{tests.support.wire}).

  - L{rawExchange}: send exact bytes over a socket, read one response back (parsing the
    framing, so a keep-alive connection does not make it wait for a close);
  - L{RawConnection}: the same, step by step, on one connection (pipelining, slow
    senders, aborts, waiting for the server to close);
  - L{post}, L{request}: C{http.client}, for ordinary requests;
  - L{openStream}: read a response's body chunk by chunk or SSE event by event as they
    arrive, each read with its own timeout (to prove events are relayed while the
    upstream is still sending).

Everything connects to 127.0.0.1 only and every read has a deadline.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tests.support.wire import (
    RawResponse,
    ResponseParser,
    SSEEvent,
    SSESplitter,
)

HOST = "127.0.0.1"



class TruncatedBody(AssertionError):
    """
    The connection closed before the response body was complete.
    """


class ReadTimeout(AssertionError):
    """
    No data arrived within the read timeout.
    """


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
        parser = ResponseParser(head=head)
        fed = bytearray(self.received)
        done = parser.feed(self.received)
        while not done:
            if self.closed:
                parser.eof()
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReadTimeout(
                    f"incomplete response after {limit} s; got {bytes(fed[:500])!r}"
                )
            self.received = b""
            data = self.recvSome(remaining, 1 << 20)
            fed += data
            done = parser.feed(data)
        self.received = parser.rest
        skip = sum(len(i.raw) for i in parser.interim)
        return parser.response(bytes(fed[skip : len(fed) - len(parser.rest)]))

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
    @return: the bytes received (parse them with L{tests.support.wire.parseResponse}).
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


# A response read with C{http.client}: the same type the parser returns.
Response = RawResponse


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
        return Response(
            resp.status, resp.reason, f"HTTP/{resp.version / 10:.1f}", list(resp.getheaders()),
            data, complete=True,
        )
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


class StreamingResponse:
    """
    A response whose body is read piece by piece as it arrives.

    @ivar status: the status code.
    @ivar headers: the headers.
    @ivar chunked: whether the body is chunked.
    @ivar complete: set once the body ended by its framing.
    @ivar conn: the underlying L{RawConnection}.
    """

    def __init__(self, conn: RawConnection, parser: ResponseParser, pieces: deque[bytes]) -> None:
        self.conn = conn
        self._parser = parser
        self._pieces = pieces
        self.status = parser.status
        self.reason = parser.reason
        self.headers = parser.headers
        self.chunked = parser.chunked
        self._sse = SSESplitter()
        self._events: deque[SSEEvent] = deque()

    @property
    def complete(self) -> bool:
        return self._parser.complete

    def header(self, name: str) -> str | None:
        """
        @return: the first value of header C{name} (case-insensitive), or L{None}.
        """
        return self._parser.header(name)

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
        deadline = time.monotonic() + timeout
        while not self._pieces:
            if self._parser.complete:
                return None
            if self.conn.closed:
                if self._parser.eof():
                    return None
                raise TruncatedBody(
                    "connection closed before the end of the body"
                    + (" (reset)" if self.conn.reset else "")
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReadTimeout(f"no body data within {timeout} s")
            data = self.conn.recvSome(remaining)
            self.conn.received = b""
            self._parser.feed(data)
        return self._pieces.popleft()

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
            self._events.extend(self._sse.events(piece))
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
        pieces: deque[bytes] = deque()
        parser = ResponseParser(onBody=pieces.append, wholeChunks=True)
        parser.feed(conn.received)
        conn.received = b""
        while not parser.headDone:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or conn.closed:
                raise ReadTimeout(f"no complete response head within {timeout} s")
            parser.feed(conn.recvSome(remaining))
            conn.received = b""
        return StreamingResponse(conn, parser, pieces)
    except BaseException:
        conn.close()
        raise


def freePort() -> int:
    """
    A port on 127.0.0.1 that nothing listened on a moment ago (bound, then released).
    """
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening(port: int) -> bool:
    """
    Whether something accepts connections on 127.0.0.1:C{port}.
    """
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
