# -*- test-case-name: tests.interop.test_llama_server -*-
"""
Helpers for the interop suite: the real chat servers as processes, the proxy in bridge
mode in front of them with a dump directory, what the upstream really sent (read back
from the dumps), and the recording of those streams as fixtures for the fast suite.

Everything runs on 127.0.0.1 with ephemeral ports (each server is started with port 0
and its log line naming the port is awaited). Servers are expensive to start (a model
load, LiteLLM's import time), so a test class shares them: L{Shared} keeps them until
the test run exits. The paths of the installed servers come from the environment that
C{./scripts/interop} sets; without C{INTEROP_SUITE=1} the classes are skipped with a
reason that names the script (the main suite never runs them).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from tests import sdkcheck
from tests.support import http
from tests.support.codex import CodexCLI, codexVersion
from tests.support.procs import REPO, ManagedProcess, makeTempDir
from tests.support.proxy import ProxyProcess

ENABLED = os.environ.get("INTEROP_SUITE") == "1"
SKIP: str | None = None if ENABLED else (
    "the interop suite needs the real servers: run ./scripts/interop (it installs them "
    "and sets INTEROP_SUITE=1)"
)
"""The C{skip} attribute of every interop test class."""

RECORD = os.environ.get("INTEROP_RECORD") == "1"
FIXTURES = REPO / "tests" / "fixtures" / "real-servers"
LITELLM_DIR = Path(__file__).resolve().parent / "litellm"

UPSTREAM_KEY = "sk-interop-upstream-0123456789abcdef"
"""The key piped into the proxy; every real server is started requiring it."""

CLIENT_KEY = "sk-interop-client-must-not-reach-the-upstream"
"""The key the clients send to the proxy (replaced by L{UPSTREAM_KEY})."""

SHORT_INSTRUCTIONS = (
    "You are a helpful assistant running inside a coding agent. Answer briefly, in one "
    "or two sentences. Use the tools only when the user asks for an action.\n"
)
"""Codex's base prompt for SmolLM2 (given with C{model_instructions_file}): Codex's own
(about 5k tokens) plus its tools (about 4.5k) do not fit the model's 8k context."""

SHORT_PROMPT_CONFIG: dict[str, Any] = {
    "include_permissions_instructions": False,
    "include_environment_context": False,
    "skills.include_instructions": False,
}
"""Codex settings for SmolLM2, with C{model_instructions_file}: no permissions, environment
or skills blocks (the skills block names this run's own CODEX_HOME, so no two prompts would
be the same)."""

START_TIMEOUT = 180.0
"""Seconds a server may take to be ready (LiteLLM imports for ~15 s on a busy CPU)."""


class InteropMissing(AssertionError):
    """
    Something C{./scripts/interop} installs is not there.
    """


def need(name: str, isPath: bool = True) -> str:
    """
    @param name: an environment variable that C{./scripts/interop} sets.
    @param isPath: its value names a file or directory, which must exist.
    @return: its value.
    @raise InteropMissing: if it is unset or names a missing file.
    """
    value = os.environ.get(name)
    if not value:
        raise InteropMissing(f"{name} is not set: run the suite with ./scripts/interop")
    if isPath and not Path(value).exists():
        raise InteropMissing(f"{name}={value} does not exist: run ./scripts/interop")
    return value


# -- processes shared by a test class ----------------------------------------------------------


class _Owner:
    """
    Stands in for a test case as the owner of shared processes: their cleanups run when
    the test run exits (or when L{Shared.stop} is called).
    """

    def __init__(self) -> None:
        self._cleanups: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def addCleanup(self, f: Callable[..., Any], *args: Any) -> None:
        self._cleanups.append((f, args))

    def assertEqual(self, a: Any, b: Any) -> None:
        assert a == b, (a, b)

    def cleanUp(self) -> None:
        while self._cleanups:
            f, args = self._cleanups.pop()
            try:
                f(*args)
            except Exception:  # noqa: BLE001 - best effort at exit
                pass


class Shared:
    """
    Named things (servers, proxies) started once and kept for the rest of the run.
    """

    _items: dict[str, tuple[_Owner, Any, Callable[[Any], bool]]] = {}

    @classmethod
    def get(cls, name: str, make: Callable[[Any], Any],
            alive: Callable[[Any], bool]) -> Any:
        """
        @param name: the key.
        @param make: called with an owner (a test-case stand-in) to start the thing.
        @param alive: whether a kept thing is still usable; if not, it is restarted.
        """
        entry = cls._items.get(name)
        if entry is not None:
            owner, thing, isAlive = entry
            if isAlive(thing):
                return thing
            owner.cleanUp()
            del cls._items[name]
        owner = _Owner()
        try:
            thing = make(owner)
        except BaseException:
            owner.cleanUp()
            raise
        cls._items[name] = (owner, thing, alive)
        return thing

    @classmethod
    def stopAll(cls) -> None:
        for owner, _, _ in list(cls._items.values()):
            owner.cleanUp()
        cls._items.clear()


