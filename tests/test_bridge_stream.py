"""
Tests for L{responses_proxy.bridge.stream}: chat chunks -> Responses events.

Every stream is checked by L{tests.sdkcheck} (the SDK's event types, sequence
numbers, one terminal event, Codex's item rules); completed streams also go
through the SDK's own accumulator.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from openai.types.responses import Response
from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.context import BridgeContext, ToolTarget
from responses_proxy.bridge.reasoning import decodeReasoning
from responses_proxy.bridge.stream import ResponsesStream, completionToResponse, mapUsage
from tests.sdkcheck import (
    SDKCheckError,
    finalResponse,
    parseEvents,
    streamThroughClient,
    validateEvents,
)

FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.169.0"

RESPONSE_ID = "resp_test"
SEEDS = 400
CREATED = 1_760_000_000


class _Ids:
    """
    A deterministic id factory: C{msg_1}, C{msg_2}, C{call_1}...
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}_{self.counts[kind]}"


def _context(**kwargs: Any) -> BridgeContext:
    kwargs.setdefault("model", "test-model")
    kwargs.setdefault("stream", True)
    return BridgeContext(**kwargs)


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any):
    """
    A chat.completion.chunk as OpenAI-compatible servers send it.
    """
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "upstream-model",
        "choices": [
            {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
        ],
    }
    body.update(extra)
    return body


def _usageChunk(prompt: int = 10, completion: int = 5, **extra: Any) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion,
             "total_tokens": prompt + completion}
    usage.update(extra)
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}


def _text(text: str) -> dict[str, Any]:
    return _chunk({"content": text})


