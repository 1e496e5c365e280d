"""
Shared pieces of the end-to-end benchmarks (C{bench_proxy.py}, C{bench_bridge.py}).

  - Payloads: a 40 KB Codex request, a small JSON answer, a short Responses SSE reply,
    and a realistic Chat Completions chunk stream (the same one the bridge benchmark
    feeds to the pure translator), built with the tests' chunk builder
    (L{tests.support.chat}).
  - The upstream is the tests' fake upstream process (L{tests.fakeupstream}, run with
    C{--no-record}); each benchmark reply is a named reply spec (L{replySpec}) picked by
    the request header C{x-fake-reply}, which the proxy forwards as any other header. It
    writes pre-framed bytes, so it is not the bottleneck (the benchmarks measure it
    "direct").
  - Blocking and asyncio HTTP/1.1 clients over raw sockets, parsing with the tests'
    incremental parser (L{tests.support.wire}), and a Responses SSE event counter.
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
from collections.abc import Callable, Sequence
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


# --------------------------------------------------------------------------- upstream


def replySpec(reply: str) -> dict[str, Any]:
    """
    The fake upstream's reply spec (L{tests.fakeupstream}) for a benchmark reply name:
      - C{json}: a small JSON answer with a Content-Length;
      - C{sse;bytes=N;event=E;chunk=C}: N bytes of C{data: <prose>\\n\\n} events of E
        bytes, C bytes per HTTP chunk, written as fast as the reader takes them;
      - C{responses;gap=MS}: a short Responses SSE reply; the first event at once, the
        rest MS milliseconds later (for time-to-first-byte);
      - C{chat;scale=S}: the chat chunk stream (one HTTP chunk per SSE event).
    """
    kind, *rest = reply.split(";")
    params = {k: int(v) for k, _, v in (item.partition("=") for item in rest)}
    common = [["x-request-id", "req_bench"]]
    stream = [["content-type", "text/event-stream"], *common]
    if kind == "json":
        return {"body": SMALL_JSON.decode(), "content_length": True, "headers": common}
    if kind == "sse":
        event = params.get("event", KiB)
        chunk = max(event, params.get("chunk", event) // event * event)
        total = params["bytes"] // chunk * chunk
        return {"generate": {"bytes": total, "chunk": chunk, "event": event, "prose": True},
                "headers": stream}
    if kind == "responses":
        first, second, *others = (e.decode() for e in responsesEvents())
        chunks = [{"data": first}, {"data": second, "delay": params.get("gap", 5) / 1000}]
        return {"chunks": chunks + [{"data": e} for e in others], "headers": stream}
    if kind == "chat":
        return {"sse": [p.decode() for p in chatPayloads(params.get("scale", 1))],
                "headers": stream}
    raise ValueError(f"unknown benchmark reply {reply!r}")


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
        f"x-fake-reply: {reply}",
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


def procUserSystem(pid: int) -> tuple[float, float]:
    """
    The process's user and system CPU seconds so far (C{/proc/<pid>/stat}).
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        text = f.read()
    fields = text[text.rindex(b")") + 2 :].split()
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


def procCPU(pid: int) -> float:
    """
    The process's user + system CPU seconds so far.
    """
    return sum(procUserSystem(pid))


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
        self.controlPort = 0
        self.pid = self.proc.pid
        self._named: set[str] = set()

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
                self.controlPort = info.get("control_port", 0)
                return self
            try:
                self.proc.wait(0.01)
            except subprocess.TimeoutExpired:
                pass
        raise TimeoutError(f"{self.name} not ready within {timeout} s")

    def reply(self, reply: str) -> str:
        """
        The fake upstream's reply named C{reply} (see L{replySpec}), registered on first use.

        @return: C{reply}, for the request's C{x-fake-reply} header.
        """
        if reply not in self._named:
            body = json.dumps({reply: replySpec(reply)}).encode()
            request = (
                f"POST /named HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            ).encode() + body
            with connect(self.controlPort, 10) as sock:
                parser = exchange(sock, request, ResponseParser(), time.monotonic() + 10)
            if parser.status != 200:
                raise RuntimeError(f"the fake upstream refused {reply!r}: {parser.body!r}")
            self._named.add(reply)
        return reply

    def connections(self) -> int:
        """
        How many connections the fake upstream has accepted.
        """
        return getJSON(self.controlPort, "/connections")["total"]

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
        [PYTHON, "-m", "tests.fakeupstream", "--info", str(workdir / "upstream.json"),
         "--no-record"],
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