atexit.register(Shared.stopAll)


# -- the real servers ------------------------------------------------------------------------------


@dataclass
class ChatServer:
    """
    A real chat server on 127.0.0.1.

    @ivar name: C{"litellm"}, C{"llama-cpp-python"} or C{"llama-server"}.
    @ivar version: its version, as pinned by C{./scripts/interop}.
    @ivar process: the process.
    @ivar port: where it listens.
    """

    name: str
    version: str
    process: ManagedProcess
    port: int

    def url(self, path: str = "/v1/chat/completions") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def alive(self) -> bool:
        return self.process.running()

    def log(self) -> str:
        """
        @return: the end of what it printed, for assertion messages.
        """
        text = (self.process.stdout() + self.process.stderr()).decode("utf-8", "replace")
        return text[-3000:]


def _serverEnv(extra: dict[str, str] | None = None) -> dict[str, str]:
    home = makeTempDir(None, prefix="interop-home-")
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra or {})
    return env


def _startListening(owner: Any, name: str, argv: list[str], env: dict[str, str],
                    pattern: str, cwd: Path | None = None) -> tuple[ManagedProcess, int]:
    """
    Start a server with port 0 and wait for the log line that names its port.
    """
    directory = makeTempDir(None, prefix=f"interop-{name}-")
    owner.addCleanup(lambda: __import__("shutil").rmtree(directory, True))
    process = ManagedProcess(argv, env=env, stdin=None, cwd=cwd or directory,
                             directory=directory, name=name)
    owner.addCleanup(process.stop, 10.0)
    process.start()
    regex = re.compile(pattern.encode())

    def check() -> int | None:
        match = regex.search(process.stdout() + process.stderr())
        return int(match.group(1)) if match else None

    port = process.waitFor(check, START_TIMEOUT, f"{name} listening")
    return process, port


def startLlamaServer(owner: Any, *extra: str) -> ChatServer:
    """
    llama.cpp's C{llama-server} with SmolLM2-135M (named C{smollm2}), requiring
    L{UPSTREAM_KEY}, greedy sampling (reproducible replies), one slot, one thread (two
    threads spin-waiting for each other were 25 times slower on a loaded 2-core machine).

    @param extra: more arguments (e.g. C{-c 256}).
    """
    argv = [need("INTEROP_LLAMA_SERVER"), "-m", need("INTEROP_GGUF"),
            "--host", "127.0.0.1", "--port", "0", "--api-key", UPSTREAM_KEY,
            "--alias", "smollm2", "--no-webui", "--temp", "0", "--seed", "1", "-t", "1",
            "-np", "1", *extra]
    env = _serverEnv({"LD_LIBRARY_PATH": need("INTEROP_LLAMA_LIB")})
    process, port = _startListening(
        owner, "llama-server", argv, env, r"listening on http://127\.0\.0\.1:(\d+)"
    )
    return ChatServer("llama-server", _llamaServerVersion(process), process, port)


def _llamaServerVersion(process: ManagedProcess) -> str:
    match = re.search(rb"build: (\d+) \((\w+)\)", process.stderr() + process.stdout())
    llamaCppPython = os.environ.get("INTEROP_LLAMA_CPP_PYTHON_VERSION", "?")
    if match:
        return (f"llama.cpp {match.group(2).decode()} (vendored by llama-cpp-python "
                f"{llamaCppPython})")
    return f"llama.cpp vendored by llama-cpp-python {llamaCppPython}"


