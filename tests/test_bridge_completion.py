"""
Tests for L{responses_proxy.bridge.completion}: whole replies converted straight to
one Responses object, and L{ResponsesStream.feedCompletion} for JSON replies to streams.
"""

from __future__ import annotations

import json
import random
from typing import Any

from openai.types.responses import Response
from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.completion import (
    chunksToResponse,
    completionToResponse,
    failedResponse,
)
from responses_proxy.bridge.context import BridgeContext, ToolTarget
from responses_proxy.bridge.reasoning import decodeReasoning
from tests.chatreply import (
    CREATED,
    RESPONSE_ID,
    Ids,
    SDKAgreementMixin,
    chunk,
    context,
    doneItems,
    newStream,
    payload,
    randomChunk,
    terminal,
    text,
    usageChunk,
)
from tests.sdkcheck import validateEvents

SEEDS = 300


class CompletionTests(SDKAgreementMixin, SynchronousTestCase):
    """
    Whole completions: C{stream: false} and 2xx JSON replies to streams.
    """

    def _completion(self, message: dict[str, Any], finish: str | None = "stop",
                    usage: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": "chatcmpl-1", "object": "chat.completion", "created": CREATED,
            "model": "upstream", "choices": [{"index": 0, "message": message,
                                               "finish_reason": finish}],
        }
        if usage is not None:
            body["usage"] = usage
        return body

    def _convert(self, completion: dict[str, Any], ctx: BridgeContext | None = None):
        return completionToResponse(ctx or context(stream=False), completion,
                                    responseId=RESPONSE_ID, createdAt=CREATED, idFactory=Ids())

    def test_text(self) -> None:
        """
        A text completion: one completed message, the usage mapped.
        """
        response = self._convert(self._completion(
            {"role": "assistant", "content": "Hello"},
            usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}))
        parsed = Response.model_validate(response)
        self.assertEqual(parsed.output_text, "Hello")
        self.assertEqual(response["status"], "completed")
        self.assertEqual(response["id"], RESPONSE_ID)
        self.assertEqual(response["usage"]["total_tokens"], 6)
        self.assertEqual(response["output"][0]["id"], "msg_1")

    def test_reasoningAndToolCalls(self) -> None:
        """
        Reasoning and tool calls (custom, namespaced, without id) of a whole message.
        """
        ctx = context(stream=False, tools={
            "apply_patch": ToolTarget("custom", "apply_patch"),
            "ns__f": ToolTarget("function", "f", "ns"),
        })
        response = self._convert(self._completion({
            "role": "assistant", "content": None, "reasoning_content": "plan",
            "tool_calls": [
                {"id": "a", "type": "function",
                 "function": {"name": "apply_patch", "arguments": '{"input":"P"}'}},
                {"id": "b", "type": "function", "function": {"name": "ns__f", "arguments": ""}},
                {"type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
        }, "tool_calls"), ctx)
        Response.model_validate(response)
        output = response["output"]
        self.assertEqual([i["type"] for i in output],
                         ["reasoning", "custom_tool_call", "function_call", "function_call"])
        self.assertEqual(decodeReasoning(output[0]["encrypted_content"]), "plan")
        self.assertEqual(output[1]["input"], "P")
        self.assertEqual((output[2]["name"], output[2]["namespace"], output[2]["arguments"]),
                         ("f", "ns", "{}"))
        self.assertTrue(output[3]["call_id"].startswith("call_"))
        self.assertIsNone(response["usage"])

    def test_thinkInContent(self) -> None:
        """
        A leading C{<think>} block in a whole message is reasoning.
        """
        response = self._convert(self._completion(
            {"role": "assistant", "content": "<think>hm</think>\n\nYes"}))
        self.assertEqual([i["type"] for i in response["output"]], ["reasoning", "message"])
        self.assertEqual(response["output"][1]["content"][0]["text"], "Yes")

    def test_length(self) -> None:
        """
        C{length}: incomplete, the text kept, the call with broken JSON dropped.
        """
        response = self._convert(self._completion(
            {"role": "assistant", "content": "cut",
             "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": '{"a'}}]},
            "length"))
        self.assertEqual(response["status"], "incomplete")
        self.assertEqual(response["incomplete_details"], {"reason": "max_output_tokens"})
        self.assertEqual([i["type"] for i in response["output"]], ["message"])
        Response.model_validate(response)

    def test_missingFinishReason(self) -> None:
        """
        A whole completion without C{finish_reason} is complete.
        """
        response = self._convert(self._completion({"content": "ok"}, None))
        self.assertEqual(response["status"], "completed")

    def test_errorAndEmpty(self) -> None:
        """
        An error object or a reply without choices gives a failed response.
        """
        failed = self._convert({"error": {"message": "quota exceeded",
                                          "code": "insufficient_quota"}})
        self.assertEqual(failed["status"], "failed")
        self.assertEqual(failed["error"]["code"], "insufficient_quota")
        empty = self._convert({"choices": []})
        self.assertEqual(empty["status"], "failed")
        self.assertEqual(empty["error"]["code"], "server_error")

    def test_functionCallBesideToolCalls(self) -> None:
        """
        A whole message with the same call in C{function_call} and C{tool_calls}
        (llama-cpp-python) is one call; C{function_call} alone is one call too.
        """
        function = {"name": "exec_command", "arguments": '{"cmd": "ls"}'}
        response = self._convert(self._completion({
            "role": "assistant", "content": None, "function_call": function,
            "tool_calls": [{"id": "call__0_exec_command_cmpl-1", "type": "function",
                            "function": function}],
        }, "tool_calls"))
        Response.model_validate(response)
        (item,) = response["output"]
        self.assertEqual((item["name"], item["call_id"], item["arguments"]),
                         ("exec_command", "call__0_exec_command_cmpl-1", '{"cmd": "ls"}'))
        response = self._convert(self._completion({"content": None, "function_call": function},
                                                  "function_call"))
        (item,) = response["output"]
        self.assertEqual((item["name"], item["arguments"], response["status"]),
                         ("exec_command", '{"cmd": "ls"}', "completed"))

    def test_encodesAsUTF8(self) -> None:
        """
        Lone surrogates from upstream strings (an error message, a tool name, an
        id) are replaced, so the object always encodes as UTF-8.
        """
        failed = self._convert({"error": {"message": "bad \ud83d"}})
        self.assertEqual(failed["error"]["message"], "bad \ufffd")
        response = self._convert(self._completion({"tool_calls": [
            {"id": "c\udc00", "function": {"name": "f\ud83d", "arguments": "{}"}}]}))
        json.dumps(response, ensure_ascii=False).encode("utf-8")
        self.assertEqual((response["output"][0]["name"], response["output"][0]["call_id"]),
                         ("f\ufffd", "c\ufffd"))

    def test_feedCompletionEvents(self) -> None:
        """
        C{feedCompletion} emits the complete, valid event sequence of a
        streamed reply, which the SDK accumulates to the same response.
        """
        stream = newStream(context(tools={"apply_patch": ToolTarget("custom", "apply_patch")}))
        data = stream.feedCompletion(self._completion({
            "role": "assistant", "content": "Patching.", "reasoning_content": "why",
            "tool_calls": [{"id": "a", "function": {"name": "apply_patch",
                                                     "arguments": '{"input":"P"}'}}],
        }, "tool_calls", {"prompt_tokens": 1, "completion_tokens": 2}))
        events = validateEvents(data)
        self.assertEqual([i["type"] for i in doneItems(events)],
                         ["reasoning", "message", "custom_tool_call"])
        self.assertEqual(stream.response, terminal(events))
        self.assertSDKAgrees(events, data)
        self.assertEqual(stream.feedCompletion({}), b"")