def _call(index: int | None = None, callId: str | None = None, name: str | None = None,
          arguments: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if index is not None:
        entry["index"] = index
    if callId is not None:
        entry["id"] = callId
        entry["type"] = "function"
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    entry["function"] = function
    return entry


def _calls(*entries: dict[str, Any]) -> dict[str, Any]:
    return _chunk({"tool_calls": list(entries)})


def _payload(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    return json.dumps(item).encode("utf-8")


def _stream(context: BridgeContext | None = None) -> ResponsesStream:
    return ResponsesStream(
        context or _context(), responseId=RESPONSE_ID, createdAt=CREATED, idFactory=_Ids()
    )


def _run(chunks: list[Any], context: BridgeContext | None = None, end: bool = True):
    """
    Feed payloads through a fresh stream; return (events, bytes, stream).
    """
    stream = _stream(context)
    out = stream.start()
    for item in chunks:
        out += stream.feedData(_payload(item))
    if end:
        out += stream.end()
    events = validateEvents(out, requireTerminal=end)
    return events, out, stream


def _shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """
    The sequence as (type, output_index, item id) for exact comparisons.
    """
    shape = []
    for event in events:
        itemId = event.get("item_id")
        if itemId is None and "item" in event:
            itemId = event["item"].get("id")
        shape.append((event["type"], event.get("output_index"), itemId))
    return shape


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def _terminal(events: list[dict[str, Any]]) -> dict[str, Any]:
    return events[-1]["response"]


def _doneItems(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["item"] for e in events if e["type"] == "response.output_item.done"]


def _sdkDump(response: Response) -> dict[str, Any]:
    return Response.model_validate(response.model_dump()).model_dump(mode="json",
                                                                      exclude_none=True)


class SDKAgreementMixin:
    """
    Check a completed stream with the SDK's accumulator and its client.
    """

    def assertSDKAgrees(self, events: list[dict[str, Any]], data: bytes) -> Response:
        self.assertEqual(events[-1]["type"], "response.completed")
        accumulated = finalResponse(events)
        terminal = Response.model_validate(events[-1]["response"])
        self.assertEqual(_sdkDump(accumulated), _sdkDump(terminal))
        self.assertEqual(len(accumulated.output), len(_doneItems(events)))
        viaClient = streamThroughClient(data)
        self.assertEqual(_sdkDump(viaClient), _sdkDump(terminal))
        return accumulated


class LifecycleTests(SDKAgreementMixin, SynchronousTestCase):
    """
    created, in_progress, sequence numbers, echoed fields.
    """

    def test_start(self) -> None:
        """
        C{start} sends C{response.created} then C{response.in_progress}, with
        an empty output and the requested model.
        """
        stream = _stream()
        events = validateEvents(stream.start(), requireTerminal=False)
        self.assertEqual(_types(events), ["response.created", "response.in_progress"])
        for event in events:
            response = event["response"]
            self.assertEqual(response["id"], RESPONSE_ID)
            self.assertEqual(response["object"], "response")
            self.assertEqual(response["created_at"], CREATED)
            self.assertEqual(response["status"], "in_progress")
            self.assertEqual(response["model"], "test-model")
            self.assertEqual(response["output"], [])
        self.assertEqual(stream.start(), b"")

    def test_implicitStart(self) -> None:
        """
        Feeding data before C{start} starts the stream first.
        """
        stream = _stream()
        out = stream.feedData(_payload(_text("hi")))
        events = validateEvents(out, requireTerminal=False)
        self.assertEqual(_types(events)[:2], ["response.created", "response.in_progress"])

    def test_sequenceNumbers(self) -> None:
        """
        Sequence numbers count from 0 within each stream, across every kind of
        event and keep-alives; a second stream starts at 0 again.
        """
        stream = _stream()
        out = stream.start() + stream.keepAlive()
        out += stream.feedData(_payload(_text("a")))
        out += stream.keepAlive()
        out += stream.feedData(_payload(_chunk({}, "stop")))
        out += stream.keepAlive()
        out += stream.feedData(b"[DONE]")
        events = validateEvents(out)
        self.assertEqual([e["sequence_number"] for e in events], list(range(len(events))))
        self.assertEqual(validateEvents(_stream().start(), requireTerminal=False)[0]
                         ["sequence_number"], 0)

    def test_echoedFields(self) -> None:
        """
        Every response object echoes the request's C{tools} (Codex's real
        list, with custom, namespace-free and hosted tools), C{tool_choice},
        C{parallel_tool_calls} and the other echoed fields, and validates.
        """
        body = json.loads((FIXTURES / "C" / "001-POST.json").read_text())["body"]
        echo = {
            "tools": body["tools"],
            "tool_choice": body["tool_choice"],
            "parallel_tool_calls": body["parallel_tool_calls"],
            "reasoning": body["reasoning"],
            "instructions": "Be brief.",
            "temperature": 0.5,
            "top_p": 0.9,
            "max_output_tokens": 1000,
        }
        context = _context(echo=echo)
        events, data, _ = _run([_text("hi"), _chunk({}, "stop"), _usageChunk()], context)
        for event in events:
            if "response" in event:
                for key, value in echo.items():
                    self.assertEqual(event["response"][key], value)
        self.assertSDKAgrees(events, data)

    def test_defaultEcho(self) -> None:
        """
        Without echoed fields the SDK-required ones get defaults.
        """
        events, _, _ = _run([_chunk({}, "stop")])
        response = _terminal(events)
        self.assertEqual(response["tools"], [])
        self.assertEqual(response["tool_choice"], "auto")
        self.assertIs(response["parallel_tool_calls"], True)

    def test_generatedIds(self) -> None:
        """
        Without a factory, ids have the documented prefixes and differ between
        items and between streams.
        """
        ids = []
        for _ in range(2):
            stream = ResponsesStream(_context(tools={"shell": ToolTarget("local_shell", "shell")}))
            out = stream.start()
            for item in [
                _chunk({"reasoning_content": "r"}),
                _text("t"),
                _calls(_call(0, None, "f", "{}")),
                _calls(_call(1, None, "shell", '{"command":["ls"]}')),
                _chunk({}, "stop"),
            ]:
                out += stream.feedData(_payload(item))
            out += stream.end()
            events = validateEvents(out)
            response = _terminal(events)
            self.assertTrue(response["id"].startswith("resp_"))
            items = response["output"]
            self.assertEqual([i["id"].split("_")[0] for i in items], ["rs", "msg", "fc", "lsc"])
            self.assertTrue(items[2]["call_id"].startswith("call_"))
            ids.extend([response["id"]] + [i["id"] for i in items] + [items[2]["call_id"]])
        self.assertEqual(len(ids), len(set(ids)))

    def test_serialisation(self) -> None:
        """
        Each event is C{event: <type>}, C{data: <compact json>}, blank line.
        """
        stream = _stream()
        out = stream.start() + stream.feedData(_payload(_text("a b")))
        for block in out.split(b"\n\n")[:-1]:
            eventLine, dataLine = block.split(b"\n")
            self.assertTrue(eventLine.startswith(b"event: response."))
            self.assertTrue(dataLine.startswith(b"data: {\"type\":"))
            body = dataLine[len(b"data: "):]
            self.assertEqual(body, json.dumps(json.loads(body), ensure_ascii=False,
                                              separators=(",", ":")).encode())
        self.assertTrue(out.endswith(b"\n\n"))


class TextTests(SDKAgreementMixin, SynchronousTestCase):
    """
    Message items from C{delta.content}.
    """

    def test_exactSequence(self) -> None:
        """
        A role-only chunk, an empty content, text deltas, finish, usage-only
        chunk and C{[DONE]} give exactly the documented event sequence.
        """
        events, data, stream = _run(
            [
                _chunk({"role": "assistant", "content": ""}),
                _text("Hello"),
                _chunk({}),
                _text(", world"),
                _chunk({}, "stop"),
                _usageChunk(7, 3),
                b"[DONE]",
            ],
            end=False,
        )
        self.assertEqual(
            _shape(events),
            [
                ("response.created", None, None),
                ("response.in_progress", None, None),
                ("response.output_item.added", 0, "msg_1"),
                ("response.content_part.added", 0, "msg_1"),
                ("response.output_text.delta", 0, "msg_1"),
                ("response.output_text.delta", 0, "msg_1"),
                ("response.output_text.done", 0, "msg_1"),
                ("response.content_part.done", 0, "msg_1"),
                ("response.output_item.done", 0, "msg_1"),
                ("response.completed", None, None),
            ],
        )
        added = events[2]["item"]
        self.assertEqual(added, {"id": "msg_1", "type": "message", "status": "in_progress",
                                 "role": "assistant", "content": []})
        self.assertEqual(events[4]["logprobs"], [])
        self.assertEqual(events[6]["text"], "Hello, world")
        self.assertEqual(events[6]["logprobs"], [])
        self.assertEqual(events[7]["part"]["annotations"], [])
        done = events[8]["item"]
        self.assertEqual(done["status"], "completed")
        self.assertEqual(done["content"][0]["text"], "Hello, world")
        response = _terminal(events)
        self.assertEqual(response["status"], "completed")
        self.assertEqual(response["output"], [done])
        self.assertIsNone(response["error"])
        self.assertIsNone(response["incomplete_details"])
        self.assertEqual(response["usage"]["total_tokens"], 10)
        self.assertTrue(stream.done)
        accumulated = self.assertSDKAgrees(events, data)
        self.assertEqual(accumulated.output_text, "Hello, world")

    def test_emptyContentOpensNoItem(self) -> None:
        """
        C{content: ""}, C{content: null}, empty deltas and empty choices open
        nothing.
        """
        events, _, _ = _run(
            [
                _chunk({"role": "assistant", "content": ""}),
                _chunk({"content": None}),
                _chunk({}),
                {"id": "x", "object": "chat.completion.chunk", "choices": []},
                _chunk({}, "stop"),
            ]
        )
        self.assertEqual(
            _types(events), ["response.created", "response.in_progress", "response.completed"]
        )
        self.assertEqual(_terminal(events)["output"], [])

    def test_whitespaceBeforeToolCall(self) -> None:
        """
        Whitespace-only content before a tool call opens no message; leading
        whitespace of a real message is kept.
        """
        events, _, _ = _run(
            [_text("\n\n"), _calls(_call(0, "c1", "f", "{}")), _chunk({}, "tool_calls")]
        )
        self.assertEqual([i["type"] for i in _doneItems(events)], ["function_call"])
        events, _, _ = _run([_text("\n"), _text("  x"), _chunk({}, "stop")])
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "\n  x")

    def test_multiByte(self) -> None:
        """
        Non-ASCII text (accents, CJK, emoji, RTL, U+2028) round-trips as UTF-8,
        whether the payload used raw UTF-8 or JSON escapes.
        """
        pieces = ["h\u00e9", "llo \u4e16\u754c ", "\U0001f600 \u05e9\u05dc\u05d5\u05dd", "\u2028!"]
        chunks: list[Any] = [
            json.dumps(_text(p), ensure_ascii=False).encode("utf-8") for p in pieces[:2]
        ]
        chunks += [json.dumps(_text(p), ensure_ascii=True).encode("ascii") for p in pieces[2:]]
        chunks.append(_chunk({}, "stop"))
        events, data, _ = _run(chunks)
        self.assertIn("\U0001f600".encode(), data)
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "".join(pieces))
        self.assertSDKAgrees(events, data)

    def test_splitSurrogatePair(self) -> None:
        """
        An emoji sent as two escapes in two chunks (a lone surrogate each) still
        yields valid UTF-8, and the done text has the emoji.
        """
        events, data, _ = _run(
            [b'{"choices":[{"delta":{"content":"a\\ud83d"}}]}',
             b'{"choices":[{"delta":{"content":"\\ude00b"}}]}',
             _chunk({}, "stop")]
        )
        data.decode("utf-8")
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "a\U0001f600b")

    def test_refusal(self) -> None:
        """
        A C{refusal} delta becomes message text (Codex drops refusal parts).
        """
        events, _, _ = _run([_chunk({"refusal": "I can't."}), _chunk({}, "stop")])
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "I can't.")

    def test_contentParts(self) -> None:
        """
        Content as a list of parts (Mistral): thinking parts are reasoning,
        text parts are text.
        """
        events, _, _ = _run(
            [
                _chunk({"content": [{"type": "thinking",
                                     "thinking": [{"type": "text", "text": "hmm"}]}]}),
                _chunk({"content": [{"type": "text", "text": "ok"}]}),
                _chunk({}, "stop"),
            ]
        )
        items = _doneItems(events)
        self.assertEqual(items[0]["summary"][0]["text"], "hmm")
        self.assertEqual(items[1]["content"][0]["text"], "ok")


