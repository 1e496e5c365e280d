# -*- test-case-name: tests.test_bridge_completion -*-
"""
A chat reply returned whole (C{stream: false}) -> one Responses object.

The same state machine as a stream (L{responses_proxy.bridge.stream.ReplyMachine}),
with a sink that keeps only the finished items: no SSE event is built. The object is
the one the terminal event of a stream would carry; C{status} is C{completed},
C{incomplete} or C{failed} (the glue chooses the HTTP status for C{failed}).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from responses_proxy.bridge.chunks import fixSurrogates
from responses_proxy.bridge.context import BridgeContext
from responses_proxy.bridge.events import ResponseHead
from responses_proxy.bridge.stream import ReplyMachine, randomId
from responses_proxy.bridge.textcalls import healerFor

__all__ = [
    "chunksToResponse",
    "completionToResponse",
    "failedResponse",
]


def _utf8Safe(value: Any) -> Any:
    """
    C{value} with lone surrogates in any string replaced, so it encodes as UTF-8.

    Upstream strings (an error message, a tool name, an id) can carry them through
    C{\\ud83d}-style escapes; the SSE path repairs them when it serialises, a whole
    reply is serialised by its caller.
    """
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return fixSurrogates(value)
        return value
    if type(value) is dict:
        return {_utf8Safe(key): _utf8Safe(inner) for key, inner in value.items()}
    if type(value) is list:
        return [_utf8Safe(inner) for inner in value]
    return value


class _Collector:
    """
    A sink that keeps the finished items and builds the response at the end.
    """

    def __init__(self, head: ResponseHead) -> None:
        self._head = head
        self._output: list[dict[str, Any]] = []
        self.response: dict[str, Any] | None = None

    def itemAdded(self, outputIndex: int, item: dict[str, Any]) -> None:
        return None

    def delta(self, handle: None, text: str) -> None:
        pass

    def itemDone(self, handle: None, item: dict[str, Any]) -> None:
        self._output.append(item)

    def awaitingTail(self) -> None:
        pass

    def terminal(
        self,
        status: str,
        usage: dict[str, Any] | None,
        error: dict[str, Any] | None,
        incompleteDetails: dict[str, Any] | None,
    ) -> None:
        response = self._head.response(status, self._output, usage, error, incompleteDetails)
        self.response = _utf8Safe(response)


def _machine(
    context: BridgeContext,
    responseId: str | None,
    createdAt: int | None,
    idFactory: Callable[[str], str] | None,
) -> tuple[ReplyMachine, _Collector]:
    """
    A state machine that reports to a fresh collector.
    """
    newId = idFactory if idFactory is not None else randomId
    head = ResponseHead(
        context,
        responseId if responseId is not None else newId("resp"),
        int(time.time()) if createdAt is None else createdAt,
    )
    collector = _Collector(head)
    return ReplyMachine(context, collector, newId, healerFor(context.healTextCalls)), collector


def _result(
    machine: ReplyMachine, collector: _Collector, healed: list[str] | None = None
) -> dict[str, Any]:
    """
    The finished machine's response, with the text-call formats it healed added to
    C{healed} if given.
    """
    if healed is not None:
        healed.extend(machine.healed)
    assert collector.response is not None
    return collector.response


def completionToResponse(
    context: BridgeContext,
    completion: object,
    *,
    responseId: str | None = None,
    createdAt: int | None = None,
    idFactory: Callable[[str], str] | None = None,
    healed: list[str] | None = None,
) -> dict[str, Any]:
    """
    Convert a whole chat completion (a JSON reply) to a Responses object.

    @param completion: the parsed JSON; anything but a completion with choices
        gives a C{failed} response.
    @param idFactory: as for L{responses_proxy.bridge.stream.ResponsesStream}.
    @param healed: if given, extended with the formats of tool calls found written as
        text (for the glue's log line).
    """
    machine, collector = _machine(context, responseId, createdAt, idFactory)
    machine.feedCompletion(completion)
    return _result(machine, collector, healed)


def chunksToResponse(
    context: BridgeContext,
    payloads: Iterable[bytes],
    *,
    responseId: str | None = None,
    createdAt: int | None = None,
    idFactory: Callable[[str], str] | None = None,
    healed: list[str] | None = None,
) -> dict[str, Any]:
    """
    Convert a chat stream read whole (an upstream that streamed although asked not
    to) to a Responses object.

    @param payloads: the data payloads of its SSE events, in order, C{[DONE]}
        included if it came; the end of the iterable is the end of the stream.
    @param healed: as for L{completionToResponse}.
    """
    machine, collector = _machine(context, responseId, createdAt, idFactory)
    for payload in payloads:
        machine.feedPayload(payload)
        if machine.done:
            break
    machine.end()
    return _result(machine, collector, healed)


def failedResponse(
    context: BridgeContext,
    code: str,
    message: str,
    *,
    responseId: str | None = None,
    createdAt: int | None = None,
    idFactory: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """
    A C{failed} Responses object with no output, for a whole reply that could not
    be read at all (an SSE line over the size limit).
    """
    machine, collector = _machine(context, responseId, createdAt, idFactory)
    machine.fail(code, message)
    return _result(machine, collector)