def _fuzzContext() -> BridgeContext:
    return context(tools={
        "apply_patch": ToolTarget("custom", "apply_patch"),
        "local_shell": ToolTarget("local_shell", "local_shell"),
        "ns__g": ToolTarget("function", "g", "ns"),
    })


class ChunksTests(SynchronousTestCase):
    """
    L{chunksToResponse}: a chat stream read whole (C{stream: false}, but the upstream
    streamed).
    """

    def test_chunks(self) -> None:
        """
        The payloads of a stream give the object its terminal event would carry.
        """
        ctx = context(stream=False, tools={"apply_patch": ToolTarget("custom", "apply_patch")})
        payloads = [payload(item) for item in [
            chunk({"role": "assistant", "reasoning_content": "plan"}),
            text("Patching."),
            chunk({"tool_calls": [{"index": 0, "id": "a", "function": {
                "name": "apply_patch", "arguments": '{"input":"P"}'}}]}),
            chunk({}, "tool_calls"),
            usageChunk(3, 4),
        ]] + [b"[DONE]"]
        response = chunksToResponse(ctx, payloads, responseId=RESPONSE_ID, createdAt=CREATED,
                                    idFactory=Ids())
        Response.model_validate(response)
        self.assertEqual([i["type"] for i in response["output"]],
                         ["reasoning", "message", "custom_tool_call"])
        self.assertEqual(response["output"][2]["input"], "P")
        self.assertEqual(response["usage"]["total_tokens"], 7)
        self.assertEqual((response["id"], response["created_at"]), (RESPONSE_ID, CREATED))

    def test_endOfPayloadsIsEOF(self) -> None:
        """
        Without C{[DONE]} the end of the payloads ends the reply: completed after
        a C{finish_reason}, cut off without one, and no data at all says so.
        """
        ctx = context(stream=False)
        done = chunksToResponse(ctx, [payload(text("x")), payload(chunk({}, "stop"))])
        self.assertEqual(done["status"], "completed")
        cut = chunksToResponse(ctx, [payload(text("x"))])
        self.assertEqual(cut["status"], "failed")
        self.assertIn("cut off", cut["error"]["message"])
        self.assertEqual(cut["output"], [])
        empty = chunksToResponse(ctx, iter([]))
        self.assertEqual(empty["error"], {
            "code": "server_error",
            "message": "upstream closed the stream without sending any data",
        })

    def test_stopsAtTerminal(self) -> None:
        """
        Payloads after the terminal one are not read.
        """
        def payloads():
            yield payload(chunk({"content": "x"}, "stop", usage={"prompt_tokens": 1}))
            raise AssertionError("read past the end")

        self.assertEqual(chunksToResponse(context(), payloads())["status"], "completed")

    def test_failedResponse(self) -> None:
        """
        L{failedResponse}: a failed object with the given code and no output.
        """
        response = failedResponse(context(stream=False), "server_error", "line too long",
                                  responseId=RESPONSE_ID, createdAt=CREATED)
        Response.model_validate(response)
        self.assertEqual((response["status"], response["output"], response["usage"]),
                         ("failed", [], None))
        self.assertEqual(response["error"], {"code": "server_error", "message": "line too long"})


