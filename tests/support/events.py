# -*- test-case-name: tests.test_fakeupstream -*-
"""
Responses API requests and stream events, and reply specs for the fake upstream built
from them.

The shapes are those Codex 0.169.0 accepts (see the captures under
C{tests/fixtures/codex-0.169.0/}); L{replyScript} turns a captured C{reply-script.json}
into reply specs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "codex-0.169.0"


def sseSpec(events: list[Any], eventLines: bool = True, **fields: Any) -> dict[str, Any]:
    """
    A reply spec streaming C{events} as SSE.

    @param events: JSON values, one per event (a string is written raw, e.g. C{"[DONE]"}).
    @param eventLines: prefix C{event: <type>} lines, as the OpenAI API does.
    @param fields: more spec fields (C{sse_delay}, C{status}, C{then}, ...).
    """
    spec: dict[str, Any] = {"sse": events, "event_lines": eventLines}
    spec.update(fields)
    return spec


def replyScript(path: str | Path) -> list[dict[str, Any]]:
    """
    Reply specs from a captured C{reply-script.json} (a list of C{{"events": [...],
    "event_lines": bool}}; C{event_lines} defaults to true there).

    @param path: the file, absolute or relative to the Codex 0.169.0 fixtures.
    """
    p = Path(path)
    if not p.is_absolute():
        p = FIXTURES / p
    script = json.loads(p.read_text())
    return [sseSpec(entry["events"], entry.get("event_lines", True)) for entry in script]


def codexRequest(
    model: str = "deepseek-chat",
    instructions: str = "You are a helpful assistant.",
    text: str = "Say hello.",
    **fields: Any,
) -> dict[str, Any]:
    """
    A small hand-written request shaped as Codex sends them (streamed, not stored, asking
    for encrypted reasoning, no tools).

    @param fields: more fields, or ones to replace.
    """
    body: dict[str, Any] = {
        "model": model,
        "instructions": instructions,
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        ],
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "stream": True,
        "store": False,
        "include": ["reasoning.encrypted_content"],
    }
    body.update(fields)
    return body


def usage(inputTokens: int = 10, outputTokens: int = 5) -> dict[str, Any]:
    """
    A complete usage object (Codex rejects a partial one).
    """
    return {
        "input_tokens": inputTokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": outputTokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": inputTokens + outputTokens,
    }


def created(responseId: str = "resp_1") -> dict[str, Any]:
    """
    C{response.created}.
    """
    return {
        "type": "response.created",
        "response": {"id": responseId, "object": "response", "status": "in_progress",
                     "output": []},
    }


def completed(responseId: str = "resp_1", withUsage: bool = True) -> dict[str, Any]:
    """
    C{response.completed}.
    """
    response: dict[str, Any] = {"id": responseId, "object": "response", "status": "completed"}
    if withUsage:
        response["usage"] = usage()
    return {"type": "response.completed", "response": response}


def messageEvents(text: str, itemId: str = "msg_1", index: int = 0,
                  deltas: list[str] | None = None) -> list[dict[str, Any]]:
    """
    An assistant message: C{output_item.added}, text deltas, C{output_item.done}.

    @param deltas: the pieces streamed (default: the whole text in one delta).
    """
    pieces = [text] if deltas is None else deltas
    return (
        [{"type": "response.output_item.added", "output_index": index,
          "item": {"type": "message", "id": itemId, "role": "assistant",
                   "status": "in_progress", "content": []}}]
        + [{"type": "response.output_text.delta", "output_index": index,
            "content_index": 0, "item_id": itemId, "delta": d} for d in pieces]
        + [{"type": "response.output_item.done", "output_index": index,
            "item": {"type": "message", "id": itemId, "role": "assistant",
                     "status": "completed",
                     "content": [{"type": "output_text", "text": text,
                                  "annotations": []}]}}]
    )


def functionCallEvents(name: str, arguments: Any, callId: str = "call_1",
                       itemId: str = "fc_1", index: int = 0) -> list[dict[str, Any]]:
    """
    A function call: C{output_item.added}, one arguments delta, C{output_item.done}.

    @param arguments: the arguments, a JSON string or a value to encode.
    """
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    item = {"type": "function_call", "id": itemId, "call_id": callId, "name": name}
    return [
        {"type": "response.output_item.added", "output_index": index,
         "item": dict(item, arguments="", status="in_progress")},
        {"type": "response.function_call_arguments.delta", "output_index": index,
         "item_id": itemId, "delta": args},
        {"type": "response.output_item.done", "output_index": index,
         "item": dict(item, arguments=args, status="completed")},
    ]


def textReply(text: str, responseId: str = "resp_1", **fields: Any) -> dict[str, Any]:
    """
    A reply spec: a complete Responses stream answering C{text}.
    """
    return sseSpec([created(responseId)] + messageEvents(text) + [completed(responseId)],
                   **fields)


def functionCallReply(name: str, arguments: Any, callId: str = "call_1",
                      responseId: str = "resp_1", **fields: Any) -> dict[str, Any]:
    """
    A reply spec: a complete Responses stream calling one function.
    """
    return sseSpec(
        [created(responseId)] + functionCallEvents(name, arguments, callId)
        + [completed(responseId)],
        **fields,
    )
