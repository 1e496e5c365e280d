# -*- test-case-name: tests.test_bridge_events -*-
"""
Responses SSE events: what the item state machine reports, written as event bytes.

L{EventWriter} is the streaming sink of L{responses_proxy.bridge.stream.ReplyMachine}:
each happening (an item added, a delta, an item done, the terminal event) becomes the
events bridge-spec.md section 2 lists for it, valid against the OpenAI SDK's
C{ResponseStreamEvent} types. Every event goes through L{EventWriter._emit}, the only
place C{sequence_number} advances. Deltas, the common case, are written from per-item
byte templates with only the delta text JSON-encoded.

L{ResponseHead} builds the response object that C{response.created}, the keep-alive
C{response.in_progress} and the terminal event carry, and that a whole reply returns.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

from responses_proxy.bridge.chunks import fixSurrogates
from responses_proxy.bridge.context import BridgeContext

__all__ = [
    "EventWriter",
    "ResponseHead",
]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode

_OWN_FIELDS = frozenset(
    {
        "id",
        "object",
        "created_at",
        "status",
        "error",
        "incomplete_details",
        "model",
        "output",
        "usage",
    }
)


def _dumps(value: object) -> bytes:
    """
    Compact JSON in UTF-8, never failing on lone surrogates.
    """
    text = _encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return fixSurrogates(text).encode("utf-8")


def _jsonString(text: str) -> bytes:
    """
    One string as a JSON literal in UTF-8, lone surrogates replaced.
    """
    try:
        return encode_basestring(text).encode("utf-8")
    except UnicodeEncodeError:
        return encode_basestring(fixSurrogates(text)).encode("utf-8")


_heads: dict[str, bytes] = {}


def _head(eventType: str) -> bytes:
    """
    The constant start of a serialised event, up to its sequence number.
    """
    head = _heads.get(eventType)
    if head is None:
        name = eventType.encode()
        head = _heads[eventType] = b'event: %s\ndata: {"type":"%s","sequence_number":' % (
            name,
            name,
        )
    return head


_HEAD_TEXT_DELTA = _head("response.output_text.delta")
_HEAD_SUMMARY_DELTA = _head("response.reasoning_summary_text.delta")
_HEAD_ARGS_DELTA = _head("response.function_call_arguments.delta")
_HEAD_INPUT_DELTA = _head("response.custom_tool_call_input.delta")
_HEAD_IN_PROGRESS = _head("response.in_progress")
_TAIL = b"}\n\n"
_TAIL_TEXT_DELTA = b',"logprobs":[]}\n\n'
_TAIL_FIELDS = b"\n\n"
_FIELDS = b","
_IN_PROGRESS_MIDDLE = b',"response":'


class ResponseHead:
    """
    The facts every response object of one response repeats.

    @ivar responseId: the C{resp_...} id.
    @ivar createdAt: the C{created_at} time.
    """

    __slots__ = ("responseId", "createdAt", "_model", "_echo")

    def __init__(self, context: BridgeContext, responseId: str, createdAt: int) -> None:
        self.responseId = responseId
        self.createdAt = createdAt
        self._model = context.model
        self._echo = context.echo

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        incompleteDetails: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """
        A whole Responses object with the request's echoed fields.

        The fields the SDK's type requires get defaults when the request did not
        give them (C{tools: []}, C{tool_choice: "auto"}, C{parallel_tool_calls: true}).
        """
        response: dict[str, Any] = {
            "id": self.responseId,
            "object": "response",
            "created_at": self.createdAt,
            "status": status,
            "error": error,
            "incomplete_details": incompleteDetails,
            "model": self._model,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }
        for key, value in self._echo.items():
            if key not in _OWN_FIELDS:
                response[key] = value
        return response


class _Slot:
    """
    The writer's state for one open item: its ids and its delta template.

    @ivar held: a high surrogate at the end of the last delta, held for the next one
        (an emoji whose two escapes came in two chunks).
    @ivar holds: whether lone surrogates are held (text and arguments) or replaced
        at once (custom tool input, decoded by the state machine).
    """

    __slots__ = ("itemId", "outputIndex", "head", "middle", "tail", "held", "holds")

    def __init__(
        self, itemId: str, outputIndex: int, head: bytes, middle: bytes, tail: bytes, holds: bool
    ) -> None:
        self.itemId = itemId
        self.outputIndex = outputIndex
        self.head = head
        self.middle = middle
        self.tail = tail
        self.held = ""
        self.holds = holds


def _surrogateSafe(slot: _Slot, text: str) -> bytes:
    """
    The slow path of a delta whose text has a lone surrogate: a high surrogate at
    the end is held for the next delta of the same item; other lone ones become
    U+FFFD.

    @return: the JSON literal to send, or C{b""} when nothing is left to send.
    """
    if slot.held:
        text = slot.held + text
        slot.held = ""
    if text and "\ud800" <= text[-1] <= "\udbff":
        slot.held = text[-1]
        text = text[:-1]
    if not text:
        return b""
    return encode_basestring(fixSurrogates(text)).encode("utf-8")


class EventWriter:
    """
    The sink that writes a reply as Responses SSE events.

    Events accumulate in L{out} until the driver takes them.

    @ivar out: serialised events not yet taken.
    @ivar started: C{response.created} has been written.
    @ivar tailStarted: a C{finish_reason} was reported and the terminal event waits;
        the driver reads and clears it.
    @ivar response: the terminal event's response object, once written.
    """

    def __init__(self, head: ResponseHead) -> None:
        self._head = head
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._inProgressJson: bytes | None = None
        self.out: list[bytes] = []
        self.started = False
        self.tailStarted = False
        self.response: dict[str, Any] | None = None

    def take(self) -> bytes:
        """
        The events written since the last call.
        """
        out = self.out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    # -- serialisation -------------------------------------------------------------

    def _emit(self, head: bytes, middle: bytes, body: bytes, tail: bytes) -> None:
        """
        Write one event with the next sequence number: the one place it advances.
        """
        seq = self._seq
        self._seq = seq + 1
        self.out.append(b"%s%d%s%s%s" % (head, seq, middle, body, tail))

    def _event(self, eventType: str, fields: dict[str, Any]) -> None:
        """
        Write one event of any type: C{type} and C{sequence_number}, then C{fields}.
        """
        self._emit(_head(eventType), _FIELDS, _dumps(fields)[1:], _TAIL_FIELDS)

    # -- the response --------------------------------------------------------------

    def start(self) -> None:
        """
        C{response.created} and C{response.in_progress}.
        """
        self.started = True
        self._event("response.created", {"response": self._head.response("in_progress", [])})
        self.inProgress()

    def inProgress(self) -> None:
        """
        A C{response.in_progress} event (the keep-alive), its response object
        serialised once per response.
        """
        if self._inProgressJson is None:
            self._inProgressJson = _dumps(self._head.response("in_progress", []))
        self._emit(_HEAD_IN_PROGRESS, _IN_PROGRESS_MIDDLE, self._inProgressJson, _TAIL)

    # -- the sink ------------------------------------------------------------------

    def itemAdded(self, outputIndex: int, item: dict[str, Any]) -> _Slot:
        """
        C{output_item.added}, and the part that reasoning and messages open with.

        @return: the slot the state machine hands back with the item's deltas.
        """
        self._event("response.output_item.added", {"output_index": outputIndex, "item": item})
        itemId = item["id"]
        kind = item["type"]
        middle = b',"item_id":%s,"output_index":%d' % (_jsonString(itemId), outputIndex)
        if kind == "reasoning":
            self._event(
                "response.reasoning_summary_part.added",
                {
                    "item_id": itemId,
                    "output_index": outputIndex,
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""},
                },
            )
            return _Slot(
                itemId,
                outputIndex,
                _HEAD_SUMMARY_DELTA,
                middle + b',"summary_index":0,"delta":',
                _TAIL,
                True,
            )
        if kind == "message":
            self._event(
                "response.content_part.added",
                {
                    "item_id": itemId,
                    "output_index": outputIndex,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                },
            )
            return _Slot(
                itemId,
                outputIndex,
                _HEAD_TEXT_DELTA,
                middle + b',"content_index":0,"delta":',
                _TAIL_TEXT_DELTA,
                True,
            )
        if kind == "custom_tool_call":
            return _Slot(
                itemId, outputIndex, _HEAD_INPUT_DELTA, middle + b',"delta":', _TAIL, False
            )
        # function_call; a local_shell_call gets no deltas.
        return _Slot(itemId, outputIndex, _HEAD_ARGS_DELTA, middle + b',"delta":', _TAIL, True)

    def delta(self, slot: _Slot, text: str) -> None:
        """
        One delta event of an open item (summary text, message text, arguments or
        custom tool input), from its template.
        """
        if slot.held:
            encoded = _surrogateSafe(slot, text)
        else:
            try:
                encoded = encode_basestring(text).encode("utf-8")
            except UnicodeEncodeError:
                if slot.holds:
                    encoded = _surrogateSafe(slot, text)
                else:
                    encoded = encode_basestring(fixSurrogates(text)).encode("utf-8")
        if encoded:
            self._emit(slot.head, slot.middle, encoded, slot.tail)

    def itemDone(self, slot: _Slot, item: dict[str, Any]) -> None:
        """
        The C{done} events of an item, its full text taken from C{item}, then
        C{output_item.done}; the item joins the response's output.
        """
        if slot.held:
            # No low half came: send U+FFFD, as the done text shows.
            slot.held = ""
            self._emit(slot.head, slot.middle, _jsonString("\ufffd"), slot.tail)
        itemId = slot.itemId
        index = slot.outputIndex
        kind = item["type"]
        if kind == "reasoning":
            part = item["summary"][0]
            self._event(
                "response.reasoning_summary_text.done",
                {
                    "item_id": itemId,
                    "output_index": index,
                    "summary_index": 0,
                    "text": part["text"],
                },
            )
            self._event(
                "response.reasoning_summary_part.done",
                {"item_id": itemId, "output_index": index, "summary_index": 0, "part": part},
            )
        elif kind == "message":
            part = item["content"][0]
            self._event(
                "response.output_text.done",
                {
                    "item_id": itemId,
                    "output_index": index,
                    "content_index": 0,
                    "text": part["text"],
                    "logprobs": [],
                },
            )
            self._event(
                "response.content_part.done",
                {"item_id": itemId, "output_index": index, "content_index": 0, "part": part},
            )
        elif kind == "function_call":
            self._event(
                "response.function_call_arguments.done",
                {"item_id": itemId, "output_index": index, "arguments": item["arguments"]},
            )
        elif kind == "custom_tool_call":
            self._event(
                "response.custom_tool_call_input.done",
                {"item_id": itemId, "output_index": index, "input": item["input"]},
            )
        self._output.append(item)
        self._event("response.output_item.done", {"output_index": index, "item": item})

    def awaitingTail(self) -> None:
        """
        A C{finish_reason} arrived: noted for the driver (it starts its tail timer).
        """
        self.tailStarted = True

    def terminal(
        self,
        status: str,
        usage: dict[str, Any] | None,
        error: dict[str, Any] | None,
        incompleteDetails: dict[str, Any] | None,
    ) -> None:
        """
        The one terminal event, C{response.<status>}, with the whole response.
        """
        response = self._head.response(status, self._output, usage, error, incompleteDetails)
        self.response = response
        self.tailStarted = False
        self._event("response." + status, {"response": response})
