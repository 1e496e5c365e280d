# -*- test-case-name: tests.test_bridge_stream -*-
"""
Chat Completions replies -> Responses API events (bridge-spec.md section 2).

L{ResponsesStream} is a pure state machine: the Twisted glue hands it the data
payload of each upstream SSE event (or a whole completion) and writes the bytes
it returns to the client. It does no I/O, keeps no timers and logs nothing, so
the glue decides when upstream silence calls for L{ResponsesStream.keepAlive},
L{ResponsesStream.end} or L{ResponsesStream.fail}.

Decisions where the spec is silent are listed in docs/bridge-stream.md; the
main ones: unparsable data is skipped (sixteen in a row fail the stream);
C{[DONE]} before any C{finish_reason} is a cut-off reply; items close as soon
as C{finish_reason} arrives; whitespace-only content opens no message; a tool
call's item opens once its name is known; call ids are unique per response.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring
from typing import Any

from responses_proxy.bridge.context import BridgeContext
from responses_proxy.bridge.errors import mapStreamError
from responses_proxy.bridge.reasoning import encodeReasoning

__all__ = [
    "ResponsesStream",
    "completionToResponse",
    "mapUsage",
]

_MAX_BAD_PAYLOADS = 16

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
_encode = _encoder.encode
_decode = json.JSONDecoder().decode
_lenientDecode = json.JSONDecoder(strict=False).decode

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

# Custom tool input streaming modes.
_CI_UNDECIDED = 0
_CI_JSON = 1
_CI_RAW = 2
_CI_HOLD = 3
_CI_CLOSED = 4

_INPUT_HEAD = re.compile(r'\s*\{\s*"input"\s*:\s*"')
_INPUT_HEAD_PREFIX = re.compile(r'\s*\{\s*(?:"(?:i(?:n(?:p(?:u(?:t(?:"\s*(?::\s*)?)?)?)?)?)?)?)?\Z')
_STRING_BODY = re.compile(r'(?:[^"\\]+|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*')
_HIGH_SURROGATE_TAIL = re.compile(r"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}\Z")


def _fixSurrogates(text: str) -> str:
    """
    Pair surrogate halves and replace lone ones, so the text encodes as UTF-8.
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _wholeText(parts: list[str]) -> str:
    """
    The full text of an item, with any lone surrogate made U+FFFD (as its
    deltas showed it), so it encodes as UTF-8 everywhere it goes.
    """
    text = "".join(parts)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _fixSurrogates(text)
    return text


def _jsonString(text: str) -> bytes:
    """
    Encode one string as a JSON literal in UTF-8 (the hot path's only encoder).
    """
    try:
        return encode_basestring(text).encode("utf-8")
    except UnicodeEncodeError:
        return encode_basestring(_fixSurrogates(text)).encode("utf-8")


def _dumps(value: object) -> bytes:
    """
    Compact JSON in UTF-8, never failing on lone surrogates.
    """
    text = _encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _fixSurrogates(text).encode("utf-8")


def _surrogateSafe(item: _TextItem | _Call, text: str) -> bytes:
    """
    The slow path of a delta whose text has a lone surrogate: a high surrogate
    at the end is held for the next delta of the same item (an emoji whose
    two escapes came in two chunks); other lone ones become U+FFFD.

    @return: the JSON literal to send, or C{b""} when nothing is left to send.
    """
    if item.held:
        text = item.held + text
        item.held = ""
    if text and "\ud800" <= text[-1] <= "\udbff":
        item.held = text[-1]
        text = text[:-1]
    if not text:
        return b""
    return encode_basestring(_fixSurrogates(text)).encode("utf-8")


def _randomId(kind: str) -> str:
    """
    The default id factory: C{kind} + C{"_"} + 32 random hex digits.
    """
    return kind + "_" + secrets.token_hex(16)


def _isJson(text: str) -> bool:
    """
    Whether C{text} is one complete JSON value (control characters allowed).
    """
    try:
        _lenientDecode(text)
    except ValueError:
        return False
    return True


def _tokenCount(value: object) -> int | None:
    """
    A token count from an upstream usage field, or L{None} if it is not one.
    """
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and value >= 0 and value == value and value != float("inf"):
        return int(value)
    if type(value) is str and value.isdigit():
        return int(value)
    return None


