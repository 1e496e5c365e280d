# -*- test-case-name: tests.test_bridge_stream -*-
"""
Check Responses SSE output against the OpenAI Python SDK and Codex's rules.

Reusable by any test that has the bytes a bridge sent (unit tests of the
stream state machine, integration tests through a running bridge):

  - L{parseEvents}: split the bytes into C{(event line, data dict)} pairs,
    checking the framing (C{event:} then C{data:}, a blank line after each).
  - L{validateEvents}: the above, plus every event validated by the SDK's
    C{ResponseStreamEvent} type, sequence numbers 0, 1, 2..., exactly one
    terminal event and it is last, and Codex's item rules (L{checkItems}).
    Returns the event dicts.
  - L{finalResponse}: feed events through the SDK's own accumulator (the
    state class behind C{client.responses.stream}) and return its final
    C{Response}; only for streams that ended in C{response.completed}.
  - L{streamThroughClient}: the whole SDK path, HTTP and SSE decoding
    included, over an in-memory transport.

The SDK's C{ResponseError.code} is a closed list without Codex's codes
(C{context_length_exceeded}, C{insufficient_quota}, C{server_is_overloaded});
failed events are validated with the code swapped for C{server_error}, and the
real code is left in the returned dicts for the caller to check.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

import httpx2 as httpx
import openai
import pydantic
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from openai.types.responses.response_error import ResponseError

__all__ = [
    "TERMINAL_TYPES",
    "SDKCheckError",
    "checkItems",
    "finalResponse",
    "parseEvents",
    "streamThroughClient",
    "validateEvent",
    "validateEvents",
]

TERMINAL_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed"})

_eventAdapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
_sdkCodes = frozenset(ResponseError.model_fields["code"].annotation.__args__)


class SDKCheckError(AssertionError):
    """
    The bytes are not what the SDK or Codex accepts.
    """


def _fail(message: str) -> None:
    raise SDKCheckError(message)


def parseEvents(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """
    Split serialised events, checking the exact framing the bridge writes:
    C{event: <type>\\ndata: <json>\\n\\n}, the type in both places.

    @return: C{(event type, data dict)} pairs in order.
    """
    if not isinstance(data, bytes):
        _fail(f"events must be bytes, got {type(data)!r}")
    if not data:
        return []
    if not data.endswith(b"\n\n"):
        _fail(f"event stream does not end with a blank line: {data[-80:]!r}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail(f"event stream is not UTF-8: {e}")
    events = []
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        if len(lines) != 2:
            _fail(f"event block is not exactly two lines: {block[:200]!r}")
        eventLine, dataLine = lines
        if not eventLine.startswith("event: ") or not dataLine.startswith("data: "):
            _fail(f"bad event framing: {block[:200]!r}")
        eventType = eventLine[len("event: "):]
        try:
            body = json.loads(dataLine[len("data: "):])
        except ValueError as e:
            _fail(f"event data is not JSON ({e}): {dataLine[:200]!r}")
        if not isinstance(body, dict):
            _fail(f"event data is not an object: {dataLine[:200]!r}")
        if body.get("type") != eventType:
            _fail(f"event line {eventType!r} does not match data type {body.get('type')!r}")
        events.append((eventType, body))
    return events


def _sdkView(event: dict[str, Any]) -> dict[str, Any]:
    """
    The event with a Codex-only error code swapped for one the SDK lists.
    """
    response = event.get("response")
    if isinstance(response, dict):
        error = response.get("error")
        if isinstance(error, dict) and error.get("code") not in _sdkCodes:
            event = copy.deepcopy(event)
            event["response"]["error"]["code"] = "server_error"
    return event


def validateEvent(event: dict[str, Any]) -> Any:
    """
    Validate one event dict with the SDK's C{ResponseStreamEvent} union.

    @return: the SDK model.
    """
    try:
        return _eventAdapter.validate_python(_sdkView(event))
    except pydantic.ValidationError as e:
        _fail("event {} #{} fails SDK validation: {}".format(
            event.get("type"), event.get("sequence_number"), e))


def checkItems(events: list[dict[str, Any]]) -> None:
    """
    Codex's rules for items (bridge-spec section 2.2):

      - C{output_index} values are unique per C{output_item.added}, assigned
        0, 1, 2... in order, and every other event names an added index;
      - C{done} keeps the id, type and C{call_id} of C{added};
      - deltas concatenate to the text of their C{done} events;
      - the terminal C{output} is every C{output_item.done} item, in order,
        exactly as sent; C{usage} is null or complete.
    """
    added: dict[int, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    doneOrder: list[dict[str, Any]] = []
    deltas: dict[tuple[int, str], list[str]] = {}
    finals: dict[tuple[int, str], str] = {}
    expectedIndex = 0
    for event in events:
        kind = event["type"]
        index = event.get("output_index")
        if kind == "response.output_item.added":
            if index != expectedIndex:
                _fail(f"output_item.added has output_index {index!r}, expected {expectedIndex}")
            expectedIndex += 1
            added[index] = event["item"]
            continue
        if index is not None and index not in added:
            _fail(f"{kind} names output_index {index!r} before its output_item.added")
        if kind == "response.output_item.done":
            if index in done:
                _fail(f"output_item.done twice for output_index {index!r}")
            item = event["item"]
            first = added[index]
            for key in ("id", "type", "call_id"):
                if first.get(key) != item.get(key):
                    _fail(
                        f"{key} changed between added and done at index {index!r}: "
                        f"{first.get(key)!r} -> {item.get(key)!r}"
                    )
            done[index] = item
            doneOrder.append(item)
            if item["type"] == "message":
                finals[(index, "text")] = "".join(
                    part.get("text", "") for part in item["content"])
            elif item["type"] == "function_call":
                finals[(index, "args")] = item["arguments"]
            elif item["type"] == "custom_tool_call":
                finals[(index, "input")] = item["input"]
            elif item["type"] == "reasoning":
                finals[(index, "summary")] = "".join(part["text"] for part in item["summary"])
            continue
        if kind in ("response.output_text.delta",):
            deltas.setdefault((index, "text"), []).append(event["delta"])
        elif kind == "response.function_call_arguments.delta":
            deltas.setdefault((index, "args"), []).append(event["delta"])
        elif kind == "response.custom_tool_call_input.delta":
            deltas.setdefault((index, "input"), []).append(event["delta"])
        elif kind == "response.reasoning_summary_text.delta":
            deltas.setdefault((index, "summary"), []).append(event["delta"])
        elif kind == "response.output_text.done":
            _sameText(finals, deltas, index, "text", event["text"])
        elif kind == "response.function_call_arguments.done":
            _sameText(finals, deltas, index, "args", event["arguments"])
        elif kind == "response.custom_tool_call_input.done":
            _sameText(finals, deltas, index, "input", event["input"])
        elif kind == "response.reasoning_summary_text.done":
            _sameText(finals, deltas, index, "summary", event["text"])
    for key, text in finals.items():
        if key in deltas and "".join(deltas[key]) != text:
            _fail("deltas at {!r} do not add up to the done text: {!r} != {!r}".format(
                key, "".join(deltas[key]), text))
    terminal = events[-1] if events else None
    if terminal is not None and terminal["type"] in TERMINAL_TYPES:
        response = terminal["response"]
        if response["output"] != doneOrder:
            _fail("terminal output differs from the output_item.done items")
        usage = response.get("usage")
        if usage is not None:
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                if type(usage.get(key)) is not int:
                    _fail(f"usage.{key} missing or not an integer")


def _sameText(
    finals: dict[tuple[int, str], str],
    deltas: dict[tuple[int, str], list[str]],
    index: int,
    kind: str,
    text: str,
) -> None:
    """
    Remember a C{*.done} text so it can be compared with deltas and the item.
    """
    key = (index, kind)
    if key in deltas and "".join(deltas[key]) != text:
        _fail("deltas at {!r} do not add up to the done text: {!r} != {!r}".format(
            key, "".join(deltas[key]), text))
    finals[key] = text


def validateEvents(data: bytes, *, requireTerminal: bool = True) -> list[dict[str, Any]]:
    """
    Parse and check a whole serialised event stream (see the module docstring).

    @param requireTerminal: whether the stream must end with exactly one
        terminal event (false for a stream still in progress).
    @return: the event dicts (with their real error codes).
    """
    pairs = parseEvents(data)
    events = [body for _, body in pairs]
    for expected, event in enumerate(events):
        if event.get("sequence_number") != expected:
            _fail(
                f"sequence_number {event.get('sequence_number')!r} where {expected} was "
                f"expected ({event.get('type')})"
            )
        validateEvent(event)
    terminals = [e for e in events if e["type"] in TERMINAL_TYPES]
    if requireTerminal:
        if len(terminals) != 1:
            _fail(f"expected exactly one terminal event, got {len(terminals)}")
        if events[-1]["type"] not in TERMINAL_TYPES:
            _fail("the terminal event is not last")
    elif len(terminals) > 1 or (terminals and events[-1] is not terminals[0]):
        _fail("terminal event repeated or not last")
    if any(e["type"] == "error" for e in events):
        _fail("an SSE error event was sent (Codex ignores it)")
    if events:
        if events[0]["type"] != "response.created":
            _fail("first event is {!r}, not response.created".format(events[0]["type"]))
        responseIds = {e["response"]["id"] for e in events if "response" in e}
        if len(responseIds) != 1:
            _fail(f"response id changes within the stream: {responseIds!r}")
    checkItems(events)
    return events


def finalResponse(events: Iterable[dict[str, Any]]) -> Response:
    """
    Accumulate events with the SDK's C{ResponseStreamState} (what
    C{client.responses.stream(...).get_final_response()} uses).

    @param events: event dicts from L{validateEvents}; must end in
        C{response.completed}.
    @return: the SDK's final response.
    """
    state: ResponseStreamState[Any] = ResponseStreamState(
        input_tools=openai.omit, text_format=openai.omit
    )
    for event in events:
        state.handle_event(_eventAdapter.validate_python(_sdkView(event)))
    response = state._completed_response
    if response is None:
        _fail("the SDK accumulator saw no response.completed")
    return response


def streamThroughClient(data: bytes, model: str = "test-model") -> Response:
    """
    Run the bytes through the real SDK client (HTTP parsing, SSE decoding,
    accumulation) with an in-memory transport, and return the final response.
    """

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=data
        )

    client = openai.OpenAI(
        api_key="not-a-key",
        base_url="http://127.0.0.1:9/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        max_retries=0,
    )
    try:
        with client.responses.stream(model=model, input="hi") as stream:
            return stream.get_final_response()
    finally:
        client.close()