def startLlamaCppPython(owner: Any, models: list[dict[str, Any]]) -> ChatServer:
    """
    C{python -m llama_cpp.server} with a config file: these model entries (each gets the
    GGUF path), requiring L{UPSTREAM_KEY}.
    """
    directory = makeTempDir(None, prefix="interop-llama-cpp-python-config-")
    owner.addCleanup(lambda: __import__("shutil").rmtree(directory, True))
    gguf = need("INTEROP_GGUF")
    config = {
        "host": "127.0.0.1",
        "port": 0,
        "api_key": UPSTREAM_KEY,
        "models": [{"model": gguf, "n_threads": 1, "n_threads_batch": 1, "verbose": False, **m}
                   for m in models],
    }
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    lib = need("INTEROP_LLAMA_LIB")
    env = _serverEnv({"LLAMA_CPP_LIB_PATH": lib, "MTMD_CPP_LIB": lib})
    argv = [need("INTEROP_LLAMA_CPP_PYTHON"), "-m", "llama_cpp.server", "--config_file", str(path)]
    process, port = _startListening(
        owner, "llama-cpp-python", argv, env, r"running on http://127\.0\.0\.1:(\d+)"
    )
    version = "llama-cpp-python " + need("INTEROP_LLAMA_CPP_PYTHON_VERSION", False)
    return ChatServer("llama-cpp-python", version, process, port)


def startLiteLLM(owner: Any) -> ChatServer:
    """
    LiteLLM's proxy with C{tests/interop/litellm/config.yaml} (mocked models and the
    custom tool-calling provider), its master key L{UPSTREAM_KEY}, no network: the local
    model cost map, no telemetry.
    """
    argv = [need("INTEROP_LITELLM"), "--config", str(LITELLM_DIR / "config.yaml"),
            "--host", "127.0.0.1", "--port", "0", "--num_workers", "1"]
    env = _serverEnv({
        "INTEROP_LITELLM_KEY": UPSTREAM_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "PYTHONPATH": str(LITELLM_DIR),
    })
    process, port = _startListening(
        owner, "litellm", argv, env, r"running on http://127\.0\.0\.1:(\d+)", cwd=LITELLM_DIR
    )
    version = "litellm " + need("INTEROP_LITELLM_VERSION", False)
    return ChatServer("litellm", version, process, port)


# -- the bridge in front of a server ---------------------------------------------------------------


@dataclass
class Exchange:
    """
    One request through the bridge, as its dump files tell it.

    @ivar request: the request file (C{body}: what the client sent; C{upstream_request}:
        the chat request made of it).
    @ivar response: the response file (C{status}, C{headers}, C{body}: the upstream's raw
        reply; C{client_body}: what the client got).
    """

    request: dict[str, Any]
    response: dict[str, Any]

    @property
    def chatRequest(self) -> dict[str, Any]:
        return self.request["upstream_request"]["body"]

    @property
    def chatRequestHeaders(self) -> list[list[str]]:
        return self.request["upstream_request"]["headers"]

    @property
    def clientRequest(self) -> dict[str, Any]:
        return self.request["body"]

    @property
    def status(self) -> int:
        return self.response["status"]

    @property
    def raw(self) -> str:
        """
        The upstream's reply body as text (a JSON body was decoded by the dumper: it is
        encoded again).
        """
        body = self.response["body"]
        return body if isinstance(body, str) else json.dumps(body)

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return chatChunks(self.raw)