def mapUsage(usage: object) -> dict[str, Any] | None:
    """
    Convert a chat C{usage} object to a Responses C{usage} object (section 2.5).

    Cached tokens come from C{prompt_tokens_details.cached_tokens}, else from
    DeepSeek's C{prompt_cache_hit_tokens} or Moonshot's top-level
    C{cached_tokens}; missing details are 0; a missing total is the sum.

    @param usage: the upstream's C{usage} value, any type.
    @return: a complete Responses usage object, or L{None} when C{usage} holds
        no token count at all (never a partial object).
    """
    if not isinstance(usage, Mapping):
        return None
    inputTokens = _tokenCount(usage.get("prompt_tokens"))
    if inputTokens is None:
        inputTokens = _tokenCount(usage.get("input_tokens"))
    outputTokens = _tokenCount(usage.get("completion_tokens"))
    if outputTokens is None:
        outputTokens = _tokenCount(usage.get("output_tokens"))
    totalTokens = _tokenCount(usage.get("total_tokens"))
    if inputTokens is None and outputTokens is None and totalTokens is None:
        return None
    if outputTokens is None:
        outputTokens = 0
    if inputTokens is None:
        inputTokens = max(totalTokens - outputTokens, 0) if totalTokens is not None else 0
    if totalTokens is None:
        totalTokens = inputTokens + outputTokens

    promptDetails = usage.get("prompt_tokens_details")
    if not isinstance(promptDetails, Mapping):
        promptDetails = usage.get("input_tokens_details")
    if not isinstance(promptDetails, Mapping):
        promptDetails = {}
    cached = _tokenCount(promptDetails.get("cached_tokens"))
    if cached is None:
        cached = _tokenCount(usage.get("prompt_cache_hit_tokens"))
    if cached is None:
        cached = _tokenCount(usage.get("cached_tokens"))
    cacheWrite = _tokenCount(promptDetails.get("cache_write_tokens"))

    completionDetails = usage.get("completion_tokens_details")
    if not isinstance(completionDetails, Mapping):
        completionDetails = usage.get("output_tokens_details")
    if not isinstance(completionDetails, Mapping):
        completionDetails = {}
    reasoningTokens = _tokenCount(completionDetails.get("reasoning_tokens"))

    return {
        "input_tokens": inputTokens,
        "input_tokens_details": {
            "cached_tokens": cached or 0,
            "cache_write_tokens": cacheWrite or 0,
        },
        "output_tokens": outputTokens,
        "output_tokens_details": {"reasoning_tokens": reasoningTokens or 0},
        "total_tokens": totalTokens,
    }


def _reasoningText(value: object) -> str:
    """
    Text from the object forms of reasoning some providers send.

    Handles a string, a list (joined), and dicts with C{text}, C{content},
    C{summary}, C{reasoning} or C{thinking} (OpenRouter's C{reasoning_details},
    Mistral's thinking parts). Encrypted or signed blobs are not text.
    """
    if type(value) is str:
        return value
    if isinstance(value, list):
        return "".join(_reasoningText(part) for part in value)
    if isinstance(value, Mapping):
        kind = value.get("type")
        if isinstance(kind, str) and "encrypted" in kind:
            return ""
        for key in ("text", "content", "summary", "reasoning", "thinking"):
            inner = value.get(key)
            if inner:
                return _reasoningText(inner)
    return ""


def _heldTagPrefix(text: str, tag: str) -> int:
    """
    Length of the longest suffix of C{text} that is a proper prefix of C{tag}.
    """
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return length
    return 0


def _customInput(raw: str) -> str | None:
    """
    A custom tool call's input from the chat arguments that carried it.

    @return: the C{input} string of a C{{"input": ...}} object, the value of a
        JSON string, C{raw} itself for other JSON, L{None} if C{raw} is not JSON.
    """
    try:
        value = _lenientDecode(raw)
    except ValueError:
        return None
    if isinstance(value, dict):
        inner = value.get("input")
        if isinstance(inner, str):
            return inner
        return raw
    if isinstance(value, str):
        return value
    return raw


def _shellAction(raw: str) -> dict[str, Any]:
    """
    A C{local_shell_call} action from the arguments of the C{local_shell} function.

    A string C{command} runs through C{bash -lc}; unusable arguments give an
    empty command, which Codex reports back to the model.
    """
    action: dict[str, Any] = {"type": "exec", "command": [], "env": {}}
    try:
        value = _lenientDecode(raw)
    except ValueError:
        return action
    if not isinstance(value, dict):
        return action
    if isinstance(value.get("action"), dict):
        value = value["action"]
    command = value.get("command")
    if isinstance(command, str):
        command = ["bash", "-lc", command]
    if isinstance(command, list):
        action["command"] = [part if isinstance(part, str) else _encode(part) for part in command]
    env = value.get("env")
    if isinstance(env, dict):
        action["env"] = {
            str(key): val if isinstance(val, str) else _encode(val) for key, val in env.items()
        }
    workdir = value.get("working_directory", value.get("workdir"))
    if isinstance(workdir, str):
        action["working_directory"] = workdir
    timeout = value.get("timeout_ms")
    if type(timeout) is int:
        action["timeout_ms"] = timeout
    user = value.get("user")
    if isinstance(user, str):
        action["user"] = user
    return action


def _eventHead(eventType: str) -> bytes:
    """
    The constant start of a serialised event, up to its sequence number.
    """
    return b'event: %s\ndata: {"type":"%s","sequence_number":' % (
        eventType.encode(),
        eventType.encode(),
    )


_HEAD_TEXT_DELTA = _eventHead("response.output_text.delta")
_TAIL_TEXT_DELTA = b',"logprobs":[]}\n\n'
_HEAD_SUMMARY_DELTA = _eventHead("response.reasoning_summary_text.delta")
_HEAD_ARGS_DELTA = _eventHead("response.function_call_arguments.delta")
_HEAD_INPUT_DELTA = _eventHead("response.custom_tool_call_input.delta")
_HEAD_IN_PROGRESS = _eventHead("response.in_progress")
_TAIL = b"}\n\n"


