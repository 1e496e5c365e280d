# -*- test-case-name: tests.interop.test_litellm -*-
"""
A LiteLLM custom provider for the interop suite: a deterministic "model" that makes
tool calls, so LiteLLM's own streaming of tool calls (its C{CustomStreamWrapper}) is
what the bridge receives.

LiteLLM's C{mock_response} covers text and errors but streams no tool calls, so the
proxy's config routes C{interop/*} models here. This module is loaded by the LiteLLM
proxy (its C{custom_provider_map}), in LiteLLM's own virtualenv, never by the tests.

Behaviour: when the last message is a tool result, answer with text naming the call ids
it got back; otherwise call tools. C{interop/tools} makes one call (the named
C{tool_choice}, else the first offered tool), C{interop/parallel} calls the first two
offered tools in one reply (their argument deltas interleaved). Arguments are fixed per
tool name (L{ARGUMENTS}), else C{{}}; offered tools with known arguments are
preferred (Codex offers many). With C{exec_command} first, C{interop/parallel} makes
two C{exec_command} calls (L{PARALLEL_COMMANDS}).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse

ARGUMENTS: dict[str, dict[str, Any]] = {
    "exec_command": {"cmd": "printf 'litellm interop\\n' > litellm.txt"},
    "get_weather": {"city": "Paris", "unit": "celsius"},
    "get_time": {"timezone": "Europe/Paris"},
}
"""The arguments of a call, by tool name."""

PARALLEL_COMMANDS = [
    {"cmd": "printf 'one\\n' > one.txt"},
    {"cmd": "printf 'two\\n' > two.txt"},
]
"""C{interop/parallel} with Codex: two C{exec_command} calls in one reply."""


def _toolNames(optionalParams: dict[str, Any]) -> list[str]:
    names = []
    for tool in optionalParams.get("tools") or []:
        function = tool.get("function") or {}
        if function.get("name"):
            names.append(function["name"])
    return names


def _plan(model: str, messages: list[dict[str, Any]],
          optionalParams: dict[str, Any]) -> tuple[str, list[tuple[str, str, str]]]:
    """
    @return: the text and the calls (id, name, arguments) of the reply.
    """
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        ids = [m.get("tool_call_id") for m in messages if m.get("role") == "tool"]
        return f"Tool results received for {', '.join(str(i) for i in ids)}.", []
    offered = _toolNames(optionalParams)
    choice = optionalParams.get("tool_choice")
    if isinstance(choice, dict):
        offered = [choice["function"]["name"]]
    if not offered:
        return "No tools were offered.", []
    # Codex offers many tools: prefer the ones with known arguments, in offered order.
    names = [n for n in offered if n in ARGUMENTS] or offered
    calls = []
    if model.endswith("parallel"):
        if names[0] == "exec_command":
            calls = [("call_litellm_0", "exec_command", json.dumps(PARALLEL_COMMANDS[0])),
                     ("call_litellm_1", "exec_command", json.dumps(PARALLEL_COMMANDS[1]))]
        else:
            calls = [(f"call_litellm_{n}", name, json.dumps(ARGUMENTS.get(name, {})))
                     for n, name in enumerate(names[:2])]
    else:
        calls = [("call_litellm_0", names[0], json.dumps(ARGUMENTS.get(names[0], {})))]
    return "", calls


def _pieces(text: str) -> list[str]:
    third = max(1, len(text) // 3)
    return [text[:third], text[third:2 * third], text[2 * third:]]


def _chunks(model: str, messages: list[dict[str, Any]],
            optionalParams: dict[str, Any]) -> Iterator[GenericStreamingChunk]:
    text, calls = _plan(model, messages, optionalParams)
    for piece in _pieces(text) if text else []:
        yield {"text": piece, "tool_use": None, "is_finished": False,
               "finish_reason": "", "usage": None, "index": 0}
    # Each call opens with its id and name, then its arguments in three deltas, the
    # calls' deltas interleaved (index 0, index 1, index 0, ...).
    for index, (callId, name, _) in enumerate(calls):
        yield {"text": "", "is_finished": False, "finish_reason": "", "usage": None,
               "index": 0, "tool_use": {"id": callId, "type": "function", "index": index,
                                        "function": {"name": name, "arguments": ""}}}
    split = [_pieces(arguments) for (_, _, arguments) in calls]
    for step in range(3):
        for index, pieces in enumerate(split):
            yield {"text": "", "is_finished": False, "finish_reason": "", "usage": None,
                   "index": 0, "tool_use": {"id": None, "type": "function", "index": index,
                                            "function": {"name": None,
                                                         "arguments": pieces[step]}}}
    yield {"text": "", "tool_use": None, "is_finished": True,
           "finish_reason": "tool_calls" if calls else "stop", "index": 0,
           "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}}


def _response(model: str, messages: list[dict[str, Any]],
              optionalParams: dict[str, Any]) -> ModelResponse:
    text, calls = _plan(model, messages, optionalParams)
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {"id": callId, "type": "function", "function": {"name": name, "arguments": a}}
            for callId, name, a in calls
        ]
    return ModelResponse(
        model=model, created=int(time.time()),
        choices=[{"index": 0, "message": message,
                  "finish_reason": "tool_calls" if calls else "stop"}],
        usage={"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
    )


class InteropLLM(CustomLLM):
    """
    The custom provider: streamed and whole replies from L{_plan}.
    """

    def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
        return _response(model, messages, kwargs.get("optional_params") or {})

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
        return _response(model, messages, kwargs.get("optional_params") or {})

    def streaming(self, model: str, messages: list, *args: Any,
                  **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        yield from _chunks(model, messages, kwargs.get("optional_params") or {})

    async def astreaming(self, model: str, messages: list, *args: Any,
                         **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:
        for chunk in _chunks(model, messages, kwargs.get("optional_params") or {}):
            yield chunk


handler = InteropLLM()
"""The instance LiteLLM's C{custom_provider_map} names (C{interop_handler.handler})."""
