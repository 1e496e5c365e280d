# -*- test-case-name: tests.test_bridge_stream -*-
"""
Chat Completions replies -> Responses items (bridge-spec.md section 2): the state machine.

L{ReplyMachine} reads a chat reply (payloads, parsed chunks or a whole completion,
through L{responses_proxy.bridge.chunks}) and decides what happens to the Responses
items: which item opens, which text goes where, when items close, how the response
ends. It reports each happening to a L{ReplySink} and is never inspected. Two sinks
exist: L{responses_proxy.bridge.events.EventWriter} writes SSE events (used by
L{ResponsesStream}, which the Twisted glue drives), and the collector in
L{responses_proxy.bridge.completion} keeps only the finished items, for a reply that
is returned whole.

Pure: no I/O, no timers, no logging. Decisions where the spec is silent are listed
in docs/bridge-stream.md; the main ones: unparsable data is skipped (sixteen in a
row fail the stream); C{[DONE]} before any C{finish_reason} is a cut-off reply; items
close as soon as C{finish_reason} arrives; whitespace-only content opens no message;
a tool call's item opens once its name is known; call ids are unique per response.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

from responses_proxy.bridge.calls import Call, CallTable, CustomInput, isJson, jsonText, shellAction
from responses_proxy.bridge.chunks import (
    DONE,
    chunkParts,
    completionParts,
    fixSurrogates,
    readPayload,
    reasoningText,
    salvagePayload,
)
from responses_proxy.bridge.context import BridgeContext
from responses_proxy.bridge.events import EventWriter, ResponseHead
from responses_proxy.bridge.reasoning import encodeReasoning
from responses_proxy.bridge.textcalls import healerFor

__all__ = [
    "MAX_BAD_PAYLOADS",
    "ContentFilter",
    "ReplyMachine",
    "ReplySink",
    "ResponsesStream",
    "Step",
    "randomId",
]

MAX_BAD_PAYLOADS = 16

# Phases: the kind of item(s) currently open.
_NONE = 0
_REASONING = 1
_MESSAGE = 2
_TOOLS = 3

# Leading <think> detection in content.
_THINK_START = 0
_THINK_INSIDE = 1
_THINK_OFF = 2
_OPEN_TAG = "<think>"
_CLOSE_TAG = "</think>"


def randomId(kind: str) -> str:
    """
    The default id factory: C{kind} + C{"_"} + 32 random hex digits.
    """
    return kind + "_" + secrets.token_hex(16)


def _wholeText(parts: list[str]) -> str:
    """
    The full text of an item, with any lone surrogate made U+FFFD (as its
    deltas showed it), so it encodes as UTF-8 everywhere it goes.
    """
    text = "".join(parts)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return fixSurrogates(text)
    return text


def _heldTagPrefix(text: str, tag: str) -> int:
    """
    Length of the longest suffix of C{text} that is a proper prefix of C{tag}.
    """
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return length
    return 0


def _terminalKind(reason: str | None) -> tuple[str, str | None]:
    """
    The terminal status and C{incomplete_details.reason} for a finish reason.
    """
    if reason in ("length", "max_tokens"):
        return "incomplete", "max_output_tokens"
    if reason == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None


class ReplySink(Protocol):
    """
    What a L{ReplyMachine} reports, in order. Items are Responses output items
    (plain dicts) exactly as they should appear; the sink adds nothing to them.
    """

    def itemAdded(self, outputIndex: int, item: dict[str, Any]) -> Any:
        """
        An item opened.

        @return: a handle, opaque to the machine, passed back with the item's
            deltas and its C{done}.
        """

    def delta(self, handle: Any, text: str) -> None:
        """
        More text of an open item: summary text, message text, function call
        arguments or custom tool input (the item's type says which).
        """

    def itemDone(self, handle: Any, item: dict[str, Any]) -> None:
        """
        An item closed; C{item} is final and belongs to the response's output.
        """

    def awaitingTail(self) -> None:
        """
        A C{finish_reason} arrived; open items are closed and the terminal event
        now waits for the usage chunk, C{[DONE]} or the end of the stream.
        """

    def terminal(
        self,
        status: str,
        usage: dict[str, Any] | None,
        error: dict[str, Any] | None,
        incompleteDetails: dict[str, Any] | None,
    ) -> None:
        """
        The response is over: C{completed}, C{incomplete} or C{failed}. Nothing
        follows.
        """


class ContentFilter(Protocol):
    """
    A filter on the reply's text after the C{<think>} filter (bridge-spec.md section
    6: tool calls written as text). It returns pieces: text (a C{str}, or an object
    with C{text}) goes to the message; an object with C{name} (the chat-side function
    name), C{arguments} (a JSON object string) and C{format} (for the log) becomes a
    whole tool call item.
    """

    def feed(self, text: str) -> list[Any]:
        """
        More text; returns what is known so far (text may be held back).
        """

    def finish(self) -> list[Any]:
        """
        Release everything held. Called when the text is interrupted (structured
        tool calls arrive) or ends; the filter must accept more text afterwards.
        """


class _TextItem:
    """
    An open reasoning or message item: its id, index, text so far, sink handle.
    """

    __slots__ = ("itemId", "outputIndex", "parts", "handle")

    def __init__(self, itemId: str, outputIndex: int, handle: object) -> None:
        self.itemId = itemId
        self.outputIndex = outputIndex
        self.parts: list[str] = []
        self.handle = handle


class ReplyMachine:
    """
    The items of one chat reply, streamed or whole, reported to a sink.

    @ivar done: the terminal status has been reported; further input is ignored.
    @ivar healed: the formats of the tool calls found written as text, for the glue's one
        log line per response.
    """

    def __init__(
        self,
        context: BridgeContext,
        sink: ReplySink,
        newId: Callable[[str], str],
        contentFilter: ContentFilter | None = None,
    ) -> None:
        """
        @param context: the request's facts; its C{tools} map chat names back.
        @param sink: receives every happening.
        @param newId: makes item and call ids from a kind (C{"msg"}, C{"rs"}...).
        @param contentFilter: an optional filter on the text after the C{<think>}
            filter; the healer of bridge-spec.md section 6 plugs in here.
        """
        self._tools = context.tools
        self._sink = sink
        self._newId = newId
        self._filter = contentFilter
        self.done = False
        self._phase = _NONE
        self._reasoning: _TextItem | None = None
        self._message: _TextItem | None = None
        self._calls = CallTable()
        self._callIds: set[str] = set()
        self._nextOutputIndex = 0
        self._finishReason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._think = _THINK_START
        self._thinkHeld = ""
        self._pendingSpace = ""
        self._pendingReasoningSpace = ""
        self._stripLeading = False
        self._badPayloads = 0
        self._sawData = False
        self.healed: list[str] = []

    # -- input ---------------------------------------------------------------------

    def feedPayload(self, payload: bytes) -> None:
        """
        One upstream SSE event's data (its C{data:} lines joined by C{\\n}),
        possibly C{b"[DONE]"}.
        """
        if self.done:
            return
        if payload == b"[DONE]":
            self.end()
            return
        self._sawData = True
        parts = readPayload(payload)
        if parts is None:
            self._oddPayload(payload)
            return
        self._badPayloads = 0
        delta, finishReason, usage, failure = parts
        if finishReason is None and usage is None and failure is None:
            # Most chunks: one delta.
            if delta is not None:
                self._delta(delta)
            return
        self._apply(delta, finishReason, usage, failure)

    def feedCompletion(self, completion: object) -> None:
        """
        A whole chat completion: every item, then the terminal status.
        """
        if self.done:
            return
        self._sawData = True
        self._apply(*completionParts(completion))
        if not self.done:
            self.end()

    def end(self) -> None:
        """
        The reply ended (C{[DONE]}, EOF, or the wait for the tail ran out): the
        terminal status per the C{finish_reason}, or failed when none came.
        """
        if self.done:
            return
        if self._finishReason is not None:
            self._terminal()
        elif self._sawData:
            self._failed(
                "server_error",
                "upstream stream ended before a finish_reason (the reply was cut off)",
            )
        else:
            self._failed("server_error", "upstream closed the stream without sending any data")

    def fail(self, code: str, message: str) -> None:
        """
        Fail now; open items stay open (never dispatched).
        """
        if not self.done:
            self._failed(code, message)

    def _apply(
        self,
        delta: dict[str, Any] | None,
        finishReason: object,
        usage: dict[str, Any] | None,
        failure: tuple[str, str] | None,
    ) -> None:
        """
        What one chunk says (see L{responses_proxy.bridge.chunks.ChunkParts}).
        """
        if failure is not None:
            self._failed(*failure)
            return
        if delta is not None:
            self._delta(delta)
        if finishReason is not None and not self.done:
            self._finish(finishReason)
        if usage is not None and not self.done:
            self._usage = usage
            if self._finishReason is not None:
                self._terminal()

    def _oddPayload(self, payload: bytes) -> None:
        """
        A payload that is not one JSON object: what can be read from it counts;
        sixteen unreadable ones in a row are garbage, not a glitch.
        """
        found = salvagePayload(payload)
        if found is None:
            self._badPayloads += 1
            if self._badPayloads >= MAX_BAD_PAYLOADS:
                self._failed(
                    "server_error",
                    f"upstream sent {self._badPayloads} data payloads in a row that are not JSON",
                )
            return
        if found:
            self._badPayloads = 0
        for chunk in found:
            if self.done:
                return
            if chunk is DONE:
                self.end()
            else:
                self._apply(*chunkParts(chunk))

    def _delta(self, delta: dict[str, Any]) -> None:
        """
        One choice's delta: reasoning, then content, then tool calls. The legacy
        C{function_call} counts only without C{tool_calls} (llama-cpp-python sends
        the same call in both).
        """
        get = delta.get
        reasoning = get("reasoning_content") or get("reasoning") or get("reasoning_details")
        if reasoning:
            if type(reasoning) is not str:
                reasoning = reasoningText(reasoning)
            if reasoning:
                self._reasoningDelta(reasoning)
        content = get("content")
        if content:
            if type(content) is str:
                self._contentDelta(content)
            else:
                self._contentParts(content)
        refusal = get("refusal")
        if refusal and type(refusal) is str:
            self._contentDelta(refusal)
        toolCalls = get("tool_calls")
        if toolCalls:
            self._toolCalls(toolCalls if type(toolCalls) is list else [toolCalls])
            return
        functionCall = get("function_call")
        if functionCall and type(functionCall) is dict:
            self._toolCalls([{"function": functionCall}])

    def _contentParts(self, parts: object) -> None:
        """
        Content sent as a list of parts (Mistral: text and thinking parts).
        """
        if not isinstance(parts, list):
            return
        for part in parts:
            if type(part) is str:
                if part:
                    self._contentDelta(part)
            elif isinstance(part, Mapping):
                kind = part.get("type")
                if kind in ("thinking", "reasoning", "reasoning_text"):
                    text = reasoningText(
                        part.get("thinking") or part.get("reasoning") or part.get("text")
                    )
                    if text:
                        self._reasoningDelta(text)
                else:
                    text = part.get("text")
                    if text and type(text) is str:
                        self._contentDelta(text)

    # -- reasoning and text ----------------------------------------------------------

    def _reasoningDelta(self, text: str) -> None:
        """
        Add reasoning text, opening a reasoning item if none is open.
        """
        item = self._reasoning
        if item is None:
            # Whitespace alone (an empty <think> block) opens no item: it is held
            # for real reasoning text, and dropped when anything else comes first.
            if text.isspace():
                self._pendingReasoningSpace += text
                return
            if self._pendingReasoningSpace:
                text = self._pendingReasoningSpace + text
                self._pendingReasoningSpace = ""
            item = self._reasoning = self._openText(
                _REASONING, "rs", {"type": "reasoning", "summary": []}
            )
        item.parts.append(text)
        self._sink.delta(item.handle, text)

    def _contentDelta(self, text: str) -> None:
        """
        Assistant text: through the leading-C{<think>} filter, then the content
        filter (if any), to the message.
        """
        if self._think != _THINK_OFF:
            text = self._thinkFilter(text)
            if not text:
                return
        if self._filter is not None:
            self._filtered(self._filter.feed(text))
            return
        item = self._message
        if item is None:
            self._messageText(text)
            return
        # The hot path of _messageText: more text of an open message.
        item.parts.append(text)
        self._sink.delta(item.handle, text)

    def _messageText(self, text: str) -> None:
        """
        Add message text, opening a message item on the first text that is not
        whitespace.
        """
        item = self._message
        if item is None:
            if self._pendingSpace:
                text = self._pendingSpace + text
                self._pendingSpace = ""
            if self._stripLeading:
                text = text.lstrip()
            if not text or text.isspace():
                self._pendingSpace = text
                return
            self._stripLeading = False
            item = self._message = self._openText(
                _MESSAGE,
                "msg",
                {"type": "message", "status": "in_progress", "role": "assistant", "content": []},
            )
        item.parts.append(text)
        self._sink.delta(item.handle, text)

    def _filtered(self, pieces: list[Any]) -> None:
        """
        The content filter's output: text to the message, calls as whole items.
        """
        for piece in pieces:
            name = getattr(piece, "name", None)
            if name is None:
                text = piece if type(piece) is str else piece.text
                if text:
                    self._messageText(text)
            else:
                if piece.format not in self.healed:
                    self.healed.append(piece.format)
                self._textCall(name, piece.arguments)

    def _flushContent(self) -> None:
        """
        Release what the content filter holds (the text is interrupted or ends).
        """
        if self._filter is not None:
            self._filtered(self._filter.finish())

    def _textCall(self, name: str, arguments: str) -> None:
        """
        A tool call found in the text: what is open closes, then the call is one
        whole item (added, arguments, done); later text opens a new message.
        """
        self._closePhase()
        call = Call(None, None)
        call.name = name
        if arguments:
            call.parts.append(arguments)
        self._openCall(call)
        self._closeCall(call, False)

    def _thinkFilter(self, text: str) -> str:
        """
        Route a leading C{<think>...</think>} in content to reasoning.

        @return: the text that belongs to the message (possibly empty).
        """
        if self._think == _THINK_START:
            held = self._thinkHeld + text
            stripped = held.lstrip()
            if not stripped:
                self._thinkHeld = held
                return ""
            if stripped.startswith(_OPEN_TAG):
                self._think = _THINK_INSIDE
                self._thinkHeld = ""
                text = stripped[len(_OPEN_TAG) :]
            elif _OPEN_TAG.startswith(stripped):
                self._thinkHeld = held
                return ""
            else:
                self._think = _THINK_OFF
                self._thinkHeld = ""
                return held
        held = self._thinkHeld + text
        end = held.find(_CLOSE_TAG)
        if end >= 0:
            self._think = _THINK_OFF
            self._thinkHeld = ""
            if end:
                self._reasoningDelta(held[:end])
            self._stripLeading = True
            return held[end + len(_CLOSE_TAG) :]
        keep = _heldTagPrefix(held, _CLOSE_TAG)
        if keep:
            self._thinkHeld = held[-keep:]
            held = held[:-keep]
        else:
            self._thinkHeld = ""
        if held:
            self._reasoningDelta(held)
        return ""

    def _flushThink(self) -> None:
        """
        Release text held while looking for a C{<think>} tag, and stop looking.
        """
        state = self._think
        held = self._thinkHeld
        self._think = _THINK_OFF
        self._thinkHeld = ""
        if not held:
            return
        if state == _THINK_INSIDE:
            self._reasoningDelta(held)
        else:
            self._contentDelta(held)

    # -- items -----------------------------------------------------------------------

    def _allocate(self) -> int:
        """
        The next C{output_index}.
        """
        index = self._nextOutputIndex
        self._nextOutputIndex = index + 1
        return index

    def _openText(self, phase: int, kind: str, fields: dict[str, Any]) -> _TextItem:
        """
        Close what is open and start a reasoning or message item.
        """
        self._closePhase()
        itemId = self._newId(kind)
        index = self._allocate()
        self._phase = phase
        return _TextItem(itemId, index, self._sink.itemAdded(index, {"id": itemId, **fields}))

    def _closePhase(self, truncated: bool = False) -> None:
        """
        Close every open item (the reply moved on, or finished normally).

        @param truncated: the reply stopped on C{length}/C{content_filter}:
            messages close as C{incomplete}, calls whose arguments are not
            valid JSON are dropped.
        """
        self._pendingReasoningSpace = ""
        phase = self._phase
        if phase == _NONE:
            return
        self._phase = _NONE
        self._pendingSpace = ""
        if phase == _REASONING:
            self._closeReasoning()
        elif phase == _MESSAGE:
            self._closeMessage("incomplete" if truncated else "completed")
        else:
            calls = self._calls.opened()
            self._calls = CallTable()
            for call in calls:
                self._closeCall(call, truncated)

    def _closeReasoning(self) -> None:
        """
        The reasoning item, with its full text and its C{encrypted_content} token
        (bridge-spec.md section 3).
        """
        item = self._reasoning
        self._reasoning = None
        if item is None:
            return
        text = _wholeText(item.parts)
        done = {
            "id": item.itemId,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}],
            "encrypted_content": encodeReasoning(text),
        }
        self._sink.itemDone(item.handle, done)

    def _closeMessage(self, status: str) -> None:
        """
        The message item, with its full text.
        """
        item = self._message
        self._message = None
        if item is None:
            return
        part = {
            "type": "output_text",
            "text": _wholeText(item.parts),
            "annotations": [],
            "logprobs": [],
        }
        done = {
            "id": item.itemId,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [part],
        }
        self._sink.itemDone(item.handle, done)

    # -- tool calls ------------------------------------------------------------------

    def _toolCalls(self, entries: list[Any]) -> None:
        """
        The C{tool_calls} entries of one delta.
        """
        if self._think != _THINK_OFF:
            self._flushThink()
        self._flushContent()
        if self._phase != _TOOLS:
            self._closePhase()
            self._phase = _TOOLS
            self._calls = CallTable()
        touched: list[Call] = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            function = entry.get("function")
            if not isinstance(function, Mapping):
                function = entry
            name = function.get("name")
            if not isinstance(name, str) or not name:
                name = None
            arguments = function.get("arguments")
            if arguments is not None and type(arguments) is not str:
                arguments = jsonText(arguments)
            index = entry.get("index")
            if type(index) is not int:
                index = None
            upstreamId = entry.get("id")
            if upstreamId is not None and type(upstreamId) is not str:
                upstreamId = str(upstreamId)
            call = self._calls.find(index, upstreamId or None, name, touched)
            touched.append(call)
            if name is not None and call.name is None:
                call.name = name
            if arguments:
                call.parts.append(arguments)
                if call.outputIndex >= 0:
                    self._argumentsDelta(call, arguments)
            if call.outputIndex < 0 and call.name is not None:
                self._openCall(call)

    def _openCall(self, call: Call) -> None:
        """
        Open a named call's item (its name decides the kind), then send the
        arguments so far.
        """
        target = self._tools.get(call.name)
        kind = target.kind if target is not None else "function"
        name = target.name if target is not None else call.name
        namespace = target.namespace if target is not None else None
        call.kind = kind
        callId = call.upstreamId
        if not callId or callId in self._callIds:
            callId = self._newId("call")
        self._callIds.add(callId)
        call.outputIndex = index = self._allocate()
        if kind == "custom":
            item: dict[str, Any] = {
                "id": self._newId("ctc"),
                "type": "custom_tool_call",
                "call_id": callId,
                "name": name,
                "input": "",
            }
            if namespace:
                item["namespace"] = namespace
            call.input = CustomInput()
        elif kind == "local_shell":
            item = {
                "id": self._newId("lsc"),
                "type": "local_shell_call",
                "status": "in_progress",
                "call_id": callId,
                "action": {"type": "exec", "command": [], "env": {}},
            }
        else:
            item = {
                "id": self._newId("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": callId,
                "name": name,
                "arguments": "",
            }
            if namespace:
                item["namespace"] = namespace
        call.item = item
        call.handle = self._sink.itemAdded(index, item)
        for part in call.parts:
            self._argumentsDelta(call, part)

    def _argumentsDelta(self, call: Call, text: str) -> None:
        """
        A piece of an open call's arguments, in its item's own terms.
        """
        kind = call.kind
        if kind == "function":
            self._sink.delta(call.handle, text)
        elif kind == "custom":
            assert call.input is not None
            piece = call.input.piece(text)
            if piece:
                self._sink.delta(call.handle, piece)

    def _closeCall(self, call: Call, truncated: bool) -> None:
        """
        Close one call's item with its whole arguments (or input, or action).
        When the arguments never arrived, C{"{}"} is sent as one last delta, so
        the deltas always add up to the C{done} text.
        """
        raw = _wholeText(call.parts)
        if truncated and not isJson(raw):
            return
        done = dict(call.item)
        if call.kind == "custom":
            assert call.input is not None
            value = _wholeText([call.input.final(raw)])
            sent = _wholeText(call.input.sent)
            if value.startswith(sent) and len(value) > len(sent):
                self._sink.delta(call.handle, value[len(sent) :])
            done["input"] = value
        elif call.kind == "local_shell":
            done["action"] = shellAction(raw)
            done["status"] = "completed"
        else:
            if not raw.strip():
                self._sink.delta(call.handle, "{}")
                raw += "{}"
            done["arguments"] = raw
            done["status"] = "completed"
        self._sink.itemDone(call.handle, done)

    # -- the end ---------------------------------------------------------------------

    def _finish(self, reason: object) -> None:
        """
        Record the first C{finish_reason} and close what is open (the terminal
        status waits for the usage chunk, C{[DONE]} or EOF).
        """
        if self._finishReason is not None:
            return
        reason = reason if isinstance(reason, str) else "stop"
        self._finishReason = reason
        if reason == "error":
            self._failed("server_error", 'upstream finished with finish_reason "error"')
            return
        self._closeAll()
        self._sink.awaitingTail()

    def _closeAll(self) -> None:
        """
        Release held text and close open items per the finish reason.
        """
        if self._think != _THINK_OFF:
            self._flushThink()
        self._flushContent()
        self._closePhase(truncated=_terminalKind(self._finishReason)[0] == "incomplete")

    def _terminal(self) -> None:
        """
        The normal end: C{completed} or C{incomplete}.
        """
        self._closeAll()
        status, reason = _terminalKind(self._finishReason)
        self.done = True
        self._sink.terminal(status, self._usage, None, {"reason": reason} if reason else None)

    def _failed(self, code: str, message: str) -> None:
        """
        C{failed}: open items are left open (never dispatched).
        """
        self.done = True
        self._sink.terminal("failed", self._usage, {"code": code, "message": message}, None)


class Step(NamedTuple):
    """
    What one upstream payload did to a L{ResponsesStream}.

    A named tuple: one is built per upstream chunk, and a tuple is the cheapest record
    Python has (an attrs class cost 4 % of the streaming path).

    @ivar events: serialised SSE events to write now (maybe C{b""}).
    @ivar tailStarted: a C{finish_reason} arrived in this payload and the terminal
        event now waits for usage, C{[DONE]} or EOF: the glue starts its tail timer
        and calls L{ResponsesStream.end} when it runs out.
    @ivar done: the response is over (the terminal event is in C{events}, or was
        written before): end the client's response.
    """

    events: bytes
    tailStarted: bool
    done: bool


_OVER = Step(b"", False, True)


class ResponsesStream:
    """
    Turn one chat completion (streamed or whole) into Responses SSE events.

    Drive it as: L{start} once when the upstream answered 2xx; L{feed} for each
    upstream SSE event's data (or L{feedCompletion} for a whole JSON completion);
    L{keepAlive} after each 15 s of upstream silence; L{end} at upstream EOF, or when
    the tail wait a L{Step} started runs out; L{fail} for timeouts, overlong lines
    and resets. Every call returns the bytes to write (possibly empty); any call
    starts the stream first if L{start} was not called. Once L{done} is true the
    response is over and every call returns nothing.

    @ivar responseId: the C{resp_...} id of this response.
    @ivar createdAt: the C{created_at} of this response.
    """

    def __init__(
        self,
        context: BridgeContext,
        *,
        responseId: str | None = None,
        createdAt: int | None = None,
        idFactory: Callable[[str], str] | None = None,
    ) -> None:
        """
        @param context: the request's facts (model, tool names, echoed fields).
        @param responseId: the response id; generated when L{None}.
        @param createdAt: the C{created_at} time; now when L{None}.
        @param idFactory: called with C{"resp"}, C{"msg"}, C{"rs"}, C{"fc"},
            C{"ctc"}, C{"lsc"} or C{"call"}, returns a whole id; defaults to
            L{randomId}.
        """
        newId = idFactory if idFactory is not None else randomId
        self.responseId = responseId if responseId is not None else newId("resp")
        self.createdAt = int(time.time()) if createdAt is None else createdAt
        self._writer = EventWriter(ResponseHead(context, self.responseId, self.createdAt))
        self._machine = ReplyMachine(
            context, self._writer, newId, healerFor(context.healTextCalls)
        )

    @property
    def done(self) -> bool:
        """
        Whether the terminal event has been produced.
        """
        return self._machine.done

    @property
    def healed(self) -> list[str]:
        """
        The formats of tool calls found written as text so far (bridge-spec section 6).
        """
        return self._machine.healed

    @property
    def response(self) -> dict[str, Any] | None:
        """
        The response object of the terminal event, or L{None} before it.
        """
        return self._writer.response

    def _writerIfLive(self) -> EventWriter | None:
        """
        The writer, started, or L{None} once the response is over.
        """
        if self._machine.done:
            return None
        writer = self._writer
        if not writer.started:
            writer.start()
        return writer

    def start(self) -> bytes:
        """
        The opening events: C{response.created} and C{response.in_progress}.
        """
        if self._writer.started:
            return b""
        writer = self._writerIfLive()
        return writer.take() if writer is not None else b""

    def keepAlive(self) -> bytes:
        """
        A C{response.in_progress} event, for upstream silence (Codex's idle
        timer counts real events only, not SSE comments).
        """
        started = self._writer.started
        writer = self._writerIfLive()
        if writer is None:
            return b""
        if started:
            writer.inProgress()
        return writer.take()

    def feed(self, payload: bytes) -> Step:
        """
        Convert one upstream SSE event.

        @param payload: the event's data (its C{data:} lines joined by C{\\n}),
            possibly C{b"[DONE]"}.
        """
        machine = self._machine
        if machine.done:
            return _OVER
        writer = self._writer
        if not writer.started:
            writer.start()
        machine.feedPayload(payload)
        out = writer.out
        events = b"".join(out)
        out.clear()
        tail = writer.tailStarted
        if tail:
            writer.tailStarted = False
        return Step(events, tail, machine.done)

    def feedCompletion(self, completion: object) -> bytes:
        """
        A whole chat completion (a 2xx JSON reply to a streaming request): every
        remaining event, ending with the terminal one. A missing C{finish_reason}
        counts as C{stop} here: the reply is whole.
        """
        writer = self._writerIfLive()
        if writer is None:
            return b""
        self._machine.feedCompletion(completion)
        return writer.take()

    def end(self) -> bytes:
        """
        The upstream stream ended (EOF, or the tail wait ran out).

        @return: the terminal event: per the C{finish_reason}, or
            C{response.failed} (C{server_error}) when none arrived.
        """
        writer = self._writerIfLive()
        if writer is None:
            return b""
        self._machine.end()
        return writer.take()

    def fail(self, code: str, message: str) -> bytes:
        """
        Abort now with C{response.failed}; open items stay unclosed.

        @param code: the C{error.code}, e.g. C{server_error}.
        @param message: the C{error.message}.
        """
        writer = self._writerIfLive()
        if writer is None:
            return b""
        self._machine.fail(code, message)
        return writer.take()
