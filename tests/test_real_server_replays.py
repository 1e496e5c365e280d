"""
Streams recorded from real chat servers, replayed through the fake upstream and the
proxy in bridge mode: the fast companion of the interop suite (C{tests/interop/}).

Each fixture in C{tests/fixtures/real-servers/} is what one real server (LiteLLM's proxy,
llama-cpp-python's server, llama.cpp's C{llama-server}) sent in one interop case, with the
request the client sent (Codex 0.171.0's or the OpenAI SDK's). C{INTEROP_RECORD=1
./scripts/interop} rewrites them. Here the same client request goes to the proxy, the fake
answers with the recorded status, headers and body, and the test checks that the chat
request has the recorded shape and that the Responses events carry what the server sent:
the text, the calls (ids, names, whole arguments), the usage, the terminal event.

The cases that showed bridge bugs on the real servers (doubled tool calls, the empty
stream, pings not counted as life) are regression tests now; each checks with
L{precondition} that its recording still shows the situation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests import sdkcheck
from tests.interop.support import (
    chatChunks,
    chatSummary,
    commentLines,
    finishReasons,
    streamedText,
    streamedToolCalls,
    streamedUsage,
    usageOf,
)
from tests.support import http
from tests.support.procs import precondition
from tests.support.proxy import SharedBridges

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real-servers"
CLIENT_KEY = "sk-replay-client-0000"
TERMINAL = {"stop": "response.completed", "tool_calls": "response.completed",
            "length": "response.incomplete"}


# -- the shared fake and proxies -----------------------------------------------------------------




# One fake chat upstream and one bridge per tuning, shared by the module's tests.
_BRIDGES = SharedBridges()


def tearDownModule() -> None:
    """
    Stop the shared processes (pytest and unittest call this; trial does not, and its
    workers' children end with them).
    """
    _BRIDGES.stop()


# -- fixtures ------------------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    """
    @param name: C{<server>-<case>}.
    """
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _blocks(body: str) -> list[str]:
    """
    An SSE body cut after each blank line, so the fake writes it event by event.
    """
    parts = re.split(r"(?<=\n\n)", body)
    return [p for p in parts if p]


def replySpec(fixture: dict[str, Any], timeScale: float = 1.0) -> dict[str, Any]:
    """
    The fake upstream's reply: the recorded status, headers and body. A fixture read
    with timings (C{pieces}) is replayed with its gaps, multiplied by C{timeScale}.
    """
    headers = [list(h) for h in fixture["headers"]]
    if "pieces" in fixture:
        chunks, last = [], 0.0
        for at, piece in fixture["pieces"]:
            chunks.append({"data": piece, "delay": round(max(0.0, at - last) * timeScale, 3)})
            last = at
    else:
        chunks = [{"data": block} for block in _blocks(fixture["body"])]
    return {"status": fixture["status"], "headers": headers, "chunks": chunks}


class Replayed:
    """
    What the client got for a replayed fixture, and the chat request the fake received.
    """

    def __init__(self, fixture: dict[str, Any], status: int, body: bytes,
                 chat: dict[str, Any]) -> None:
        self.fixture = fixture
        self.status = status
        self.body = body
        self.chat = chat
        self.chunks = chatChunks(fixture["body"])
        self.events: list[dict[str, Any]] = []

    @property
    def response(self) -> dict[str, Any]:
        return self.events[-1]["response"]

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [e["item"] for e in self.events
                if e["type"] == "response.output_item.done" and e["item"]["type"] == kind]

    def json(self) -> Any:
        return json.loads(self.body)


# -- the tests -----------------------------------------------------------------------------------


class ReplayBase(SynchronousTestCase):
    """
    Replay one fixture through the fake and the proxy, and check the generic facts.
    """

    tuning: str | None = None

    def replay(self, name: str, timeScale: float = 1.0) -> Replayed:
        fixture = load(name)
        fake, proxy = _BRIDGES.acquire(self.tuning)
        fake.reset()
        fake.enqueue(replySpec(fixture, timeScale))
        request = fixture["client_request"]
        headers = [("Authorization", "Bearer " + CLIENT_KEY)]
        if request.get("stream"):
            with http.openStream(proxy.port, "/v1/responses", request, headers=headers,
                                 timeout=20) as response:
                body = response.readAll(20)
                status = response.status
        else:
            resp = http.post(proxy.port, "/v1/responses", request, headers=headers)
            status, body = resp.status, resp.body
        [upstream] = fake.waitRequests(1)
        out = Replayed(fixture, status, body, upstream.json())
        self.assertEqual(chatSummary(out.chat), fixture["chat_request"])
        if status == 200 and request.get("stream"):
            out.events = sdkcheck.validateEvents(body)
        return out

    def assertMirrors(self, out: Replayed) -> None:
        """
        A streamed 200: the terminal event follows the server's C{finish_reason}; the
        message text, the calls and the usage are the server's.
        """
        reasons = finishReasons(out.chunks)
        self.assertEqual(out.events[-1]["type"], TERMINAL[reasons[-1]])
        texts = ["".join(p["text"] for p in i["content"]) for i in out.items("message")]
        self.assertEqual("".join(texts), streamedText(out.chunks))
        self.assertEqual(
            [(i["call_id"], i["name"], i["arguments"]) for i in out.items("function_call")],
            [(c["id"], c["name"], c["arguments"]) for c in streamedToolCalls(out.chunks)])
        usage = streamedUsage(out.chunks)
        if usage is None:
            self.assertIsNone(out.response["usage"])
        else:
            got = out.response["usage"]
            self.assertEqual(
                (got["input_tokens"], got["output_tokens"], got["total_tokens"],
                 got["input_tokens_details"]["cached_tokens"]),
                tuple(usageOf(usage)[k] for k in ("input_tokens", "output_tokens",
                                                  "total_tokens", "cached_tokens")))

    def assertError(self, out: Replayed, status: int, code: str) -> dict[str, Any]:
        """
        An error before streaming: the server's status, a Responses-style error with the
        normalised code and the server's message.
        """
        self.assertEqual(out.status, status)
        error = out.json()["error"]
        self.assertEqual(error["code"], code)
        upstream = json.loads(out.fixture["body"])["error"]
        self.assertIn(upstream["message"][:40], error["message"])
        return error


class LiteLLMReplayTests(ReplayBase):
    """
    LiteLLM's proxy (C{litellm[proxy]} 1.106.12), mocked models and the custom provider.
    """

    def test_codexText(self) -> None:
        """
        LiteLLM's mocked text, three characters a chunk, for Codex's request.
        """
        out = self.replay("litellm-codex-text")
        self.assertMirrors(out)
        self.assertEqual(streamedText(out.chunks), "Hello from LiteLLM's mocked model.")

    def test_codexToolCall(self) -> None:
        """
        One C{exec_command} call (id and name first, arguments in three deltas, every
        chunk with C{content: ""}) for Codex's request: one C{function_call} item.
        """
        out = self.replay("litellm-codex-tool-call")
        self.assertMirrors(out)
        self.assertEqual(len(out.items("function_call")), 1)
        self.assertEqual(out.items("message"), [])

    def test_codexParallelToolCalls(self) -> None:
        """
        Two calls with interleaved argument deltas (by C{index}): two items, in order.
        """
        out = self.replay("litellm-codex-parallel-tool-calls")
        self.assertMirrors(out)
        self.assertEqual([i["call_id"] for i in out.items("function_call")],
                         ["call_litellm_0", "call_litellm_1"])

    def test_sdkParallelToolCalls(self) -> None:
        """
        The SDK's C{tool_choice: required} request with two tools: both calls.
        """
        out = self.replay("litellm-sdk-parallel-tool-calls")
        self.assertMirrors(out)
        self.assertEqual([i["name"] for i in out.items("function_call")],
                         ["get_weather", "get_time"])

    def test_sdkNamedToolChoiceWhole(self) -> None:
        """
        A whole (C{stream: false}) completion with one call: one C{function_call} output.
        """
        out = self.replay("litellm-sdk-named-tool-choice-whole")
        self.assertEqual(out.status, 200)
        document = out.json()
        [choice] = json.loads(out.fixture["body"])["choices"]
        [call] = choice["message"]["tool_calls"]
        self.assertEqual(
            [(o["type"], o["call_id"], o["name"], o["arguments"]) for o in document["output"]],
            [("function_call", call["id"], call["function"]["name"],
              call["function"]["arguments"])])

    def test_contextWindowError(self) -> None:
        """
        LiteLLM's 400 C{ContextWindowExceededError} (code C{"400"}): code
        C{context_length_exceeded}.
        """
        self.assertError(self.replay("litellm-context-window-error"), 400,
                         "context_length_exceeded")

    def test_rateLimit(self) -> None:
        """
        LiteLLM's 429 (type C{throttling_error}): code C{rate_limit_exceeded}.
        """
        self.assertError(self.replay("litellm-rate-limit"), 429, "rate_limit_exceeded")

    def test_error529(self) -> None:
        """
        LiteLLM's 529 with a JSON error: the status and the message are kept.
        """
        out = self.replay("litellm-error-529")
        self.assertEqual(out.status, 529)
        self.assertIn("mock error raised mid-stream", out.json()["error"]["message"])


class LlamaCppPythonReplayTests(ReplayBase):
    """
    llama-cpp-python's server (0.3.36) with SmolLM2-135M.
    """

    def test_codexText(self) -> None:
        """
        SmolLM2's text for Codex's request; no usage in the stream, so usage is null.
        """
        out = self.replay("llama-cpp-python-codex-text")
        self.assertMirrors(out)
        self.assertIsNone(streamedUsage(out.chunks))

    def test_sdkLength(self) -> None:
        """
        C{finish_reason: length}: C{response.incomplete} with the text that arrived.
        """
        out = self.replay("llama-cpp-python-sdk-length")
        self.assertMirrors(out)
        self.assertEqual(out.response["incomplete_details"], {"reason": "max_output_tokens"})

    def test_namedToolCallStreamed(self) -> None:
        """
        Each delta carries the call twice (C{function_call} and C{tool_calls[0]}): ONE
        C{function_call} item whose arguments are the server's, once.
        """
        out = self.replay("llama-cpp-python-sdk-named-tool-call-streamed")
        calls = streamedToolCalls(out.chunks)
        precondition(len(calls) == 1 and '"function_call": {' in out.fixture["body"], calls)
        json.loads(calls[0]["arguments"])
        self.assertMirrors(out)

    def test_namedToolCallWhole(self) -> None:
        """
        The whole message carries the call twice: ONE C{function_call} output.
        """
        out = self.replay("llama-cpp-python-sdk-named-tool-call-whole")
        [choice] = json.loads(out.fixture["body"])["choices"]
        precondition(choice["message"].get("function_call"), choice)
        [call] = choice["message"]["tool_calls"]
        self.assertEqual(
            [(o["type"], o["call_id"], o["arguments"]) for o in out.json()["output"]],
            [("function_call", call["id"], call["function"]["arguments"])])

    def test_autoToolChoiceRefused(self) -> None:
        """
        A 200 whose body has no data event (a C{: ping} at most): C{response.failed}
        saying the upstream sent no data.
        """
        out = self.replay("llama-cpp-python-codex-auto-tool-choice-refused")
        precondition(out.fixture["status"] == 200 and out.chunks == [], out.fixture["body"])
        self.assertEqual(out.events[-1]["type"], "response.failed")
        self.assertIn("without sending any data", out.response["error"]["message"])

    def test_contextLengthStreamed(self) -> None:
        """
        The streamed context-length case: a 200 and an empty body.
        """
        out = self.replay("llama-cpp-python-context-length-streamed")
        precondition((out.fixture["status"], out.fixture["body"]) == (200, ""), out.fixture)
        self.assertEqual(out.events[-1]["type"], "response.failed")
        self.assertIn("without sending any data", out.response["error"]["message"])

    def test_contextLengthWhole(self) -> None:
        """
        The same without streaming: a proper 400 C{context_length_exceeded}.
        """
        self.assertError(self.replay("llama-cpp-python-context-length-whole"), 400,
                         "context_length_exceeded")


class LlamaServerReplayTests(ReplayBase):
    """
    llama.cpp's C{llama-server} (vendored by llama-cpp-python 0.3.36) with SmolLM2-135M.
    """

    def test_codexText(self) -> None:
        """
        SmolLM2's text for Codex's request, with llama-server's usage chunk.
        """
        out = self.replay("llama-server-codex-text")
        self.assertMirrors(out)
        self.assertIsNotNone(streamedUsage(out.chunks))

    def test_codexCachedPrompt(self) -> None:
        """
        The repeated request: C{cached_tokens} from the prompt cache reaches the usage.
        """
        out = self.replay("llama-server-codex-cached-prompt")
        self.assertMirrors(out)
        usage = out.response["usage"]
        self.assertEqual(usage["input_tokens_details"]["cached_tokens"],
                         usage["input_tokens"] - 1)

    def test_sdkRepeatedPrompt(self) -> None:
        """
        The SDK's repeated prompt: most of it cached.
        """
        out = self.replay("llama-server-sdk-repeated-prompt")
        self.assertMirrors(out)
        self.assertGreater(out.response["usage"]["input_tokens_details"]["cached_tokens"], 100)

    def test_sdkLength(self) -> None:
        """
        C{finish_reason: length} after C{max_tokens}: C{response.incomplete}.
        """
        out = self.replay("llama-server-sdk-length")
        self.assertMirrors(out)
        self.assertEqual(out.response["incomplete_details"], {"reason": "max_output_tokens"})

    def test_codexLength(self) -> None:
        """
        The server's C{-n 4} cap for Codex's request: C{response.incomplete}.
        """
        out = self.replay("llama-server-codex-length")
        self.assertMirrors(out)
        self.assertEqual(out.events[-1]["type"], "response.incomplete")

    def test_contextLength(self) -> None:
        """
        llama-server's 400 C{exceed_context_size_error}: code C{context_length_exceeded}.
        """
        self.assertError(self.replay("llama-server-context-length"), 400,
                         "context_length_exceeded")

    def test_codexContextLength(self) -> None:
        """
        The same for Codex's full prompt plus a long message.
        """
        self.assertError(self.replay("llama-server-codex-context-length"), 400,
                         "context_length_exceeded")


class LlamaServerPingsReplayTests(ReplayBase):
    """
    llama-server's comment-only pings during a long prompt evaluation, replayed with
    their gaps scaled down, against a bridge whose silence limit is 1 s.
    """

    tuning = "streamIdleTimeout=1,keepAliveInterval=0.2"

    def test_longPromptPings(self) -> None:
        """
        Only C{:} lines for longer than the silence limit, then the reply: the stream
        survives (keep-alives, then C{response.incomplete} for the server's C{-n 4}).
        """
        fixture = load("llama-server-long-prompt-pings")
        firstData = next(at for at, piece in fixture["pieces"] if "data:" in piece)
        scale = min(1.0, 2.5 / firstData)  # the comments last 2.5 s: over the 1 s limit
        before = "".join(p for at, p in fixture["pieces"] if at < firstData)
        precondition(set(commentLines(before)) == {":"} and firstData > 2, before)
        fixture["client_request"] = {"model": "smollm2", "input": "a long prompt",
                                     "stream": True}
        out = self.replayFixture(fixture, scale)
        self.assertEqual(out.events[-1]["type"], "response.incomplete",
                         out.events[-1]["response"].get("error"))
        self.assertMirrors(out)

    def replayFixture(self, fixture: dict[str, Any], scale: float) -> Replayed:
        """
        L{ReplayBase.replay} for a fixture read directly from the server (it has no
        client request: this test supplies one).
        """
        fake, proxy = _BRIDGES.acquire(self.tuning)
        fake.reset()
        fake.enqueue(replySpec(fixture, scale))
        with http.openStream(proxy.port, "/v1/responses", fixture["client_request"],
                             headers=[("Authorization", "Bearer " + CLIENT_KEY)],
                             timeout=20) as response:
            body = response.readAll(20)
            status = response.status
        [upstream] = fake.waitRequests(1)
        out = Replayed(fixture, status, body, upstream.json())
        self.assertEqual(status, 200)
        out.events = sdkcheck.validateEvents(body)
        return out
