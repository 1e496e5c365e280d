"""
Tests for L{responses_proxy.bridge.stream}: the item state machine, driven through
L{ResponsesStream} (chat payloads in, Responses events out).

Every stream is checked by L{tests.sdkcheck} (the SDK's event types, sequence
numbers, one terminal event, Codex's item rules); completed streams also go
through the SDK's own accumulator.
"""

from __future__ import annotations

import json
import re
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.context import BridgeContext, ToolTarget
from responses_proxy.bridge.events import EventWriter, ResponseHead
from responses_proxy.bridge.reasoning import decodeReasoning
from responses_proxy.bridge.stream import ReplyMachine, ResponsesStream, Step
from tests.chatreply import (
    CREATED,
    RESPONSE_ID,
    Ids,
    SDKAgreementMixin,
    calls,
    chunk,
    context,
    doneItems,
    newStream,
    payload,
    randomChunk,
    run,
    shape,
    terminal,
    text,
    types,
    usageChunk,
)
from tests.sdkcheck import SDKCheckError, finalResponse, validateEvents
from tests.support.chat import toolCall as call

SEEDS = 400


class LifecycleTests(SDKAgreementMixin, SynchronousTestCase):
    """
    created, in_progress, sequence numbers, echoed fields.
    """

    def test_start(self) -> None:
        """
        C{start} sends C{response.created} then C{response.in_progress}, with
        an empty output and the requested model.
        """
        stream = newStream()
        events = validateEvents(stream.start(), requireTerminal=False)
        self.assertEqual(types(events), ["response.created", "response.in_progress"])
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
        stream = newStream()
        out = stream.feed(payload(text("hi"))).events
        events = validateEvents(out, requireTerminal=False)
        self.assertEqual(types(events)[:2], ["response.created", "response.in_progress"])

    def test_generatedIds(self) -> None:
        """
        Without a factory, ids have the documented prefixes and differ between
        items and between streams.
        """
        ids = []
        for _ in range(2):
            stream = ResponsesStream(context(tools={"shell": ToolTarget("local_shell", "shell")}))
            out = stream.start()
            for item in [
                chunk({"reasoning_content": "r"}),
                text("t"),
                calls(call(0, None, "f", "{}")),
                calls(call(1, None, "shell", '{"command":["ls"]}')),
                chunk({}, "stop"),
            ]:
                out += stream.feed(payload(item)).events
            out += stream.end()
            events = validateEvents(out)
            response = terminal(events)
            self.assertTrue(response["id"].startswith("resp_"))
            items = response["output"]
            self.assertEqual([i["id"].split("_")[0] for i in items], ["rs", "msg", "fc", "lsc"])
            self.assertTrue(items[2]["call_id"].startswith("call_"))
            ids.extend([response["id"]] + [i["id"] for i in items] + [items[2]["call_id"]])
        self.assertEqual(len(ids), len(set(ids)))


