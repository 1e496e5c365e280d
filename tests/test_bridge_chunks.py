"""
Tests for L{responses_proxy.bridge.chunks}: reading data payloads, chunks, whole
completions and usage.

The functions are tested directly; L{DataTests} also feeds odd payloads through a
L{responses_proxy.bridge.stream.ResponsesStream} to check what the client sees.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.chunks import (
    DONE,
    chunkParts,
    completionParts,
    fixSurrogates,
    mapUsage,
    readPayload,
    reasoningText,
    salvagePayload,
)
from tests.chatreply import chunk, doneItems, newStream, payload, run, terminal, text
from tests.sdkcheck import validateEvents


class DataTests(SynchronousTestCase):
    """
    Payloads that are not one clean chunk.
    """

    def test_nonJsonIgnored(self) -> None:
        """
        A payload that is not JSON is skipped, as Codex skips it.
        """
        events, _, _ = run([b"not json", text("x"), b"{broken", chunk({}, "stop")])
        self.assertEqual(events[-1]["type"], "response.completed")
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "x")

    def test_multiLinePayload(self) -> None:
        """
        A payload of several lines that is not one JSON value (data lines
        without blank lines between events) is read line by line.
        """
        joined = b"\n".join([payload(text("a")), payload(text("b")),
                              payload(chunk({}, "stop")), b"[DONE]"])
        events, _, stream = run([joined], end=False)
        self.assertTrue(stream.done)
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "ab")

    def test_prettyPrintedPayload(self) -> None:
        """
        One JSON chunk spread over several data lines is one chunk.
        """
        pretty = json.dumps(text("x"), indent=2).encode()
        events, _, _ = run([pretty, chunk({}, "stop")])
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "x")

    def test_garbageFails(self) -> None:
        """
        Sixteen unparsable payloads in a row fail the stream.
        """
        stream = newStream()
        out = stream.start()
        for _ in range(15):
            out += stream.feed(b"<html>").events
        self.assertFalse(stream.done)
        out += stream.feed(b"<html>").events
        self.assertTrue(stream.done)
        events = validateEvents(out)
        self.assertEqual(terminal(events)["error"]["code"], "server_error")

    def test_goodChunkResetsGarbageCount(self) -> None:
        """
        Occasional bad payloads between good chunks never fail the stream.
        """
        stream = newStream()
        stream.start()
        for _ in range(40):
            stream.feed(b"junk")
            stream.feed(payload(text("x")))
        self.assertFalse(stream.done)

    def test_nonObjectJsonAndEmpty(self) -> None:
        """
        JSON that is not an object, and empty payloads, are skipped.
        """
        events, _, _ = run([b"[1,2]", b"", b"  ", b"42", text("x"), chunk({}, "stop")])
        self.assertEqual(events[-1]["type"], "response.completed")

    def test_invalidUtf8(self) -> None:
        """
        Invalid UTF-8 in a payload is replaced, not fatal.
        """
        events, data, _ = run([b'{"choices":[{"delta":{"content":"a\xff"}}]}',
                                chunk({}, "stop")])
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "a\ufffd")

    def test_otherChoicesIgnored(self) -> None:
        """
        Only choice 0 is converted.
        """
        twoChoices = {"choices": [{"index": 1, "delta": {"content": "no"}},
                             {"index": 0, "delta": {"content": "yes"}}]}
        events, _, _ = run([twoChoices, chunk({}, "stop")])
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "yes")


class UsageTests(SynchronousTestCase):
    """
    L{mapUsage}: section 2.5.
    """

    def test_full(self) -> None:
        """
        Every count and detail is mapped to its Responses name.
        """
        self.assertEqual(
            mapUsage({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                      "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 5},
                      "completion_tokens_details": {"reasoning_tokens": 7}}),
            {"input_tokens": 100,
             "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 5},
             "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 7},
             "total_tokens": 120},
        )

    def test_upstreamTotalKept(self) -> None:
        """
        The upstream's own total is kept even when it is not the sum.
        """
        self.assertEqual(mapUsage({"prompt_tokens": 1, "completion_tokens": 1,
                                   "total_tokens": 5})["total_tokens"], 5)

    def test_minimal(self) -> None:
        """
        Missing details are 0 and a missing total is computed.
        """
        self.assertEqual(
            mapUsage({"prompt_tokens": 3, "completion_tokens": 4}),
            {"input_tokens": 3,
             "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
             "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": 7},
        )

    def test_partial(self) -> None:
        """
        One count alone still gives a complete object.
        """
        usage = mapUsage({"prompt_tokens": 3, "prompt_tokens_details": None})
        self.assertEqual((usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]),
                         (3, 0, 3))

    def test_none(self) -> None:
        """
        No counts at all: L{None}, never a partial object.
        """
        for value in (None, {}, {"foo": 1}, [], "x", {"prompt_tokens": "many"}):
            self.assertIsNone(mapUsage(value), value)

    def test_deepSeekCache(self) -> None:
        """
        DeepSeek's C{prompt_cache_hit_tokens} is the cached count.
        """
        usage = mapUsage({"prompt_tokens": 10, "completion_tokens": 1,
                          "prompt_cache_hit_tokens": 8, "prompt_cache_miss_tokens": 2})
        self.assertEqual(usage["input_tokens_details"]["cached_tokens"], 8)

    def test_sdkValid(self) -> None:
        """
        The mapped object validates as the SDK's C{ResponseUsage}.
        """
        from openai.types.responses import ResponseUsage

        ResponseUsage.model_validate(mapUsage({"prompt_tokens": 1, "completion_tokens": 2}))


class ReadPayloadTests(SynchronousTestCase):
    """
    L{readPayload} (the fast path) and L{salvagePayload} (everything else).
    """

    def test_oneObject(self) -> None:
        """
        A payload that is exactly one JSON object is read as a chunk.
        """
        self.assertEqual(readPayload(payload(text("x"))), ({"content": "x"}, None, None, None))

    def test_notExactlyOneObject(self) -> None:
        """
        Whitespace around the object, JSON that is not an object, several values,
        invalid UTF-8 or no JSON at all: not for the fast path.
        """
        good = payload(text("x"))
        for odd in [b" " + good, good + b"\n", b"[1]", b'"s"', good + good, b"",
                    good.replace(b'"x"', b'"\xff"'), b"<html>", b"[DONE]"]:
            self.assertIsNone(readPayload(odd), odd)

    def test_salvage(self) -> None:
        """
        Odd payloads give what can be read from them, in order; a blank one gives
        nothing; one with nothing readable gives L{None}.
        """
        one = {"choices": [{"delta": {"content": "a"}}]}
        good = json.dumps(one).encode()
        self.assertEqual(salvagePayload(b"  " + good + b"\n"), [one])
        self.assertEqual(salvagePayload(b" [DONE] "), [DONE])
        self.assertEqual(salvagePayload(json.dumps(one, indent=2).encode()), [one])
        self.assertEqual(salvagePayload(good + b"\ndata: " + good + b"\nnoise\ndata:[DONE]"),
                         [one, one, DONE])
        self.assertEqual(salvagePayload(b'{"choices":[{"delta":{"content":"\xff"}}]}'),
                         [{"choices": [{"delta": {"content": "\ufffd"}}]}])
        self.assertEqual(salvagePayload(b" \r\n "), [])
        for garbage in [b"<html>", b"[1,2]", b"42", b"line one\nline two", good + b"x"]:
            self.assertIsNone(salvagePayload(garbage), garbage)


class ChunkPartsTests(SynchronousTestCase):
    """
    L{chunkParts}: one chunk as C{(delta, finishReason, usage, failure)}.
    """

    def test_parts(self) -> None:
        """
        Choice 0's delta and finish reason, and the mapped usage.
        """
        body = chunk({"content": "x"}, "stop", usage={"prompt_tokens": 1, "completion_tokens": 2})
        delta, finish, usage, failure = chunkParts(body)
        self.assertEqual((delta, finish, failure), ({"content": "x"}, "stop", None))
        self.assertEqual(usage["total_tokens"], 3)

    def test_emptyParts(self) -> None:
        """
        Empty deltas, empty or odd choices read as nothing; a falsy finish reason
        is none.
        """
        for body in [chunk({}), {"choices": []}, {"choices": [5]}, {"choices": "x"}, {},
                     {"choices": [{"delta": []}]}]:
            self.assertEqual(chunkParts(body), (None, None, None, None), body)
        self.assertEqual(chunkParts(chunk({"content": "x"}, "")),
                         ({"content": "x"}, None, None, None))

    def test_choiceZeroAndMessage(self) -> None:
        """
        Choice 0 is found by its index; a C{message} stands in for a missing delta.
        """
        body = {"choices": [{"index": 1, "delta": {"content": "no"}},
                            {"index": 0, "message": {"content": "yes"}}]}
        self.assertEqual(chunkParts(body)[0], {"content": "yes"})

    def test_usageInChoice(self) -> None:
        """
        Usage inside the choice (Moonshot) counts when the top level has none.
        """
        body = chunk({}, "stop")
        body["choices"][0]["usage"] = {"prompt_tokens": 2, "completion_tokens": 3}
        self.assertEqual(chunkParts(body)[2]["total_tokens"], 5)

    def test_errors(self) -> None:
        """
        An C{error} object, or a top-level error object, is a failure with the
        mapped code, and nothing else in the chunk counts.
        """
        body = chunk({"content": "x"}, "stop")
        body["error"] = {"message": "prompt is too long: 300000 tokens > 200000 maximum"}
        delta, finish, _, failure = chunkParts(body)
        self.assertEqual((delta, finish), (None, None))
        self.assertEqual(failure[0], "context_length_exceeded")
        failure = chunkParts({"object": "error", "message": "boom", "code": 503})[3]
        self.assertEqual(failure, ("server_is_overloaded", "boom"))
        self.assertIsNone(chunkParts({"object": "error", "choices": []})[3])


class CompletionPartsTests(SynchronousTestCase):
    """
    L{completionParts}: a whole completion in the shape of one chunk.
    """

    def test_message(self) -> None:
        """
        The message is the delta; tool calls without an index get their position;
        a missing finish reason is C{stop}.
        """
        calls = [{"id": "a", "function": {"name": "f", "arguments": "{}"}},
                 {"index": 7, "id": "b", "function": {"name": "g", "arguments": "{}"}}]
        delta, finish, usage, failure = completionParts(
            {"choices": [{"message": {"content": "x", "tool_calls": calls}}]}
        )
        self.assertEqual(delta["content"], "x")
        self.assertEqual([c["index"] for c in delta["tool_calls"]], [0, 7])
        self.assertEqual((finish, usage, failure), ("stop", None, None))

    def test_failures(self) -> None:
        """
        Not an object, no choices, or an error: a failure.
        """
        for value in (None, [], "x"):
            self.assertEqual(completionParts(value)[3],
                             ("server_error", "upstream reply is not a JSON object"))
        self.assertEqual(completionParts({"choices": []})[3],
                         ("server_error", "upstream completion has no choices"))
        self.assertEqual(completionParts({"error": {"message": "quota exceeded",
                                                    "code": "insufficient_quota"}})[3][0],
                         "insufficient_quota")


class TextHelperTests(SynchronousTestCase):
    """
    L{reasoningText} and L{fixSurrogates}.
    """

    def test_reasoningForms(self) -> None:
        """
        Strings, lists and the dict forms give their text; encrypted entries none.
        """
        self.assertEqual(reasoningText([{"type": "reasoning.text", "text": "a"},
                                        {"type": "reasoning.encrypted", "data": "z"},
                                        {"summary": "b"}, "c", 5]), "abc")
        self.assertEqual(reasoningText({"thinking": [{"content": "t"}]}), "t")
        self.assertEqual(reasoningText(None), "")

    def test_fixSurrogates(self) -> None:
        """
        Surrogate halves pair up; lone ones become U+FFFD.
        """
        self.assertEqual(fixSurrogates("a\ud83d\ude00b\ud83dc\ude00"),
                         "a\U0001f600b\ufffdc\ufffd")
        fixSurrogates("\udc00").encode("utf-8")