class _TextItem:
    """
    An open reasoning or message item: its id, index and text so far.
    """

    __slots__ = ("itemId", "outputIndex", "parts", "middle", "held")

    def __init__(self, itemId: str, outputIndex: int, middle: bytes) -> None:
        self.itemId = itemId
        self.outputIndex = outputIndex
        self.parts: list[str] = []
        self.middle = middle
        self.held = ""


class _Call:
    """
    One upstream tool call, from its first chunk until its item closes.
    """

    __slots__ = (
        "chatIndex",
        "upstreamId",
        "name",
        "parts",
        "kind",
        "itemId",
        "callId",
        "outputIndex",
        "middle",
        "item",
        "inputMode",
        "inputPending",
        "inputSent",
        "held",
    )

    def __init__(self, chatIndex: int | None, upstreamId: str | None) -> None:
        self.chatIndex = chatIndex
        self.upstreamId = upstreamId
        self.name: str | None = None
        self.parts: list[str] = []
        self.kind = ""
        self.itemId = ""
        self.callId = ""
        self.outputIndex = -1
        self.middle = b""
        self.item: dict[str, Any] = {}
        self.inputMode = _CI_UNDECIDED
        self.inputPending = ""
        self.inputSent: list[str] = []
        self.held = ""


class ResponsesStream:
    """
    Turn one chat completion (streamed or whole) into Responses SSE events.

    Drive it as: L{start} once when the upstream answered 2xx; L{feedData}
    for each upstream SSE event's data (or L{feedCompletion} for a whole JSON
    completion); L{keepAlive} after each 15 s of upstream silence; L{end} at
    upstream EOF, or when L{awaitingTail} has been true for 5 s; L{fail} for
    timeouts, overlong lines and resets. Every call returns the bytes to write
    (possibly empty). Once L{done} is true the response is over: close it.

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
            the kind, C{"_"} and 32 random hex digits.
        """
        self._context = context
        self._tools = context.tools
        self._newId = idFactory if idFactory is not None else _randomId
        self.responseId = responseId if responseId is not None else self._newId("resp")
        self.createdAt = int(time.time()) if createdAt is None else createdAt
        self._seq = 0
        self._started = False
        self._done = False
        self._phase = _NONE
        self._reasoning: _TextItem | None = None
        self._message: _TextItem | None = None
        self._calls: list[_Call] = []
        self._callsByIndex: dict[int, _Call] = {}
        self._callsById: dict[str, _Call] = {}
        self._callIds: set[str] = set()
        self._nextOutputIndex = 0
        self._output: list[dict[str, Any]] = []
        self._finishReason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._think = _THINK_START
        self._thinkHeld = ""
        self._pendingSpace = ""
        self._pendingReasoningSpace = ""
        self._stripLeading = False
        self._badPayloads = 0
        self._final: dict[str, Any] | None = None
        self._inProgressJson: bytes | None = None

    # -- public state ------------------------------------------------------

    @property
    def done(self) -> bool:
        """
        Whether the terminal event has been produced (further calls return C{b""}).
        """
        return self._done

    @property
    def awaitingTail(self) -> bool:
        """
        Whether a C{finish_reason} arrived and the terminal event now waits for
        the usage chunk, C{[DONE]} or EOF (the glue waits at most 5 s, then
        calls L{end}).
        """
        return self._finishReason is not None and not self._done

    @property
    def response(self) -> dict[str, Any] | None:
        """
        The response object of the terminal event, or L{None} before it.
        """
        return self._final

    @property
    def finishReason(self) -> str | None:
        """
        The upstream's first C{finish_reason}, as sent.
        """
        return self._finishReason

    # -- public driving ----------------------------------------------------

    def start(self) -> bytes:
        """
        The opening events: C{response.created} and C{response.in_progress}.

        Feeding data before calling this starts the stream implicitly.
        """
        if self._started or self._done:
            return b""
        self._started = True
        created = self._event(
            "response.created", {"response": self._responseObject("in_progress", [])}
        )
        return created + self._inProgress()

    def keepAlive(self) -> bytes:
        """
        A C{response.in_progress} event, for upstream silence (Codex's idle
        timer counts real events only, not SSE comments).
        """
        if self._done:
            return b""
        if not self._started:
            return self.start()
        return self._inProgress()

    def feedData(self, data: bytes) -> bytes:
        """
        Convert one upstream SSE event.

        @param data: the event's data (its C{data:} lines joined by C{\\n}),
            possibly C{b"[DONE]"}.
        @return: serialised events, possibly C{b""}.
        """
        if self._done:
            return b""
        if data == b"[DONE]":
            return self._upstreamDone()
        try:
            chunk = _decode(data.decode("utf-8"))
        except ValueError:
            return self._unparsable(data)
        if type(chunk) is not dict:
            return self._unparsable(data)
        self._badPayloads = 0
        return self.feedChunk(chunk)

    def feedChunk(self, chunk: Mapping[str, Any]) -> bytes:
        """
        Convert one parsed C{chat.completion.chunk}.

        @param chunk: the chunk; an C{{"error": ...}} object fails the stream.
        @return: serialised events, possibly C{b""}.
        """
        if self._done:
            return b""
        out: list[bytes] = [] if self._started else [self.start()]
        error = chunk.get("error")
        if not error and chunk.get("object") == "error":
            error = _topLevelError(chunk)
        if error:
            code, message = mapStreamError(error)
            self._failed(code, message, out)
            return b"".join(out)
        usage = chunk.get("usage")
        choices = chunk.get("choices")
        if choices and type(choices) is list:
            choice = choices[0]
            if len(choices) > 1:
                choice = _firstChoice(choices)
            if type(choice) is dict:
                delta = choice.get("delta")
                if delta is None:
                    delta = choice.get("message")
                if delta and type(delta) is dict:
                    self._delta(delta, out)
                finishReason = choice.get("finish_reason")
                if finishReason and not self._done:
                    self._finish(finishReason, out)
                if not usage:
                    usage = choice.get("usage")
        if usage and not self._done:
            mapped = mapUsage(usage)
            if mapped is not None:
                self._usage = mapped
                if self._finishReason is not None:
                    self._terminal(out)
        return b"".join(out)

    def feedCompletion(self, completion: Mapping[str, Any]) -> bytes:
        """
        Convert a whole chat completion (C{stream: false}, or a 2xx JSON reply
        to a streaming request) into the complete event sequence.

        A missing C{finish_reason} counts as C{stop} here: the reply is whole.

        @return: every event, ending with the terminal one.
        """
        if self._done:
            return b""
        out: list[bytes] = [] if self._started else [self.start()]
        if not isinstance(completion, Mapping):
            self._failed("server_error", "upstream reply is not a JSON object", out)
            return b"".join(out)
        error = completion.get("error") or _topLevelError(completion)
        if error:
            code, message = mapStreamError(error)
            self._failed(code, message, out)
            return b"".join(out)
        choices = completion.get("choices")
        choice = _firstChoice(choices) if isinstance(choices, list) else None
        if not isinstance(choice, Mapping):
            self._failed("server_error", "upstream completion has no choices", out)
            return b"".join(out)
        message = choice.get("message")
        if not isinstance(message, Mapping):
            message = choice.get("delta")
        delta: dict[str, Any] = {}
        if isinstance(message, Mapping):
            delta = {key: value for key, value in message.items() if key != "tool_calls"}
            toolCalls = message.get("tool_calls")
            if isinstance(toolCalls, list):
                delta["tool_calls"] = [
                    {**call, "index": position}
                    if isinstance(call, Mapping) and type(call.get("index")) is not int
                    else call
                    for position, call in enumerate(toolCalls)
                ]
        chunk = {
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason") or "stop"}
            ],
            "usage": completion.get("usage") or choice.get("usage"),
        }
        out.append(self.feedChunk(chunk))
        if not self._done:
            out.append(self.end())
        return b"".join(out)

    def end(self) -> bytes:
        """
        The upstream stream ended (EOF, or the 5 s wait after C{finish_reason}).

        @return: the terminal event: per the C{finish_reason}, or
            C{response.failed} (C{server_error}) when none arrived.
        """
        if self._done:
            return b""
        out: list[bytes] = [] if self._started else [self.start()]
        if self._finishReason is not None:
            self._terminal(out)
        else:
            self._failed(
                "server_error",
                "upstream stream ended before a finish_reason (the reply was cut off)",
                out,
            )
        return b"".join(out)

    def fail(self, code: str, message: str) -> bytes:
        """
        Abort now with C{response.failed}; open items stay unclosed.

        @param code: the C{error.code}, e.g. C{server_error}.
        @param message: the C{error.message}.
        """
        if self._done:
            return b""
        out: list[bytes] = [] if self._started else [self.start()]
        self._failed(code, message, out)
        return b"".join(out)

    # -- serialisation -----------------------------------------------------

    def _event(self, eventType: str, fields: dict[str, Any]) -> bytes:
        """
        Serialise one event with the next sequence number.
        """
        seq = self._seq
        self._seq = seq + 1
        body = {"type": eventType, "sequence_number": seq}
        body.update(fields)
        return b"event: " + eventType.encode() + b"\ndata: " + _dumps(body) + b"\n\n"

    def _inProgress(self) -> bytes:
        """
        A C{response.in_progress} event from a response object serialised once.
        """
        if self._inProgressJson is None:
            self._inProgressJson = _dumps(self._responseObject("in_progress", []))
        seq = self._seq
        self._seq = seq + 1
        return b'%s%d,"response":%s%s' % (_HEAD_IN_PROGRESS, seq, self._inProgressJson, _TAIL)

    def _responseObject(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        incompleteDetails: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """
        A whole Responses object with the request's echoed fields.
        """
        echo = self._context.echo
        response: dict[str, Any] = {
            "id": self.responseId,
            "object": "response",
            "created_at": self.createdAt,
            "status": status,
            "error": error,
            "incomplete_details": incompleteDetails,
            "model": self._context.model,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }
        for key, value in echo.items():
            if key not in _OWN_FIELDS:
                response[key] = value
        return response

    # -- data handling -----------------------------------------------------

    def _unparsable(self, data: bytes) -> bytes:
        """
        Handle a payload that is not one JSON object (see the module docstring).
        """
        text = data.decode("utf-8", "replace").strip()
        if not text:
            return b""
        if text == "[DONE]":
            return self._upstreamDone()
        try:
            value = _decode(text)
        except ValueError:
            value = None
        if type(value) is dict:
            self._badPayloads = 0
            return self.feedChunk(value)
        if "\n" in text and value is None:
            out: list[bytes] = []
            found = False
            for line in text.split("\n"):
                line = line.strip()
                if line.startswith("data:"):
                    line = line[5:].strip()
                if not line or self._done:
                    continue
                if line == "[DONE]":
                    found = True
                    out.append(self._upstreamDone())
                    continue
                try:
                    chunk = _decode(line)
                except ValueError:
                    continue
                if type(chunk) is dict:
                    found = True
                    out.append(self.feedChunk(chunk))
            if found:
                self._badPayloads = 0
                return b"".join(out)
        self._badPayloads += 1
        if self._badPayloads >= _MAX_BAD_PAYLOADS:
            return self.fail(
                "server_error",
                f"upstream sent {self._badPayloads} data payloads in a row that are not JSON",
            )
        return b""

    def _upstreamDone(self) -> bytes:
        """
        C{[DONE]}: the terminal event now (cut off if no C{finish_reason}).
        """
        return self.end()

    def _delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        """
        Convert one choice's delta: reasoning, then content, then tool calls.
        """
        reasoning = (
            delta.get("reasoning_content")
            or delta.get("reasoning")
            or delta.get("reasoning_details")
        )
        if reasoning:
            if type(reasoning) is not str:
                reasoning = _reasoningText(reasoning)
            if reasoning:
                self._reasoningDelta(reasoning, out)
        content = delta.get("content")
        if content:
            if type(content) is str:
                self._contentDelta(content, out)
            else:
                self._contentParts(content, out)
        refusal = delta.get("refusal")
        if refusal and type(refusal) is str:
            self._contentDelta(refusal, out)
        toolCalls = delta.get("tool_calls")
        if toolCalls:
            self._toolCalls(toolCalls if type(toolCalls) is list else [toolCalls], out)
        functionCall = delta.get("function_call")
        if functionCall and type(functionCall) is dict:
            self._toolCalls([{"function": functionCall}], out)

    def _contentParts(self, parts: object, out: list[bytes]) -> None:
        """
        Content sent as a list of parts (Mistral: text and thinking parts).
        """
        if not isinstance(parts, list):
            return
        for part in parts:
            if type(part) is str:
                if part:
                    self._contentDelta(part, out)
            elif isinstance(part, Mapping):
                kind = part.get("type")
                if kind in ("thinking", "reasoning", "reasoning_text"):
                    text = _reasoningText(
                        part.get("thinking") or part.get("reasoning") or part.get("text")
                    )
                    if text:
                        self._reasoningDelta(text, out)
                else:
                    text = part.get("text")
                    if text and type(text) is str:
                        self._contentDelta(text, out)

    # -- reasoning and message items ---------------------------------------

    def _reasoningDelta(self, text: str, out: list[bytes]) -> None:
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
            item = self._openReasoning(out)
        item.parts.append(text)
        self._deltaEvent(_HEAD_SUMMARY_DELTA, item, text, _TAIL, out)

    def _deltaEvent(
        self, head: bytes, item: _TextItem | _Call, text: str, tail: bytes, out: list[bytes]
    ) -> None:
        """
        One delta event from its pre-built byte template (the hot path): only the
        delta is JSON-encoded, with lone surrogates held or replaced.
        """
        if item.held:
            encoded = _surrogateSafe(item, text)
        else:
            try:
                encoded = encode_basestring(text).encode("utf-8")
            except UnicodeEncodeError:
                encoded = _surrogateSafe(item, text)
        if encoded:
            seq = self._seq
            self._seq = seq + 1
            out.append(b"%s%d%s%s%s" % (head, seq, item.middle, encoded, tail))

    def _contentDelta(self, text: str, out: list[bytes]) -> None:
        """
        Add assistant text (after leading-C{<think>} filtering), opening a
        message item on the first text that is not whitespace.
        """
        if self._think != _THINK_OFF:
            text = self._thinkFilter(text, out)
            if not text:
                return
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
            item = self._openMessage(out)
        item.parts.append(text)
        self._deltaEvent(_HEAD_TEXT_DELTA, item, text, _TAIL_TEXT_DELTA, out)

    def _thinkFilter(self, text: str, out: list[bytes]) -> str:
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
                self._reasoningDelta(held[:end], out)
            self._stripLeading = True
            return held[end + len(_CLOSE_TAG) :]
        keep = _heldTagPrefix(held, _CLOSE_TAG)
        if keep:
            self._thinkHeld = held[-keep:]
            held = held[:-keep]
        else:
            self._thinkHeld = ""
        if held:
            self._reasoningDelta(held, out)
        return ""

    def _flushThink(self, out: list[bytes]) -> None:
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
            self._reasoningDelta(held, out)
        else:
            self._contentDelta(held, out)

    def _allocate(self) -> int:
        """
        The next C{output_index}.
        """
        index = self._nextOutputIndex
        self._nextOutputIndex = index + 1
        return index

    def _openReasoning(self, out: list[bytes]) -> _TextItem:
        """
        Close what is open and start a reasoning item.
        """
        self._closePhase(out)
        itemId = self._newId("rs")
        index = self._allocate()
        item = _TextItem(
            itemId,
            index,
            b',"item_id":%s,"output_index":%d,"summary_index":0,"delta":'
            % (_jsonString(itemId), index),
        )
        self._phase = _REASONING
        self._reasoning = item
        out.append(
            self._event(
                "response.output_item.added",
                {"output_index": index, "item": {"id": itemId, "type": "reasoning", "summary": []}},
            )
        )
        out.append(
            self._event(
                "response.reasoning_summary_part.added",
                {
                    "item_id": itemId,
                    "output_index": index,
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""},
                },
            )
        )
        return item

    def _openMessage(self, out: list[bytes]) -> _TextItem:
        """
        Close what is open and start an assistant message item.
        """
        self._closePhase(out)
        itemId = self._newId("msg")
        index = self._allocate()
        item = _TextItem(
            itemId,
            index,
            b',"item_id":%s,"output_index":%d,"content_index":0,"delta":'
            % (_jsonString(itemId), index),
        )
        self._phase = _MESSAGE
        self._message = item
        out.append(
            self._event(
                "response.output_item.added",
                {
                    "output_index": index,
                    "item": {
                        "id": itemId,
                        "type": "message",
                        "status": "in_progress",
                        "role": "assistant",
                        "content": [],
                    },
                },
            )
        )
        out.append(
            self._event(
                "response.content_part.added",
                {
                    "item_id": itemId,
                    "output_index": index,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                },
            )
        )
        return item

    def _closePhase(self, out: list[bytes], truncated: bool = False) -> None:
        """
        Send the C{done} events of every open item (the stream moved on, or
        finished normally).

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
            self._closeReasoning(out)
        elif phase == _MESSAGE:
            self._closeMessage(out, "incomplete" if truncated else "completed")
        else:
            self._closeCalls(out, truncated)

    def _closeReasoning(self, out: list[bytes]) -> None:
        """
        The C{done} events of the open reasoning item, with the full text and
        its C{encrypted_content} token (bridge-spec section 3).
        """
        item = self._reasoning
        self._reasoning = None
        if item is None:
            return
        if item.held:
            self._flushHeld(_HEAD_SUMMARY_DELTA, item, _TAIL, out)
        text = _wholeText(item.parts)
        itemId = item.itemId
        index = item.outputIndex
        out.append(
            self._event(
                "response.reasoning_summary_text.done",
                {"item_id": itemId, "output_index": index, "summary_index": 0, "text": text},
            )
        )
        out.append(
            self._event(
                "response.reasoning_summary_part.done",
                {
                    "item_id": itemId,
                    "output_index": index,
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": text},
                },
            )
        )
        done = {
            "id": itemId,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}],
            "encrypted_content": encodeReasoning(text),
        }
        self._itemDone(index, done, out)

    def _closeMessage(self, out: list[bytes], status: str) -> None:
        """
        The C{done} events of the open message item, with the full text.
        """
        item = self._message
        self._message = None
        if item is None:
            return
        if item.held:
            self._flushHeld(_HEAD_TEXT_DELTA, item, _TAIL_TEXT_DELTA, out)
        text = _wholeText(item.parts)
        itemId = item.itemId
        index = item.outputIndex
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        out.append(
            self._event(
                "response.output_text.done",
                {
                    "item_id": itemId,
                    "output_index": index,
                    "content_index": 0,
                    "text": text,
                    "logprobs": [],
                },
            )
        )
        out.append(
            self._event(
                "response.content_part.done",
                {"item_id": itemId, "output_index": index, "content_index": 0, "part": part},
            )
        )
        done = {
            "id": itemId,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [part],
        }
        self._itemDone(index, done, out)

    def _flushHeld(
        self, head: bytes, item: _TextItem | _Call, tail: bytes, out: list[bytes]
    ) -> None:
        """
        Send a high surrogate held at the end of an item as U+FFFD (no low
        half came), matching what its C{done} text shows.
        """
        item.held = ""
        seq = self._seq
        self._seq = seq + 1
        out.append(b"%s%d%s%s%s" % (head, seq, item.middle, _jsonString("\ufffd"), tail))

    def _itemDone(self, index: int, item: dict[str, Any], out: list[bytes]) -> None:
        """
        Send C{output_item.done} and record the item for the terminal event.
        """
        self._output.append(item)
        out.append(self._event("response.output_item.done", {"output_index": index, "item": item}))

    # -- tool calls --------------------------------------------------------

    def _toolCalls(self, entries: list[Any], out: list[bytes]) -> None:
        """
        Convert the C{tool_calls} entries of one delta.
        """
        if self._think != _THINK_OFF:
            self._flushThink(out)
        if self._phase != _TOOLS:
            self._closePhase(out)
            self._phase = _TOOLS
            self._calls = []
            self._callsByIndex = {}
            self._callsById = {}
        touched: list[_Call] = []
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
                arguments = _encode(arguments)
            index = entry.get("index")
            if type(index) is not int:
                index = None
            upstreamId = entry.get("id")
            if upstreamId is not None and type(upstreamId) is not str:
                upstreamId = str(upstreamId)
            call = self._findCall(index, upstreamId or None, name, touched)
            touched.append(call)
            if name is not None and call.name is None:
                call.name = name
            if arguments:
                call.parts.append(arguments)
                if call.outputIndex >= 0:
                    self._argumentsDelta(call, arguments, out)
            if call.outputIndex < 0 and call.name is not None:
                self._openCall(call, out)

    def _findCall(
        self, index: int | None, upstreamId: str | None, name: str | None, touched: list[_Call]
    ) -> _Call:
        """
        The call a tool-call entry continues, or a new one (see the module
        docstring for the rules).
        """
        if upstreamId is not None:
            call = self._callsById.get(upstreamId)
            if call is not None:
                return call
            if index is not None:
                call = self._callsByIndex.get(index)
                if call is not None and call.upstreamId is None:
                    call.upstreamId = upstreamId
                    self._callsById[upstreamId] = call
                    return call
            return self._newCall(index, upstreamId)
        if index is not None:
            call = self._callsByIndex.get(index)
            if call is not None:
                return call
            return self._newCall(index, None)
        if self._calls:
            last = self._calls[-1]
            if last not in touched and not (
                name is not None
                and last.name is not None
                and (name != last.name or _isJson("".join(last.parts)))
            ):
                return last
        return self._newCall(None, None)

    def _newCall(self, index: int | None, upstreamId: str | None) -> _Call:
        """
        Register a new call under its chat index and upstream id.
        """
        call = _Call(index, upstreamId)
        self._calls.append(call)
        if index is not None:
            self._callsByIndex[index] = call
        if upstreamId is not None:
            self._callsById[upstreamId] = call
        return call

    def _openCall(self, call: _Call, out: list[bytes]) -> None:
        """
        Send C{output_item.added} for a named call, then the arguments so far.
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
        call.callId = callId
        call.outputIndex = index = self._allocate()
        if kind == "custom":
            call.itemId = self._newId("ctc")
            item: dict[str, Any] = {
                "id": call.itemId,
                "type": "custom_tool_call",
                "call_id": call.callId,
                "name": name,
                "input": "",
            }
            if namespace:
                item["namespace"] = namespace
            call.middle = b',"item_id":%s,"output_index":%d,"delta":' % (
                _jsonString(call.itemId),
                index,
            )
        elif kind == "local_shell":
            call.itemId = self._newId("lsc")
            item = {
                "id": call.itemId,
                "type": "local_shell_call",
                "status": "in_progress",
                "call_id": call.callId,
                "action": {"type": "exec", "command": [], "env": {}},
            }
        else:
            call.itemId = self._newId("fc")
            item = {
                "id": call.itemId,
                "type": "function_call",
                "status": "in_progress",
                "call_id": call.callId,
                "name": name,
                "arguments": "",
            }
            if namespace:
                item["namespace"] = namespace
            call.middle = b',"item_id":%s,"output_index":%d,"delta":' % (
                _jsonString(call.itemId),
                index,
            )
        call.item = item
        out.append(self._event("response.output_item.added", {"output_index": index, "item": item}))
        for part in call.parts:
            self._argumentsDelta(call, part, out)

    def _argumentsDelta(self, call: _Call, text: str, out: list[bytes]) -> None:
        """
        Stream a piece of an open call's arguments in its item's own terms.
        """
        kind = call.kind
        if kind == "function":
            self._deltaEvent(_HEAD_ARGS_DELTA, call, text, _TAIL, out)
        elif kind == "custom":
            piece = self._customPiece(call, text)
            if piece:
                self._inputDelta(call, piece, out)

    def _inputDelta(self, call: _Call, piece: str, out: list[bytes]) -> None:
        """
        One C{custom_tool_call_input.delta} event.
        """
        call.inputSent.append(piece)
        seq = self._seq
        self._seq = seq + 1
        out.append(b"%s%d%s%s%s" % (_HEAD_INPUT_DELTA, seq, call.middle, _jsonString(piece), _TAIL))

    def _customPiece(self, call: _Call, text: str) -> str:
        """
        The part of a custom tool's input that C{text} (more raw arguments)
        makes known, decoding C{{"input": "...} incrementally.
        """
        mode = call.inputMode
        if mode == _CI_RAW:
            return text
        if mode == _CI_HOLD or mode == _CI_CLOSED:
            return ""
        pending = call.inputPending + text
        if mode == _CI_UNDECIDED:
            stripped = pending.lstrip()
            if not stripped:
                call.inputPending = pending
                return ""
            if stripped[0] not in '{"':
                call.inputMode = _CI_RAW
                call.inputPending = ""
                return pending
            match = _INPUT_HEAD.match(pending)
            if match is None:
                if len(pending) < 64 and _INPUT_HEAD_PREFIX.match(pending):
                    call.inputPending = pending
                else:
                    call.inputMode = _CI_HOLD
                    call.inputPending = ""
                return ""
            call.inputMode = _CI_JSON
            pending = pending[match.end() :]
        end = _STRING_BODY.match(pending).end()
        if not pending.startswith('"', end) and _HIGH_SURROGATE_TAIL.search(pending, 0, end):
            end -= 6
        body = pending[:end]
        rest = pending[end:]
        if rest.startswith('"'):
            call.inputMode = _CI_CLOSED
            rest = ""
        elif len(rest) > 12:
            call.inputMode = _CI_HOLD
            rest = ""
        call.inputPending = rest
        if not body:
            return ""
        try:
            return _lenientDecode('"' + body + '"')
        except ValueError:
            call.inputMode = _CI_HOLD
            return ""

    def _closeCalls(self, out: list[bytes], truncated: bool) -> None:
        """
        The C{done} events of every open call, in C{output_index} order.
        """
        calls = sorted(
            (call for call in self._calls if call.outputIndex >= 0),
            key=lambda call: call.outputIndex,
        )
        self._calls = []
        self._callsByIndex = {}
        self._callsById = {}
        for call in calls:
            raw = _wholeText(call.parts)
            if truncated and not _isJson(raw):
                continue
            itemId = call.itemId
            index = call.outputIndex
            done = dict(call.item)
            if call.kind == "custom":
                value = _customInput(raw)
                if value is None:
                    # Not JSON. After {"input":"... the decoded string is the input
                    # (a model that forgot the closing "}); otherwise the raw text.
                    if call.inputMode in (_CI_JSON, _CI_CLOSED):
                        value = "".join(call.inputSent)
                    else:
                        value = raw
                value = _wholeText([value])
                sent = _wholeText(call.inputSent)
                if value.startswith(sent) and len(value) > len(sent):
                    self._inputDelta(call, value[len(sent) :], out)
                out.append(
                    self._event(
                        "response.custom_tool_call_input.done",
                        {"item_id": itemId, "output_index": index, "input": value},
                    )
                )
                done["input"] = value
            elif call.kind == "local_shell":
                done["action"] = _shellAction(raw)
                done["status"] = "completed"
            else:
                if call.held:
                    self._flushHeld(_HEAD_ARGS_DELTA, call, _TAIL, out)
                if not raw.strip():
                    self._argumentsDelta(call, "{}", out)
                    raw += "{}"
                out.append(
                    self._event(
                        "response.function_call_arguments.done",
                        {"item_id": itemId, "output_index": index, "arguments": raw},
                    )
                )
                done["arguments"] = raw
                done["status"] = "completed"
            self._itemDone(index, done, out)

    # -- the end -----------------------------------------------------------

    def _finish(self, reason: object, out: list[bytes]) -> None:
        """
        Record the first C{finish_reason} and close what is open (the terminal
        event waits for the usage chunk, C{[DONE]} or EOF).
        """
        if self._finishReason is not None:
            return
        reason = reason if isinstance(reason, str) else "stop"
        self._finishReason = reason
        if reason == "error":
            self._failed("server_error", 'upstream finished with finish_reason "error"', out)
            return
        self._closeAll(out)

    def _closeAll(self, out: list[bytes]) -> None:
        """
        Release held text and close open items per the finish reason.
        """
        if self._think != _THINK_OFF:
            self._flushThink(out)
        self._closePhase(out, truncated=_terminalKind(self._finishReason)[0] == "incomplete")

    def _terminal(self, out: list[bytes]) -> None:
        """
        The normal terminal event: C{completed} or C{incomplete}.
        """
        self._closeAll(out)
        status, reason = _terminalKind(self._finishReason)
        details = {"reason": reason} if reason else None
        response = self._responseObject(status, self._output, self._usage, None, details)
        self._finalise("response." + status, response, out)

    def _failed(self, code: str, message: str, out: list[bytes]) -> None:
        """
        C{response.failed}: open items are left open (never dispatched).
        """
        response = self._responseObject(
            "failed", self._output, self._usage, {"code": code, "message": message}
        )
        self._finalise("response.failed", response, out)

    def _finalise(self, eventType: str, response: dict[str, Any], out: list[bytes]) -> None:
        """
        Emit the one terminal event and stop.
        """
        self._done = True
        self._final = response
        out.append(self._event(eventType, {"response": response}))


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