class ReasoningTests(SDKAgreementMixin, SynchronousTestCase):
    """
    Reasoning items from C{reasoning_content}, C{reasoning} and C{<think>}.
    """

    def test_reasoningContent(self) -> None:
        """
        DeepSeek/Kimi C{reasoning_content} becomes a reasoning item with the
        summary events; it closes when the text starts; C{encrypted_content}
        carries the full reasoning (bridge-spec section 3).
        """
        events, data, _ = _run(
            [
                _chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
                _chunk({"reasoning_content": "Let me "}),
                _chunk({"reasoning_content": "think.", "content": None}),
                _chunk({"content": "Answer", "reasoning_content": None}),
                _chunk({}, "stop"),
                _usageChunk(completion_tokens_details={"reasoning_tokens": 3}),
            ],
            end=False,
        )
        self.assertEqual(
            _shape(events),
            [
                ("response.created", None, None),
                ("response.in_progress", None, None),
                ("response.output_item.added", 0, "rs_1"),
                ("response.reasoning_summary_part.added", 0, "rs_1"),
                ("response.reasoning_summary_text.delta", 0, "rs_1"),
                ("response.reasoning_summary_text.delta", 0, "rs_1"),
                ("response.reasoning_summary_text.done", 0, "rs_1"),
                ("response.reasoning_summary_part.done", 0, "rs_1"),
                ("response.output_item.done", 0, "rs_1"),
                ("response.output_item.added", 1, "msg_1"),
                ("response.content_part.added", 1, "msg_1"),
                ("response.output_text.delta", 1, "msg_1"),
                ("response.output_text.done", 1, "msg_1"),
                ("response.content_part.done", 1, "msg_1"),
                ("response.output_item.done", 1, "msg_1"),
                ("response.completed", None, None),
            ],
        )
        self.assertEqual(events[2]["item"], {"id": "rs_1", "type": "reasoning", "summary": []})
        reasoning = events[8]["item"]
        self.assertEqual(reasoning["summary"], [{"type": "summary_text", "text": "Let me think."}])
        self.assertEqual(decodeReasoning(reasoning["encrypted_content"]), "Let me think.")
        self.assertEqual(_terminal(events)["usage"]["output_tokens_details"],
                         {"reasoning_tokens": 3})
        self.assertSDKAgrees(events, data)

    def test_openRouterReasoning(self) -> None:
        """
        OpenRouter sends C{reasoning} and the same text in
        C{reasoning_details}; it is counted once.
        """
        def delta(text: str) -> dict[str, Any]:
            return _chunk({"content": "", "reasoning": text,
                           "reasoning_details": [{"type": "reasoning.text", "text": text}]})

        events, _, _ = _run([delta("a"), delta("b"), _text("c"), _chunk({}, "stop")])
        items = _doneItems(events)
        self.assertEqual(items[0]["summary"][0]["text"], "ab")
        self.assertEqual(items[1]["content"][0]["text"], "c")

    def test_reasoningObjectForms(self) -> None:
        """
        C{reasoning} as an object or list, and C{reasoning_details} alone
        (encrypted entries skipped), are read as text.
        """
        events, _, _ = _run(
            [
                _chunk({"reasoning": {"text": "one "}}),
                _chunk({"reasoning": [{"content": "two "}]}),
                _chunk({"reasoning_details": [
                    {"type": "reasoning.summary", "summary": "three"},
                    {"type": "reasoning.encrypted", "data": "opaque"},
                ]}),
                _chunk({}, "stop"),
            ]
        )
        self.assertEqual(_doneItems(events)[0]["summary"][0]["text"], "one two three")

    def test_thinkTagsSplit(self) -> None:
        """
        A leading C{<think>...</think>} in content, with both tags split across
        chunks, is reasoning; the text after it (leading whitespace dropped)
        is the message.
        """
        events, data, _ = _run(
            [
                _text("\n<th"),
                _text("ink>I sh"),
                _text("ould say hi</th"),
                _text("ink>"),
                _text("\n\nHi <b>"),
                _text("</think> stays"),
                _chunk({}, "stop"),
            ]
        )
        items = _doneItems(events)
        self.assertEqual([i["type"] for i in items], ["reasoning", "message"])
        self.assertEqual(items[0]["summary"][0]["text"], "I should say hi")
        self.assertEqual(items[1]["content"][0]["text"], "Hi <b></think> stays")
        self.assertSDKAgrees(events, data)

    def test_thinkTagOneChunk(self) -> None:
        """
        A whole C{<think>...</think>answer} in one chunk splits into two items.
        """
        events, _, _ = _run([_text("<think>r</think>answer"), _chunk({}, "stop")])
        items = _doneItems(events)
        self.assertEqual(items[0]["summary"][0]["text"], "r")
        self.assertEqual(items[1]["content"][0]["text"], "answer")

    def test_whitespaceOnlyReasoning(self) -> None:
        """
        An empty think block (Qwen3 with thinking off: C{<think>\\n\\n</think>}) or
        whitespace-only C{reasoning_content} opens no reasoning item; whitespace
        before real reasoning is kept in it.
        """
        events, _, _ = _run([_text("<think>\n\n</think>\n\n"), _text("Hi"), _chunk({}, "stop")])
        self.assertEqual([i["type"] for i in _doneItems(events)], ["message"])
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "Hi")
        events, _, _ = _run([_chunk({"reasoning_content": "\n"}), _text("ok"),
                             _chunk({}, "stop")])
        self.assertEqual([i["type"] for i in _doneItems(events)], ["message"])
        events, _, _ = _run([_chunk({"reasoning_content": "\n"}),
                             _chunk({"reasoning_content": " a"}), _chunk({}, "stop")])
        items = _doneItems(events)
        self.assertEqual([i["type"] for i in items], ["reasoning"])
        self.assertEqual(items[0]["summary"][0]["text"], "\n a")
        events, _, _ = _run([_chunk({"reasoning_content": "  "}), _chunk({}, "stop")])
        self.assertEqual(_doneItems(events), [])

    def test_thinkNotLeading(self) -> None:
        """
        C{<think>} after other text, or text that only looks like the start
        of the tag, is plain text.
        """
        events, _, _ = _run([_text("a <think>b</think>"), _chunk({}, "stop")])
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "a <think>b</think>")
        events, _, _ = _run([_text("<thi"), _text("s>"), _chunk({}, "stop")])
        self.assertEqual([i["type"] for i in _doneItems(events)], ["message"])
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "<this>")

    def test_thinkUnclosed(self) -> None:
        """
        A C{<think>} never closed leaves everything as reasoning, including a
        held partial closing tag at the end.
        """
        events, _, _ = _run([_text("<think>deep"), _text(" thought</th"), _chunk({}, "stop")])
        items = _doneItems(events)
        self.assertEqual([i["type"] for i in items], ["reasoning"])
        self.assertEqual(items[0]["summary"][0]["text"], "deep thought</th")

    def test_heldTagPrefixFlushedAtFinish(self) -> None:
        """
        Text held because it could begin C{<think>} is released as text at the
        finish.
        """
        events, _, _ = _run([_text("<th"), _chunk({}, "stop")])
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "<th")

    def test_interleavedReasoningAndText(self) -> None:
        """
        Reasoning after text opens a new reasoning item at the next index.
        """
        events, _, _ = _run(
            [_chunk({"reasoning_content": "a"}), _text("b"), _chunk({"reasoning_content": "c"}),
             _text("d"), _chunk({}, "stop")]
        )
        items = _doneItems(events)
        self.assertEqual([i["type"] for i in items], ["reasoning", "message"] * 2)
        self.assertEqual([i["id"] for i in items], ["rs_1", "msg_1", "rs_2", "msg_2"])


