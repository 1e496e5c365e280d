# -*- test-case-name: tests.test_bridge_stream -*-
"""
Helpers shared by the tests of the bridge's reply conversion (chunks, events, the state
machine, whole replies): chat chunks as servers send them, a deterministic id factory,
and a runner that feeds payloads through a L{ResponsesStream} and validates the result
with L{tests.sdkcheck}.
"""

from __future__ import annotations

import json
from typing import Any

from openai.types.responses import Response

from responses_proxy.bridge.context import BridgeContext
from responses_proxy.bridge.stream import ResponsesStream
from tests.sdkcheck import finalResponse, streamThroughClient, validateEvents
from tests.support.chat import CREATED, chatChunk

RESPONSE_ID = "resp_test"


class Ids:
    """
    A deterministic id factory: C{msg_1}, C{msg_2}, C{call_1}...
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}_{self.counts[kind]}"


def context(**kwargs: Any) -> BridgeContext:
    """
    A request context: model C{test-model}, streaming, unless given.
    """
    kwargs.setdefault("model", "test-model")
    kwargs.setdefault("stream", True)
    return BridgeContext(**kwargs)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any):
    """
    A chat.completion.chunk with one choice, as OpenAI-compatible servers send it.
    """
    return chatChunk({} if delta is None else delta, finish, logprobs=True, **extra)


def usageChunk(prompt: int = 10, completion: int = 5, **extra: Any) -> dict[str, Any]:
    """
    The usage-only last chunk (empty C{choices}).
    """
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    usage.update(extra)
    return chatChunk(usage=usage)


def text(content: str) -> dict[str, Any]:
    """
    A content delta chunk.
    """
    return chunk({"content": content})




def calls(*entries: dict[str, Any]) -> dict[str, Any]:
    """
    A chunk whose delta holds these C{tool_calls} entries.
    """
    return chunk({"tool_calls": list(entries)})


def payload(item: Any) -> bytes:
    """
    A data payload: bytes as they are, anything else as JSON.
    """
    if isinstance(item, bytes):
        return item
    return json.dumps(item).encode("utf-8")


def newStream(ctx: BridgeContext | None = None) -> ResponsesStream:
    """
    A stream with the test response id, time and deterministic ids.
    """
    return ResponsesStream(
        ctx or context(), responseId=RESPONSE_ID, createdAt=CREATED, idFactory=Ids()
    )


def run(chunks: list[Any], ctx: BridgeContext | None = None, end: bool = True):
    """
    Feed payloads through a fresh stream; return (events, bytes, stream).
    """
    stream = newStream(ctx)
    out = stream.start()
    for item in chunks:
        out += stream.feed(payload(item)).events
    if end:
        out += stream.end()
    events = validateEvents(out, requireTerminal=end)
    return events, out, stream


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """
    The sequence as (type, output_index, item id) for exact comparisons.
    """
    result = []
    for event in events:
        itemId = event.get("item_id")
        if itemId is None and "item" in event:
            itemId = event["item"].get("id")
        result.append((event["type"], event.get("output_index"), itemId))
    return result


def types(events: list[dict[str, Any]]) -> list[str]:
    """
    The event types in order.
    """
    return [event["type"] for event in events]


def terminal(events: list[dict[str, Any]]) -> dict[str, Any]:
    """
    The terminal event's response object.
    """
    return events[-1]["response"]


def doneItems(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The items of the C{output_item.done} events, in order.
    """
    return [e["item"] for e in events if e["type"] == "response.output_item.done"]


def _sdkDump(response: Response) -> dict[str, Any]:
    return Response.model_validate(response.model_dump()).model_dump(mode="json", exclude_none=True)


class SDKAgreementMixin:
    """
    Check a completed stream with the SDK's accumulator and its client.
    """

    def assertSDKAgrees(self, events: list[dict[str, Any]], data: bytes) -> Response:
        self.assertEqual(events[-1]["type"], "response.completed")
        accumulated = finalResponse(events)
        final = Response.model_validate(events[-1]["response"])
        self.assertEqual(_sdkDump(accumulated), _sdkDump(final))
        self.assertEqual(len(accumulated.output), len(doneItems(events)))
        viaClient = streamThroughClient(data)
        self.assertEqual(_sdkDump(viaClient), _sdkDump(final))
        return accumulated


FUZZ_VALUES: list[Any] = [
    None,
    "",
    " ",
    "x",
    "\n\n",
    "<think>",
    "</think>",
    "<th",
    "ink>",
    "\U0001f600",
    "\ud83d",
    0,
    1,
    -1,
    True,
    1.5,
    [],
    {},
    ["a"],
    {"text": "t"},
    [{"type": "text", "text": "p"}],
    {"type": "reasoning.encrypted", "data": "z"},
    '{"input":"',
    '"}',
    '{"a":',
    "1}",
    "\\u00e9",
    '{"command":["ls"]}',
]
_FUZZ_KEYS = [
    "content",
    "reasoning_content",
    "reasoning",
    "reasoning_details",
    "refusal",
    "role",
    "tool_calls",
    "function_call",
]


def _randomEntry(rng: Any) -> Any:
    """
    A random C{tool_calls} entry, often malformed.
    """
    choice = rng.random()
    if choice < 0.1:
        return rng.choice(FUZZ_VALUES)
    entry: dict[str, Any] = {}
    if rng.random() < 0.6:
        entry["index"] = rng.choice([0, 1, 2, None, "0", True])
    if rng.random() < 0.4:
        entry["id"] = rng.choice(["a", "b", "c", None, "", 7])
    function: dict[str, Any] = {}
    if rng.random() < 0.5:
        function["name"] = rng.choice(["f", "apply_patch", "local_shell", "ns__g", None, 3])
    if rng.random() < 0.8:
        function["arguments"] = rng.choice(FUZZ_VALUES)
    entry["function"] = function if rng.random() < 0.95 else rng.choice(FUZZ_VALUES)
    return entry


def randomChunk(rng: Any) -> Any:
    """
    A random payload or chunk, often odd, for seeded fuzzing (C{rng} is a
    C{random.Random}).
    """
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(
            [
                b"[DONE]",
                b"garbage",
                b"",
                b"[1]",
                b"\xff\xfe",
                b'{"choices":[{"delta":{"content":"a"}}]}\n{"choices":[]}',
            ]
        )
    if roll < 0.05:
        return {"error": rng.choice(FUZZ_VALUES + [{"message": "prompt is too long"}])}
    if roll < 0.08:
        return {
            "choices": rng.choice(FUZZ_VALUES),
            "usage": rng.choice(FUZZ_VALUES + [{"prompt_tokens": 1, "completion_tokens": 2}]),
        }
    delta: dict[str, Any] = {}
    for _ in range(rng.randrange(3)):
        key = rng.choice(_FUZZ_KEYS)
        if key in ("tool_calls",):
            delta[key] = [_randomEntry(rng) for _ in range(rng.randrange(1, 3))]
        elif key == "function_call":
            delta[key] = {"name": rng.choice(["f", None]), "arguments": rng.choice(FUZZ_VALUES)}
        else:
            delta[key] = rng.choice(FUZZ_VALUES)
    finish = None
    if rng.random() < 0.05:
        finish = rng.choice(
            ["stop", "length", "tool_calls", "content_filter", "error", "other", 5, ""]
        )
    body = chunk(delta if rng.random() < 0.95 else rng.choice(FUZZ_VALUES), finish)
    if rng.random() < 0.05:
        body["usage"] = {"prompt_tokens": rng.randrange(100), "completion_tokens": 3}
    return body
