"""
The bridge in front of LiteLLM's proxy (PyPI C{litellm[proxy]}), every model mocked:
LiteLLM's own C{mock_response} for text and errors, and the custom provider in
C{tests/interop/litellm/interop_handler.py} for tool calls, so what the bridge parses is
LiteLLM's own streaming of tool calls (its C{CustomStreamWrapper}), parallel calls
included. LiteLLM requires its master key, which only the proxy has (piped on stdin):
every successful request proves the key went up and the clients' did not.

Driven by the real Codex CLI (C{codex exec}) and the OpenAI SDK. Each test checks what
the client got against what LiteLLM really sent (read back from the proxy's dumps).
"""

from __future__ import annotations

import json
from typing import Any

import openai
from twisted.trial.unittest import SynchronousTestCase

from tests.interop import support
from tests.interop.support import Bridge, Shared
from tests.support.procs import precondition

MOCK_TEXT = "Hello from LiteLLM's mocked model."
CONTEXT_WINDOW_MESSAGE = "ran out of room in the model's context window"
TOOLS = [
    {"type": "function", "name": "get_weather", "description": "The weather in a city.",
     "parameters": {"type": "object", "properties": {
         "city": {"type": "string"}, "unit": {"type": "string"}},
         "required": ["city"], "additionalProperties": False}, "strict": False},
    {"type": "function", "name": "get_time", "description": "The time in a time zone.",
     "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}},
                    "required": ["timezone"], "additionalProperties": False},
     "strict": False},
]
WEATHER_ARGUMENTS = {"city": "Paris", "unit": "celsius"}
TIME_ARGUMENTS = {"timezone": "Europe/Paris"}


def _bridge() -> Bridge:
    def make(owner: Any) -> Bridge:
        return Bridge(owner, support.startLiteLLM(owner))

    return Shared.get("litellm", make, lambda b: b.alive())


def _failedMessage(result: Any) -> str:
    failed = [e for e in result.events or [] if e.get("type") == "turn.failed"]
    return failed[-1]["error"]["message"] if failed else ""


def _functionCalls(items: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(i["call_id"], i["name"], json.loads(i["arguments"]))
            for i in items if i["type"] == "function_call"]