class ToolCallTests(SDKAgreementMixin, SynchronousTestCase):
    """
    function_call, custom_tool_call and local_shell_call items.
    """

    def test_vllmIndexOnlyDeltas(self) -> None:
        """
        vLLM: the first delta has index, id and name; the rest only index and
        arguments. Exact sequence, full arguments in the done events.
        """
        events, data, _ = _run(
            [
                _chunk({"role": "assistant", "content": None}),
                _calls(_call(0, "chatcmpl-tool-1", "exec_command", "")),
                _calls(_call(0, None, None, '{"cmd": ')),
                _calls(_call(0, None, None, '"ls"}')),
                _chunk({}, "tool_calls"),
                _usageChunk(),
            ],
            end=False,
        )
        self.assertEqual(
            _shape(events),
            [
                ("response.created", None, None),
                ("response.in_progress", None, None),
                ("response.output_item.added", 0, "fc_1"),
                ("response.function_call_arguments.delta", 0, "fc_1"),
                ("response.function_call_arguments.delta", 0, "fc_1"),
                ("response.function_call_arguments.done", 0, "fc_1"),
                ("response.output_item.done", 0, "fc_1"),
                ("response.completed", None, None),
            ],
        )
        self.assertEqual(events[2]["item"], {"id": "fc_1", "type": "function_call",
                                             "status": "in_progress",
                                             "call_id": "chatcmpl-tool-1",
                                             "name": "exec_command", "arguments": ""})
        self.assertEqual(events[5]["arguments"], '{"cmd": "ls"}')
        self.assertEqual(events[6]["item"], {"id": "fc_1", "type": "function_call",
                                             "status": "completed",
                                             "call_id": "chatcmpl-tool-1",
                                             "name": "exec_command",
                                             "arguments": '{"cmd": "ls"}'})
        self.assertSDKAgrees(events, data)

    def test_ollamaWholeCalls(self) -> None:
        """
        Ollama: whole calls, no index; two in one chunk are two calls, and
        whole calls in separate chunks without ids are separate too.
        """
        events, data, _ = _run(
            [
                _calls(_call(None, "call_a", "f", '{"x":1}'), _call(None, "call_b", "g", "{}")),
                _chunk({}, "tool_calls"),
            ]
        )
        items = _doneItems(events)
        self.assertEqual([(i["call_id"], i["name"], i["arguments"]) for i in items],
                         [("call_a", "f", '{"x":1}'), ("call_b", "g", "{}")])
        self.assertSDKAgrees(events, data)

        events, _, _ = _run(
            [
                _calls(_call(None, None, "f", '{"x":1}')),
                _calls(_call(None, None, "f", '{"x":2}')),
                _calls(_call(None, None, None, None), _call(None, None, "g", "{}")),
                _chunk({}, "tool_calls"),
            ]
        )
        items = _doneItems(events)
        self.assertEqual([(i["name"], i["arguments"]) for i in items],
                         [("f", '{"x":1}'), ("f", '{"x":2}'), ("g", "{}")])
        self.assertEqual(len({i["call_id"] for i in items}), 3)

    def test_interleavedParallelCalls(self) -> None:
        """
        Three calls whose argument deltas interleave: three items at indexes
        0-2, each delta on its own item, all closed in index order.
        """
        events, data, _ = _run(
            [
                _calls(_call(0, "c0", "read", "")),
                _calls(_call(1, "c1", "read", "")),
                _calls(_call(0, None, None, '{"p":'), _call(2, "c2", "write", '{"p":')),
                _calls(_call(1, None, None, '{"p":"b"}')),
                _calls(_call(2, None, None, '"c"}')),
                _calls(_call(0, None, None, '"a"}')),
                _chunk({}, "tool_calls"),
            ]
        )
        shape = [s for s in _shape(events) if s[0].startswith("response.output_item")]
        self.assertEqual(
            shape,
            [
                ("response.output_item.added", 0, "fc_1"),
                ("response.output_item.added", 1, "fc_2"),
                ("response.output_item.added", 2, "fc_3"),
                ("response.output_item.done", 0, "fc_1"),
                ("response.output_item.done", 1, "fc_2"),
                ("response.output_item.done", 2, "fc_3"),
            ],
        )
        items = _doneItems(events)
        self.assertEqual([(i["call_id"], i["arguments"]) for i in items],
                         [("c0", '{"p":"a"}'), ("c1", '{"p":"b"}'), ("c2", '{"p":"c"}')])
        deltas = [(e["output_index"], e["delta"]) for e in events
                  if e["type"] == "response.function_call_arguments.delta"]
        self.assertEqual(deltas, [(0, '{"p":'), (2, '{"p":'), (1, '{"p":"b"}'), (2, '"c"}'),
                                  (0, '"a"}')])
        self.assertSDKAgrees(events, data)

    def test_callWithoutId(self) -> None:
        """
        A call without an upstream id gets a generated C{call_...} id, the same
        in added and done.
        """
        events, _, _ = _run([_calls(_call(0, None, "f", "{}")), _chunk({}, "tool_calls")])
        added = [e["item"] for e in events if e["type"] == "response.output_item.added"][0]
        done = _doneItems(events)[0]
        self.assertEqual(added["call_id"], "call_1")
        self.assertEqual(done["call_id"], "call_1")

    def test_emptyArguments(self) -> None:
        """
        A call whose arguments never arrive (or are empty) gets C{"{}"}.
        """
        events, data, _ = _run([_calls(_call(0, "c", "get_goal", "")), _chunk({}, "tool_calls")])
        self.assertEqual(_doneItems(events)[0]["arguments"], "{}")
        self.assertSDKAgrees(events, data)

    def test_sameIndexNewId(self) -> None:
        """
        An index seen before with a different id is a new call (providers
        that put every call at index 0).
        """
        events, _, _ = _run(
            [
                _calls(_call(0, "a", "f", '{"n":1}')),
                _calls(_call(0, "b", "f", '{"n":2}')),
                _chunk({}, "tool_calls"),
            ]
        )
        self.assertEqual([(i["call_id"], i["arguments"]) for i in _doneItems(events)],
                         [("a", '{"n":1}'), ("b", '{"n":2}')])

    def test_idOnLaterChunk(self) -> None:
        """
        A call first seen by index without id, then with an id at the same
        index, is one call (the generated call id is kept).
        """
        events, _, _ = _run(
            [
                _calls(_call(0, None, "f", '{"a":')),
                _calls(_call(0, "late", None, "1}")),
                _chunk({}, "tool_calls"),
            ]
        )
        items = _doneItems(events)
        self.assertEqual(len(items), 1)
        self.assertEqual(items[0]["arguments"], '{"a":1}')

    def test_noIndexContinuesLastCall(self) -> None:
        """
        Chunks with neither index nor id continue the latest call; a chunk with
        only an id continues the call with that id.
        """
        events, _, _ = _run(
            [
                _calls(_call(None, "a", "f", "")),
                _calls(_call(None, None, None, '{"k":')),
                _calls(_call(None, "a", None, '"v"}')),
                _chunk({}, "tool_calls"),
            ]
        )
        items = _doneItems(events)
        self.assertEqual([(i["call_id"], i["arguments"]) for i in items], [("a", '{"k":"v"}')])

    def test_argumentsBeforeName(self) -> None:
        """
        Arguments that arrive before the name are held; the item opens once
        the name is known, with every argument delta.
        """
        events, _, _ = _run(
            [
                _calls(_call(0, "c", None, '{"a":')),
                _calls(_call(0, None, "f", "1}")),
                _chunk({}, "tool_calls"),
            ]
        )
        self.assertEqual(_doneItems(events)[0]["arguments"], '{"a":1}')

    def test_namelessCallDropped(self) -> None:
        """
        A call that never gets a name is not sent.
        """
        events, _, _ = _run([_calls(_call(0, "c", None, "{}")), _chunk({}, "tool_calls")])
        self.assertEqual(_doneItems(events), [])

    def test_argumentsAsObject(self) -> None:
        """
        Arguments sent as a JSON object (not a string) are serialised.
        """
        events, _, _ = _run(
            [_chunk({"tool_calls": [{"id": "c", "function": {"name": "f",
                                                               "arguments": {"x": [1]}}}]}),
             _chunk({}, "tool_calls")]
        )
        self.assertEqual(json.loads(_doneItems(events)[0]["arguments"]), {"x": [1]})

    def test_legacyFunctionCall(self) -> None:
        """
        The legacy C{delta.function_call} form becomes a function_call item.
        """
        events, _, _ = _run(
            [
                _chunk({"function_call": {"name": "f", "arguments": ""}}),
                _chunk({"function_call": {"arguments": '{"a":1}'}}),
                _chunk({}, "function_call"),
            ]
        )
        item = _doneItems(events)[0]
        self.assertEqual((item["name"], item["arguments"]), ("f", '{"a":1}'))
        self.assertEqual(_terminal(events)["status"], "completed")

    def test_textThenCallsThenText(self) -> None:
        """
        Items close when the stream moves on: the message closes before the
        calls open, the calls close before the next message opens.
        """
        events, data, _ = _run(
            [_text("I will look."), _calls(_call(0, "a", "f", "{}")),
             _calls(_call(1, "b", "g", "{}")), _text("Done."), _chunk({}, "stop")]
        )
        shape = [s for s in _shape(events) if s[0].startswith("response.output_item")]
        self.assertEqual(
            shape,
            [
                ("response.output_item.added", 0, "msg_1"),
                ("response.output_item.done", 0, "msg_1"),
                ("response.output_item.added", 1, "fc_1"),
                ("response.output_item.added", 2, "fc_2"),
                ("response.output_item.done", 1, "fc_1"),
                ("response.output_item.done", 2, "fc_2"),
                ("response.output_item.added", 3, "msg_2"),
                ("response.output_item.done", 3, "msg_2"),
            ],
        )
        self.assertSDKAgrees(events, data)

    def test_namespaceRestored(self) -> None:
        """
        A call to a flattened namespace tool comes back as a function_call with
        its Responses name and namespace.
        """
        context = _context(tools={
            "mcp__server__lookup": ToolTarget("function", "lookup", "mcp__server__"),
        })
        events, data, _ = _run(
            [_calls(_call(0, "c", "mcp__server__lookup", '{"q":"x"}')), _chunk({}, "tool_calls")],
            context,
        )
        added = events[2]["item"]
        done = _doneItems(events)[0]
        for item in (added, done):
            self.assertEqual(item["name"], "lookup")
            self.assertEqual(item["namespace"], "mcp__server__")
        self.assertSDKAgrees(events, data)

    def test_unknownToolName(self) -> None:
        """
        A name not in the context comes back as a function_call under that name.
        """
        context = _context(tools={"known": ToolTarget("function", "known")})
        events, _, _ = _run([_calls(_call(0, "c", "other", "{}")), _chunk({}, "tool_calls")],
                            context)
        self.assertEqual(_doneItems(events)[0]["name"], "other")
        self.assertNotIn("namespace", _doneItems(events)[0])

    def test_customTool(self) -> None:
        """
        A call to a converted custom tool is a custom_tool_call whose input is
        the C{input} argument, streamed as it is decoded (escapes split across
        chunks included).
        """
        context = _context(tools={"apply_patch": ToolTarget("custom", "apply_patch")})
        patch = "*** Begin Patch\n*** Add File: a.txt\n+h\u00e9 \"q\" \U0001f600\n*** End Patch\n"
        arguments = json.dumps({"input": patch})
        pieces = [arguments[i:i + 5] for i in range(0, len(arguments), 5)]
        chunks = [_calls(_call(0, "c", "apply_patch", ""))]
        chunks += [_calls(_call(0, None, None, piece)) for piece in pieces]
        chunks.append(_chunk({}, "tool_calls"))
        events, data, _ = _run(chunks, context)
        added = events[2]["item"]
        self.assertEqual(added, {"id": "ctc_1", "type": "custom_tool_call", "call_id": "c",
                                 "name": "apply_patch", "input": ""})
        deltas = [e["delta"] for e in events
                  if e["type"] == "response.custom_tool_call_input.delta"]
        self.assertGreater(len(deltas), 5)
        self.assertEqual("".join(deltas), patch)
        inputDone = [e for e in events if e["type"] == "response.custom_tool_call_input.done"]
        self.assertEqual(inputDone[0]["input"], patch)
        self.assertEqual(_doneItems(events)[0]["input"], patch)
        self.assertSDKAgrees(events, data)

    def test_customToolRawInput(self) -> None:
        """
        When the arguments are not C{{"input": ...}}, the raw text is the
        input: plain text streams as it comes, other JSON is sent at close.
        """
        context = _context(tools={"apply_patch": ToolTarget("custom", "apply_patch")})
        events, _, _ = _run(
            [_calls(_call(0, "c", "apply_patch", "*** Begin")),
             _calls(_call(0, None, None, " Patch\n")), _chunk({}, "tool_calls")],
            context,
        )
        self.assertEqual(_doneItems(events)[0]["input"], "*** Begin Patch\n")
        self.assertEqual(
            [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"],
            ["*** Begin", " Patch\n"],
        )
        events, _, _ = _run(
            [_calls(_call(0, "c", "apply_patch", '{"patch": "x"}')), _chunk({}, "tool_calls")],
            context,
        )
        self.assertEqual(_doneItems(events)[0]["input"], '{"patch": "x"}')
        events, _, _ = _run(
            [_calls(_call(0, "c", "apply_patch", '{"input": "x", "extra": 1}')),
             _chunk({}, "tool_calls")],
            context,
        )
        self.assertEqual(_doneItems(events)[0]["input"], "x")

    def test_customToolInNamespace(self) -> None:
        """
        A custom tool inside a namespace keeps its namespace.
        """
        context = _context(tools={"ns__edit": ToolTarget("custom", "edit", "ns")})
        events, _, _ = _run([_calls(_call(0, "c", "ns__edit", '{"input":"x"}')),
                             _chunk({}, "tool_calls")], context)
        item = _doneItems(events)[0]
        self.assertEqual((item["type"], item["name"], item["namespace"], item["input"]),
                         ("custom_tool_call", "edit", "ns", "x"))

    def test_localShell(self) -> None:
        """
        A call to C{local_shell} becomes a local_shell_call with its action.
        """
        context = _context(tools={"local_shell": ToolTarget("local_shell", "local_shell")})
        arguments = json.dumps({"command": ["ls", "-l"], "working_directory": "/tmp",
                                "timeout_ms": 5000})
        events, data, _ = _run(
            [_calls(_call(0, "c", "local_shell", arguments[:10])),
             _calls(_call(0, None, None, arguments[10:])), _chunk({}, "tool_calls")],
            context,
        )
        added = events[2]["item"]
        self.assertEqual(added["type"], "local_shell_call")
        self.assertEqual(added["status"], "in_progress")
        item = _doneItems(events)[0]
        self.assertEqual(item, {
            "id": "lsc_1", "type": "local_shell_call", "status": "completed", "call_id": "c",
            "action": {"type": "exec", "command": ["ls", "-l"], "env": {},
                       "working_directory": "/tmp", "timeout_ms": 5000},
        })
        self.assertSDKAgrees(events, data)

    def test_localShellStringCommand(self) -> None:
        """
        A string command runs through C{bash -lc}.
        """
        context = _context(tools={"local_shell": ToolTarget("local_shell", "local_shell")})
        events, _, _ = _run([_calls(_call(0, "c", "local_shell", '{"command":"ls | wc"}')),
                             _chunk({}, "tool_calls")], context)
        self.assertEqual(_doneItems(events)[0]["action"]["command"], ["bash", "-lc", "ls | wc"])

    def test_repeatedIdGetsFreshCallId(self) -> None:
        """
        An upstream id used again by a later call in the same response (after
        text moved the stream on) gets a generated call id: call ids stay
        unique within a response.
        """
        events, data, _ = _run(
            [_calls(_call(0, "call_0", "f", "{}")), _text("and"),
             _calls(_call(0, "call_0", "g", "{}")), _chunk({}, "tool_calls")]
        )
        items = [i for i in _doneItems(events) if i["type"] == "function_call"]
        self.assertEqual([(i["name"], i["call_id"]) for i in items],
                         [("f", "call_0"), ("g", "call_1")])
        self.assertSDKAgrees(events, data)

    def test_customToolUnterminatedInput(self) -> None:
        """
        C{{"input":"...} that never closes (on a normal stop) gives the decoded
        string, the same text its deltas showed.
        """
        context = _context(tools={"apply_patch": ToolTarget("custom", "apply_patch")})
        events, _, _ = _run(
            [_calls(_call(0, "c", "apply_patch", '{"input": "*** Begin Patch\\n')),
             _calls(_call(0, None, None, "*** End Patch")), _chunk({}, "tool_calls")],
            context,
        )
        self.assertEqual(_doneItems(events)[0]["input"], "*** Begin Patch\n*** End Patch")
        events, _, _ = _run(
            [_calls(_call(0, "c", "apply_patch", '{"input": "x"} trailing')),
             _chunk({}, "tool_calls")],
            context,
        )
        self.assertEqual(_doneItems(events)[0]["input"], "x")


class FinishTests(SDKAgreementMixin, SynchronousTestCase):
    """
    finish_reason, usage, the terminal event, cut-off streams and errors.
    """

    def test_awaitingTail(self) -> None:
        """
        After C{finish_reason} the terminal event waits for the usage chunk;
        C{awaitingTail} is true only in between.
        """
        stream = _stream()
        stream.start()
        self.assertFalse(stream.awaitingTail)
        stream.feedData(_payload(_text("x")))
        self.assertFalse(stream.awaitingTail)
        out = stream.feedData(_payload(_chunk({}, "stop")))
        self.assertTrue(stream.awaitingTail)
        self.assertFalse(stream.done)
        self.assertIn(b"response.output_item.done", out)
        self.assertNotIn(b"response.completed", out)
        out = stream.feedData(_payload(_usageChunk(4, 2)))
        self.assertFalse(stream.awaitingTail)
        self.assertTrue(stream.done)
        self.assertIn(b"response.completed", out)
        self.assertEqual(stream.response["usage"]["total_tokens"], 6)
        self.assertEqual(stream.feedData(b"[DONE]"), b"")
        self.assertEqual(stream.end(), b"")

    def test_usageInFinishChunk(self) -> None:
        """
        Usage in the same chunk as C{finish_reason} ends the stream at once.
        """
        stream = _stream()
        stream.start()
        out = stream.feedData(_payload(_chunk({"content": "x"}, "stop",
                                              usage={"prompt_tokens": 1,
                                                     "completion_tokens": 1})))
        self.assertTrue(stream.done)
        self.assertIn(b"response.completed", out)

    def test_usageInChoice(self) -> None:
        """
        Moonshot puts usage inside the choice.
        """
        chunk = _chunk({}, "stop")
        chunk["choices"][0]["usage"] = {"prompt_tokens": 2, "completion_tokens": 3,
                                        "total_tokens": 5, "cached_tokens": 1}
        events, _, stream = _run([_text("x"), chunk], end=False)
        self.assertTrue(stream.done)
        usage = _terminal(events)["usage"]
        self.assertEqual((usage["total_tokens"], usage["input_tokens_details"]["cached_tokens"]),
                         (5, 1))

    def test_noDoneMarker(self) -> None:
        """
        No usage and no C{[DONE]}: EOF (C{end}) produces the terminal event,
        with C{usage: null}.
        """
        events, data, _ = _run([_text("x"), _chunk({}, "stop")])
        self.assertEqual(events[-1]["type"], "response.completed")
        self.assertIsNone(_terminal(events)["usage"])
        self.assertSDKAgrees(events, data)

    def test_doneMarker(self) -> None:
        """
        C{[DONE]} after C{finish_reason} ends the stream; later data is ignored.
        """
        stream = _stream()
        out = stream.start() + stream.feedData(_payload(_chunk({}, "stop")))
        out += stream.feedData(b"[DONE]")
        self.assertTrue(stream.done)
        self.assertEqual(stream.feedData(_payload(_text("late"))), b"")
        self.assertEqual(stream.keepAlive(), b"")
        self.assertEqual(stream.fail("server_error", "x"), b"")
        self.assertEqual(validateEvents(out)[-1]["type"], "response.completed")

    def test_doneWithoutFinish(self) -> None:
        """
        C{[DONE]} with no C{finish_reason} is a cut-off reply: failed.
        """
        events, _, _ = _run([_text("x"), b"[DONE]"], end=False)
        self.assertEqual(events[-1]["type"], "response.failed")
        self.assertEqual(_terminal(events)["error"]["code"], "server_error")

    def test_length(self) -> None:
        """
        C{length}: text closes with what arrived (status incomplete), a call
        with valid JSON is kept, one with broken JSON is dropped, the terminal
        is C{response.incomplete} with reason C{max_output_tokens}.
        """
        events, _, _ = _run(
            [
                _calls(_call(0, "a", "f", '{"ok":true}')),
                _calls(_call(1, "b", "g", '{"cut":')),
                _chunk({}, "length"),
                _usageChunk(),
            ],
            end=False,
        )
        self.assertEqual(events[-1]["type"], "response.incomplete")
        response = _terminal(events)
        self.assertEqual(response["status"], "incomplete")
        self.assertEqual(response["incomplete_details"], {"reason": "max_output_tokens"})
        self.assertEqual([i["call_id"] for i in response["output"]], ["a"])
        dropped = [e for e in events if e.get("item_id") == "fc_2" or
                   e.get("item", {}).get("id") == "fc_2"]
        self.assertEqual(_types(dropped), ["response.output_item.added",
                                           "response.function_call_arguments.delta"])

        events, _, _ = _run([_chunk({"reasoning_content": "r"}), _text("partial"),
                             _chunk({}, "length")])
        items = _doneItems(events)
        self.assertEqual(items[1]["content"][0]["text"], "partial")
        self.assertEqual(items[1]["status"], "incomplete")
        self.assertEqual(events[-1]["type"], "response.incomplete")

    def test_contentFilter(self) -> None:
        """
        C{content_filter}: incomplete, reason C{content_filter}.
        """
        events, _, _ = _run([_text("x"), _chunk({}, "content_filter")])
        self.assertEqual(events[-1]["type"], "response.incomplete")
        self.assertEqual(_terminal(events)["incomplete_details"], {"reason": "content_filter"})

    def test_unknownFinishReason(self) -> None:
        """
        Unknown finish reasons are C{stop}.
        """
        for reason in ("end_turn", "eos", "stop_sequence", "tool_call"):
            events, _, _ = _run([_text("x"), _chunk({}, reason)])
            self.assertEqual(events[-1]["type"], "response.completed", reason)

    def test_finishReasonError(self) -> None:
        """
        C{finish_reason: "error"} fails the stream at once; the open call is
        not closed.
        """
        events, _, stream = _run([_calls(_call(0, "c", "f", '{"a":')), _chunk({}, "error")],
                                 end=False)
        self.assertTrue(stream.done)
        self.assertEqual(events[-1]["type"], "response.failed")
        self.assertEqual(_terminal(events)["error"]["code"], "server_error")
        self.assertEqual(_doneItems(events), [])

    def test_errorObjectInStream(self) -> None:
        """
        An C{{"error": ...}} chunk fails the stream with the mapped code;
        open items are not closed; closed ones stay in the output.
        """
        error = {"error": {"message": "This model's maximum context length is 8192 tokens",
                           "type": "invalid_request_error", "code": None}}
        events, _, stream = _run(
            [_chunk({"reasoning_content": "r"}), _text("x"),
             _calls(_call(0, "c", "f", '{"a":')), error],
            end=False,
        )
        self.assertTrue(stream.done)
        self.assertEqual(events[-1]["type"], "response.failed")
        response = _terminal(events)
        self.assertEqual(response["error"]["code"], "context_length_exceeded")
        self.assertIn("maximum context length", response["error"]["message"])
        self.assertEqual([i["type"] for i in response["output"]], ["reasoning", "message"])
        self.assertNotIn("function_call", [i["type"] for i in _doneItems(events)])

    def test_openRouterMidStreamError(self) -> None:
        """
        OpenRouter's mid-stream error chunk (error plus C{finish_reason:
        "error"}) fails with the error's message.
        """
        chunk = _chunk({"content": ""}, "error")
        chunk["error"] = {"code": 502, "message": "Provider disconnected"}
        events, _, _ = _run([_text("x"), chunk], end=False)
        self.assertEqual(_terminal(events)["error"],
                         {"code": "server_error", "message": "Provider disconnected"})

    def test_topLevelErrorObject(self) -> None:
        """
        vLLM (before 0.9) streams its error as a top-level C{ErrorResponse}
        (C{"object": "error"}, no C{error} key): it fails the stream with its
        message and mapped code, in a stream or as a whole reply.
        """
        error = {"object": "error", "message": "Engine loop has died",
                 "type": "InternalServerError", "param": None, "code": 500}
        events, _, _ = _run([_text("x"), error, _chunk({"content": "y"}, "stop")], end=False)
        self.assertEqual(_terminal(events)["error"],
                         {"code": "server_error", "message": "Engine loop has died"})
        overloaded = dict(error, message="server overloaded", code=503)
        failed = completionToResponse(_context(), overloaded)
        self.assertEqual(failed["status"], "failed")
        self.assertEqual(failed["error"]["code"], "server_is_overloaded")

    def test_truncated(self) -> None:
        """
        The stream ends with no C{finish_reason}: failed (C{server_error}),
        the half-received call and the open message are not closed.
        """
        events, _, _ = _run([_text("x"), _calls(_call(0, "c", "f", '{"a":'))])
        self.assertEqual(events[-1]["type"], "response.failed")
        self.assertEqual(_terminal(events)["error"]["code"], "server_error")
        self.assertEqual([i["type"] for i in _doneItems(events)], ["message"])
        events, _, _ = _run([_text("x")])
        self.assertEqual(_doneItems(events), [])
        self.assertEqual(_terminal(events)["output"], [])

    def test_fail(self) -> None:
        """
        C{fail} ends the stream with the given code and message, leaving open
        items open; afterwards everything returns C{b""}.
        """
        stream = _stream()
        out = stream.start() + stream.feedData(_payload(_text("x")))
        out += stream.fail("server_error", "upstream idle for 300 s")
        events = validateEvents(out)
        self.assertEqual(_terminal(events)["error"],
                         {"code": "server_error", "message": "upstream idle for 300 s"})
        self.assertEqual(_doneItems(events), [])
        for call in (stream.end, stream.keepAlive, stream.start):
            self.assertEqual(call(), b"")
        self.assertEqual(stream.fail("server_error", "again"), b"")
        self.assertEqual(stream.feedChunk(_text("y")), b"")

    def test_failBeforeStart(self) -> None:
        """
        C{fail} as the first call still sends created and in_progress first.
        """
        events = validateEvents(_stream().fail("server_error", "reset"))
        self.assertEqual(_types(events), ["response.created", "response.in_progress",
                                          "response.failed"])

    def test_failWithCodexCode(self) -> None:
        """
        Codex-only codes pass through (the SDK check swaps them for
        validation only).
        """
        events = validateEvents(_stream().fail("server_is_overloaded", "busy"))
        self.assertEqual(_terminal(events)["error"]["code"], "server_is_overloaded")

    def test_keepAlive(self) -> None:
        """
        C{keepAlive} sends C{response.in_progress} with the next sequence number.
        """
        stream = _stream()
        stream.start()
        stream.feedData(_payload(_text("x")))
        out = stream.keepAlive()
        (event,) = [body for _, body in parseEvents(out)]
        self.assertEqual(event["type"], "response.in_progress")
        self.assertEqual(event["sequence_number"], 5)
        self.assertEqual(event["response"]["status"], "in_progress")
        self.assertEqual(_stream().keepAlive().count(b"event: "), 2)

    def test_eventsAfterFinish(self) -> None:
        """
        Deltas after C{finish_reason} are still converted and closed with the
        terminal event.
        """
        events, _, _ = _run([_text("a"), _chunk({}, "stop"), _text("b"), _usageChunk()],
                            end=False)
        self.assertEqual([i["content"][0]["text"] for i in _doneItems(events)], ["a", "b"])

    def test_terminalOnce(self) -> None:
        """
        Exactly one terminal event, always last, whatever is called after.
        """
        stream = _stream()
        out = stream.start() + stream.feedData(_payload(_chunk({}, "stop")))
        out += stream.end() + stream.end() + stream.feedData(b"[DONE]")
        out += stream.fail("server_error", "x") + stream.keepAlive()
        events = validateEvents(out)
        self.assertEqual(sum(e["type"].startswith("response.c") and e["type"] != "response.created"
                             or e["type"] in ("response.failed", "response.incomplete")
                             for e in events), 1)

    def test_validatorCatchesBadStreams(self) -> None:
        """
        The shared validator rejects what Codex would mishandle.
        """
        stream = _stream()
        good = stream.start() + stream.feedData(_payload(_text("x")))
        self.assertRaises(SDKCheckError, validateEvents, good)
        bad = good.replace(b'"sequence_number":3', b'"sequence_number":9')
        self.assertRaises(SDKCheckError, validateEvents, bad, requireTerminal=False)
        self.assertRaises(SDKCheckError, validateEvents, b"data: {}\n\n")


class DataTests(SynchronousTestCase):
    """
    Payloads that are not one clean chunk.
    """

    def test_nonJsonIgnored(self) -> None:
        """
        A payload that is not JSON is skipped, as Codex skips it.
        """
        events, _, _ = _run([b"not json", _text("x"), b"{broken", _chunk({}, "stop")])
        self.assertEqual(events[-1]["type"], "response.completed")
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "x")

    def test_multiLinePayload(self) -> None:
        """
        A payload of several lines that is not one JSON value (data lines
        without blank lines between events) is read line by line.
        """
        payload = b"\n".join([_payload(_text("a")), _payload(_text("b")),
                              _payload(_chunk({}, "stop")), b"[DONE]"])
        events, _, stream = _run([payload], end=False)
        self.assertTrue(stream.done)
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "ab")

    def test_prettyPrintedPayload(self) -> None:
        """
        One JSON chunk spread over several data lines is one chunk.
        """
        payload = json.dumps(_text("x"), indent=2).encode()
        events, _, _ = _run([payload, _chunk({}, "stop")])
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "x")

    def test_garbageFails(self) -> None:
        """
        Sixteen unparsable payloads in a row fail the stream.
        """
        stream = _stream()
        out = stream.start()
        for _ in range(15):
            out += stream.feedData(b"<html>")
        self.assertFalse(stream.done)
        out += stream.feedData(b"<html>")
        self.assertTrue(stream.done)
        events = validateEvents(out)
        self.assertEqual(_terminal(events)["error"]["code"], "server_error")

    def test_goodChunkResetsGarbageCount(self) -> None:
        """
        Occasional bad payloads between good chunks never fail the stream.
        """
        stream = _stream()
        stream.start()
        for _ in range(40):
            stream.feedData(b"junk")
            stream.feedData(_payload(_text("x")))
        self.assertFalse(stream.done)

    def test_nonObjectJsonAndEmpty(self) -> None:
        """
        JSON that is not an object, and empty payloads, are skipped.
        """
        events, _, _ = _run([b"[1,2]", b"", b"  ", b"42", _text("x"), _chunk({}, "stop")])
        self.assertEqual(events[-1]["type"], "response.completed")

    def test_invalidUtf8(self) -> None:
        """
        Invalid UTF-8 in a payload is replaced, not fatal.
        """
        events, data, _ = _run([b'{"choices":[{"delta":{"content":"a\xff"}}]}',
                                _chunk({}, "stop")])
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "a\ufffd")

    def test_otherChoicesIgnored(self) -> None:
        """
        Only choice 0 is converted.
        """
        chunk = {"choices": [{"index": 1, "delta": {"content": "no"}},
                             {"index": 0, "delta": {"content": "yes"}}]}
        events, _, _ = _run([chunk, _chunk({}, "stop")])
        self.assertEqual(_doneItems(events)[0]["content"][0]["text"], "yes")


