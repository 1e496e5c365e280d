"""
Shared pieces of the end-to-end benchmarks (C{bench_proxy.py}, C{bench_bridge.py}).

  - Payloads: a 40 KB Codex request, a small JSON answer, a short Responses SSE reply,
    and a realistic Chat Completions chunk stream (the same one the bridge benchmark
    feeds to the pure translator).
  - A fast fake upstream, run as its own process: C{python bench/_benchlib.py --info FILE}.
    It is a raw asyncio HTTP/1.1 server that answers from pre-built bytes, so it is not
    the bottleneck (the benchmarks measure it "direct"). What it answers is chosen by the
    request header C{x-bench-reply} (the proxy forwards it as any other header):
      - C{json}: a small JSON answer with a Content-Length;
      - C{sse;bytes=N;event=E;chunk=C}: N bytes of C{data: <prose>\\n\\n} events of E bytes,
        C bytes per HTTP chunk, written as fast as the reader takes them;
      - C{responses;gap=MS}: a short Responses SSE reply; the first event at once, the
        rest MS milliseconds later (for time-to-first-byte);
      - C{chat;scale=S[;tail=MS]}: the chat chunk stream (one HTTP chunk per SSE event);
        with C{tail}, the last HTTP chunk (end of body) comes MS milliseconds after
        C{[DONE]} instead of in the same write.
    C{GET /__stats} answers C{{"connections", "open", "requests"}}. SIGTERM stops it.
  - Blocking and asyncio HTTP/1.1 clients over raw sockets with an incremental response
    parser (Content-Length and chunked), and a Responses SSE event counter.
  - Child processes (the proxy and the upstream) with CPU pinning, C{/proc} CPU and RSS.

Everything binds and connects to 127.0.0.1 only; every loop is bounded.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script (bench/ is on the path): the shared test helpers live in tests/.
    sys.path.insert(0, str(REPO))

from tests.support.chat import chatChunk as _chatChunk  # noqa: E402
from tests.support.chat import encodeChunk  # noqa: E402
from tests.support.wire import ProtocolError, ResponseParser, SSESplitter  # noqa: E402

__all__ = ["ProtocolError", "ResponseParser"]
PYTHON = sys.executable
FIXTURES = REPO / "tests" / "fixtures" / "codex-0.169.0"
HOST = "127.0.0.1"
KiB = 1024
MiB = 1024 * 1024
# A made-up key as long as a real project key (the redactor's cost depends on the length:
# keys of 16 bytes or more are also searched for by their last 8 characters).
KEY = (
    b"sk-proj-"
    + (b"bEnChKeY0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" * 3)[:156]
)
_CLK_TCK = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------- payloads

_PROSE = (
    "You are Codex, a coding agent. Keep answers short; prefer running commands to "
    "guessing; read files before editing them; never revert changes you did not make. "
    "When you use apply_patch, send a complete patch with context lines. "
)


def codexRequest(size: int = 40_000) -> tuple[list[tuple[str, str]], bytes]:
    """
    The headers and body of a real Codex request (fixture C/002) with its elided
    developer prompt padded back to about C{size} bytes, as Codex sends it.
    """
    with (FIXTURES / "C" / "002-POST.json").open(encoding="utf-8") as f:
        captured = json.load(f)
    body = copy.deepcopy(captured["body"])
    body["stream"] = True
    missing = size - len(json.dumps(body).encode("utf-8"))
    if missing > 0:
        text = (_PROSE * (missing // len(_PROSE) + 1))[:missing]
        body["input"][0]["content"][0]["text"] += text
    skip = {"host", "content-length", "authorization", "connection"}
    headers = [(k, v) for k, v in captured["headers"] if k.lower() not in skip]
    return headers, json.dumps(body).encode("utf-8")


SMALL_JSON = json.dumps(
    {
        "id": "resp_0b7f2c9d8e1a4b3c",
        "object": "response",
        "created_at": 1760000000,
        "status": "completed",
        "model": "gpt-5.5",
        "output": [
            {
                "type": "message",
                "id": "msg_0b7f2c9d8e1a4b3c",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "Hello! How can I help?", "annotations": []}
                ],
            }
        ],
        "usage": {
            "input_tokens": 10412,
            "input_tokens_details": {"cached_tokens": 9984},
            "output_tokens": 12,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 10424,
        },
    },
    separators=(",", ":"),
).encode()


def _sseEvent(eventType: str, fields: dict[str, Any]) -> bytes:
    data = json.dumps({"type": eventType, **fields}, separators=(",", ":"))
    return f"event: {eventType}\ndata: {data}\n\n".encode()


def responsesEvents(deltas: int = 20) -> list[bytes]:
    """
    A short Responses SSE reply: created, in_progress, one message, completed.
    """
    response = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
    events = [
        _sseEvent("response.created", {"sequence_number": 0, "response": response}),
        _sseEvent("response.in_progress", {"sequence_number": 1, "response": response}),
    ]
    for i in range(deltas):
        events.append(
            _sseEvent(
                "response.output_text.delta",
                {
                    "sequence_number": 2 + i,
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": f" word{i}",
                },
            )
        )
    done = dict(response, status="completed")
    events.append(
        _sseEvent("response.completed", {"sequence_number": 2 + deltas, "response": done})
    )
    return events


_WORDS = (
    "the",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " lazy",
    " dog",
    ".\n",
    " caf\u00e9",
    " \u4e16\u754c",
    " `code`",
    ' "quoted"',
    " \U0001f600",
    " def",
    "(x):",
)


def chatChunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    """
    One realistic C{chat.completion.chunk} payload (DeepSeek-shaped), as JSON bytes.
    """
    return encodeChunk(_chatChunk(
        delta, finish, model="deepseek-chat", chunkId="chatcmpl-9f8e7d6c5b4a39281706",
        fingerprint="fp_8802369eaa_prod0623", logprobs=True,
    )).encode("utf-8")


def chatPayloads(scale: int = 1) -> list[bytes]:
    """
    The SSE data payloads of one realistic chat reply (about 1020 chunks per unit of
    C{scale}): role, reasoning_content deltas, small text deltas, two parallel function
    calls and a custom C{apply_patch} call with argument deltas, the finish chunk, the
    usage chunk and C{[DONE]}. Tool names are ones the Codex request declares.
    """
    payloads = [chatChunk({"role": "assistant", "content": ""})]
    for i in range(250 * scale):
        payloads.append(chatChunk({"content": None, "reasoning_content": _WORDS[i % len(_WORDS)]}))
    for i in range(600 * scale):
        payloads.append(chatChunk({"content": _WORDS[i % len(_WORDS)]}))
    for index, name in ((0, "exec_command"), (1, "write_stdin")):
        payloads.append(
            chatChunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": f"call_{index}",
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
        )
    arguments = json.dumps(
        {"cmd": "grep -rn 'caf\u00e9' src/ | head -50 " * scale, "yield_time_ms": 1000}
    )
    step = max(1, len(arguments) // (30 * scale))
    for i in range(0, len(arguments), step):
        for index in (0, 1):
            payloads.append(
                chatChunk(
                    {
                        "tool_calls": [
                            {"index": index, "function": {"arguments": arguments[i : i + step]}}
                        ]
                    }
                )
            )
    hunk = "*** Begin Patch\n*** Update File: a.py\n@@\n-old\n+new caf\u00e9\n"
    patch = json.dumps({"input": hunk * 8 * scale + "*** End Patch\n"})
    step = max(1, len(patch) // (80 * scale))
    payloads.append(
        chatChunk(
            {
                "tool_calls": [
                    {
                        "index": 2,
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "apply_patch", "arguments": ""},
                    }
                ]
            }
        )
    )
    for i in range(0, len(patch), step):
        payloads.append(
            chatChunk(
                {"tool_calls": [{"index": 2, "function": {"arguments": patch[i : i + step]}}]}
            )
        )
    payloads.append(chatChunk({}, "tool_calls"))
    usage = {
        "prompt_tokens": 21000,
        "completion_tokens": 1200,
        "total_tokens": 22200,
        "prompt_tokens_details": {"cached_tokens": 20000},
    }
    payloads.append(encodeChunk(_chatChunk(
        usage=usage, model="deepseek-chat", chunkId="chatcmpl-9f8e7d6c5b4a39281706"
    )).encode("utf-8"))
    payloads.append(b"[DONE]")
    return payloads


def sseBytes(payloads: Sequence[bytes]) -> list[bytes]:
    """
    Each payload as one C{data: ...\\n\\n} event.
    """
    return [b"data: " + p + b"\n\n" for p in payloads]


def frameChunks(pieces: Sequence[bytes]) -> bytes:
    """
    HTTP/1.1 chunked framing, one chunk per piece (no terminator).
    """
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)


# --------------------------------------------------------------------------- upstream

_LAST_CHUNK = b"0\r\n\r\n"
_PIECE = 256 * KiB


def _parseSpec(value: bytes) -> tuple[str, dict[str, int]]:
    kind, *rest = value.decode("ascii").split(";")
    params = {}
    for item in rest:
        name, _, number = item.partition("=")
        params[name.strip()] = int(number)
    return kind.strip(), params


class _UpstreamProtocol(asyncio.Protocol):
    """
    One upstream connection: parse requests, answer from pre-built bytes.
    """

    def __init__(self, server: _Upstream) -> None:
        self._server = server
        self._buf = bytearray()
        self._need: int | None = None
        self._req: tuple[bytes, bytes, dict[bytes, bytes]] | None = None
        self._busy = False
        self._paused = False
        self._pieces: Iterator[bytes] | None = None
        self._close = False
        self._tail = -1
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=512 * KiB)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server.stats["connections"] += 1
        self._server.stats["open"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.stats["open"] -= 1
        self._pieces = None
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._parse()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._pump()

    def _parse(self) -> None:
        buf = self._buf
        for _ in range(1000):
            if self._busy or self.transport is None:
                return
            if self._need is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > 256 * KiB:
                        self.transport.abort()
                    return
                lines = bytes(buf[:end]).split(b"\r\n")
                del buf[: end + 4]
                method, target, _ = lines[0].split(b" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                if b"chunked" in headers.get(b"transfer-encoding", b""):
                    self._need = -1
                else:
                    self._need = int(headers.get(b"content-length", b"0"))
                self._req = (method, target, headers)
            if self._need == -1:
                if not self._chunkedBody(buf):
                    return
            elif len(buf) < self._need:
                return
            else:
                del buf[: self._need]
            self._need = None
            assert self._req is not None
            self._respond(*self._req)

    def _chunkedBody(self, buf: bytearray) -> bool:
        # The whole body is buffered before it is parsed (bodies here are small).
        pos = 0
        for _ in range(1_000_000):
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return False
            size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
            if size == 0:
                end = buf.find(b"\r\n\r\n", nl)
                if end < 0:
                    return False
                del buf[: end + 4]
                return True
            pos = nl + 2 + size + 2
            if pos > len(buf):
                return False
        raise ValueError("too many chunks")

    def _respond(self, method: bytes, target: bytes, headers: dict[bytes, bytes]) -> None:
        server = self._server
        self._close = headers.get(b"connection", b"").lower() == b"close"
        if target == b"/__stats":
            body = json.dumps(server.stats).encode()
            self._whole(b"application/json", body)
            return
        server.stats["requests"] += 1
        kind, params = _parseSpec(headers.get(b"x-bench-reply", b"json"))
        if kind == "json":
            self._whole(b"application/json", SMALL_JSON)
        elif kind == "sse":
            self._stream(server.ssePieces(params))
        elif kind == "responses":
            first, rest = server.responsesReply()
            self._begin()
            self.transport.write(first)
            self._busy = True
            server.loop.call_later(params.get("gap", 5) / 1000.0, self._later, rest)
        elif kind == "chat":
            self._stream(server.chatPieces(params.get("scale", 1)), params.get("tail", 0))
        else:
            self._whole(b"text/plain", b"unknown x-bench-reply", status=b"400 Bad Request")

    def _head(self, contentType: bytes, extra: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: " + contentType + b"\r\n"
            b"x-request-id: req_bench\r\n"
            + extra
            + (b"connection: close\r\n" if self._close else b"")
            + b"\r\n"
        )

    def _whole(self, contentType: bytes, body: bytes, status: bytes = b"200 OK") -> None:
        head = self._head(contentType, b"content-length: %d\r\n" % len(body))
        if status != b"200 OK":
            head = head.replace(b"200 OK", status, 1)
        self.transport.write(head + body)
        self._done()

    def _begin(self) -> None:
        self.transport.write(self._head(b"text/event-stream", b"transfer-encoding: chunked\r\n"))

    def _stream(self, pieces: Iterator[bytes], tail: int = -1) -> None:
        """
        Write the pieces as the reader takes them; then the last chunk, C{tail} ms
        later if C{tail} > 0 (C{-1}: the pieces include it).
        """
        self._begin()
        self._busy = True
        self._pieces = pieces
        self._tail = tail
        self._pump()

    def _later(self, rest: bytes) -> None:
        if self.transport is not None:
            self.transport.write(rest)
            self._done()

    def _pump(self) -> None:
        pieces = self._pieces
        write = self.transport.write if self.transport is not None else None
        while pieces is not None and write is not None and not self._paused:
            piece = next(pieces, None)
            if piece is None:
                self._pieces = None
                if self._tail > 0:
                    self._server.loop.call_later(self._tail / 1000.0, self._later, _LAST_CHUNK)
                elif self._tail == 0:
                    self._later(_LAST_CHUNK)
                else:
                    self._done()
                return
            write(piece)

    def _done(self) -> None:
        self._busy = False
        if self._close:
            self.transport.close()
            return
        if self._buf:
            self._server.loop.call_soon(self._parse)


class _Upstream:
    """
    The listening fake and its pre-built answers.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.stats = {"connections": 0, "open": 0, "requests": 0}
        self._chat: dict[int, bytes] = {}
        events = responsesEvents()
        self._responses = (frameChunks(events[:1]), frameChunks(events[1:]) + _LAST_CHUNK)

    def responsesReply(self) -> tuple[bytes, bytes]:
        return self._responses

    def ssePieces(self, params: dict[str, int]) -> Iterator[bytes]:
        total, event = params["bytes"], params.get("event", KiB)
        chunk = max(event, params.get("chunk", event) // event * event)
        filler = (_PROSE.encode() * (event // len(_PROSE) + 1))[: event - 8]
        one = b"data: " + filler + b"\n\n"
        framed = frameChunks([one * (chunk // event)])
        perPiece = max(1, _PIECE // len(framed))
        piece = framed * perPiece
        chunks = total // chunk
        for _ in range(chunks // perPiece):
            yield piece
        if chunks % perPiece:
            yield framed * (chunks % perPiece)
        yield _LAST_CHUNK

    def chatPieces(self, scale: int) -> Iterator[bytes]:
        data = self._chat.get(scale)
        if data is None:
            data = frameChunks(sseBytes(chatPayloads(scale)))
            self._chat[scale] = data
        view = memoryview(data)
        for i in range(0, len(data), _PIECE):
            yield view[i : i + _PIECE]


def serveUpstream(infoPath: str) -> None:
    """
    Run the fake upstream until SIGTERM; write C{{"port", "pid"}} to C{infoPath}.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    upstream = _Upstream(loop)
    server = loop.run_until_complete(
        loop.create_server(lambda: _UpstreamProtocol(upstream), HOST, 0, backlog=1024)
    )
    port = server.sockets[0].getsockname()[1]
    _writeInfo(infoPath, {"port": port, "pid": os.getpid()})
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


def _writeInfo(path: str, info: dict[str, int]) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(info) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- clients


def buildRequest(
    port: int,
    body: bytes,
    reply: str,
    headers: Sequence[tuple[str, str]] = (),
    close: bool = False,
    path: str = "/v1/responses",
) -> bytes:
    """
    A C{POST} request as Codex sends it (its headers, C{Authorization}, a JSON body).
    """
    lines = [f"POST {path} HTTP/1.1", f"host: {HOST}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += [
        f"authorization: Bearer {KEY.decode()}",
        f"x-bench-reply: {reply}",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def connect(port: int, timeout: float = 30.0) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(
    sock: socket.socket,
    request: bytes,
    parser: ResponseParser,
    deadline: float,
    recvSize: int = 256 * KiB,
) -> ResponseParser:
    """
    Send one request and read its whole response (blocking, bounded by C{deadline}).
    """
    sock.sendall(request)
    recv = sock.recv
    feed = parser.feed
    while time.monotonic() < deadline:
        data = recv(recvSize)
        if not data:
            if parser.eof():
                return parser
            raise ProtocolError("connection closed before the response ended")
        if feed(data):
            return parser
    raise TimeoutError("response not complete by the deadline")


def getJSON(port: int, path: str, timeout: float = 10.0) -> Any:
    request = f"GET {path} HTTP/1.1\r\nhost: {HOST}:{port}\r\nconnection: close\r\n\r\n"
    with connect(port, timeout) as sock:
        parser = exchange(
            sock, request.encode(), ResponseParser(keep=True), time.monotonic() + timeout
        )
    return json.loads(parser.body) if parser.body else None


class AsyncClient(asyncio.Protocol):
    """
    One keep-alive client connection, one exchange at a time.
    """

    def __init__(self) -> None:
        self.transport: Any = None
        self._parser: ResponseParser | None = None
        self._waiter: asyncio.Future[ResponseParser] | None = None

    @classmethod
    async def open(cls, port: int) -> AsyncClient:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, HOST, port)
        return protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        parser, waiter = self._parser, self._waiter
        if parser is None or waiter is None or waiter.done():
            return
        try:
            complete = parser.feed(data)
        except Exception as e:
            waiter.set_exception(e)
            return
        if complete:
            self._parser = self._waiter = None
            waiter.set_result(parser)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        parser, waiter = self._parser, self._waiter
        if waiter is not None and not waiter.done():
            if parser is not None and parser.eof():
                waiter.set_result(parser)
            else:
                waiter.set_exception(ProtocolError("connection lost mid-response"))

    async def exchange(
        self, request: bytes, parser: ResponseParser, timeout: float
    ) -> ResponseParser:
        if self.transport is None:
            raise ProtocolError("connection closed")
        self._parser = parser
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await asyncio.wait_for(self._waiter, timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class SSECounter:
    """
    Splits a de-framed SSE body into events and counts them by type (the C{event:}
    field, or C{[DONE]}/C{data} for events without one); keeps the last event's data.
    """

    def __init__(self) -> None:
        self.events = 0
        self.types: dict[bytes, int] = {}
        self.lastType = b""
        self.lastData = b""
        self._splitter = SSESplitter()

    def feed(self, data: bytes) -> None:
        blocks = self._splitter.feed(data)
        if not blocks:
            return
        types = self.types
        kind = self.lastType
        for block in blocks:
            if block.startswith(b"event: "):
                nl = block.find(b"\n")
                kind = block[7:nl]
            elif block.startswith(b"data: [DONE]"):
                kind = b"[DONE]"
            elif block.startswith(b":"):
                continue
            else:
                kind = b"data"
            types[kind] = types.get(kind, 0) + 1
            self.events += 1
        self.lastType = kind
        self.lastData = block

    def completedResponse(self) -> bool:
        """
        Whether the stream ended, with nothing left over, on a C{response.completed}
        event whose response is C{completed}.
        """
        if self._splitter.pending.strip() or self.lastType != b"response.completed":
            return False
        data = self.lastData.split(b"\ndata: ", 1)[1]
        event = json.loads(data)
        return event["type"] == "response.completed" and event["response"]["status"] in (
            "completed",
            "incomplete",
        )


# --------------------------------------------------------------------------- processes


def procCPU(pid: int) -> float:
    """
    The process's user + system CPU seconds so far (C{/proc/<pid>/stat}).
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        text = f.read()
    fields = text[text.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def procMemory(pid: int) -> dict[str, int]:
    """
    C{VmRSS} and C{VmHWM} in KiB (C{/proc/<pid>/status}).
    """
    out = {}
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith((b"VmRSS:", b"VmHWM:")):
                name, value = line.split(b":", 1)
                out[name.decode()] = int(value.split()[0])
    return out


def pinningPlan(enabled: bool) -> tuple[set[int] | None, set[int] | None]:
    """
    CPU sets for (the benchmark and the upstream, the proxy): the proxy alone on one
    core, so its figures do not depend on the scheduler; L{None} when not pinning.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return None, None
    if not enabled or len(cpus) < 2:
        return None, None
    return {cpus[0]}, {cpus[1]}


class Child:
    """
    A child process whose output goes to a file; stopped by pid only.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        workdir: Path,
        stdin: bytes = b"",
        cpus: set[int] | None = None,
    ) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self.info = workdir / f"{name}.json"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        if cpus is not None:
            os.sched_setaffinity(self.proc.pid, cpus)
        assert self.proc.stdin is not None
        self.proc.stdin.write(stdin)
        self.proc.stdin.close()
        self.port = 0
        self.pid = self.proc.pid

    def waitReady(self, timeout: float = 20.0) -> Child:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}): "
                    f"{self.log.read_text(errors='replace')[-2000:]}"
                )
            try:
                info = json.loads(self.info.read_text())
            except (OSError, ValueError):
                info = None
            if info:
                self.port, self.pid = info["port"], info["pid"]
                return self
            try:
                self.proc.wait(0.01)
            except subprocess.TimeoutExpired:
                pass
        raise TimeoutError(f"{self.name} not ready within {timeout} s")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode


def _ready(child: Child) -> Child:
    try:
        return child.waitReady()
    except BaseException:
        child.stop()
        raise


def startUpstream(workdir: Path, cpus: set[int] | None) -> Child:
    child = Child(
        "upstream",
        [PYTHON, str(Path(__file__).resolve()), "--info", str(workdir / "upstream.json")],
        workdir,
        cpus=cpus,
    )
    return _ready(child)


def startProxy(
    workdir: Path,
    upstreamURL: str,
    cpus: set[int] | None,
    bridge: bool = False,
    profile: str | None = None,
) -> Child:
    """
    The proxy as a real process, as documented; C{profile}: run it under cProfile.
    """
    argv = [PYTHON]
    if profile:
        argv += ["-m", "cProfile", "-o", profile]
    argv += [
        "-m",
        "responses_proxy",
        "--server-info",
        str(workdir / "proxy.json"),
        "--upstream-url",
        upstreamURL,
        "--http-shutdown",
    ]
    if bridge:
        argv.append("--bridge-to-chat")
    return _ready(Child("proxy", argv, workdir, stdin=KEY + b"\n", cpus=cpus))


def logProblems(child: Child, limit: int = 5) -> list[str]:
    """
    The proxy's log lines that report a failure, grouped (timestamps cut), most frequent
    first, with their counts.
    """
    counts: dict[str, int] = {}
    try:
        text = child.log.read_text(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        lower = line.lower()
        if "fail" in lower or "error" in lower or "abnormal" in lower or "traceback" in lower:
            message = line.split("] ", 1)[-1]
            counts[message] = counts.get(message, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:limit]
    return [f"{n} x {message}" for message, n in ranked]


def stopProxy(proxy: Child, timeout: float = 15.0) -> int | None:
    """
    C{GET /shutdown}, then wait for the exit (SIGTERM if it does not come).
    """
    try:
        request = f"GET /shutdown HTTP/1.1\r\nhost: {HOST}:{proxy.port}\r\n\r\n".encode()
        with connect(proxy.port, 5) as sock:
            exchange(sock, request, ResponseParser(keep=False), time.monotonic() + 5)
        proxy.proc.wait(timeout)
    except (OSError, ProtocolError, TimeoutError, subprocess.TimeoutExpired):
        pass
    return proxy.stop()


# --------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], p: float) -> float:
    """
    Nearest-rank percentile (0 for no values).
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """
    A plain fixed-width table; the first column left-aligned, the rest right-aligned.
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    out = [title]
    for index, row in enumerate(cells):
        rest = zip(row[1:], widths[1:], strict=True)
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in rest]
        out.append("  " + "  ".join(parts).rstrip())
        if index == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(out)


def machine() -> str:
    import platform

    import twisted

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}, Twisted {twisted.__version__}; "
        f"load average {load}"
    )


def main(argv: Sequence[str]) -> None:
    if len(argv) != 2 or argv[0] != "--info":
        print("usage: _benchlib.py --info FILE", file=sys.stderr)
        raise SystemExit(2)
    serveUpstream(argv[1])


if __name__ == "__main__":
    main(sys.argv[1:])


def runBenchmark(
    name: str,
    description: str,
    path: str,
    run: Callable[[bool, Child, Child], None],
    bridge: bool = False,
) -> int:
    """
    The shared driver of the end-to-end benchmarks: options (C{--quick}, C{--no-pin},
    C{--profile}), CPU pinning, the fast upstream and the proxy started and always
    stopped, the proxy's logged failures, an optional profile, and the wall time.

    @param path: the upstream path the proxy forwards to.
    @param run: called with (quick, upstream, proxy) to run the phases.
    """
    import argparse
    import pstats
    import shutil
    import tempfile

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (< 30 s)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin CPUs")
    parser.add_argument("--profile", metavar="FILE", help="run the proxy under cProfile")
    options = parser.parse_args()
    benchCPUs, proxyCPUs = pinningPlan(not options.no_pin)
    if benchCPUs is not None:
        os.sched_setaffinity(0, benchCPUs)
    workdir = Path(tempfile.mkdtemp(prefix=f"{name.replace('_', '-')}-"))
    began = time.perf_counter()
    print(f"{name} ({'quick' if options.quick else 'default'} run): {machine()}")
    print("pinning: " + (f"proxy on CPU {sorted(proxyCPUs)}, client and upstream on CPU "
                         f"{sorted(benchCPUs)}" if proxyCPUs else "none"))
    upstream = startUpstream(workdir, benchCPUs)
    try:
        proxy = startProxy(workdir, f"http://{HOST}:{upstream.port}{path}", proxyCPUs,
                           bridge=bridge, profile=options.profile)
        try:
            run(options.quick, upstream, proxy)
        finally:
            stopProxy(proxy)
            problems = logProblems(proxy)
            print("\nproxy log: " + ("; ".join(problems) if problems else "no failures logged"))
    finally:
        upstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if options.profile:
        print(f"\nproxy profile ({options.profile}), top 30 by internal time:")
        pstats.Stats(options.profile).sort_stats("tottime").print_stats(30)
    print(f"\ntotal wall time {time.perf_counter() - began:.1f} s")
    return 0
