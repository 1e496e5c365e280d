"""
Tests for L{tests.support.chat}, the chat-chunk builder the fake chat upstreams and the
benchmarks share.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from tests.support import chat, wire


class ChatChunkTests(SynchronousTestCase):
    """
    L{chat.chatChunk} and its framing.
    """

    def test_deltaAndFinish(self) -> None:
        """A delta makes one choice at index 0 with its finish_reason."""
        chunk = chat.chatChunk({"content": "hi"}, "stop", model="m")
        self.assertEqual(chunk["object"], "chat.completion.chunk")
        self.assertEqual(chunk["model"], "m")
        self.assertEqual(
            chunk["choices"], [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]
        )
        self.assertNotIn("usage", chunk)

    def test_usageOnly(self) -> None:
        """Without a delta or a finish there is no choice; usage is added as given."""
        chunk = chat.chatChunk(usage={"total_tokens": 3})
        self.assertEqual((chunk["choices"], chunk["usage"]), ([], {"total_tokens": 3}))

    def test_providerFields(self) -> None:
        """fingerprint, logprobs, choices and extra fields shape unusual chunks."""
        chunk = chat.chatChunk({}, fingerprint="fp", logprobs=True, native_finish_reason="x")
        self.assertEqual(chunk["system_fingerprint"], "fp")
        self.assertEqual(chunk["choices"][0]["logprobs"], None)
        self.assertEqual(chunk["native_finish_reason"], "x")
        self.assertEqual(chat.chatChunk(choices=[{"x": 1}])["choices"], [{"x": 1}])

    def test_chatCompletion(self) -> None:
        """A whole completion: one assistant message with its finish reason and usage."""
        completion = chat.chatCompletion({"content": "hi"}, usage={"total_tokens": 1})
        self.assertEqual(completion["object"], "chat.completion")
        self.assertEqual(completion["choices"], [{
            "index": 0, "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop"}])
        self.assertEqual(completion["usage"], {"total_tokens": 1})

    def test_toolCall(self) -> None:
        """A first call fragment has id and type; a continuation only index and arguments."""
        self.assertEqual(
            chat.toolCall(0, "call_1", "f", ""),
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "f", "arguments": ""}},
        )
        self.assertEqual(
            chat.toolCall(0, arguments="{"), {"index": 0, "function": {"arguments": "{"}}
        )

    def test_framing(self) -> None:
        """SSE framing: compact UTF-8 JSON, [DONE] raw, optional space and CRLF."""
        chunk = chat.chatChunk({"content": "caf\u00e9"})
        event = chat.chunkEvent({"content": "caf\u00e9"})
        self.assertEqual(event, b"data: " + json.dumps(
            chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n")
        [parsed] = wire.parseSSE(event)
        self.assertEqual(parsed.json(), chunk)
        self.assertEqual(chat.sseText("[DONE]", space=False, eol="\r\n"), "data:[DONE]\r\n\r\n")
