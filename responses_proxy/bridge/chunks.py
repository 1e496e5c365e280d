# -*- test-case-name: tests.test_bridge_chunks -*-
"""
Reading what a chat server sends: data payloads, chunks, whole completions, usage.

Chat servers disagree on the details (bridge-spec.md section 2.7): payloads that are
not one JSON object, several events in one payload, errors at the top level, choices
other than 0, usage inside the choice, a whole C{message} where a stream has a
C{delta}. This module turns all of that into one shape, C{(delta, finishReason,
usage, failure)}, so the item state machine (L{responses_proxy.bridge.stream}) reads
one kind of input. Pure: no I/O, no state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from responses_proxy.bridge.errors import mapStreamError

__all__ = [
    "DONE",
    "ChunkParts",
    "chunkParts",
    "completionParts",
    "fixSurrogates",
    "mapUsage",
    "readPayload",
    "reasoningText",
    "salvagePayload",
]

_decoder = json.JSONDecoder()
_decode = _decoder.decode
# The C scanner behind decode(): the fast path calls it directly and leaves anything
# that is not exactly one JSON value (whitespace around it included) to the slow path.
_scan = _decoder.scan_once


class _Done:
    """
    The type of L{DONE}.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "DONE"


DONE: Final = _Done()
"""
The C{[DONE]} marker found inside an odd payload (see L{salvagePayload}).
"""

ChunkParts = tuple[
    "dict[str, Any] | None", object, "dict[str, Any] | None", "tuple[str, str] | None"
]
"""
What one chunk says: C{(delta, finishReason, usage, failure)}. C{delta} is a non-empty
dict or L{None}; C{finishReason} is the upstream's value when truthy, else L{None};
C{usage} is already mapped by L{mapUsage}; C{failure} is C{(code, message)} when the
chunk is an error, and then nothing else counts.
"""

_NOTHING: ChunkParts = (None, None, None, None)