class TextTests(SDKAgreementMixin, SynchronousTestCase):
    """
    Message items from C{delta.content}.
    """

    def test_exactSequence(self) -> None:
        """
        A role-only chunk, an empty content, text deltas, finish, usage-only
        chunk and C{[DONE]} give exactly the documented event sequence.
        """
        events, data, stream = run(
            [
                chunk({"role": "assistant", "content": ""}),
                text("Hello"),
                chunk({}),
                text(", world"),
                chunk({}, "stop"),
                usageChunk(7, 3),
                b"[DONE]",
            ],
            end=False,
        )
        self.assertEqual(
            shape(events),
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
        response = terminal(events)
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
        events, _, _ = run(
            [
                chunk({"role": "assistant", "content": ""}),
                chunk({"content": None}),
                chunk({}),
                {"id": "x", "object": "chat.completion.chunk", "choices": []},
                chunk({}, "stop"),
            ]
        )
        self.assertEqual(
            types(events), ["response.created", "response.in_progress", "response.completed"]
        )
        self.assertEqual(terminal(events)["output"], [])

    def test_whitespaceBeforeToolCall(self) -> None:
        """
        Whitespace-only content before a tool call opens no message; leading
        whitespace of a real message is kept.
        """
        events, _, _ = run(
            [text("\n\n"), calls(call(0, "c1", "f", "{}")), chunk({}, "tool_calls")]
        )
        self.assertEqual([i["type"] for i in doneItems(events)], ["function_call"])
        events, _, _ = run([text("\n"), text("  x"), chunk({}, "stop")])
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "\n  x")

    def test_multiByte(self) -> None:
        """
        Non-ASCII text (accents, CJK, emoji, RTL, U+2028) round-trips as UTF-8,
        whether the payload used raw UTF-8 or JSON escapes.
        """
        pieces = ["h\u00e9", "llo \u4e16\u754c ", "\U0001f600 \u05e9\u05dc\u05d5\u05dd", "\u2028!"]
        chunks: list[Any] = [
            json.dumps(text(p), ensure_ascii=False).encode("utf-8") for p in pieces[:2]
        ]
        chunks += [json.dumps(text(p), ensure_ascii=True).encode("ascii") for p in pieces[2:]]
        chunks.append(chunk({}, "stop"))
        events, data, _ = run(chunks)
        self.assertIn("\U0001f600".encode(), data)
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "".join(pieces))
        self.assertSDKAgrees(events, data)

    def test_splitSurrogatePair(self) -> None:
        """
        An emoji sent as two escapes in two chunks (a lone surrogate each) still
        yields valid UTF-8, and the done text has the emoji.
        """
        events, data, _ = run(
            [b'{"choices":[{"delta":{"content":"a\\ud83d"}}]}',
             b'{"choices":[{"delta":{"content":"\\ude00b"}}]}',
             chunk({}, "stop")]
        )
        data.decode("utf-8")
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "a\U0001f600b")

    def test_refusal(self) -> None:
        """
        A C{refusal} delta becomes message text (Codex drops refusal parts).
        """
        events, _, _ = run([chunk({"refusal": "I can't."}), chunk({}, "stop")])
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "I can't.")

    def test_contentParts(self) -> None:
        """
        Content as a list of parts (Mistral): thinking parts are reasoning,
        text parts are text.
        """
        events, _, _ = run(
            [
                chunk({"content": [{"type": "thinking",
                                     "thinking": [{"type": "text", "text": "hmm"}]}]}),
                chunk({"content": [{"type": "text", "text": "ok"}]}),
                chunk({}, "stop"),
            ]
        )
        items = doneItems(events)
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
        events, data, _ = run(
            [
                chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
                chunk({"reasoning_content": "Let me "}),
                chunk({"reasoning_content": "think.", "content": None}),
                chunk({"content": "Answer", "reasoning_content": None}),
                chunk({}, "stop"),
                usageChunk(completion_tokens_details={"reasoning_tokens": 3}),
            ],
            end=False,
        )
        self.assertEqual(
            shape(events),
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
        self.assertEqual(terminal(events)["usage"]["output_tokens_details"],
                         {"reasoning_tokens": 3})
        self.assertSDKAgrees(events, data)

    def test_openRouterReasoning(self) -> None:
        """
        OpenRouter sends C{reasoning} and the same text in
        C{reasoning_details}; it is counted once.
        """
        def delta(text: str) -> dict[str, Any]:
            return chunk({"content": "", "reasoning": text,
                           "reasoning_details": [{"type": "reasoning.text", "text": text}]})

        events, _, _ = run([delta("a"), delta("b"), text("c"), chunk({}, "stop")])
        items = doneItems(events)
        self.assertEqual(items[0]["summary"][0]["text"], "ab")
        self.assertEqual(items[1]["content"][0]["text"], "c")

    def test_reasoningObjectForms(self) -> None:
        """
        C{reasoning} as an object or list, and C{reasoning_details} alone
        (encrypted entries skipped), are read as text.
        """
        events, _, _ = run(
            [
                chunk({"reasoning": {"text": "one "}}),
                chunk({"reasoning": [{"content": "two "}]}),
                chunk({"reasoning_details": [
                    {"type": "reasoning.summary", "summary": "three"},
                    {"type": "reasoning.encrypted", "data": "opaque"},
                ]}),
                chunk({}, "stop"),
            ]
        )
        self.assertEqual(doneItems(events)[0]["summary"][0]["text"], "one two three")

    def test_thinkTagsSplit(self) -> None:
        """
        A leading C{<think>...</think>} in content, with both tags split across
        chunks, is reasoning; the text after it (leading whitespace dropped)
        is the message.
        """
        events, data, _ = run(
            [
                text("\n<th"),
                text("ink>I sh"),
                text("ould say hi</th"),
                text("ink>"),
                text("\n\nHi <b>"),
                text("</think> stays"),
                chunk({}, "stop"),
            ]
        )
        items = doneItems(events)
        self.assertEqual([i["type"] for i in items], ["reasoning", "message"])
        self.assertEqual(items[0]["summary"][0]["text"], "I should say hi")
        self.assertEqual(items[1]["content"][0]["text"], "Hi <b></think> stays")
        self.assertSDKAgrees(events, data)

    def test_thinkTagOneChunk(self) -> None:
        """
        A whole C{<think>...</think>answer} in one chunk splits into two items.
        """
        events, _, _ = run([text("<think>r</think>answer"), chunk({}, "stop")])
        items = doneItems(events)
        self.assertEqual(items[0]["summary"][0]["text"], "r")
        self.assertEqual(items[1]["content"][0]["text"], "answer")

    def test_whitespaceOnlyReasoning(self) -> None:
        """
        An empty think block (Qwen3 with thinking off: C{<think>\\n\\n</think>}) or
        whitespace-only C{reasoning_content} opens no reasoning item; whitespace
        before real reasoning is kept in it.
        """
        events, _, _ = run([text("<think>\n\n</think>\n\n"), text("Hi"), chunk({}, "stop")])
        self.assertEqual([i["type"] for i in doneItems(events)], ["message"])
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "Hi")
        events, _, _ = run([chunk({"reasoning_content": "\n"}), text("ok"),
                             chunk({}, "stop")])
        self.assertEqual([i["type"] for i in doneItems(events)], ["message"])
        events, _, _ = run([chunk({"reasoning_content": "\n"}),
                             chunk({"reasoning_content": " a"}), chunk({}, "stop")])
        items = doneItems(events)
        self.assertEqual([i["type"] for i in items], ["reasoning"])
        self.assertEqual(items[0]["summary"][0]["text"], "\n a")
        events, _, _ = run([chunk({"reasoning_content": "  "}), chunk({}, "stop")])
        self.assertEqual(doneItems(events), [])

    def test_thinkNotLeading(self) -> None:
        """
        C{<think>} after other text, or text that only looks like the start
        of the tag, is plain text.
        """
        events, _, _ = run([text("a <think>b</think>"), chunk({}, "stop")])
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "a <think>b</think>")
        events, _, _ = run([text("<thi"), text("s>"), chunk({}, "stop")])
        self.assertEqual([i["type"] for i in doneItems(events)], ["message"])
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "<this>")

    def test_thinkUnclosed(self) -> None:
        """
        A C{<think>} never closed leaves everything as reasoning, including a
        held partial closing tag at the end.
        """
        events, _, _ = run([text("<think>deep"), text(" thought</th"), chunk({}, "stop")])
        items = doneItems(events)
        self.assertEqual([i["type"] for i in items], ["reasoning"])
        self.assertEqual(items[0]["summary"][0]["text"], "deep thought</th")

    def test_heldTagPrefixFlushedAtFinish(self) -> None:
        """
        Text held because it could begin C{<think>} is released as text at the
        finish.
        """
        events, _, _ = run([text("<th"), chunk({}, "stop")])
        self.assertEqual(doneItems(events)[0]["content"][0]["text"], "<th")

    def test_interleavedReasoningAndText(self) -> None:
        """
        Reasoning after text opens a new reasoning item at the next index.
        """
        events, _, _ = run(
            [chunk({"reasoning_content": "a"}), text("b"), chunk({"reasoning_content": "c"}),
             text("d"), chunk({}, "stop")]
        )
        items = doneItems(events)
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
        events, data, _ = run(
            [
                chunk({"role": "assistant", "content": None}),
                calls(call(0, "chatcmpl-tool-1", "exec_command", "")),
                calls(call(0, None, None, '{"cmd": ')),
                calls(call(0, None, None, '"ls"}')),
                chunk({}, "tool_calls"),
                usageChunk(),
            ],
            end=False,
        )
        self.assertEqual(
            shape(events),
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
        events, data, _ = run(
            [
                calls(call(None, "call_a", "f", '{"x":1}'), call(None, "call_b", "g", "{}")),
                chunk({}, "tool_calls"),
            ]
        )
        items = doneItems(events)
        self.assertEqual([(i["call_id"], i["name"], i["arguments"]) for i in items],
                         [("call_a", "f", '{"x":1}'), ("call_b", "g", "{}")])
        self.assertSDKAgrees(events, data)

        events, _, _ = run(
            [
                calls(call(None, None, "f", '{"x":1}')),
                calls(call(None, None, "f", '{"x":2}')),
                calls(call(None, None, None, None), call(None, None, "g", "{}")),
                chunk({}, "tool_calls"),
            ]
        )
        items = doneItems(events)
        self.assertEqual([(i["name"], i["arguments"]) for i in items],
                         [("f", '{"x":1}'), ("f", '{"x":2}'), ("g", "{}")])
        self.assertEqual(len({i["call_id"] for i in items}), 3)

    def test_interleavedParallelCalls(self) -> None:
        """
        Three calls whose argument deltas interleave: three items at indexes
        0-2, each delta on its own item, all closed in index order.
        """
        events, data, _ = run(
            [
                calls(call(0, "c0", "read", "")),
                calls(call(1, "c1", "read", "")),
                calls(call(0, None, None, '{"p":'), call(2, "c2", "write", '{"p":')),
                calls(call(1, None, None, '{"p":"b"}')),
                calls(call(2, None, None, '"c"}')),
                calls(call(0, None, None, '"a"}')),
                chunk({}, "tool_calls"),
            ]
        )
        opened = [s for s in shape(events) if s[0].startswith("response.output_item")]
        self.assertEqual(
            opened,
            [
                ("response.output_item.added", 0, "fc_1"),
                ("response.output_item.added", 1, "fc_2"),
                ("response.output_item.added", 2, "fc_3"),
                ("response.output_item.done", 0, "fc_1"),
                ("response.output_item.done", 1, "fc_2"),
                ("response.output_item.done", 2, "fc_3"),
            ],
        )
        items = doneItems(events)
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
        events, _, _ = run([calls(call(0, None, "f", "{}")), chunk({}, "tool_calls")])
        added = [e["item"] for e in events if e["type"] == "response.output_item.added"][0]
        done = doneItems(events)[0]
        self.assertEqual(added["call_id"], "call_1")
        self.assertEqual(done["call_id"], "call_1")

    def test_emptyArguments(self) -> None:
        """
        A call whose arguments never arrive (or are empty) gets C{"{}"}.
        """
        events, data, _ = run([calls(call(0, "c", "get_goal", "")), chunk({}, "tool_calls")])
        self.assertEqual(doneItems(events)[0]["arguments"], "{}")
        self.assertSDKAgrees(events, data)

    def test_sameIndexNewId(self) -> None:
        """
        An index seen before with a different id is a new call (providers
        that put every call at index 0).
        """
        events, _, _ = run(
            [
                calls(call(0, "a", "f", '{"n":1}')),
                calls(call(0, "b", "f", '{"n":2}')),
                chunk({}, "tool_calls"),
            ]
        )
        self.assertEqual([(i["call_id"], i["arguments"]) for i in doneItems(events)],
                         [("a", '{"n":1}'), ("b", '{"n":2}')])

    def test_idOnLaterChunk(self) -> None:
        """
        A call first seen by index without id, then with an id at the same
        index, is one call (the generated call id is kept).
        """
        events, _, _ = run(
            [
                calls(call(0, None, "f", '{"a":')),
                calls(call(0, "late", None, "1}")),
                chunk({}, "tool_calls"),
            ]
        )
        items = doneItems(events)
        self.assertEqual(len(items), 1)
        self.assertEqual(items[0]["arguments"], '{"a":1}')

    def test_noIndexContinuesLastCall(self) -> None:
        """
        Chunks with neither index nor id continue the latest call; a chunk with
        only an id continues the call with that id.
        """
        events, _, _ = run(
            [
                calls(call(None, "a", "f", "")),
                calls(call(None, None, None, '{"k":')),
                calls(call(None, "a", None, '"v"}')),
                chunk({}, "tool_calls"),
            ]
        )
        items = doneItems(events)
        self.assertEqual([(i["call_id"], i["arguments"]) for i in items], [("a", '{"k":"v"}')])

    def test_argumentsBeforeName(self) -> None:
        """
        Arguments that arrive before the name are held; the item opens once
        the name is known, with every argument delta.
        """
        events, _, _ = run(
            [
                calls(call(0, "c", None, '{"a":')),
                calls(call(0, None, "f", "1}")),
                chunk({}, "tool_calls"),
            ]
        )
        self.assertEqual(doneItems(events)[0]["arguments"], '{"a":1}')

    def test_namelessCallDropped(self) -> None:
        """
        A call that never gets a name is not sent.
        """
        events, _, _ = run([calls(call(0, "c", None, "{}")), chunk({}, "tool_calls")])
        self.assertEqual(doneItems(events), [])

    def test_argumentsAsObject(self) -> None:
        """
        Arguments sent as a JSON object (not a string) are serialised.
        """
        events, _, _ = run(
            [chunk({"tool_calls": [{"id": "c", "function": {"name": "f",
                                                               "arguments": {"x": [1]}}}]}),
             chunk({}, "tool_calls")]
        )
        self.assertEqual(json.loads(doneItems(events)[0]["arguments"]), {"x": [1]})

    def test_legacyFunctionCall(self) -> None:
        """
        The legacy C{delta.function_call} form becomes a function_call item.
        """
        events, _, _ = run(
            [
                chunk({"function_call": {"name": "f", "arguments": ""}}),
                chunk({"function_call": {"arguments": '{"a":1}'}}),
                chunk({}, "function_call"),
            ]
        )
        item = doneItems(events)[0]
        self.assertEqual((item["name"], item["arguments"]), ("f", '{"a":1}'))
        self.assertEqual(terminal(events)["status"], "completed")

    def test_functionCallBesideToolCalls(self) -> None:
        """
        llama-cpp-python puts the same call in C{function_call} and C{tool_calls[0]}
        of every chunk: it is one call, with its arguments once (valid JSON).
        """
        pieces = ['{"cmd": ', '"ls -la"', "}"]
        chunks: list[Any] = [chunk({"role": "assistant", "content": None})]
        for piece in pieces:
            chunks.append(chunk({
                "content": None,
                "function_call": {"name": "exec_command", "arguments": piece},
                "tool_calls": [{"index": 0, "id": "call__0_exec_command_cmpl-1",
                                "type": "function",
                                "function": {"name": "exec_command", "arguments": piece}}],
            }))
        chunks += [chunk({}, "tool_calls"), usageChunk()]
        events, data, _ = run(chunks, end=False)
        (item,) = doneItems(events)
        self.assertEqual(
            (item["name"], item["call_id"], item["arguments"]),
            ("exec_command", "call__0_exec_command_cmpl-1", '{"cmd": "ls -la"}'),
        )
        deltas = [e["delta"] for e in events
                  if e["type"] == "response.function_call_arguments.delta"]
        self.assertEqual(deltas, pieces)
        self.assertSDKAgrees(events, data)

    def test_functionCallAloneCounts(self) -> None:
        """
        C{function_call} with no C{tool_calls} (or an empty list) beside it is a call.
        """
        events, _, _ = run([
            chunk({"function_call": {"name": "f", "arguments": '{"a":'}, "tool_calls": []}),
            chunk({"function_call": {"arguments": "1}"}, "tool_calls": None}),
            chunk({}, "function_call"),
        ])
        (item,) = doneItems(events)
        self.assertEqual((item["name"], item["arguments"]), ("f", '{"a":1}'))

    def test_textThenCallsThenText(self) -> None:
        """
        Items close when the stream moves on: the message closes before the
        calls open, the calls close before the next message opens.
        """
        events, data, _ = run(
            [text("I will look."), calls(call(0, "a", "f", "{}")),
             calls(call(1, "b", "g", "{}")), text("Done."), chunk({}, "stop")]
        )
        opened = [s for s in shape(events) if s[0].startswith("response.output_item")]
        self.assertEqual(
            opened,
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
        ctx = context(tools={
            "mcp__server__lookup": ToolTarget("function", "lookup", "mcp__server__"),
        })
        events, data, _ = run(
            [calls(call(0, "c", "mcp__server__lookup", '{"q":"x"}')), chunk({}, "tool_calls")],
            ctx,
        )
        added = events[2]["item"]
        done = doneItems(events)[0]
        for item in (added, done):
            self.assertEqual(item["name"], "lookup")
            self.assertEqual(item["namespace"], "mcp__server__")
        self.assertSDKAgrees(events, data)

    def test_unknownToolName(self) -> None:
        """
        A name not in the context comes back as a function_call under that name.
        """
        ctx = context(tools={"known": ToolTarget("function", "known")})
        events, _, _ = run([calls(call(0, "c", "other", "{}")), chunk({}, "tool_calls")],
                            ctx)
        self.assertEqual(doneItems(events)[0]["name"], "other")
        self.assertNotIn("namespace", doneItems(events)[0])

    def test_customTool(self) -> None:
        """
        A call to a converted custom tool is a custom_tool_call whose input is
        the C{input} argument, streamed as it is decoded (escapes split across
        chunks included).
        """
        ctx = context(tools={"apply_patch": ToolTarget("custom", "apply_patch")})
        patch = "*** Begin Patch\n*** Add File: a.txt\n+h\u00e9 \"q\" \U0001f600\n*** End Patch\n"
        arguments = json.dumps({"input": patch})
        pieces = [arguments[i:i + 5] for i in range(0, len(arguments), 5)]
        chunks = [calls(call(0, "c", "apply_patch", ""))]
        chunks += [calls(call(0, None, None, piece)) for piece in pieces]
        chunks.append(chunk({}, "tool_calls"))
        events, data, _ = run(chunks, ctx)
        added = events[2]["item"]
        self.assertEqual(added, {"id": "ctc_1", "type": "custom_tool_call", "call_id": "c",
                                 "name": "apply_patch", "input": ""})
        deltas = [e["delta"] for e in events
                  if e["type"] == "response.custom_tool_call_input.delta"]
        self.assertGreater(len(deltas), 5)
        self.assertEqual("".join(deltas), patch)
        inputDone = [e for e in events if e["type"] == "response.custom_tool_call_input.done"]
        self.assertEqual(inputDone[0]["input"], patch)
        self.assertEqual(doneItems(events)[0]["input"], patch)
        self.assertSDKAgrees(events, data)

    def test_customToolRawInput(self) -> None:
        """
        When the arguments are not C{{"input": ...}}, the raw text is the
        input: plain text streams as it comes, other JSON is sent at close.
        """
        ctx = context(tools={"apply_patch": ToolTarget("custom", "apply_patch")})
        events, _, _ = run(
            [calls(call(0, "c", "apply_patch", "*** Begin")),
             calls(call(0, None, None, " Patch\n")), chunk({}, "tool_calls")],
            ctx,
        )
        self.assertEqual(doneItems(events)[0]["input"], "*** Begin Patch\n")
        self.assertEqual(
            [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"],
            ["*** Begin", " Patch\n"],
        )
        events, _, _ = run(
            [calls(call(0, "c", "apply_patch", '{"patch": "x"}')), chunk({}, "tool_calls")],
            ctx,
        )
        self.assertEqual(doneItems(events)[0]["input"], '{"patch": "x"}')
        events, _, _ = run(
            [calls(call(0, "c", "apply_patch", '{"input": "x", "extra": 1}')),
             chunk({}, "tool_calls")],
            ctx,
        )
        self.assertEqual(doneItems(events)[0]["input"], "x")

    def test_customToolInNamespace(self) -> None:
        """
        A custom tool inside a namespace keeps its namespace.
        """
        ctx = context(tools={"ns__edit": ToolTarget("custom", "edit", "ns")})
        events, _, _ = run([calls(call(0, "c", "ns__edit", '{"input":"x"}')),
                             chunk({}, "tool_calls")], ctx)
        item = doneItems(events)[0]
        self.assertEqual((item["type"], item["name"], item["namespace"], item["input"]),
                         ("custom_tool_call", "edit", "ns", "x"))

    def test_localShell(self) -> None:
        """
        A call to C{local_shell} becomes a local_shell_call with its action.
        """
        ctx = context(tools={"local_shell": ToolTarget("local_shell", "local_shell")})
        arguments = json.dumps({"command": ["ls", "-l"], "working_directory": "/tmp",
                                "timeout_ms": 5000})
        events, data, _ = run(
            [calls(call(0, "c", "local_shell", arguments[:10])),
             calls(call(0, None, None, arguments[10:])), chunk({}, "tool_calls")],
            ctx,
        )
        added = events[2]["item"]
        self.assertEqual(added["type"], "local_shell_call")
        self.assertEqual(added["status"], "in_progress")
        item = doneItems(events)[0]
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
        ctx = context(tools={"local_shell": ToolTarget("local_shell", "local_shell")})
        events, _, _ = run([calls(call(0, "c", "local_shell", '{"command":"ls | wc"}')),
                             chunk({}, "tool_calls")], ctx)
        self.assertEqual(doneItems(events)[0]["action"]["command"], ["bash", "-lc", "ls | wc"])

    def test_repeatedIdGetsFreshCallId(self) -> None:
        """
        An upstream id used again by a later call in the same response (after
        text moved the stream on) gets a generated call id: call ids stay
        unique within a response.
        """
        events, data, _ = run(
            [calls(call(0, "call_0", "f", "{}")), text("and"),
             calls(call(0, "call_0", "g", "{}")), chunk({}, "tool_calls")]
        )
        items = [i for i in doneItems(events) if i["type"] == "function_call"]
        self.assertEqual([(i["name"], i["call_id"]) for i in items],
                         [("f", "call_0"), ("g", "call_1")])
        self.assertSDKAgrees(events, data)

    def test_customToolUnterminatedInput(self) -> None:
        """
        C{{"input":"...} that never closes (on a normal stop) gives the decoded
        string, the same text its deltas showed.
        """
        ctx = context(tools={"apply_patch": ToolTarget("custom", "apply_patch")})
        events, _, _ = run(
            [calls(call(0, "c", "apply_patch", '{"input": "*** Begin Patch\\n')),
             calls(call(0, None, None, "*** End Patch")), chunk({}, "tool_calls")],
            ctx,
        )
        self.assertEqual(doneItems(events)[0]["input"], "*** Begin Patch\n*** End Patch")
        events, _, _ = run(
            [calls(call(0, "c", "apply_patch", '{"input": "x"} trailing')),
             chunk({}, "tool_calls")],
            ctx,
        )
        self.assertEqual(doneItems(events)[0]["input"], "x")


class FinishTests(SDKAgreementMixin, SynchronousTestCase):
    """
    finish_reason, usage, the terminal event, cut-off streams and errors.
    """

    def test_stepReportsTail(self) -> None:
        """
        The payload carrying C{finish_reason} reports C{tailStarted} (items closed,
        the terminal event waiting for usage); the usage chunk then reports C{done}
        with the terminal event; later calls return nothing.
        """
        stream = newStream()
        stream.start()
        step = stream.feed(payload(text("x")))
        self.assertEqual((step.tailStarted, step.done), (False, False))
        self.assertIn(b"response.output_text.delta", step.events)
        step = stream.feed(payload(chunk({}, "stop")))
        self.assertEqual((step.tailStarted, step.done), (True, False))
        self.assertFalse(stream.done)
        self.assertIn(b"response.output_item.done", step.events)
        self.assertNotIn(b"response.completed", step.events)
        step = stream.feed(payload(usageChunk(4, 2)))
        self.assertEqual((step.tailStarted, step.done), (False, True))
        self.assertTrue(stream.done)
        self.assertIn(b"response.completed", step.events)
        self.assertEqual(stream.response["usage"]["total_tokens"], 6)
        step = stream.feed(b"[DONE]")
        self.assertEqual((step.events, step.tailStarted, step.done), (b"", False, True))
        self.assertEqual(stream.end(), b"")

    def test_stepTailOnlyOnce(self) -> None:
        """
        Only the payload with the first C{finish_reason} reports C{tailStarted}; a
        finish with usage in the same payload reports C{done} instead.
        """
        stream = newStream()
        self.assertTrue(stream.feed(payload(chunk({}, "stop"))).tailStarted)
        self.assertFalse(stream.feed(payload(chunk({}, "stop"))).tailStarted)
        self.assertFalse(stream.feed(payload(text("late"))).tailStarted)
        stream = newStream()
        step = stream.feed(payload(chunk({"content": "x"}, "stop", usage={"prompt_tokens": 1})))
        self.assertEqual((step.tailStarted, step.done), (False, True))
        joined = b"\n".join([payload(chunk({}, "stop")), b"[DONE]"])
        step = newStream().feed(joined)
        self.assertEqual((step.tailStarted, step.done), (False, True))

    def test_usageInFinishChunk(self) -> None:
        """
        Usage in the same chunk as C{finish_reason} ends the stream at once.
        """
        stream = newStream()
        stream.start()
        out = stream.feed(payload(chunk({"content": "x"}, "stop",
                                              usage={"prompt_tokens": 1,
                                                     "completion_tokens": 1}))).events
        self.assertTrue(stream.done)
        self.assertIn(b"response.completed", out)

    def test_usageInChoice(self) -> None:
        """
        Moonshot puts usage inside the choice.
        """
        finishChunk = chunk({}, "stop")
        finishChunk["choices"][0]["usage"] = {"prompt_tokens": 2, "completion_tokens": 3,
                                        "total_tokens": 5, "cached_tokens": 1}
        events, _, stream = run([text("x"), finishChunk], end=False)
        self.assertTrue(stream.done)
        usage = terminal(events)["usage"]
        self.assertEqual((usage["total_tokens"], usage["input_tokens_details"]["cached_tokens"]),
                         (5, 1))

    def test_noDoneMarker(self) -> None:
        """
        No usage and no C{[DONE]}: EOF (C{end}) produces the terminal event,
        with C{usage: null}.
        """
        events, data, _ = run([text("x"), chunk({}, "stop")])
        self.assertEqual(events[-1]["type"], "response.completed")
        self.assertIsNone(terminal(events)["usage"])
        self.assertSDKAgrees(events, data)

    def test_doneMarker(self) -> None:
        """
        C{[DONE]} after C{finish_reason} ends the stream; later data is ignored.
        """
        stream = newStream()
        out = stream.start() + stream.feed(payload(chunk({}, "stop"))).events
        out += stream.feed(b"[DONE]").events
        self.assertTrue(stream.done)
        self.assertEqual(stream.feed(payload(text("late"))).events, b"")
        self.assertEqual(stream.keepAlive(), b"")
        self.assertEqual(stream.fail("server_error", "x"), b"")
        self.assertEqual(validateEvents(out)[-1]["type"], "response.completed")

    def test_doneWithoutFinish(self) -> None:
        """
        C{[DONE]} with no C{finish_reason} is a cut-off reply: failed.
        """
        events, _, _ = run([text("x"), b"[DONE]"], end=False)
        self.assertEqual(events[-1]["type"], "response.failed")
        self.assertEqual(terminal(events)["error"]["code"], "server_error")

    def test_length(self) -> None:
        """
        C{length}: text closes with what arrived (status incomplete), a call
        with valid JSON is kept, one with broken JSON is dropped, the terminal
        is C{response.incomplete} with reason C{max_output_tokens}.
        """
        events, _, _ = run(
            [
                calls(call(0, "a", "f", '{"ok":true}')),
                calls(call(1, "b", "g", '{"cut":')),
                chunk({}, "length"),
                usageChunk(),
            ],
            end=False,
        )
        self.assertEqual(events[-1]["type"], "response.incomplete")
        response = terminal(events)
        self.assertEqual(response["status"], "incomplete")
        self.assertEqual(response["incomplete_details"], {"reason": "max_output_tokens"})
        self.assertEqual([i["call_id"] for i in response["output"]], ["a"])
        dropped = [e for e in events if e.get("item_id") == "fc_2" or
                   e.get("item", {}).get("id") == "fc_2"]
        self.assertEqual(types(dropped), ["response.output_item.added",
                                           "response.function_call_arguments.delta"])

        events, _, _ = run([chunk({"reasoning_content": "r"}), text("partial"),
                             chunk({}, "length")])
        items = doneItems(events)
        self.assertEqual(items[1]["content"][0]["text"], "partial")
        self.assertEqual(items[1]["status"], "incomplete")
        self.assertEqual(events[-1]["type"], "response.incomplete")

    def test_contentFilter(self) -> None:
        """
        C{content_filter}: incomplete, reason C{content_filter}.
        """
        events, _, _ = run([text("x"), chunk({}, "content_filter")])
        self.assertEqual(events[-1]["type"], "response.incomplete")
        self.assertEqual(terminal(events)["incomplete_details"], {"reason": "content_filter"})

    def test_unknownFinishReason(self) -> None:
        """
        Unknown finish reasons are C{stop}.
        """
        for reason in ("end_turn", "eos", "stop_sequence", "tool_call"):
            events, _, _ = run([text("x"), chunk({}, reason)])
            self.assertEqual(events[-1]["type"], "response.completed", reason)

    def test_finishReasonError(self) -> None:
        """
        C{finish_reason: "error"} fails the stream at once; the open call is
        not closed.
        """
        events, _, stream = run([calls(call(0, "c", "f", '{"a":')), chunk({}, "error")],
                                 end=False)
        self.assertTrue(stream.done)
        self.assertEqual(events[-1]["type"], "response.failed")
        self.assertEqual(terminal(events)["error"]["code"], "server_error")
        self.assertEqual(doneItems(events), [])

    def test_errorObjectInStream(self) -> None:
        """
        An C{{"error": ...}} chunk fails the stream with the mapped code;
        open items are not closed; closed ones stay in the output.
        """
        error = {"error": {"message": "This model's maximum context length is 8192 tokens",
                           "type": "invalid_request_error", "code": None}}
        events, _, stream = run(
            [chunk({"reasoning_content": "r"}), text("x"),
             calls(call(0, "c", "f", '{"a":')), error],
            end=False,
        )
        self.assertTrue(stream.done)
        self.assertEqual(events[-1]["type"], "response.failed")
        response = terminal(events)
        self.assertEqual(response["error"]["code"], "context_length_exceeded")
        self.assertIn("maximum context length", response["error"]["message"])
        self.assertEqual([i["type"] for i in response["output"]], ["reasoning", "message"])
        self.assertNotIn("function_call", [i["type"] for i in doneItems(events)])

    def test_openRouterMidStreamError(self) -> None:
        """
        OpenRouter's mid-stream error chunk (error plus C{finish_reason:
        "error"}) fails with the error's message.
        """
        errorChunk = chunk({"content": ""}, "error")
        errorChunk["error"] = {"code": 502, "message": "Provider disconnected"}
        events, _, _ = run([text("x"), errorChunk], end=False)
        self.assertEqual(terminal(events)["error"],
                         {"code": "server_error", "message": "Provider disconnected"})

    def test_topLevelErrorObject(self) -> None:
        """
        vLLM (before 0.9) streams its error as a top-level C{ErrorResponse}
        (C{"object": "error"}, no C{error} key): it fails the stream with its
        message and mapped code, in a stream or as a whole reply.
        """
        error = {"object": "error", "message": "Engine loop has died",
                 "type": "InternalServerError", "param": None, "code": 500}
        events, _, _ = run([text("x"), error, chunk({"content": "y"}, "stop")], end=False)
        self.assertEqual(terminal(events)["error"],
                         {"code": "server_error", "message": "Engine loop has died"})
        overloaded = dict(error, message="server overloaded", code=503)
        events = validateEvents(newStream().feedCompletion(overloaded))
        self.assertEqual(terminal(events)["error"]["code"], "server_is_overloaded")

    def test_truncated(self) -> None:
        """
        The stream ends with no C{finish_reason}: failed (C{server_error}),
        the half-received call and the open message are not closed.
        """
        events, _, _ = run([text("x"), calls(call(0, "c", "f", '{"a":'))])
        self.assertEqual(events[-1]["type"], "response.failed")
        self.assertEqual(terminal(events)["error"]["code"], "server_error")
        self.assertEqual([i["type"] for i in doneItems(events)], ["message"])
        events, _, _ = run([text("x")])
        self.assertEqual(doneItems(events), [])
        self.assertEqual(terminal(events)["output"], [])

    def test_emptyStream(self) -> None:
        """
        A stream that ends (EOF or C{[DONE]}) without a single data event
        (llama-cpp-python answers 200, then raises) fails saying so, not "cut off".
        """
        for payloads in ([], [b"[DONE]"]):
            events, _, _ = run(payloads)
            self.assertEqual(types(events), ["response.created", "response.in_progress",
                                             "response.failed"])
            self.assertEqual(
                terminal(events)["error"],
                {"code": "server_error",
                 "message": "upstream closed the stream without sending any data"},
            )

    def test_dataThenCut(self) -> None:
        """
        Data, even data that could not be read, then the end without a
        C{finish_reason}: the reply was cut off.
        """
        for payloads in ([text("x")], [b"<html>"], [chunk({"role": "assistant"}), b"[DONE]"]):
            events, _, _ = run(payloads)
            message = terminal(events)["error"]["message"]
            self.assertIn("cut off", message, payloads)
            self.assertNotIn("without sending any data", message)

    def test_fail(self) -> None:
        """
        C{fail} ends the stream with the given code and message, leaving open
        items open; afterwards everything returns C{b""}.
        """
        stream = newStream()
        out = stream.start() + stream.feed(payload(text("x"))).events
        out += stream.fail("server_error", "upstream idle for 300 s")
        events = validateEvents(out)
        self.assertEqual(terminal(events)["error"],
                         {"code": "server_error", "message": "upstream idle for 300 s"})
        self.assertEqual(doneItems(events), [])
        for method in (stream.end, stream.keepAlive, stream.start):
            self.assertEqual(method(), b"")
        self.assertEqual(stream.fail("server_error", "again"), b"")
        self.assertEqual(stream.feed(payload(text("y"))), Step(b"", False, True))

    def test_failBeforeStart(self) -> None:
        """
        C{fail} as the first call still sends created and in_progress first.
        """
        events = validateEvents(newStream().fail("server_error", "reset"))
        self.assertEqual(types(events), ["response.created", "response.in_progress",
                                          "response.failed"])

    def test_failWithCodexCode(self) -> None:
        """
        Codex-only codes pass through (the SDK check swaps them for
        validation only).
        """
        events = validateEvents(newStream().fail("server_is_overloaded", "busy"))
        self.assertEqual(terminal(events)["error"]["code"], "server_is_overloaded")

    def test_eventsAfterFinish(self) -> None:
        """
        Deltas after C{finish_reason} are still converted and closed with the
        terminal event.
        """
        events, _, _ = run([text("a"), chunk({}, "stop"), text("b"), usageChunk()],
                            end=False)
        self.assertEqual([i["content"][0]["text"] for i in doneItems(events)], ["a", "b"])

    def test_terminalOnce(self) -> None:
        """
        Exactly one terminal event, always last, whatever is called after.
        """
        stream = newStream()
        out = stream.start() + stream.feed(payload(chunk({}, "stop"))).events
        out += stream.end() + stream.end() + stream.feed(b"[DONE]").events
        out += stream.fail("server_error", "x") + stream.keepAlive()
        events = validateEvents(out)
        self.assertEqual(sum(e["type"].startswith("response.c") and e["type"] != "response.created"
                             or e["type"] in ("response.failed", "response.incomplete")
                             for e in events), 1)


class _TextPiece:
    def __init__(self, text: str) -> None:
        self.text = text


class _CallPiece:
    def __init__(self, name: str, arguments: str) -> None:
        self.name = name
        self.arguments = arguments
        self.format = "toy"


class _BracketCalls:
    """
    A toy content filter: C{[[name {json}]]} is a call; text that may begin one is
    held; plain text comes back as C{str} or L{_TextPiece}, alternately.
    """

    def __init__(self) -> None:
        self.held = ""
        self.finished = 0
        self._plain = False

    def _text(self, value: str) -> Any:
        self._plain = not self._plain
        return value if self._plain else _TextPiece(value)

    def feed(self, value: str) -> list[Any]:
        value = self.held + value
        self.held = ""
        pieces: list[Any] = []
        while value:
            start = value.find("[[")
            if start < 0:
                if value.endswith("["):
                    self.held = "["
                    value = value[:-1]
                if value:
                    pieces.append(self._text(value))
                break
            if start:
                pieces.append(self._text(value[:start]))
            end = value.find("]]", start)
            if end < 0:
                self.held = value[start:]
                break
            name, _, arguments = value[start + 2 : end].partition(" ")
            pieces.append(_CallPiece(name, arguments))
            value = value[end + 2 :]
        return pieces

    def finish(self) -> list[Any]:
        self.finished += 1
        held, self.held = self.held, ""
        return [_TextPiece(held)] if held else []


def _filtered(chunks: list[Any], ctx: BridgeContext | None = None):
    """
    Run payloads through a state machine with the toy content filter; return
    (events, bytes, filter).
    """
    ctx = ctx or context()
    writer = EventWriter(ResponseHead(ctx, RESPONSE_ID, CREATED))
    contentFilter = _BracketCalls()
    machine = ReplyMachine(ctx, writer, Ids(), contentFilter=contentFilter)
    writer.start()
    for item in chunks:
        machine.feedPayload(payload(item))
    machine.end()
    data = writer.take()
    return validateEvents(data), data, contentFilter


class ContentFilterTests(SDKAgreementMixin, SynchronousTestCase):
    """
    The content-filter hook after the C{<think>} filter (bridge-spec section 6):
    text pieces go to the message, call pieces become whole tool call items.
    """

    def test_callBetweenText(self) -> None:
        """
        The message closes before a call found in the text; the call is one whole
        item (added, arguments, done); the text after it opens a new message.
        """
        events, data, _ = _filtered([
            text("<think>plan</think>Let me look. [[read_file {\"p\""),
            text(':"a"}]] Done.'),
            chunk({}, "stop"),
            usageChunk(),
        ])
        self.assertEqual(
            [s for s in shape(events) if not s[0].endswith(".delta")],
            [
                ("response.created", None, None),
                ("response.in_progress", None, None),
                ("response.output_item.added", 0, "rs_1"),
                ("response.reasoning_summary_part.added", 0, "rs_1"),
                ("response.reasoning_summary_text.done", 0, "rs_1"),
                ("response.reasoning_summary_part.done", 0, "rs_1"),
                ("response.output_item.done", 0, "rs_1"),
                ("response.output_item.added", 1, "msg_1"),
                ("response.content_part.added", 1, "msg_1"),
                ("response.output_text.done", 1, "msg_1"),
                ("response.content_part.done", 1, "msg_1"),
                ("response.output_item.done", 1, "msg_1"),
                ("response.output_item.added", 2, "fc_1"),
                ("response.function_call_arguments.done", 2, "fc_1"),
                ("response.output_item.done", 2, "fc_1"),
                ("response.output_item.added", 3, "msg_2"),
                ("response.content_part.added", 3, "msg_2"),
                ("response.output_text.done", 3, "msg_2"),
                ("response.content_part.done", 3, "msg_2"),
                ("response.output_item.done", 3, "msg_2"),
                ("response.completed", None, None),
            ],
        )
        items = doneItems(events)
        self.assertEqual(items[1]["content"][0]["text"], "Let me look. ")
        self.assertEqual((items[2]["name"], items[2]["arguments"], items[2]["call_id"]),
                         ("read_file", '{"p":"a"}', "call_1"))
        self.assertEqual(items[3]["content"][0]["text"], " Done.")
        self.assertSDKAgrees(events, data)

    def test_heldTextReleasedAtFinish(self) -> None:
        """
        Text the filter holds is released as message text when the reply finishes.
        """
        events, _, contentFilter = _filtered([text("a ["), chunk({}, "stop")])
        self.assertEqual([i["content"][0]["text"] for i in doneItems(events)], ["a ["])
        self.assertGreater(contentFilter.finished, 0)

    def test_heldTextReleasedBeforeStructuredCalls(self) -> None:
        """
        Structured C{tool_calls} interrupt the text: what the filter held comes
        out first, in its message, before the call item.
        """
        events, _, _ = _filtered([text("x [[unfinished"), calls(call(0, "c", "f", "{}")),
                                  chunk({}, "tool_calls")])
        items = doneItems(events)
        self.assertEqual([i["type"] for i in items], ["message", "function_call"])
        self.assertEqual(items[0]["content"][0]["text"], "x [[unfinished")

    def test_callMapsLikeStructuredCalls(self) -> None:
        """
        A call piece names the chat-side function: custom and namespace tools map
        back as structured calls do; whitespace before it opens no message.
        """
        ctx = context(tools={"apply_patch": ToolTarget("custom", "apply_patch"),
                             "ns__g": ToolTarget("function", "g", "ns")})
        events, data, _ = _filtered(
            [text("\n\n[[apply_patch {\"input\":\"P\"}]][[ns__g ]]"), chunk({}, "stop")], ctx)
        custom, function = doneItems(events)
        self.assertEqual((custom["type"], custom["input"]), ("custom_tool_call", "P"))
        self.assertEqual((function["name"], function["namespace"], function["arguments"]),
                         ("g", "ns", "{}"))
        self.assertSDKAgrees(events, data)


class CodexShapeTests(SynchronousTestCase):
    """
    What Codex 0.169 parses (codex-wire.md section 3.2).
    """

    def test_itemsParseAsCodexWants(self) -> None:
        """
        Done items carry exactly the fields Codex requires per type.
        """
        ctx = context(tools={"apply_patch": ToolTarget("custom", "apply_patch")})
        events, _, _ = run(
            [chunk({"reasoning_content": "r"}), text("t"),
             calls(call(0, "a", "exec_command", "{}")),
             calls(call(1, "b", "apply_patch", '{"input":"x"}')), chunk({}, "tool_calls"),
             usageChunk()],
            ctx, end=False,
        )
        required = {
            "reasoning": {"summary"},
            "message": {"role", "content"},
            "function_call": {"name", "arguments", "call_id"},
            "custom_tool_call": {"call_id", "name", "input"},
        }
        for item in doneItems(events):
            self.assertTrue(required[item["type"]] <= set(item), item)
            if item["type"] == "message":
                self.assertEqual({p["type"] for p in item["content"]}, {"output_text"})
        usage = terminal(events)["usage"]
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            self.assertIsInstance(usage[key], int)
        self.assertTrue(re.match(r"^resp_", terminal(events)["id"]))


class FuzzTests(SDKAgreementMixin, SynchronousTestCase):
    """
    Seeded random streams of odd chunks: never an exception, always a valid
    event stream with one terminal event.
    """

    def test_fuzz(self) -> None:
        """
        Hundreds of seeded random streams all give valid event streams.
        """
        import random

        ctx = context(tools={
            "apply_patch": ToolTarget("custom", "apply_patch"),
            "local_shell": ToolTarget("local_shell", "local_shell"),
            "ns__g": ToolTarget("function", "g", "ns"),
        })
        completed = 0
        for seed in range(SEEDS):
            rng = random.Random(seed)
            stream = newStream(ctx)
            out = stream.start()
            for _ in range(rng.randrange(1, 40)):
                item = randomChunk(rng)
                out += stream.feed(payload(item)).events
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