class UsageTests(SynchronousTestCase):
    """
    L{mapUsage}: section 2.5.
    """

    def test_full(self) -> None:
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

    def _convert(self, completion: dict[str, Any], context: BridgeContext | None = None):
        return completionToResponse(context or _context(stream=False), completion,
                                    responseId=RESPONSE_ID, createdAt=CREATED, idFactory=_Ids())

    def test_text(self) -> None:
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
        context = _context(stream=False, tools={
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
        }, "tool_calls"), context)
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
        response = self._convert(self._completion(
            {"role": "assistant", "content": "<think>hm</think>\n\nYes"}))
        self.assertEqual([i["type"] for i in response["output"]], ["reasoning", "message"])
        self.assertEqual(response["output"][1]["content"][0]["text"], "Yes")

    def test_length(self) -> None:
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

    def test_feedCompletionEvents(self) -> None:
        """
        C{feedCompletion} emits the complete, valid event sequence of a
        streamed reply, which the SDK accumulates to the same response.
        """
        stream = _stream(_context(tools={"apply_patch": ToolTarget("custom", "apply_patch")}))
        data = stream.feedCompletion(self._completion({
            "role": "assistant", "content": "Patching.", "reasoning_content": "why",
            "tool_calls": [{"id": "a", "function": {"name": "apply_patch",
                                                     "arguments": '{"input":"P"}'}}],
        }, "tool_calls", {"prompt_tokens": 1, "completion_tokens": 2}))
        events = validateEvents(data)
        self.assertEqual([i["type"] for i in _doneItems(events)],
                         ["reasoning", "message", "custom_tool_call"])
        self.assertEqual(stream.response, _terminal(events))
        self.assertSDKAgrees(events, data)
        self.assertEqual(stream.feedCompletion({}), b"")


