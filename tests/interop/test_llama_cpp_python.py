"""
The bridge in front of llama-cpp-python's OpenAI-compatible server (C{python -m
llama_cpp.server}, PyPI sdist built here) serving SmolLM2-135M-Instruct.

Two model aliases of the same GGUF: C{smollm2} (the chat template from the GGUF; a
named C{tool_choice} is answered with a grammar-constrained call) and
C{smollm2-functions} (C{chat_format: chatml-function-calling}, which refuses
C{tool_choice: auto} when streaming). What this server really does, and what the tests
pin down:

  - a streamed call comes in BOTH C{delta.function_call} and C{delta.tool_calls[0]};
  - streaming errors (C{tool_choice: auto} with function calling, a prompt longer than
    the context) happen after the 200 and its headers: the body ends with no data event
    (at most a C{: ping} comment);
  - the same context error without streaming is a proper 400 C{context_length_exceeded};
  - streams carry no usage (no C{stream_options} support).

Codex runs with a short base prompt (C{model_instructions_file}) and without the
permissions and environment blocks: its full prompt (about 10k tokens with the tools) does
not fit SmolLM2's 8k context. The tools, C{tool_choice: auto} and streaming stay as Codex
sends them.
"""

from __future__ import annotations

import json
from typing import Any

import openai
from twisted.trial.unittest import SynchronousTestCase

from tests import sdkcheck
from tests.interop import support
from tests.interop.support import Bridge, Shared
from tests.support.procs import makeTempDir, precondition

WEATHER_TOOL = {
    "type": "function", "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]},
}
LONG_INPUT = "word " * 10000
"""About 10k tokens: more than the 8k context of both aliases."""



def _bridge() -> Bridge:
    def make(owner: Any) -> Bridge:
        server = support.startLlamaCppPython(owner, [
            {"model_alias": "smollm2", "n_ctx": 8192, "seed": 1},
            {"model_alias": "smollm2-functions", "n_ctx": 8192, "seed": 1,
             "chat_format": "chatml-function-calling"},
        ])
        return Bridge(owner, server)

    return Shared.get("llama-cpp-python", make, lambda b: b.alive())


def _failedMessage(result: Any) -> str:
    failed = [e for e in result.events or [] if e.get("type") == "turn.failed"]
    return failed[-1]["error"]["message"] if failed else ""