class Bridge:
    """
    The proxy in bridge mode in front of one server, with a dump directory.
    """

    def __init__(self, owner: Any, server: ChatServer, tuning: str | None = None) -> None:
        self.server = server
        self.dumpDir = makeTempDir(None, prefix="interop-dump-")
        owner.addCleanup(lambda: __import__("shutil").rmtree(self.dumpDir, True))
        self.proxy = ProxyProcess(
            owner, key=UPSTREAM_KEY.encode(), upstreamURL=server.url(), bridge=True,
            dumpDir=str(self.dumpDir), tuning=tuning,
        ).start()
        self.port = self.proxy.port

    def alive(self) -> bool:
        return self.proxy.process.running() and self.server.alive()

    def url(self, path: str = "/v1") -> str:
        return self.proxy.url(path)

    def mark(self) -> set[str]:
        """
        @return: the exchanges dumped so far (give it to L{exchangesSince}).
        """
        return {p.name for p in self.dumpDir.glob("*-request.json")}

    def exchangesSince(self, mark: set[str], count: int | None = None,
                       timeout: float = 10.0) -> list[Exchange]:
        """
        The exchanges dumped after C{mark}, in order, once each has its response file.

        @param count: how many there must be (checked), or L{None} for any number.
        """
        deadline = time.monotonic() + timeout
        while True:
            names = sorted(p.name for p in self.dumpDir.glob("*-request.json")
                           if p.name not in mark)
            pairs = [(self.dumpDir / n, self.dumpDir / n.replace("-request.json",
                                                                 "-response.json"))
                     for n in names]
            ready = all(r.exists() for _, r in pairs)
            if ready and (count is None or len(pairs) >= count):
                out = []
                for req, resp in pairs:
                    try:
                        out.append(Exchange(json.loads(req.read_text()),
                                            json.loads(resp.read_text())))
                    except ValueError:
                        break  # a file being written: read again
                else:
                    if count is not None:
                        assert len(out) == count, (
                            f"expected {count} exchanges, got {len(out)}")
                    return out
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no complete dumps ({len(pairs)} exchanges, want {count}) within "
                    f"{timeout} s in {self.dumpDir}")
            time.sleep(0.02)  # polling files another process writes, bounded by the deadline

    def sdk(self, timeout: float = 120.0) -> openai.OpenAI:
        """
        An OpenAI SDK client for the bridge (its own key, no retries).
        """
        return openai.OpenAI(base_url=self.url("/v1"), api_key=CLIENT_KEY, max_retries=0,
                             timeout=timeout)

    def codex(self, testCase: Any, model: str, timeout: float = 240.0,
              **kwargs: Any) -> CodexCLI:
        """
        A Codex runner for the bridge (Codex sends its own key, which must not go up).
        """
        checkCodexVersion()
        return CodexCLI(testCase, baseURL=self.url("/v1"), model=model,
                        envKey=("INTEROP_CODEX_KEY", CLIENT_KEY), timeout=timeout, **kwargs)

    def stream(self, body: dict[str, Any], timeout: float = 120.0) -> Streamed:
        """
        Send a streaming Responses request and read the whole reply; the events are
        validated by L{sdkcheck} (SDK types, sequence numbers, one terminal event).
        """
        with http.openStream(self.port, "/v1/responses", body,
                             headers=[("Authorization", "Bearer " + CLIENT_KEY)],
                             timeout=timeout) as response:
            chunks = []
            deadline = time.monotonic() + timeout
            while True:
                piece = response.readChunk(max(0.1, deadline - time.monotonic()))
                if piece is None:
                    break
                chunks.append(piece)
            body = b"".join(chunks)
            out = Streamed(response.status, response.headers, body, response.complete)
        if out.status == 200:
            out.events = sdkcheck.validateEvents(body)
        return out