class AgreementTests(SynchronousTestCase):
    """
    The direct converters give what a stream's terminal event carries, for odd input.
    """

    def test_completionAgrees(self) -> None:
        """
        L{completionToResponse} equals the terminal response of
        L{ResponsesStream.feedCompletion}, for seeded random completions.
        """
        for seed in range(SEEDS):
            rng = random.Random(seed)
            completion = randomChunk(rng)
            if isinstance(completion, dict) and isinstance(completion.get("choices"), list):
                for choice in completion["choices"]:
                    if isinstance(choice, dict) and rng.random() < 0.8:
                        choice["message"] = choice.pop("delta", None)
            stream = newStream(_fuzzContext())
            events = validateEvents(stream.feedCompletion(completion))
            direct = completionToResponse(_fuzzContext(), completion, responseId=RESPONSE_ID,
                                          createdAt=CREATED, idFactory=Ids())
            self.assertEqual(direct, terminal(events), seed)

    def test_chunksAgree(self) -> None:
        """
        L{chunksToResponse} equals the terminal response of a stream fed the same
        payloads and then ended, for seeded random streams.
        """
        for seed in range(SEEDS):
            rng = random.Random(seed)
            payloads = [payload(randomChunk(rng)) for _ in range(rng.randrange(0, 30))]
            stream = newStream(_fuzzContext())
            data = stream.start() + b"".join(stream.feed(p).events for p in payloads)
            events = validateEvents(data + stream.end())
            direct = chunksToResponse(_fuzzContext(), payloads, responseId=RESPONSE_ID,
                                      createdAt=CREATED, idFactory=Ids())
            self.assertEqual(direct, terminal(events), seed)