class CodexShapeTests(SynchronousTestCase):
    """
    What Codex 0.169 parses (codex-wire.md section 3.2).
    """

    def test_itemsParseAsCodexWants(self) -> None:
        """
        Done items carry exactly the fields Codex requires per type.
        """
        context = _context(tools={"apply_patch": ToolTarget("custom", "apply_patch")})
        events, _, _ = _run(
            [_chunk({"reasoning_content": "r"}), _text("t"),
             _calls(_call(0, "a", "exec_command", "{}")),
             _calls(_call(1, "b", "apply_patch", '{"input":"x"}')), _chunk({}, "tool_calls"),
             _usageChunk()],
            context, end=False,
        )
        required = {
            "reasoning": {"summary"},
            "message": {"role", "content"},
            "function_call": {"name", "arguments", "call_id"},
            "custom_tool_call": {"call_id", "name", "input"},
        }
        for item in _doneItems(events):
            self.assertTrue(required[item["type"]] <= set(item), item)
            if item["type"] == "message":
                self.assertEqual({p["type"] for p in item["content"]}, {"output_text"})
        usage = _terminal(events)["usage"]
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            self.assertIsInstance(usage[key], int)
        self.assertTrue(re.match(r"^resp_", _terminal(events)["id"]))


class FuzzTests(SDKAgreementMixin, SynchronousTestCase):
    """
    Seeded random streams of odd chunks: never an exception, always a valid
    event stream with one terminal event.
    """

    VALUES: list[Any] = [None, "", " ", "x", "\n\n", "<think>", "</think>", "<th", "ink>",
                         "\U0001f600", "\ud83d", 0, 1, -1, True, 1.5, [], {}, ["a"],
                         {"text": "t"}, [{"type": "text", "text": "p"}],
                         {"type": "reasoning.encrypted", "data": "z"}, '{"input":"', '"}',
                         '{"a":', "1}", "\\u00e9", '{"command":["ls"]}']
    KEYS = ["content", "reasoning_content", "reasoning", "reasoning_details", "refusal",
            "role", "tool_calls", "function_call"]

    def _entry(self, rng: Any) -> Any:
        choice = rng.random()
        if choice < 0.1:
            return rng.choice(self.VALUES)
        entry: dict[str, Any] = {}
        if rng.random() < 0.6:
            entry["index"] = rng.choice([0, 1, 2, None, "0", True])
        if rng.random() < 0.4:
            entry["id"] = rng.choice(["a", "b", "c", None, "", 7])
        function: dict[str, Any] = {}
        if rng.random() < 0.5:
            function["name"] = rng.choice(["f", "apply_patch", "local_shell", "ns__g", None, 3])
        if rng.random() < 0.8:
            function["arguments"] = rng.choice(self.VALUES)
        entry["function"] = function if rng.random() < 0.95 else rng.choice(self.VALUES)
        return entry

    def _chunk(self, rng: Any) -> Any:
        roll = rng.random()
        if roll < 0.03:
            return rng.choice([b"[DONE]", b"garbage", b"", b"[1]", b"\xff\xfe",
                               b'{"choices":[{"delta":{"content":"a"}}]}\n{"choices":[]}'])
        if roll < 0.05:
            return {"error": rng.choice(self.VALUES + [{"message": "prompt is too long"}])}
        if roll < 0.08:
            return {"choices": rng.choice(self.VALUES), "usage": rng.choice(
                self.VALUES + [{"prompt_tokens": 1, "completion_tokens": 2}])}
        delta: dict[str, Any] = {}
        for _ in range(rng.randrange(3)):
            key = rng.choice(self.KEYS)
            if key in ("tool_calls",):
                delta[key] = [self._entry(rng) for _ in range(rng.randrange(1, 3))]
            elif key == "function_call":
                delta[key] = {"name": rng.choice(["f", None]),
                              "arguments": rng.choice(self.VALUES)}
            else:
                delta[key] = rng.choice(self.VALUES)
        finish = None
        if rng.random() < 0.05:
            finish = rng.choice(["stop", "length", "tool_calls", "content_filter", "error",
                                 "other", 5, ""])
        chunk = _chunk(delta if rng.random() < 0.95 else rng.choice(self.VALUES), finish)
        if rng.random() < 0.05:
            chunk["usage"] = {"prompt_tokens": rng.randrange(100), "completion_tokens": 3}
        return chunk

    def test_fuzz(self) -> None:
        import random

        context = _context(tools={
            "apply_patch": ToolTarget("custom", "apply_patch"),
            "local_shell": ToolTarget("local_shell", "local_shell"),
            "ns__g": ToolTarget("function", "g", "ns"),
        })
        completed = 0
        for seed in range(SEEDS):
            rng = random.Random(seed)
            stream = _stream(context)
            out = stream.start()
            for _ in range(rng.randrange(1, 40)):
                item = self._chunk(rng)
                out += stream.feedData(_payload(item))
                if rng.random() < 0.02:
                    out += stream.keepAlive()
            ending = rng.random()
            if ending < 0.1:
                out += stream.fail("server_error", "timeout")
            else:
                out += stream.end()
            self.assertTrue(stream.done)
            try:
                events = validateEvents(out)
                if events[-1]["type"] == "response.completed":
                    completed += 1
                    finalResponse(events)
            except (SDKCheckError, RuntimeError) as e:
                self.fail(f"seed {seed}: {e}")
        self.assertGreater(completed, 20)