@dataclass
class Streamed:
    """
    What a streaming client got from the bridge.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def terminal(self) -> dict[str, Any]:
        return self.events[-1]

    @property
    def response(self) -> dict[str, Any]:
        return self.events[-1]["response"]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def doneItems(self) -> list[dict[str, Any]]:
        return [e["item"] for e in self.events if e["type"] == "response.output_item.done"]

    def json(self) -> Any:
        return json.loads(self.body)


_checkedCodex: list[str] = []


def checkCodexVersion() -> None:
    """
    The Codex binary is the version C{./scripts/interop} pinned.
    """
    if not _checkedCodex:
        want = need("INTEROP_CODEX_VERSION", False)
        got = codexVersion()
        assert got.endswith(" " + want), f"CODEX_BIN is {got!r}, the suite pins {want}"
        _checkedCodex.append(got)


# -- reading a chat stream ------------------------------------------------------------------------


def chatChunks(raw: str) -> list[dict[str, Any]]:
    """
    The JSON objects of the C{data:} lines of a raw chat SSE stream (C{[DONE]} and
    comments left out); a body that is one JSON object gives that object.
    """
    out = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        if line.startswith("data:"):
            data = line[5:].strip()
            if data and data != "[DONE]":
                out.append(json.loads(data))
    if not out and raw.strip().startswith("{"):
        out.append(json.loads(raw))
    return out


def commentLines(raw: str) -> list[str]:
    """
    The SSE comment lines (C{: ping}, C{:}) of a raw stream.
    """
    return [line for line in raw.replace("\r\n", "\n").split("\n") if line.startswith(":")]


def streamedText(chunks: Iterable[dict[str, Any]]) -> str:
    return "".join(
        c["delta"].get("content") or ""
        for chunk in chunks for c in chunk.get("choices") or []
        if isinstance(c.get("delta"), dict)
    )


def finishReasons(chunks: Iterable[dict[str, Any]]) -> list[str]:
    return [c["finish_reason"] for chunk in chunks for c in chunk.get("choices") or []
            if c.get("finish_reason")]


def streamedUsage(chunks: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    usage = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
    return usage


def streamedToolCalls(chunks: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """
    The C{delta.tool_calls} of a stream put together by C{index}: C{[{"id", "name",
    "arguments"}]} in index order (C{function_call} deltas are not counted).
    """
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            for call in (choice.get("delta") or {}).get("tool_calls") or []:
                entry = calls.setdefault(call.get("index", 0),
                                         {"id": "", "name": "", "arguments": ""})
                entry["id"] = call.get("id") or entry["id"]
                function = call.get("function") or {}
                entry["name"] = function.get("name") or entry["name"]
                entry["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def usageOf(chat: dict[str, Any]) -> dict[str, Any]:
    """
    The Responses usage the bridge must report for a chat usage object (bridge-spec §2.5).
    """
    details = chat.get("prompt_tokens_details") or {}
    completion = chat.get("completion_tokens_details") or {}
    return {
        "input_tokens": chat["prompt_tokens"],
        "output_tokens": chat["completion_tokens"],
        "total_tokens": chat.get("total_tokens",
                                 chat["prompt_tokens"] + chat["completion_tokens"]),
        "cached_tokens": details.get("cached_tokens") or 0,
        "reasoning_tokens": completion.get("reasoning_tokens") or 0,
    }


def responsesUsage(usage: dict[str, Any]) -> dict[str, Any]:
    """
    The same fields read from a Responses usage object.
    """
    return {
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
        "total_tokens": usage["total_tokens"],
        "cached_tokens": usage["input_tokens_details"]["cached_tokens"],
        "reasoning_tokens": usage["output_tokens_details"]["reasoning_tokens"],
    }


def headerValue(headers: Iterable[Iterable[str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


# -- recording ----------------------------------------------------------------------------------


DROPPED_HEADERS = frozenset({"content-length", "transfer-encoding", "date", "connection",
                             "keep-alive", "server"})


def chatSummary(chat: dict[str, Any]) -> dict[str, Any]:
    """
    The parts of a chat request a replay checks (the whole request is derived from the
    client's, which the fixture keeps).
    """
    summary = {k: chat[k] for k in ("model", "stream", "stream_options", "tool_choice",
                                    "parallel_tool_calls", "max_tokens") if k in chat}
    summary["roles"] = [m["role"] for m in chat.get("messages", [])]
    summary["tools"] = [t["function"]["name"] for t in chat.get("tools", [])]
    return summary


def record(server: ChatServer, case: str, exchange: Exchange, client: str,
           note: str = "") -> Path | None:
    """
    With C{INTEROP_RECORD=1}, write what the real server sent for this exchange to
    C{tests/fixtures/real-servers/<server>-<case>.json}, for the replays in
    C{tests/test_real_server_replays.py}.

    @param client: what drove it (C{"codex 0.171.0"}, C{"openai sdk"}).
    @return: the file written, or L{None} when not recording.
    """
    if not RECORD:
        return None
    return _writeFixture(server, case, client, note, {
        "client_request": exchange.clientRequest,
        "chat_request": chatSummary(exchange.chatRequest),
        "status": exchange.status,
        "headers": _keptHeaders(exchange.response["headers"]),
        "body": exchange.raw,
    })


def _keptHeaders(headers: Any) -> list[list[str]]:
    return [[k, v] for k, v in headers if k.lower() not in DROPPED_HEADERS]


def _writeFixture(server: ChatServer, case: str, client: str, note: str,
                  fields: dict[str, Any]) -> Path:
    """
    Write C{tests/fixtures/real-servers/<server>-<case>.json}; no key may be in it.
    """
    FIXTURES.mkdir(parents=True, exist_ok=True)
    path = FIXTURES / f"{server.name}-{case}.json"
    document = {"server": server.name, "server_version": server.version, "case": case,
                "client": client, "note": note, **fields}
    text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    assert UPSTREAM_KEY not in text and CLIENT_KEY not in text, "a key in a fixture"
    path.write_text(text)
    return path


def recordTimed(server: ChatServer, case: str, chatRequest: dict[str, Any],
                headers: list[tuple[str, str]], pieces: list[tuple[float, bytes]],
                note: str = "") -> Path | None:
    """
    With C{INTEROP_RECORD=1}, write a stream read straight from a server (no bridge)
    with the time each piece arrived: C{pieces} as C{[seconds, text]}, C{body} their
    concatenation.
    """
    if not RECORD:
        return None
    return _writeFixture(server, case, "direct", note, {
        "chat_request": chatSummary(chatRequest),
        "status": 200,
        "headers": _keptHeaders(headers),
        "pieces": [[round(t, 3), p.decode("utf-8", "replace")] for t, p in pieces],
        "body": b"".join(p for _, p in pieces).decode("utf-8"),
    })