def _topLevelError(chunk: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """
    The chunk itself when it is an error at the top level (vLLM's C{ErrorResponse}:
    C{"object": "error"} with C{message}, C{type}, C{code}), else L{None}.
    """
    if chunk.get("object") == "error" and "choices" not in chunk:
        return chunk
    return None


def _terminalKind(reason: str | None) -> tuple[str, str | None]:
    """
    The terminal status and C{incomplete_details.reason} for a finish reason.
    """
    if reason in ("length", "max_tokens"):
        return "incomplete", "max_output_tokens"
    if reason == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None


def _firstChoice(choices: list[Any]) -> Any:
    """
    Choice 0 of a list (by its C{index}, else the first entry).
    """
    for choice in choices:
        if isinstance(choice, Mapping) and choice.get("index", 0) in (0, None):
            return choice
    return choices[0] if choices else None


def completionToResponse(
    context: BridgeContext,
    completion: Mapping[str, Any],
    *,
    responseId: str | None = None,
    createdAt: int | None = None,
    idFactory: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """
    Convert a whole chat completion (C{stream: false}) to a Responses object.

    @return: the same object the terminal event of a stream would carry;
        C{status} is C{completed}, C{incomplete} or C{failed}.
    """
    stream = ResponsesStream(
        context, responseId=responseId, createdAt=createdAt, idFactory=idFactory
    )
    stream.feedCompletion(completion)
    response = stream.response
    assert response is not None
    return response
