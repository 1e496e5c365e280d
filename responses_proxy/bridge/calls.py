# -*- test-case-name: tests.test_bridge_calls -*-
"""
Tool calls in a chat reply: which call a C{tool_calls} entry continues, and what a
call's arguments mean for a custom tool or the local shell.

Servers key their tool-call chunks every way there is (bridge-spec.md section 2.2):
by C{index}, by C{id}, by both, by neither, several whole calls in one chunk, every
call at index 0. L{CallTable} holds the rules that tell the calls apart;
L{CustomInput} decodes a custom tool's C{{"input": "..."}} as it streams, so Codex
sees the patch text grow; L{shellAction} reads the C{local_shell} arguments. The item
state machine (L{responses_proxy.bridge.stream}) decides when items open and close.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "Call",
    "CallTable",
    "CustomInput",
    "isJson",
    "jsonText",
    "shellAction",
]

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
_lenientDecode = json.JSONDecoder(strict=False).decode

# CustomInput modes.
_UNDECIDED = 0
_JSON = 1
_RAW = 2
_HOLD = 3
_CLOSED = 4

_INPUT_HEAD = re.compile(r'\s*\{\s*"input"\s*:\s*"')
_INPUT_HEAD_PREFIX = re.compile(r'\s*\{\s*(?:"(?:i(?:n(?:p(?:u(?:t(?:"\s*(?::\s*)?)?)?)?)?)?)?)?\Z')
_STRING_BODY = re.compile(r'(?:[^"\\]+|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*')
_HIGH_SURROGATE_TAIL = re.compile(r"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}\Z")


def jsonText(value: object) -> str:
    """
    Compact JSON text of a value (arguments a server sent as an object).
    """
    return _encoder.encode(value)


def isJson(text: str) -> bool:
    """
    Whether C{text} is one complete JSON value (control characters allowed).
    """
    try:
        _lenientDecode(text)
    except ValueError:
        return False
    return True


class Call:
    """
    One upstream tool call, from its first chunk until its item closes.

    @ivar name: the chat-side function name, once known (the item opens then).
    @ivar parts: the raw argument texts so far.
    @ivar kind: C{function}, C{custom} or C{local_shell}, once the item is open.
    @ivar outputIndex: the item's C{output_index}; -1 until it opens.
    @ivar item: the item as sent in C{output_item.added}.
    @ivar handle: what the sink returned for the item (opaque here).
    @ivar input: the streaming decoder of a custom tool's input, else L{None}.
    """

    __slots__ = (
        "chatIndex",
        "upstreamId",
        "name",
        "parts",
        "kind",
        "outputIndex",
        "item",
        "handle",
        "input",
    )

    def __init__(self, chatIndex: int | None, upstreamId: str | None) -> None:
        self.chatIndex = chatIndex
        self.upstreamId = upstreamId
        self.name: str | None = None
        self.parts: list[str] = []
        self.kind = ""
        self.outputIndex = -1
        self.item: dict[str, Any] = {}
        self.handle: object = None
        self.input: CustomInput | None = None


class CallTable:
    """
    The calls of one run of C{tool_calls} deltas, by chat index and upstream id.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._byIndex: dict[int, Call] = {}
        self._byId: dict[str, Call] = {}

    def find(
        self, index: int | None, upstreamId: str | None, name: str | None, touched: list[Call]
    ) -> Call:
        """
        The call a tool-call entry continues, or a new one.

        A known id continues its call; an unknown id at an index whose call has no
        upstream id yet continues that call; otherwise a new id or a new index starts
        a call. An entry with neither continues the latest call, unless that call was
        already touched in this chunk, or the entry names another function, or
        repeats the name after complete JSON arguments (whole calls without ids).

        @param touched: the calls earlier entries of the same chunk went to.
        """
        if upstreamId is not None:
            call = self._byId.get(upstreamId)
            if call is not None:
                return call
            if index is not None:
                call = self._byIndex.get(index)
                if call is not None and call.upstreamId is None:
                    call.upstreamId = upstreamId
                    self._byId[upstreamId] = call
                    return call
            return self._new(index, upstreamId)
        if index is not None:
            call = self._byIndex.get(index)
            if call is not None:
                return call
            return self._new(index, None)
        if self.calls:
            last = self.calls[-1]
            if last not in touched and not (
                name is not None
                and last.name is not None
                and (name != last.name or isJson("".join(last.parts)))
            ):
                return last
        return self._new(None, None)

    def _new(self, index: int | None, upstreamId: str | None) -> Call:
        """
        Register a new call under its chat index and upstream id.
        """
        call = Call(index, upstreamId)
        self.calls.append(call)
        if index is not None:
            self._byIndex[index] = call
        if upstreamId is not None:
            self._byId[upstreamId] = call
        return call

    def opened(self) -> list[Call]:
        """
        The calls whose items are open, in C{output_index} order.
        """
        return sorted(
            (call for call in self.calls if call.outputIndex >= 0),
            key=lambda call: call.outputIndex,
        )