class LlamaCppPythonTests(SynchronousTestCase):
    """
    Codex and the OpenAI SDK → the bridge → llama-cpp-python's server with SmolLM2-135M.
    """

    skip = support.SKIP

    def setUp(self) -> None:
        self.bridge = _bridge()
        self.server = self.bridge.server
        self.mark = self.bridge.mark()

    def exchanges(self, count: int) -> list[support.Exchange]:
        return self.bridge.exchangesSince(self.mark, count)

    def codex(self, model: str) -> Any:
        """
        Codex with the short base prompt (see the module docstring).
        """
        instructions = makeTempDir(self, "interop-instructions-") / "base.md"
        instructions.write_text(support.SHORT_INSTRUCTIONS)
        return self.bridge.codex(self, model, config={
            "model_instructions_file": str(instructions), **support.SHORT_PROMPT_CONFIG})

    def clientEvents(self, ex: support.Exchange) -> list[dict[str, Any]]:
        """
        The Responses events the bridge sent for an exchange (from its dump), validated.
        """
        return sdkcheck.validateEvents(ex.response["client_body"].encode("utf-8"))

    # -- text ------------------------------------------------------------------------------------

    def test_codexText(self) -> None:
        """
        Codex prints what SmolLM2 streamed. Codex's tools and C{tool_choice: auto} went
        up; the stream had no usage, so the terminal event's usage is null.
        """
        result = self.codex("smollm2").run("Say hello.")
        [ex] = self.exchanges(1)
        support.record(self.server, "codex-text", ex, "codex 0.171.0")
        text = support.streamedText(ex.chunks)
        self.assertEqual(ex.status, 200)
        self.assertEqual(support.finishReasons(ex.chunks), ["stop"], ex.raw[-2000:])
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertTrue(text.strip())
        self.assertEqual(result.agentMessages(), [text])
        chat = ex.chatRequest
        self.assertEqual((chat["model"], chat["tool_choice"]), ("smollm2", "auto"))
        self.assertIn("exec_command", [t["function"]["name"] for t in chat["tools"]])
        self.assertIsNone(support.streamedUsage(ex.chunks))
        events = self.clientEvents(ex)
        self.assertEqual(events[-1]["type"], "response.completed")
        self.assertIsNone(events[-1]["response"]["usage"])

    def test_sdkLengthIsIncomplete(self) -> None:
        """
        C{max_output_tokens} becomes C{max_tokens}; the server stops at it with
        C{finish_reason: length}: C{response.incomplete} (C{max_output_tokens}) with the
        text that arrived.
        """
        out = self.bridge.stream({"model": "smollm2", "input": "Write a poem about the sea.",
                                  "max_output_tokens": 6, "temperature": 0, "stream": True})
        [ex] = self.exchanges(1)
        support.record(self.server, "sdk-length", ex, "openai sdk")
        self.assertEqual(ex.chatRequest["max_tokens"], 6)
        self.assertEqual(support.finishReasons(ex.chunks), ["length"])
        self.assertEqual(out.terminal["type"], "response.incomplete")
        self.assertEqual(out.response["incomplete_details"], {"reason": "max_output_tokens"})
        [message] = out.doneItems()
        self.assertEqual(message["content"][0]["text"], support.streamedText(ex.chunks))

    # -- tool calls --------------------------------------------------------------------------------

    def test_sdkNamedToolCallStreamed(self) -> None:
        """
        A named C{tool_choice}, streamed: llama-cpp-python sends the grammar-constrained
        call in both C{function_call} and C{tool_calls}; the client gets ONE
        C{function_call} item with the server's call id, name and arguments.
        """
        out = self.bridge.stream({
            "model": "smollm2", "input": "What is the weather in Paris?",
            "tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "name": "get_weather"},
            "max_output_tokens": 100, "temperature": 0, "stream": True})
        [ex] = self.exchanges(1)
        support.record(self.server, "sdk-named-tool-call-streamed", ex, "openai sdk",
                       note="each call is in delta.function_call and delta.tool_calls[0]")
        # What the case needs (not the bug): the chat request named the function, and
        # the server streamed one call, in both forms, with valid JSON arguments.
        precondition(ex.chatRequest["tool_choice"] ==
                     {"type": "function", "function": {"name": "get_weather"}}, ex.chatRequest)
        calls = support.streamedToolCalls(ex.chunks)
        legacy = [choice["delta"]["function_call"] for chunk in ex.chunks
                  for choice in chunk["choices"] if choice["delta"].get("function_call")]
        precondition(len(calls) == 1 and calls[0]["arguments"] ==
                     "".join(f["arguments"] for f in legacy), ex.raw[:2000])
        [call] = calls
        json.loads(call["arguments"])
        self.assertEqual(out.terminal["type"], "response.completed")
        items = [i for i in out.doneItems() if i["type"] == "function_call"]
        self.assertEqual([(i["call_id"], i["name"], i["arguments"]) for i in items],
                         [(call["id"], "get_weather", call["arguments"])])

    def test_sdkNamedToolCallWhole(self) -> None:
        """
        The same with C{stream: false}: the whole message carries the call in
        C{tool_calls} (and C{function_call}); the response has one C{function_call}.
        """
        with self.bridge.sdk() as client:
            response = client.responses.create(
                model="smollm2", input="What is the weather in Paris?", tools=[WEATHER_TOOL],
                tool_choice={"type": "function", "name": "get_weather"},
                max_output_tokens=100, temperature=0, stream=False)
        [ex] = self.exchanges(1)
        support.record(self.server, "sdk-named-tool-call-whole", ex, "openai sdk")
        [choice] = json.loads(ex.raw)["choices"]
        precondition(len(choice["message"].get("tool_calls") or []) == 1
                     and choice["message"].get("function_call"), choice)
        [call] = choice["message"]["tool_calls"]
        self.assertEqual(response.status, "completed")
        self.assertEqual(
            [(i.type, i.call_id, i.name, i.arguments) for i in response.output],
            [("function_call", call["id"], "get_weather", call["function"]["arguments"])])

    def test_codexAutoToolChoiceStreamingRefused(self) -> None:
        """
        With C{chatml-function-calling}, Codex's streamed C{tool_choice: auto} request
        is answered 200, then the server raises ("Automatic streaming tool choice is not
        supported"): no data event. Codex's turn fails, and the message says the
        upstream sent no data. (The server raises only when SmolLM2 chooses a call,
        which it does, greedily, when asked to run a command.)
        """
        result = self.codex("smollm2-functions").run("Run the shell command ls.")
        [ex] = self.exchanges(1)
        support.record(self.server, "codex-auto-tool-choice-refused", ex, "codex 0.171.0",
                       note="200, then the server raised: no data event")
        precondition(ex.status == 200 and ex.chunks == [],
                     f"the server did not refuse: {ex.status} {ex.raw[:500]}")
        self.assertNotEqual(result.exitCode, 0, result.describe())
        events = self.clientEvents(ex)
        self.assertEqual(events[-1]["type"], "response.failed")
        self.assertIn("without sending any data", _failedMessage(result), result.describe())

    # -- context length ----------------------------------------------------------------------------

    def test_contextLengthWhole(self) -> None:
        """
        Without streaming, a prompt longer than the context is a 400 with code
        C{context_length_exceeded}: the SDK gets the same code and the server's message.
        """
        with self.bridge.sdk() as client:
            with self.assertRaises(openai.BadRequestError) as caught:
                client.responses.create(model="smollm2", input=LONG_INPUT, stream=False,
                                        max_output_tokens=8)
        [ex] = self.exchanges(1)
        support.record(self.server, "context-length-whole", ex, "openai sdk")
        self.assertEqual(ex.status, 400)
        error = caught.exception.body
        self.assertEqual(error["code"], "context_length_exceeded")
        self.assertIn("maximum context length is 8192 tokens", error["message"])

    def test_contextLengthStreamed(self) -> None:
        """
        Streaming, the same prompt gets a 200 and an empty body (the error is raised in
        the generator, after the headers): the client's stream fails saying the upstream
        sent no data.
        """
        out = self.bridge.stream({"model": "smollm2", "input": LONG_INPUT,
                                  "max_output_tokens": 8, "stream": True})
        [ex] = self.exchanges(1)
        support.record(self.server, "context-length-streamed", ex, "openai sdk",
                       note="200, then the server raised: an empty body")
        precondition((ex.status, ex.chunks) == (200, []), f"{ex.status} {ex.raw[:500]}")
        self.assertEqual(out.terminal["type"], "response.failed")
        self.assertIn("without sending any data", out.response["error"]["message"])
