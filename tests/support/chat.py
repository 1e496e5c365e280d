# -*- test-case-name: tests.test_chat -*-
"""
Chat Completions stream pieces for fake chat upstreams: one builder of
C{chat.completion.chunk} objects and their SSE framing, shared by the tests (reply specs
for L{tests.fakeupstream}, bytes written by in-memory upstreams) and the benchmarks (whole
pre-built streams).

    chatChunk({"content": "Hel"})                   # a dict
    chatChunk({}, "stop", usage=USAGE)              # finish and usage in one chunk
    chatChunk(usage=USAGE)                          # usage only: empty choices
    chatCompletion({"content": "hi"}, usage=USAGE)  # a whole chat.completion
    sseEvent(chatChunk({"content": "x"}))           # b'data: {...}\\n\\n'
"""

from __future__ import annotations

import json
from typing import Any

CHUNK_ID = "chatcmpl-test"
MODEL = "test-model"
CREATED = 1_760_000_000


def chatChunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    *,
    choices: list[Any] | None = None,
    model: str = MODEL,
    chunkId: str = CHUNK_ID,
    fingerprint: str | None = None,
    logprobs: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """
    One C{chat.completion.chunk}.

    @param delta: the first choice's delta; with neither C{delta} nor C{finish} the chunk
        has no choice at all (C{"choices": []}, as usage-only chunks have).
    @param finish: the choice's C{finish_reason}.
    @param usage: a C{usage} object.
    @param choices: the whole C{choices} list instead (for malformed or unusual shapes).
    @param fingerprint: a C{system_fingerprint} (OpenAI and DeepSeek send one).
    @param logprobs: add C{"logprobs": null} to the choice, as OpenAI-shaped servers do.
    @param extra: more top-level fields (they override the ones above).
    @return: the chunk as a dict.
    """
    body: dict[str, Any] = {
        "id": chunkId,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
    }
    if fingerprint is not None:
        body["system_fingerprint"] = fingerprint
    if choices is None:
        choices = []
        if delta is not None or finish is not None:
            choice: dict[str, Any] = {"index": 0, "delta": {} if delta is None else delta}
            if logprobs:
                choice["logprobs"] = None
            choice["finish_reason"] = finish
            choices.append(choice)
    body["choices"] = choices
    if usage is not None:
        body["usage"] = usage
    body.update(extra)
    return body


def chatCompletion(
    message: dict[str, Any],
    finish: str | None = "stop",
    usage: dict[str, Any] | None = None,
    *,
    model: str = MODEL,
    **extra: Any,
) -> dict[str, Any]:
    """
    A whole (not streamed) C{chat.completion}: one choice with C{message}.

    @param message: the assistant message (C{"role": "assistant"} is added if absent).
    """
    body: dict[str, Any] = {
        "id": CHUNK_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
    }
    if usage is not None:
        body["usage"] = usage
    body.update(extra)
    return body


def toolCall(
    index: int | None = None,
    callId: str | None = None,
    name: str | None = None,
    arguments: Any = None,
) -> dict[str, Any]:
    """
    One C{tool_calls} entry of a delta; the fields left out are absent (continuations
    carry only C{index} and an C{arguments} piece).
    """
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


def encodeChunk(value: Any) -> str:
    """
    The JSON text of a chunk as providers send it: compact, non-ASCII characters as they
    are. A string is returned unchanged (C{"[DONE]"}, or a payload already encoded).
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sseText(value: Any, *, space: bool = True, eol: str = "\n") -> str:
    """
    One SSE event as text: C{data: <json>} and a blank line.

    @param value: a chunk dict, or a string written as it is (C{"[DONE]"}).
    @param space: a space after C{data:} (some servers send none).
    @param eol: the line end (C{"\\r\\n"} for servers that use CRLF).
    """
    return "data:" + (" " if space else "") + encodeChunk(value) + eol + eol


def sseEvent(value: Any) -> bytes:
    """
    One SSE event as UTF-8 bytes: C{data: <json>\\n\\n}.
    """
    return sseText(value).encode("utf-8")


def chunkEvent(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    **fields: Any,
) -> bytes:
    """
    L{chatChunk} framed as one SSE event (for upstreams that write bytes).
    """
    return sseEvent(chatChunk(delta, finish, usage, **fields))