class CustomInput:
    """
    A custom tool's input, decoded from the chat arguments while they stream.

    The input is streamed while the arguments read C{{"input": "...} (decoded as they
    arrive, escapes split across chunks included) or are plain text; other shapes
    are held and sent whole at the end.

    @ivar sent: the pieces returned so far (what the client has seen).
    """

    __slots__ = ("_mode", "_pending", "sent")

    def __init__(self) -> None:
        self._mode = _UNDECIDED
        self._pending = ""
        self.sent: list[str] = []

    def piece(self, text: str) -> str:
        """
        The part of the input that C{text} (more raw arguments) makes known.

        @return: the new input text, possibly empty; it is recorded in L{sent}.
        """
        piece = self._decode(text)
        if piece:
            self.sent.append(piece)
        return piece

    def _decode(self, text: str) -> str:
        mode = self._mode
        if mode == _RAW:
            return text
        if mode == _HOLD or mode == _CLOSED:
            return ""
        pending = self._pending + text
        if mode == _UNDECIDED:
            stripped = pending.lstrip()
            if not stripped:
                self._pending = pending
                return ""
            if stripped[0] not in '{"':
                self._mode = _RAW
                self._pending = ""
                return pending
            match = _INPUT_HEAD.match(pending)
            if match is None:
                if len(pending) < 64 and _INPUT_HEAD_PREFIX.match(pending):
                    self._pending = pending
                else:
                    self._mode = _HOLD
                    self._pending = ""
                return ""
            self._mode = _JSON
            pending = pending[match.end() :]
        end = _STRING_BODY.match(pending).end()
        if not pending.startswith('"', end) and _HIGH_SURROGATE_TAIL.search(pending, 0, end):
            end -= 6
        body = pending[:end]
        rest = pending[end:]
        if rest.startswith('"'):
            self._mode = _CLOSED
            rest = ""
        elif len(rest) > 12:
            self._mode = _HOLD
            rest = ""
        self._pending = rest
        if not body:
            return ""
        try:
            return _lenientDecode('"' + body + '"')
        except ValueError:
            self._mode = _HOLD
            return ""

    def final(self, raw: str) -> str:
        """
        The whole input, from the whole arguments: C{input} of a JSON object, the
        value of a JSON string, other JSON as it is. Text that is not JSON is the
        input as it is, except after C{{"input": "...}, where the decoded string is
        (a model that forgot the closing C{"}}).
        """
        try:
            value = _lenientDecode(raw)
        except ValueError:
            if self._mode in (_JSON, _CLOSED):
                return "".join(self.sent)
            return raw
        if isinstance(value, dict):
            inner = value.get("input")
            return inner if isinstance(inner, str) else raw
        if isinstance(value, str):
            return value
        return raw


def shellAction(raw: str) -> dict[str, Any]:
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
        action["command"] = [part if isinstance(part, str) else jsonText(part) for part in command]
    env = value.get("env")
    if isinstance(env, dict):
        action["env"] = {
            str(key): val if isinstance(val, str) else jsonText(val) for key, val in env.items()
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
