"""
Tests for L{responses_proxy.bridge.events}: Responses SSE events from what the state
machine reports, with one sequence counter.

Streams are validated by L{tests.sdkcheck}; L{EventWriter} is also driven directly,
without a chat reply, to pin its own rules (templates, surrogates, the counter).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.events import EventWriter, ResponseHead
from tests.chatreply import (
    CREATED,
    RESPONSE_ID,
    SDKAgreementMixin,
    chunk,
    context,
    newStream,
    payload,
    run,
    terminal,
    text,
    usageChunk,
)
from tests.sdkcheck import SDKCheckError, parseEvents, validateEvents

FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.169.0"


class SerialisationTests(SDKAgreementMixin, SynchronousTestCase):
    """
    Event framing, sequence numbers, echoed fields, keep-alives.
    """

    def test_sequenceNumbers(self) -> None:
        """
        Sequence numbers count from 0 within each stream, across every kind of
        event and keep-alives; a second stream starts at 0 again.
        """
        stream = newStream()
        out = stream.start() + stream.keepAlive()
        out += stream.feed(payload(text("a"))).events
        out += stream.keepAlive()
        out += stream.feed(payload(chunk({}, "stop"))).events
        out += stream.keepAlive()
        out += stream.feed(b"[DONE]").events
        events = validateEvents(out)
        self.assertEqual([e["sequence_number"] for e in events], list(range(len(events))))
        self.assertEqual(validateEvents(newStream().start(), requireTerminal=False)[0]
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
        ctx = context(echo=echo)
        events, data, _ = run([text("hi"), chunk({}, "stop"), usageChunk()], ctx)
        for event in events:
            if "response" in event:
                for key, value in echo.items():
                    self.assertEqual(event["response"][key], value)
        self.assertSDKAgrees(events, data)

    def test_defaultEcho(self) -> None:
        """
        Without echoed fields the SDK-required ones get defaults.
        """
        events, _, _ = run([chunk({}, "stop")])
        response = terminal(events)
        self.assertEqual(response["tools"], [])
        self.assertEqual(response["tool_choice"], "auto")
        self.assertIs(response["parallel_tool_calls"], True)

    def test_serialisation(self) -> None:
        """
        Each event is C{event: <type>}, C{data: <compact json>}, blank line.
        """
        stream = newStream()
        out = stream.start() + stream.feed(payload(text("a b"))).events
        for block in out.split(b"\n\n")[:-1]:
            eventLine, dataLine = block.split(b"\n")
            self.assertTrue(eventLine.startswith(b"event: response."))
            self.assertTrue(dataLine.startswith(b"data: {\"type\":"))
            body = dataLine[len(b"data: "):]
            self.assertEqual(body, json.dumps(json.loads(body), ensure_ascii=False,
                                              separators=(",", ":")).encode())
        self.assertTrue(out.endswith(b"\n\n"))

    def test_keepAlive(self) -> None:
        """
        C{keepAlive} sends C{response.in_progress} with the next sequence number.
        """
        stream = newStream()
        stream.start()
        stream.feed(payload(text("x")))
        out = stream.keepAlive()
        (event,) = [body for _, body in parseEvents(out)]
        self.assertEqual(event["type"], "response.in_progress")
        self.assertEqual(event["sequence_number"], 5)
        self.assertEqual(event["response"]["status"], "in_progress")
        self.assertEqual(newStream().keepAlive().count(b"event: "), 2)

    def test_validatorCatchesBadStreams(self) -> None:
        """
        The shared validator rejects what Codex would mishandle.
        """
        stream = newStream()
        good = stream.start() + stream.feed(payload(text("x"))).events
        self.assertRaises(SDKCheckError, validateEvents, good)
        bad = good.replace(b'"sequence_number":3', b'"sequence_number":9')
        self.assertRaises(SDKCheckError, validateEvents, bad, requireTerminal=False)
        self.assertRaises(SDKCheckError, validateEvents, b"data: {}\n\n")


def _writer() -> EventWriter:
    writer = EventWriter(ResponseHead(context(), RESPONSE_ID, CREATED))
    writer.start()
    return writer


def _bodies(data: bytes) -> list[dict[str, Any]]:
    return [body for _, body in parseEvents(data)]


class WriterTests(SynchronousTestCase):
    """
    L{EventWriter} driven directly, as the state machine drives it.
    """

    def test_oneCounter(self) -> None:
        """
        Every kind of event (opening, keep-alive, added, delta, done, terminal)
        takes the next number from one counter.
        """
        writer = _writer()
        message = writer.itemAdded(0, {"id": "msg_1", "type": "message",
                                       "status": "in_progress", "role": "assistant",
                                       "content": []})
        writer.delta(message, "a")
        writer.inProgress()
        writer.delta(message, "b")
        part = {"type": "output_text", "text": "ab", "annotations": [], "logprobs": []}
        writer.itemDone(message, {"id": "msg_1", "type": "message", "status": "completed",
                                  "role": "assistant", "content": [part]})
        call = writer.itemAdded(1, {"id": "fc_1", "type": "function_call",
                                    "status": "in_progress", "call_id": "c", "name": "f",
                                    "arguments": ""})
        writer.delta(call, "{}")
        writer.itemDone(call, {"id": "fc_1", "type": "function_call", "status": "completed",
                               "call_id": "c", "name": "f", "arguments": "{}"})
        writer.terminal("completed", None, None, None)
        events = validateEvents(writer.take())
        self.assertEqual(len(events), 15)
        self.assertEqual([e["sequence_number"] for e in events], list(range(15)))
        self.assertEqual(writer.take(), b"")
        self.assertEqual(len(writer.response["output"]), 2)

    def test_templatesMatchSerialisation(self) -> None:
        """
        Deltas written from templates are byte for byte the compact JSON of the
        same fields, for every item kind and awkward text.
        """
        awkward = 'caf\u00e9 "q" \\\\ \n\t\x01 \u2028 \U0001f600 </script>'
        items = [
            ({"id": "rs_1", "type": "reasoning", "summary": []},
             "response.reasoning_summary_text.delta", {"summary_index": 0}, {}),
            ({"id": "msg_1", "type": "message", "status": "in_progress",
              "role": "assistant", "content": []},
             "response.output_text.delta", {"content_index": 0}, {"logprobs": []}),
            ({"id": "fc_1", "type": "function_call", "status": "in_progress",
              "call_id": "c", "name": "f", "arguments": ""},
             "response.function_call_arguments.delta", {}, {}),
            ({"id": "ctc_1", "type": "custom_tool_call", "call_id": "c", "name": "p",
              "input": ""},
             "response.custom_tool_call_input.delta", {}, {}),
        ]
        for index, (item, eventType, before, after) in enumerate(items):
            writer = _writer()
            slot = writer.itemAdded(index, item)
            writer.take()
            writer.delta(slot, awkward)
            data = writer.take()
            (body,) = _bodies(data)
            fields = {"type": eventType, "sequence_number": body["sequence_number"],
                      "item_id": item["id"], "output_index": index, **before,
                      "delta": awkward, **after}
            expected = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
            self.assertEqual(
                data, b"event: " + eventType.encode() + b"\ndata: " + expected.encode() + b"\n\n"
            )

    def test_splitSurrogateHeld(self) -> None:
        """
        A high surrogate at the end of a text delta waits for the next delta of the
        same item; one never completed is sent as U+FFFD before the C{done} events.
        """
        writer = _writer()
        slot = writer.itemAdded(0, {"id": "msg_1", "type": "message",
                                    "status": "in_progress", "role": "assistant",
                                    "content": []})
        writer.delta(slot, "a\ud83d")
        writer.delta(slot, "\ude00b")
        writer.delta(slot, "c\ud83d")
        part = {"type": "output_text", "text": "a\U0001f600bc\ufffd", "annotations": [],
                "logprobs": []}
        writer.itemDone(slot, {"id": "msg_1", "type": "message", "status": "completed",
                               "role": "assistant", "content": [part]})
        bodies = _bodies(writer.take())
        deltas = [b["delta"] for b in bodies if b["type"] == "response.output_text.delta"]
        self.assertEqual(deltas, ["a", "\U0001f600b", "c", "\ufffd"])
        self.assertEqual("".join(deltas), part["text"])

    def test_customInputSurrogateReplaced(self) -> None:
        """
        Custom tool input deltas (decoded by the state machine) replace a lone
        surrogate at once instead of holding it.
        """
        writer = _writer()
        slot = writer.itemAdded(0, {"id": "ctc_1", "type": "custom_tool_call",
                                    "call_id": "c", "name": "p", "input": ""})
        writer.take()
        writer.delta(slot, "x\ud83d")
        (body,) = _bodies(writer.take())
        self.assertEqual(body["delta"], "x\ufffd")

    def test_tailFlag(self) -> None:
        """
        C{awaitingTail} sets the flag the driver reads; the terminal event clears it.
        """
        writer = _writer()
        writer.awaitingTail()
        self.assertTrue(writer.tailStarted)
        writer.terminal("failed", None, {"code": "server_error", "message": "x"}, None)
        self.assertFalse(writer.tailStarted)
        self.assertEqual(writer.response["status"], "failed")


class ResponseHeadTests(SynchronousTestCase):
    """
    L{ResponseHead}: the response object every event and whole reply carries.
    """

    def test_ownFieldsWin(self) -> None:
        """
        Echoed request fields are repeated, but never replace the response's own
        fields (id, status, output, usage...).
        """
        head = ResponseHead(
            context(echo={"id": "x", "status": "x", "output": "x", "usage": "x",
                          "temperature": 0.5, "tool_choice": "required"}),
            RESPONSE_ID,
            CREATED,
        )
        response = head.response("completed", [], None)
        self.assertEqual((response["id"], response["status"], response["output"]),
                         (RESPONSE_ID, "completed", []))
        self.assertIsNone(response["usage"])
        self.assertEqual((response["temperature"], response["tool_choice"]), (0.5, "required"))