class LiteLLMTests(SynchronousTestCase):
    """
    Codex and the OpenAI SDK → the bridge → LiteLLM's proxy with mocked models.
    """

    skip = support.SKIP

    def setUp(self) -> None:
        self.bridge = _bridge()
        self.server = self.bridge.server
        self.mark = self.bridge.mark()

    def exchanges(self, count: int) -> list[support.Exchange]:
        """
        This test's exchanges through the bridge: exactly C{count}; each chat request
        carried the proxy's key (redacted in the dump) and went to LiteLLM.
        """
        out = self.bridge.exchangesSince(self.mark, count)
        for ex in out:
            self.assertEqual(support.headerValue(ex.chatRequestHeaders, "authorization"),
                             ["[REDACTED]"])
            self.assertEqual(ex.request["upstream_url"], self.server.url())
        return out

    # -- text ------------------------------------------------------------------------------------

    def test_codexText(self) -> None:
        """
        Codex prints LiteLLM's mocked text (streamed three characters a chunk), and its
        turn usage is LiteLLM's usage chunk.
        """
        result = self.bridge.codex(self, "mock-text").run("say hello")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual(result.agentMessages(), [MOCK_TEXT])
        [ex] = self.exchanges(1)
        support.record(self.server, "codex-text", ex, "codex 0.171.0")
        self.assertEqual(ex.status, 200)
        self.assertEqual(support.streamedText(ex.chunks), MOCK_TEXT)
        self.assertGreater(len(ex.chunks), 10)
        chat = ex.chatRequest
        self.assertEqual((chat["model"], chat["stream"], chat["stream_options"]),
                         ("mock-text", True, {"include_usage": True}))
        self.assertEqual(chat["messages"][-1], {"role": "user", "content": "say hello"})
        usage = support.usageOf(support.streamedUsage(ex.chunks))
        [turn] = [e for e in result.events if e["type"] == "turn.completed"]
        self.assertEqual((turn["usage"]["input_tokens"], turn["usage"]["output_tokens"]),
                         (usage["input_tokens"], usage["output_tokens"]))

    def test_sdkStreamedText(self) -> None:
        """
        Through the SDK's streaming client: the text, C{completed}, and the usage mapped
        field by field from LiteLLM's usage chunk.
        """
        out = self.bridge.stream({"model": "mock-text", "input": "say hello", "stream": True})
        self.assertEqual(out.status, 200)
        self.assertEqual(out.terminal["type"], "response.completed")
        [message] = out.doneItems()
        self.assertEqual(message["content"][0]["text"], MOCK_TEXT)
        [ex] = self.exchanges(1)
        upstream = support.streamedUsage(ex.chunks)
        self.assertEqual(support.responsesUsage(out.response["usage"]),
                         support.usageOf(upstream))
        with self.bridge.sdk() as client:
            with client.responses.stream(model="mock-text", input="say hello") as stream:
                final = stream.get_final_response()
        self.assertEqual(final.output_text, MOCK_TEXT)
        self.assertEqual(final.status, "completed")

    # -- tool calls --------------------------------------------------------------------------------

    def test_codexToolCallRoundTrip(self) -> None:
        """
        LiteLLM streams an C{exec_command} call (id and name first, the arguments in
        three deltas): Codex runs it (the file appears), sends the output back, and
        prints the reply to the follow-up, which carries the call and its C{tool}
        message.
        """
        result = self.bridge.codex(self, "interop-tools").run("write the file")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual((result.workdir / "litellm.txt").read_text(), "litellm interop\n")
        self.assertEqual(result.agentMessages(), ["Tool results received for call_litellm_0."])
        first, second = self.exchanges(2)
        support.record(self.server, "codex-tool-call", first, "codex 0.171.0")
        [call] = support.streamedToolCalls(first.chunks)
        self.assertEqual((call["id"], call["name"]), ("call_litellm_0", "exec_command"))
        self.assertEqual(support.finishReasons(first.chunks), ["tool_calls"])
        messages = second.chatRequest["messages"]
        assistant, tool = messages[-2:]
        self.assertEqual(assistant["tool_calls"], [{
            "id": "call_litellm_0", "type": "function",
            "function": {"name": "exec_command", "arguments": call["arguments"]}}])
        self.assertEqual((tool["role"], tool["tool_call_id"]), ("tool", "call_litellm_0"))
        self.assertIn("Process exited with code 0", tool["content"])

    def test_codexParallelToolCalls(self) -> None:
        """
        Two C{exec_command} calls in one LiteLLM reply, their argument deltas
        interleaved by C{index}: Codex runs both, and the follow-up has one assistant
        message with both calls, then both C{tool} messages in call order.
        """
        result = self.bridge.codex(self, "interop-parallel").run("write two files")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual((result.workdir / "one.txt").read_text(), "one\n")
        self.assertEqual((result.workdir / "two.txt").read_text(), "two\n")
        self.assertEqual(result.agentMessages(),
                         ["Tool results received for call_litellm_0, call_litellm_1."])
        first, second = self.exchanges(2)
        support.record(self.server, "codex-parallel-tool-calls", first, "codex 0.171.0")
        self.assertEqual([c["id"] for c in support.streamedToolCalls(first.chunks)],
                         ["call_litellm_0", "call_litellm_1"])
        messages = second.chatRequest["messages"]
        self.assertEqual([m["role"] for m in messages[-3:]], ["assistant", "tool", "tool"])
        self.assertEqual([c["id"] for c in messages[-3]["tool_calls"]],
                         ["call_litellm_0", "call_litellm_1"])
        self.assertEqual([m["tool_call_id"] for m in messages[-2:]],
                         ["call_litellm_0", "call_litellm_1"])

    def test_sdkParallelCallsRequired(self) -> None:
        """
        C{tool_choice: required} with two tools, streamed: two C{function_call} items in
        index order with LiteLLM's ids, names and whole arguments; the chat request
        carried C{tool_choice} and C{parallel_tool_calls}.
        """
        out = self.bridge.stream({
            "model": "interop-parallel", "input": "weather and time in Paris",
            "tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": True,
            "stream": True})
        self.assertEqual(out.terminal["type"], "response.completed")
        self.assertEqual(_functionCalls(out.doneItems()), [
            ("call_litellm_0", "get_weather", WEATHER_ARGUMENTS),
            ("call_litellm_1", "get_time", TIME_ARGUMENTS)])
        self.assertEqual(out.response["output"], out.doneItems())
        [ex] = self.exchanges(1)
        support.record(self.server, "sdk-parallel-tool-calls", ex, "openai sdk")
        chat = ex.chatRequest
        self.assertEqual((chat["tool_choice"], chat["parallel_tool_calls"]), ("required", True))
        self.assertEqual([t["function"]["name"] for t in chat["tools"]],
                         ["get_weather", "get_time"])
        self.assertEqual(
            [(c["id"], c["name"], json.loads(c["arguments"]))
             for c in support.streamedToolCalls(ex.chunks)],
            _functionCalls(out.doneItems()))

    def test_sdkNamedToolChoiceWhole(self) -> None:
        """
        A named C{tool_choice} with C{stream: false}: LiteLLM's whole completion becomes
        one Responses object with the one call, and the chat request named the function.
        """
        with self.bridge.sdk() as client:
            response = client.responses.create(
                model="interop-tools", input="what time is it in Paris?", tools=TOOLS,
                tool_choice={"type": "function", "name": "get_time"}, stream=False)
        self.assertEqual(response.status, "completed")
        self.assertEqual(
            [(i.call_id, i.name, json.loads(i.arguments)) for i in response.output],
            [("call_litellm_0", "get_time", TIME_ARGUMENTS)])
        self.assertEqual((response.usage.input_tokens, response.usage.output_tokens), (42, 7))
        [ex] = self.exchanges(1)
        support.record(self.server, "sdk-named-tool-choice-whole", ex, "openai sdk")
        self.assertIs(ex.chatRequest.get("stream", False), False)
        self.assertEqual(ex.chatRequest["tool_choice"],
                         {"type": "function", "function": {"name": "get_time"}})

    # -- errors ------------------------------------------------------------------------------------

    def test_contextWindowErrorSDK(self) -> None:
        """
        LiteLLM's context-window error (HTTP 400, its own wording, code C{"400"}) reaches
        the SDK as a 400 whose code is C{context_length_exceeded}, with LiteLLM's message.
        """
        with self.bridge.sdk() as client:
            with self.assertRaises(openai.BadRequestError) as caught:
                client.responses.create(model="mock-context", input="a long prompt")
        [ex] = self.exchanges(1)
        support.record(self.server, "context-window-error", ex, "openai sdk")
        self.assertEqual(ex.status, 400)
        upstream = json.loads(ex.raw)["error"]
        error = caught.exception.body
        self.assertEqual(caught.exception.status_code, 400)
        self.assertEqual(error["code"], "context_length_exceeded", error)
        self.assertIn("context window exceeded", error["message"])
        self.assertIn("context window exceeded", upstream["message"])

    def test_contextWindowErrorCodex(self) -> None:
        """
        The same error with Codex: its own "ran out of room" message after one request,
        although retries are allowed.
        """
        codex = self.bridge.codex(self, "mock-context",
                                  providerOptions={"request_max_retries": 2,
                                                   "stream_max_retries": 2})
        result = codex.run("a long prompt")
        self.assertNotEqual(result.exitCode, 0, result.describe())
        self.assertIn(CONTEXT_WINDOW_MESSAGE, _failedMessage(result), result.describe())
        self.exchanges(1)

    def test_errorDumpRecordsClientBody(self) -> None:
        """
        The dump of an error answered before streaming records what the client got (the
        Responses-style error), as it does for streams.
        """
        with self.bridge.sdk() as client:
            with self.assertRaises(openai.BadRequestError) as caught:
                client.responses.create(model="mock-context", input="a long prompt")
        [ex] = self.exchanges(1)
        precondition((ex.status, ex.response["outcome"]) == (400, "complete"), ex.response)
        # Dumps keep a JSON body as JSON.
        self.assertEqual(ex.response["client_body"], {"error": caught.exception.body})

    def test_rateLimit(self) -> None:
        """
        LiteLLM's mocked rate-limit error (429, type C{throttling_error}): the SDK gets a
        429 whose code is C{rate_limit_exceeded} and LiteLLM's message.
        """
        with self.bridge.sdk() as client:
            with self.assertRaises(openai.RateLimitError) as caught:
                client.responses.create(model="mock-ratelimit", input="hi")
        [ex] = self.exchanges(1)
        support.record(self.server, "rate-limit", ex, "openai sdk")
        self.assertEqual(ex.status, 429)
        error = caught.exception.body
        self.assertEqual(error["code"], "rate_limit_exceeded", error)
        self.assertIn("mock rate limit error", error["message"])

    def test_overloaded529(self) -> None:
        """
        LiteLLM's mocked mid-stream error is raised before its first chunk, so LiteLLM
        answers HTTP 529 (Anthropic's "overloaded") with a JSON error: the client gets
        the 529 and a Responses-style error carrying LiteLLM's message.
        """
        with self.bridge.sdk() as client:
            with self.assertRaises(openai.APIStatusError) as caught:
                client.responses.create(model="mock-midstream-error", input="hi")
        [ex] = self.exchanges(1)
        support.record(self.server, "error-529", ex, "openai sdk")
        self.assertEqual(ex.status, 529)
        self.assertEqual(caught.exception.status_code, 529)
        error = caught.exception.body
        self.assertIn("mock error raised mid-stream", error["message"])
        self.assertEqual(sorted(error), ["code", "message", "param", "type"])