def fixSurrogates(text: str) -> str:
    """
    Pair surrogate halves and replace lone ones, so the text encodes as UTF-8.

    Lone surrogates reach us only through C{\\ud83d}-style escapes that a server split
    across two chunks; output must always be valid UTF-8.
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def readPayload(payload: bytes) -> ChunkParts | None:
    """
    Read a payload that is exactly one JSON object in UTF-8 (the fast path) as a
    chunk (see L{chunkParts}).

    @return: what the chunk says, or L{None} for any other payload (see
        L{salvagePayload}).
    """
    try:
        text = payload.decode("utf-8")
        chunk, end = _scan(text, 0)
    except (ValueError, StopIteration):
        return None
    if end != len(text) or type(chunk) is not dict:
        return None
    return chunkParts(chunk)


def salvagePayload(payload: bytes) -> list[dict[str, Any] | _Done] | None:
    """
    What can be read from a payload that is not one JSON object in UTF-8.

    Invalid UTF-8 is replaced; a payload of several lines that is not one JSON value
    is read line by line, each line optionally prefixed C{data:} (servers that omit
    the blank line between events).

    @return: the chunks and L{DONE} markers found, in order; an empty list for a
        blank payload (nothing to read, nothing wrong); L{None} when nothing in it
        can be read (the caller counts these).
    """
    text = payload.decode("utf-8", "replace").strip()
    if not text:
        return []
    if text == "[DONE]":
        return [DONE]
    try:
        value = _decode(text)
    except ValueError:
        value = None
    if type(value) is dict:
        return [value]
    if value is not None or "\n" not in text:
        return None
    found: list[dict[str, Any] | _Done] = []
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("data:"):
            line = line[5:].strip()
        if not line:
            continue
        if line == "[DONE]":
            found.append(DONE)
            continue
        try:
            chunk = _decode(line)
        except ValueError:
            continue
        if type(chunk) is dict:
            found.append(chunk)
    return found or None


def _topLevelError(chunk: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """
    The chunk itself when it is an error at the top level (vLLM's C{ErrorResponse}:
    C{"object": "error"} with C{message}, C{type}, C{code}), else L{None}.
    """
    if chunk.get("object") == "error" and "choices" not in chunk:
        return chunk
    return None


def _firstChoice(choices: list[Any]) -> Any:
    """
    Choice 0 of a list (by its C{index}, else the first entry).
    """
    for choice in choices:
        if isinstance(choice, Mapping) and choice.get("index", 0) in (0, None):
            return choice
    return choices[0] if choices else None


def chunkParts(chunk: Mapping[str, Any]) -> ChunkParts:
    """
    Read one C{chat.completion.chunk}: choice 0's delta (or C{message}) and
    C{finish_reason}, and the usage (top level, else inside the choice, as Moonshot
    sends it).

    @param chunk: a parsed chunk; an C{{"error": ...}} object, or a top-level error
        object, is a failure with the mapped code.
    """
    get = chunk.get
    error = get("error")
    if not error and get("object") == "error":
        error = _topLevelError(chunk)
    if error:
        return (None, None, None, mapStreamError(error))
    usage = get("usage")
    choices = get("choices")
    if not choices or type(choices) is not list:
        return (None, None, mapUsage(usage) if usage else None, None)
    choice = choices[0]
    if len(choices) > 1:
        choice = _firstChoice(choices)
    if type(choice) is not dict:
        return (None, None, mapUsage(usage) if usage else None, None)
    get = choice.get
    delta = get("delta")
    if delta is None:
        delta = get("message")
    if not delta or type(delta) is not dict:
        delta = None
    if not usage:
        usage = get("usage")
    return (delta, get("finish_reason") or None, mapUsage(usage) if usage else None, None)


def completionParts(completion: object) -> ChunkParts:
    """
    Read a whole chat completion (C{stream: false}, or a JSON reply to a stream) in
    the shape of one chunk.

    Its C{message} becomes the delta; tool calls without C{index} get their list
    position, so two calls stay two; a missing C{finish_reason} is C{stop} (the reply
    is whole). No choices, or not an object: a failure (C{server_error}).
    """
    if not isinstance(completion, Mapping):
        return (None, None, None, ("server_error", "upstream reply is not a JSON object"))
    error = completion.get("error") or _topLevelError(completion)
    if error:
        return (None, None, None, mapStreamError(error))
    choices = completion.get("choices")
    choice = _firstChoice(choices) if isinstance(choices, list) else None
    if not isinstance(choice, Mapping):
        return (None, None, None, ("server_error", "upstream completion has no choices"))
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
    usage = completion.get("usage") or choice.get("usage")
    return (
        delta or None,
        choice.get("finish_reason") or "stop",
        mapUsage(usage) if usage else None,
        None,
    )


def reasoningText(value: object) -> str:
    """
    Text from the object forms of reasoning some providers send.

    Handles a string, a list (joined), and dicts with C{text}, C{content},
    C{summary}, C{reasoning} or C{thinking} (OpenRouter's C{reasoning_details},
    Mistral's thinking parts). Encrypted or signed blobs are not text.
    """
    if type(value) is str:
        return value
    if isinstance(value, list):
        return "".join(reasoningText(part) for part in value)
    if isinstance(value, Mapping):
        kind = value.get("type")
        if isinstance(kind, str) and "encrypted" in kind:
            return ""
        for key in ("text", "content", "summary", "reasoning", "thinking"):
            inner = value.get(key)
            if inner:
                return reasoningText(inner)
    return ""


def _details(usage: Mapping[str, Any], chatName: str, responsesName: str) -> Mapping[str, Any]:
    """
    A usage details object under its Chat Completions name, else its Responses name
    (some servers send that shape), else empty.
    """
    for name in (chatName, responsesName):
        details = usage.get(name)
        if isinstance(details, Mapping):
            return details
    return {}


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

    promptDetails = _details(usage, "prompt_tokens_details", "input_tokens_details")
    cached = _tokenCount(promptDetails.get("cached_tokens"))
    if cached is None:
        cached = _tokenCount(usage.get("prompt_cache_hit_tokens"))
    if cached is None:
        cached = _tokenCount(usage.get("cached_tokens"))
    cacheWrite = _tokenCount(promptDetails.get("cache_write_tokens"))

    completionDetails = _details(usage, "completion_tokens_details", "output_tokens_details")
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
