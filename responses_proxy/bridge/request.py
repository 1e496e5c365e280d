# -*- test-case-name: tests.test_bridge_request -*-
"""
Responses API request -> Chat Completions request, plus the L{BridgeContext} for the reply.

Pure: no I/O, no Twisted, no logging. What is dropped is returned as short notes (never
content) for the glue to log at debug level. The mapping is bridge-spec section 1; where the
spec is silent the decisions are listed in C{docs/bridge-request.md} and pinned by
C{tests/test_bridge_request.py}.

The chat body shares large values (texts, schemas, image URLs) with the request instead of
copying them: treat both as read-only once converted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from responses_proxy.bridge.context import BridgeContext, ToolKind, ToolTarget
from responses_proxy.bridge.names import flattenToolName
from responses_proxy.bridge.profiles import DEFAULT_PROFILE, Profile, applyProfile, mergeFields
from responses_proxy.bridge.reasoning import decodeReasoning
from responses_proxy.replies import errorDocument

__all__ = [
    "BridgeRequestError",
    "ChatConversion",
    "convertRequest",
    "flattenToolName",
    "isItemReference",
    "parseRequestBody",
]


class BridgeRequestError(Exception):
    """
    A request the bridge refuses with HTTP 400 and a Responses-style error body.

    C{str()} of the exception is the message and nothing else, so it is safe to show.

    @ivar message: a sentence naming the offending field.
    @ivar param: the field, in the Responses API's notation (C{"input[3].content"}), or
        L{None}.
    @ivar code: an OpenAI-style error code (C{"invalid_type"}, ...), or L{None}.
    """

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def __str__(self) -> str:
        return self.message

    def errorBody(self) -> dict[str, Any]:
        """
        @return: the Responses-style body C{{"error": {message, type, param, code}}}.
        """
        return errorDocument(self.message, "invalid_request_error", self.code, self.param)


@attrs.frozen
class ChatConversion:
    """
    The outcome of L{convertRequest}.

    @ivar body: the Chat Completions JSON body to send upstream.
    @ivar context: what the reply conversion needs.
    @ivar dropped: notes on what was dropped or replaced, for a debug log; they name
        fields, item indexes and types, never content.
    """

    body: dict[str, Any]
    context: BridgeContext
    dropped: tuple[str, ...] = ()


# -- errors -------------------------------------------------------------------------------

_MISSING = "missing_required_parameter"
_TYPE = "invalid_type"
_VALUE = "invalid_value"
_UNSUPPORTED = "unsupported_parameter"


def _typeError(param: str, expected: str) -> BridgeRequestError:
    return BridgeRequestError(f"'{param}' must be {expected}.", param=param, code=_TYPE)


def _isNumber(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- body parsing -------------------------------------------------------------------------


def _refuseConstant(name: str) -> Any:
    raise ValueError(name)


def parseRequestBody(raw: bytes) -> dict[str, Any]:
    """
    Parse a request body as a UTF-8 JSON object.

    A leading byte order mark is tolerated; C{NaN} and C{Infinity} are not JSON and are
    refused, since the upstream would refuse them too.

    @param raw: the body bytes.
    @return: the object.
    @raise BridgeRequestError: the body is not UTF-8, not JSON, or not an object.
    """
    problem = None
    value: Any = None
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as e:
        problem = f"The request body is not valid UTF-8 (at byte {e.start})."
    else:
        if text.startswith("\ufeff"):
            text = text[1:]
        try:
            value = json.loads(text, parse_constant=_refuseConstant)
        except json.JSONDecodeError as e:
            problem = (
                f"The request body is not valid JSON ({e.msg}: line {e.lineno} column {e.colno})."
            )
        except (ValueError, RecursionError):
            problem = "The request body is not valid JSON."
    # Raised outside the except blocks so the error keeps no reference to the body.
    if problem is not None:
        raise BridgeRequestError(problem, code="invalid_json")
    if not isinstance(value, dict):
        raise BridgeRequestError("The request body must be a JSON object.", code=_TYPE)
    return value


# -- top level ----------------------------------------------------------------------------

# Fields read by convertRequest; every other top-level field is dropped with a note.
_HANDLED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "user",
        "text",
        "stream",
        "store",
        "previous_response_id",
        "conversation",
        "background",
        "prompt",
    }
)

# Request fields the response object repeats when the request had them (BridgeContext.echo).
_ECHOED = (
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "reasoning",
    "text",
    "metadata",
    "user",
)


def isItemReference(item: Mapping[str, Any]) -> bool:
    """
    Whether an input item refers to a stored item by id: C{type} C{"item_reference"}, or
    (the API's C{ItemReference} has an optional C{type}) no type, no role, no content and
    an C{id}.
    """
    kind = item.get("type")
    if kind == "item_reference":
        return True
    return kind is None and "id" in item and "role" not in item and "content" not in item


def _refuseStateful(request: Mapping[str, Any], resolved: bool) -> None:
    """
    Refuse what needs server-side state the bridge does not keep, and references that
    were not resolved from its response store (L{responses_proxy.bridge.state}).
    """
    if not resolved and request.get("previous_response_id") is not None:
        raise BridgeRequestError(
            "'previous_response_id' was not resolved: the bridge looks it up in its "
            "response store before converting the request.",
            param="previous_response_id",
            code=_UNSUPPORTED,
        )
    if request.get("conversation") is not None:
        raise BridgeRequestError(
            "'conversation' is not supported: this bridge stores responses but has no "
            "Conversations API to keep conversation objects in; chain responses with "
            "'previous_response_id', or send the whole conversation in 'input'.",
            param="conversation",
            code=_UNSUPPORTED,
        )
    if request.get("background") is True:
        raise BridgeRequestError(
            "'background' is not supported: this bridge relays each response while the "
            "upstream produces it and has no endpoint to retrieve or poll it later; send "
            "the request without 'background'.",
            param="background",
            code=_UNSUPPORTED,
        )
    if request.get("prompt") is not None:
        raise BridgeRequestError(
            "'prompt' is not supported: prompt templates are stored server-side and this "
            "bridge cannot resolve them; send 'instructions' instead.",
            param="prompt",
            code=_UNSUPPORTED,
        )


def convertRequest(
    request: Mapping[str, Any], profile: Profile = DEFAULT_PROFILE, *, resolved: bool = False
) -> ChatConversion:
    """
    Convert a Responses API request body to a Chat Completions request body.

    @param request: the parsed request (see L{parseRequestBody}), or the C{body} of a
        L{responses_proxy.bridge.state.ResolvedRequest}.
    @param profile: the upstream's quirks (L{responses_proxy.bridge.profiles}); the
        default changes nothing.
    @param resolved: the request's state was resolved (its C{input} is the whole
        conversation, references replaced); then C{previous_response_id} is only echoed.
        Without it, C{previous_response_id} and item references are refused.
    @return: the chat body, the context for the reply, and notes on what was dropped.
    @raise BridgeRequestError: the request cannot be bridged (stateful fields, missing or
        malformed C{model} / C{input}, malformed items or fields).
    """
    if not isinstance(request, Mapping):
        raise BridgeRequestError("The request body must be a JSON object.", code=_TYPE)
    notes: list[str] = []
    _refuseStateful(request, resolved)
    model = _model(request)
    stream = _optionalBool(request, "stream", False)

    tools = _ToolConverter(notes)
    tools.convert(request.get("tools"))
    history = _HistoryConverter(notes)
    messages = history.convert(request.get("instructions"), request.get("input"))

    body: dict[str, Any] = {"model": profile.upstreamModel(model), "messages": messages}
    choice = _convertToolChoice(request.get("tool_choice"), tools.targets, notes)
    parallel = _optionalBool(request, "parallel_tool_calls", None)
    _toolFields(body, tools.chatTools, choice, parallel, notes)
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    _convertReasoning(request.get("reasoning"), body, notes, profile)
    _samplingFields(request, body, profile)
    _convertText(request.get("text"), body, notes)
    for key in request:
        if key not in _HANDLED:
            notes.append(f"field {_label(key)} dropped")
    if request.get("background") is False:
        notes.append("field 'background' dropped")
    body = applyProfile(body, profile, notes)

    # History calls to tools the request no longer offers (a compaction request sends
    # tools: []) still map back, in case the model calls them anyway.
    targets = tools.targets
    for chatName, target in history.targets.items():
        targets.setdefault(chatName, target)
    context = BridgeContext(
        model=model,
        stream=stream,
        tools=targets,
        echo=_echoed(request, parallel),
        healTextCalls=_healable(tools.chatTools, choice),
    )
    return ChatConversion(body=body, context=context, dropped=tuple(notes))


def _model(request: Mapping[str, Any]) -> str:
    model = request.get("model")
    if model is None:
        raise BridgeRequestError("'model' is required.", param="model", code=_MISSING)
    if not isinstance(model, str) or not model:
        raise _typeError("model", "a non-empty string")
    return model


def _optionalBool(request: Mapping[str, Any], field: str, default: bool | None) -> Any:
    value = request.get(field)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _typeError(field, "a boolean")
    return value


def _toolFields(
    body: dict[str, Any],
    chatTools: list[dict[str, Any]],
    choice: Any,
    parallel: bool | None,
    notes: list[str],
) -> None:
    """
    C{tools}, C{tool_choice} and C{parallel_tool_calls}: sent only while tools remain.
    """
    if chatTools:
        body["tools"] = chatTools
        if choice is not None:
            body["tool_choice"] = choice
        if parallel is not None:
            body["parallel_tool_calls"] = parallel
        return
    if choice is not None and choice != "auto":
        notes.append("tool_choice dropped: no tools remain")
    if parallel is not None:
        notes.append("parallel_tool_calls dropped: no tools remain")


def _samplingFields(request: Mapping[str, Any], body: dict[str, Any], profile: Profile) -> None:
    """
    C{max_output_tokens} (under the profile's field name), C{temperature}, C{top_p},
    C{user}.
    """
    maxTokens = request.get("max_output_tokens")
    if maxTokens is not None:
        if not isinstance(maxTokens, int) or isinstance(maxTokens, bool):
            raise _typeError("max_output_tokens", "an integer")
        body[profile.maxTokensField] = maxTokens
    for field in ("temperature", "top_p"):
        value = request.get(field)
        if value is not None:
            if not _isNumber(value):
                raise _typeError(field, "a number")
            body[field] = value
    user = request.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise _typeError("user", "a string")
        body["user"] = user


def _echoed(request: Mapping[str, Any], parallel: bool | None) -> dict[str, Any]:
    """
    The request fields every response object repeats.
    """
    tools = request.get("tools")
    choice = request.get("tool_choice")
    echo: dict[str, Any] = {
        "tools": tools if isinstance(tools, list) else [],
        "tool_choice": choice if choice is not None else "auto",
        "parallel_tool_calls": parallel if parallel is not None else True,
        # As OpenAI's response objects do (null when the request had none).
        "previous_response_id": request.get("previous_response_id"),
        "store": request.get("store") is not False,
    }
    for field in _ECHOED:
        value = request.get(field)
        if value is not None:
            echo[field] = value
    return echo


def _healable(chatTools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
    """
    The tools whose calls may come back written as text (bridge-spec section 6): those
    offered, unless the request said C{tool_choice: none}.
    """
    if choice == "none":
        return {}
    heal: dict[str, Mapping[str, Any] | None] = {}
    for tool in chatTools:
        function = tool["function"]
        parameters = function.get("parameters")
        heal[function["name"]] = parameters if isinstance(parameters, Mapping) else None
    return heal


def _convertReasoning(
    reasoning: object, body: dict[str, Any], notes: list[str], profile: Profile
) -> None:
    """
    C{reasoning.effort} -> C{reasoning_effort}, as the profile maps it; everything else in
    C{reasoning} is dropped.
    """
    if reasoning is None:
        return
    if not isinstance(reasoning, Mapping):
        raise _typeError("reasoning", "an object")
    for key in reasoning:
        if key != "effort":
            notes.append(f"field {_label('reasoning.' + str(key))} dropped")
    effort = reasoning.get("effort")
    if effort is None:
        return
    if effort == "none" and profile.reasoningOffFields:
        body.update(mergeFields(body, profile.reasoningOffFields))
    if not isinstance(effort, str) or effort not in profile.reasoningEfforts:
        notes.append("reasoning.effort dropped: not a known effort")
        return
    mapped = profile.reasoningEfforts[effort]
    if mapped is not None:
        body["reasoning_effort"] = mapped


def _convertText(text: object, body: dict[str, Any], notes: list[str]) -> None:
    """
    C{text.format} -> C{response_format}; C{text.verbosity} is dropped.
    """
    if text is None:
        return
    if not isinstance(text, Mapping):
        raise _typeError("text", "an object")
    for key in text:
        if key != "format":
            notes.append(f"field {_label('text.' + str(key))} dropped")
    fmt = text.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, Mapping):
        raise _typeError("text.format", "an object")
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind == "json_object":
        body["response_format"] = {"type": "json_object"}
        return
    if kind != "json_schema":
        raise BridgeRequestError(
            "'text.format.type' must be one of 'text', 'json_object', 'json_schema'.",
            param="text.format.type",
            code=_VALUE,
        )
    schema = fmt.get("schema")
    if not isinstance(schema, Mapping):
        raise _typeError("text.format.schema", "an object")
    name = fmt.get("name")
    # Chat requires a name; the Responses API does too, but a missing one is harmless.
    spec: dict[str, Any] = {"name": name if isinstance(name, str) and name else "response"}
    description = fmt.get("description")
    if isinstance(description, str):
        spec["description"] = description
    spec["schema"] = schema
    strict = fmt.get("strict")
    if isinstance(strict, bool):
        spec["strict"] = strict
    body["response_format"] = {"type": "json_schema", "json_schema": spec}


# -- tools --------------------------------------------------------------------------------

_CUSTOM_SENTENCE = (
    "Call this tool through its single string argument `input`: put the raw text the tool "
    "takes (for example the whole patch) in `input`, exactly as it should be applied, "
    "with no other wrapping."
)

_LOCAL_SHELL_DESCRIPTION = "Runs a command on the user's machine and returns its output."


def _localShellFunction() -> dict[str, Any]:
    """
    The chat function standing in for the Responses C{local_shell} tool (fresh each time:
    the body must never share mutable state between requests).
    """
    return {
        "type": "function",
        "function": {
            "name": "local_shell",
            "description": _LOCAL_SHELL_DESCRIPTION,
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": 'The program and its arguments, e.g. ["bash", "-lc", "ls"].',
                    },
                    "working_directory": {
                        "type": "string",
                        "description": "The directory to run the command in.",
                    },
                    "timeout_ms": {
                        "type": "integer",
                        "description": "How long the command may run, in milliseconds.",
                    },
                },
                "required": ["command"],
                "additionalProperties": False,
            },
        },
    }


class _ToolConverter:
    """
    Responses C{tools} -> chat C{tools}, and chat name -> L{ToolTarget}.

    @ivar chatTools: the chat tool definitions, in request order.
    @ivar targets: every chat name emitted -> where it came from.
    """

    def __init__(self, notes: list[str]) -> None:
        self._notes = notes
        self.chatTools: list[dict[str, Any]] = []
        self.targets: dict[str, ToolTarget] = {}

    def convert(self, tools: object) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            raise _typeError("tools", "an array")
        for i, tool in enumerate(tools):
            where = f"tools[{i}]"
            if not isinstance(tool, Mapping):
                raise _typeError(where, "an object")
            kind = tool.get("type")
            if kind == "function":
                self._function(tool, None, where)
            elif kind == "custom":
                self._custom(tool, None, where)
            elif kind == "namespace":
                self._namespace(tool, where)
            elif kind == "local_shell":
                self._add("local_shell", ToolTarget("local_shell", "local_shell"), None, where)
            else:
                # web_search, file_search, tool_search, image_generation, computer_use*,
                # hosted mcp, code_interpreter and unknown types: hosted tools the chat
                # upstream cannot run. Codex sends web_search by default, so this is normal.
                self._notes.append(f"{where}: {_label(kind)} tool dropped")

    def _add(
        self, chatName: str, target: ToolTarget, tool: dict[str, Any] | None, where: str
    ) -> None:
        if chatName in self.targets:
            self._notes.append(f"{where}: duplicate tool name {chatName!r} dropped")
            return
        self.targets[chatName] = target
        self.chatTools.append(tool if tool is not None else _localShellFunction())

    def _name(self, tool: Mapping[str, Any], where: str) -> str:
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _typeError(f"{where}.name", "a non-empty string")
        return name

    def _function(self, tool: Mapping[str, Any], namespace: str | None, where: str) -> None:
        inner = tool.get("function")
        if "name" not in tool and isinstance(inner, Mapping):
            # The chat shape ({"type":"function","function":{...}}), tolerated.
            tool = inner
        name = self._name(tool, where)
        chatName = flattenToolName(namespace, name)
        function: dict[str, Any] = {"name": chatName}
        description = tool.get("description")
        if isinstance(description, str):
            function["description"] = description
        parameters = tool.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, Mapping):
                raise _typeError(f"{where}.parameters", "an object")
            function["parameters"] = parameters
        strict = tool.get("strict")
        if isinstance(strict, bool):
            function["strict"] = strict
        self._add(
            chatName,
            ToolTarget("function", name, namespace),
            {"type": "function", "function": function},
            where,
        )

    def _custom(self, tool: Mapping[str, Any], namespace: str | None, where: str) -> None:
        name = self._name(tool, where)
        chatName = flattenToolName(namespace, name)
        parts = []
        description = tool.get("description")
        if isinstance(description, str) and description:
            parts.append(description)
        parts.append(_CUSTOM_SENTENCE)
        fmt = tool.get("format")
        if isinstance(fmt, Mapping) and fmt.get("type") == "grammar":
            definition = fmt.get("definition")
            if isinstance(definition, str) and definition:
                syntax = fmt.get("syntax")
                label = f"{syntax} grammar" if isinstance(syntax, str) and syntax else "grammar"
                parts.append(f"`input` must match this {label}:\n{definition}")
        function = {
            "name": chatName,
            "description": "\n\n".join(parts),
            "parameters": {
                "type": "object",
                "properties": {
                    "input": {
                        "type": "string",
                        "description": "The raw text input for the tool.",
                    }
                },
                "required": ["input"],
                "additionalProperties": False,
            },
        }
        self._add(
            chatName,
            ToolTarget("custom", name, namespace),
            {"type": "function", "function": function},
            where,
        )

    def _namespace(self, tool: Mapping[str, Any], where: str) -> None:
        namespace = self._name(tool, where)
        nested = tool.get("tools")
        if nested is None:
            nested = []
        if not isinstance(nested, list):
            raise _typeError(f"{where}.tools", "an array")
        for j, sub in enumerate(nested):
            subWhere = f"{where}.tools[{j}]"
            if not isinstance(sub, Mapping):
                raise _typeError(subWhere, "an object")
            kind = sub.get("type")
            if kind == "function":
                self._function(sub, namespace, subWhere)
            elif kind == "custom":
                self._custom(sub, namespace, subWhere)
            else:
                self._notes.append(f"{subWhere}: {_label(kind)} tool dropped")


def _label(kind: object) -> str:
    """
    A short, safe label for a client-supplied type or field name in a note.
    """
    if isinstance(kind, str) and len(kind) <= 40 and kind.isprintable():
        return repr(kind)
    return "untyped" if kind is None else "unknown"


def _convertToolChoice(choice: object, targets: Mapping[str, ToolTarget], notes: list[str]) -> Any:
    """
    Responses C{tool_choice} -> chat C{tool_choice}, or L{None} to omit it.

    Naming a function or custom tool that is not in C{tools} is a 400 (as the Responses
    API does); forcing a hosted tool (C{web_search}, ...) cannot be honoured, so it becomes
    C{auto} with a note; C{allowed_tools} becomes its C{mode}, its tool list not applied.
    """
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice in ("auto", "none", "required"):
            return choice
        raise BridgeRequestError(
            "'tool_choice' must be 'auto', 'none', 'required' or an object.",
            param="tool_choice",
            code=_VALUE,
        )
    if not isinstance(choice, Mapping):
        raise _typeError("tool_choice", "a string or an object")
    kind = choice.get("type")
    if kind in ("function", "custom", "local_shell"):
        inner = choice.get("function")
        source = inner if "name" not in choice and isinstance(inner, Mapping) else choice
        name = "local_shell" if kind == "local_shell" else source.get("name")
        if not isinstance(name, str) or not name:
            raise _typeError("tool_choice.name", "a non-empty string")
        namespace = choice.get("namespace")
        chatName = flattenToolName(namespace if isinstance(namespace, str) else None, name)
        if chatName not in targets:
            raise BridgeRequestError(
                f"'tool_choice' names the tool {name[:64]!r}, which is not among the 'tools' "
                "the bridge can offer.",
                param="tool_choice",
                code=_VALUE,
            )
        return {"type": "function", "function": {"name": chatName}}
    if kind == "allowed_tools":
        mode = choice.get("mode")
        if mode not in ("auto", "required"):
            raise BridgeRequestError(
                "'tool_choice.mode' must be 'auto' or 'required'.",
                param="tool_choice.mode",
                code=_VALUE,
            )
        notes.append("tool_choice allowed_tools: only its mode is applied")
        return mode
    if isinstance(kind, str) and kind:
        notes.append(f"tool_choice {_label(kind)} dropped: hosted tool")
        return None
    raise BridgeRequestError(
        "'tool_choice.type' is missing.", param="tool_choice.type", code=_MISSING
    )


# -- input --------------------------------------------------------------------------------

# Tuples, not sets: membership of a client value (which may be an unhashable list) must
# not raise.
_TEXT_PARTS = ("input_text", "output_text", "text")
_DETAILS = ("auto", "low", "high")

# Entry kinds produced by the first pass over the input.
_SYSTEM = 0
_USER = 1
_TEXT = 2
_REASONING = 3
_CALL = 4
_OUTPUT = 5


def _joinedTexts(parts: object, kinds: tuple[str, ...]) -> str:
    """
    The non-empty C{text} of the parts of the given types, joined with a newline;
    malformed parts are skipped (reasoning is best effort, never a reason for a 400).
    """
    if not isinstance(parts, list):
        return ""
    texts = []
    for part in parts:
        if isinstance(part, Mapping) and part.get("type") in kinds:
            text = part.get("text")
            if isinstance(text, str) and text:
                texts.append(text)
    return "\n".join(texts)


_REASONING_CONTENT_PARTS = ("reasoning_text", "text")
_SUMMARY_PARTS = ("summary_text",)


def _reasoningText(item: Mapping[str, Any]) -> str:
    """
    The text of a reasoning item for C{reasoning_content} (bridge-spec section 3): our
    own C{encrypted_content} token first (it holds the full text), then the C{content}
    reasoning text, then the summary. Tokens the bridge did not make are ignored.
    """
    return (
        decodeReasoning(item.get("encrypted_content"))
        or _joinedTexts(item.get("content"), _REASONING_CONTENT_PARTS)
        or _joinedTexts(item.get("summary"), _SUMMARY_PARTS)
    )


def _attachmentNote(count: int) -> str:
    """
    What a tool message says when its images or files travel in the next user message
    (an empty tool message is refused by some servers, and the model should know).
    """
    if count == 1:
        return "[1 attachment returned by this tool follows in the next user message]"
    return f"[{count} attachments returned by this tool follow in the next user message]"


class _HistoryConverter:
    """
    Responses C{instructions} + C{input} -> chat C{messages}.

    First pass: each item becomes an entry (system text, user content, assistant text,
    reasoning text, tool call, tool output). Then calls and outputs are paired by
    C{call_id}. Last pass: consecutive assistant entries form one turn, which is closed by
    any other entry and emitted as one assistant message followed by one tool message per
    call in call order (C{aborted} when the call has no output) and, if the outputs held
    images or files, one user message carrying them. Messages sitting between a call and
    its output therefore end up after the tool block.

    @ivar targets: chat name -> L{ToolTarget} for the calls in the history.
    """

    def __init__(self, notes: list[str]) -> None:
        self._notes = notes
        self.targets: dict[str, ToolTarget] = {}

    # first pass

    def convert(self, instructions: object, items: object) -> list[dict[str, Any]]:
        entries: list[tuple[Any, ...]] = []
        if instructions is not None:
            if not isinstance(instructions, str):
                raise _typeError("instructions", "a string")
            if instructions:
                entries.append((_SYSTEM, instructions))
        if items is None:
            raise BridgeRequestError("'input' is required.", param="input", code=_MISSING)
        if isinstance(items, str):
            entries.append((_USER, items))
        elif isinstance(items, list):
            for i, item in enumerate(items):
                self._item(item, f"input[{i}]", entries)
        else:
            raise _typeError("input", "a string or an array of items")
        messages = self._assemble(entries)
        if not messages:
            raise BridgeRequestError(
                "'input' holds nothing that can be sent to the model.",
                param="input",
                code=_VALUE,
            )
        return messages

    def _item(self, item: object, where: str, entries: list[tuple[Any, ...]]) -> None:
        if not isinstance(item, Mapping):
            raise _typeError(where, "an object")
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"  # the "easy" input message shape: {"role", "content"}
        if kind == "message":
            self._message(item, where, entries)
        elif kind == "reasoning":
            text = _reasoningText(item)
            if text:
                entries.append((_REASONING, text))
            else:
                self._notes.append(f"{where}: reasoning item without usable text dropped")
        elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
            entries.append(self._call(item, kind, where))
        elif kind in (
            "function_call_output",
            "custom_tool_call_output",
            "local_shell_call_output",
        ):
            entries.append(self._output(item, where))
        elif isItemReference(item):
            raise BridgeRequestError(
                f"'{where}' is an item_reference that was not resolved: the bridge looks "
                "referenced items up in its response store before converting the request.",
                param=where,
                code=_UNSUPPORTED,
            )
        elif kind is None:
            raise BridgeRequestError(
                f"'{where}.type' is missing.", param=f"{where}.type", code=_MISSING
            )
        elif not isinstance(kind, str):
            raise _typeError(f"{where}.type", "a string")
        else:
            # web_search_call, tool_search_*, image_generation_call, compaction,
            # ghost_snapshot, and every type this bridge does not know.
            self._notes.append(f"{where}: {_label(kind)} item dropped")

    def _message(self, item: Mapping[str, Any], where: str, entries: list[tuple[Any, ...]]) -> None:
        role = item.get("role")
        content = item.get("content")
        if not isinstance(content, (str, list)):
            raise _typeError(f"{where}.content", "a string or an array of content parts")
        if role == "user":
            converted = self._userContent(content, where)
            if converted is None:
                self._notes.append(f"{where}: user message without content dropped")
            else:
                entries.append((_USER, converted))
        elif role in ("developer", "system"):
            text = self._plainText(content, where, "\n\n")
            if text:
                entries.append((_SYSTEM, text))
            else:
                self._notes.append(f"{where}: {role} message without text dropped")
        elif role == "assistant":
            text = self._plainText(content, where, "\n")
            if text:
                entries.append((_TEXT, text))
            else:
                # Still an assistant item: it belongs to the turn, it just adds no text.
                entries.append((_TEXT, ""))
        else:
            raise BridgeRequestError(
                f"'{where}.role' must be one of 'user', 'assistant', 'system', 'developer'.",
                param=f"{where}.role",
                code=_VALUE,
            )

    def _parts(self, content: list[Any], where: str) -> list[tuple[int, Mapping[str, Any]]]:
        checked = []
        for j, part in enumerate(content):
            if not isinstance(part, Mapping):
                raise _typeError(f"{where}.content[{j}]", "an object")
            checked.append((j, part))
        return checked

    def _partText(self, part: Mapping[str, Any], where: str) -> str:
        text = part.get("text")
        if not isinstance(text, str):
            raise _typeError(f"{where}.text", "a string")
        return text

    def _plainText(self, content: str | list[Any], where: str, joiner: str) -> str:
        """
        The text of a system or assistant message: its text parts joined; images and
        files cannot go there and are dropped with a note.
        """
        if isinstance(content, str):
            return content
        texts = []
        for j, part in self._parts(content, where):
            kind = part.get("type")
            if kind in _TEXT_PARTS:
                text = self._partText(part, f"{where}.content[{j}]")
                if text:
                    texts.append(text)
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                texts.append(part["refusal"])
            else:
                self._notes.append(
                    f"{where}.content[{j}]: {_label(kind)} part dropped (only text fits this role)"
                )
        return joiner.join(texts)

    def _userContent(self, content: str | list[Any], where: str) -> str | list[Any] | None:
        """
        User content: a plain string when every part is text, else chat parts.
        """
        if isinstance(content, str):
            return content
        parts = []
        allText = True
        for j, part in self._parts(content, where):
            converted = self._mediaPart(part, f"{where}.content[{j}]")
            if converted is None:
                continue
            if converted["type"] != "text":
                allText = False
            parts.append(converted)
        if not parts:
            return None
        if allText:
            return "\n".join(p["text"] for p in parts)
        return parts

    def _mediaPart(self, part: Mapping[str, Any], where: str) -> dict[str, Any] | None:
        """
        One user-side content part -> one chat part, or L{None} when dropped.
        """
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            return {"type": "text", "text": self._partText(part, where)}
        if kind == "input_image":
            url = part.get("image_url")
            if isinstance(url, Mapping):
                url = url.get("url")  # the chat shape, tolerated
            if not isinstance(url, str) or not url:
                self._notes.append(f"{where}: image without a URL replaced by a note")
                return {"type": "text", "text": "[image omitted: it was not sent inline]"}
            image: dict[str, Any] = {"url": url}
            detail = part.get("detail")
            if detail == "original":
                detail = "high"
            if detail in _DETAILS:
                image["detail"] = detail
            elif detail is not None:
                self._notes.append(f"{where}: unknown image detail dropped")
            return {"type": "image_url", "image_url": image}
        if kind == "input_file":
            filename = part.get("filename")
            if not isinstance(filename, str) or not filename:
                filename = None
            data = part.get("file_data")
            if isinstance(data, str) and data:
                file: dict[str, Any] = {}
                if filename is not None:
                    file["filename"] = filename
                file["file_data"] = data
                return {"type": "file", "file": file}
            self._notes.append(f"{where}: file not sent inline replaced by a note")
            label = f" {filename}" if filename is not None else ""
            return {"type": "text", "text": f"[file{label} omitted: it was not sent inline]"}
        self._notes.append(f"{where}: {_label(kind)} part dropped")
        return None

    def _call(self, item: Mapping[str, Any], kind: str, where: str) -> tuple[Any, ...]:
        callId = item.get("call_id")
        if kind == "local_shell_call" and not callId:
            # Codex's LocalShellCall falls back to the item id when call_id is absent.
            callId = item.get("id")
        if not isinstance(callId, str) or not callId:
            raise _typeError(f"{where}.call_id", "a non-empty string")
        namespace = item.get("namespace")
        if not isinstance(namespace, str) or not namespace:
            namespace = None
        targetKind: ToolKind
        if kind == "local_shell_call":
            action = item.get("action")
            if action is None:
                action = {}
            if not isinstance(action, Mapping):
                raise _typeError(f"{where}.action", "an object")
            arguments = json.dumps(
                {
                    key: action[key]
                    for key in ("command", "working_directory", "timeout_ms", "env")
                    if action.get(key) is not None
                },
                ensure_ascii=False,
            )
            name = "local_shell"
            targetKind = "local_shell"
            namespace = None
        else:
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise _typeError(f"{where}.name", "a non-empty string")
            if kind == "function_call":
                arguments = item.get("arguments")
                if arguments is None:
                    arguments = "{}"
                elif isinstance(arguments, (dict, list)):
                    arguments = json.dumps(arguments, ensure_ascii=False)
                elif not isinstance(arguments, str):
                    raise _typeError(f"{where}.arguments", "a string")
                if not arguments.strip():
                    # Chat templates parse history arguments; "" is not JSON.
                    arguments = "{}"
                targetKind = "function"
            else:
                toolInput = item.get("input")
                if toolInput is None:
                    toolInput = ""
                if not isinstance(toolInput, str):
                    raise _typeError(f"{where}.input", "a string")
                arguments = json.dumps({"input": toolInput}, ensure_ascii=False)
                targetKind = "custom"
        chatName = flattenToolName(namespace, name)
        self.targets.setdefault(chatName, ToolTarget(targetKind, name, namespace))
        call = {
            "id": callId,
            "type": "function",
            "function": {"name": chatName, "arguments": arguments},
        }
        return (_CALL, callId, call, where)

    def _output(self, item: Mapping[str, Any], where: str) -> tuple[Any, ...]:
        callId = item.get("call_id")
        if not isinstance(callId, str) or not callId:
            raise _typeError(f"{where}.call_id", "a non-empty string")
        output = item.get("output")
        media: list[dict[str, Any]] = []
        if output is None:
            text = ""
        elif isinstance(output, str):
            text = output
        elif isinstance(output, list):
            texts = []
            for j, part in enumerate(output):
                partWhere = f"{where}.output[{j}]"
                if not isinstance(part, Mapping):
                    raise _typeError(partWhere, "an object")
                converted = self._mediaPart(part, partWhere)
                if converted is None:
                    continue
                if converted["type"] == "text":
                    if converted["text"]:
                        texts.append(converted["text"])
                else:
                    media.append(converted)
            if media:
                texts.append(_attachmentNote(len(media)))
            text = "\n".join(texts)
        else:
            # Not a documented shape, but a JSON value has an obvious text form.
            text = json.dumps(output, ensure_ascii=False)
        return (_OUTPUT, callId, text, media, where)

    # pairing and assembly

    def _assemble(self, entries: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        callIds: set[str] = set()
        kept: list[tuple[Any, ...]] = []
        for entry in entries:
            if entry[0] == _CALL:
                if entry[1] in callIds:
                    self._notes.append(f"{entry[3]}: call with a duplicate call_id dropped")
                    continue
                callIds.add(entry[1])
            kept.append(entry)
        outputs: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        entries = []
        for entry in kept:
            if entry[0] == _OUTPUT:
                callId = entry[1]
                if callId not in callIds:
                    self._notes.append(f"{entry[4]}: output without a matching call dropped")
                    continue
                if callId in outputs:
                    self._notes.append(f"{entry[4]}: second output for one call dropped")
                    continue
                outputs[callId] = (entry[2], entry[3])
            entries.append(entry)

        messages: list[dict[str, Any]] = []
        turn = _Turn()
        for entry in entries:
            kind = entry[0]
            if kind == _TEXT:
                if entry[1]:
                    turn.texts.append(entry[1])
                turn.open = True
                continue
            if kind == _REASONING:
                turn.reasoning.append(entry[1])
                turn.open = True
                continue
            if kind == _CALL:
                turn.calls.append(entry)
                turn.open = True
                continue
            if turn.open:
                self._emitTurn(turn, outputs, messages)
                turn = _Turn()
            if kind == _SYSTEM:
                last = messages[-1] if messages else None
                if last is not None and last["role"] == "system":
                    last["content"] = last["content"] + "\n\n" + entry[1]
                else:
                    messages.append({"role": "system", "content": entry[1]})
            elif kind == _USER:
                messages.append({"role": "user", "content": entry[1]})
            # An _OUTPUT entry only closes the turn: its content is placed by the turn
            # that holds its call.
        if turn.open:
            self._emitTurn(turn, outputs, messages)
        return messages

    def _emitTurn(
        self,
        turn: _Turn,
        outputs: Mapping[str, tuple[str, list[dict[str, Any]]]],
        messages: list[dict[str, Any]],
    ) -> None:
        """
        One model turn -> one assistant message, its tool block, and a user message with
        the attachments its outputs returned.
        """
        if not (turn.texts or turn.calls):
            # Chat servers refuse an assistant message with neither content nor calls.
            self._notes.append("assistant turn without text or calls dropped")
            return
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "\n".join(turn.texts) if turn.texts else None,
        }
        if turn.reasoning:
            message["reasoning_content"] = "\n".join(turn.reasoning)
        if turn.calls:
            message["tool_calls"] = [entry[2] for entry in turn.calls]
        messages.append(message)
        media: list[dict[str, Any]] = []
        for _, callId, _, where in turn.calls:
            found = outputs.get(callId)
            if found is None:
                self._notes.append(f"{where}: call without an output answered with 'aborted'")
                content = "aborted"
            else:
                content, callMedia = found
                if callMedia:
                    media.append(
                        {"type": "text", "text": f"Attachments returned by tool call {callId}:"}
                    )
                    media.extend(callMedia)
            messages.append({"role": "tool", "tool_call_id": callId, "content": content})
        if media:
            messages.append({"role": "user", "content": media})


class _Turn:
    """
    The assistant entries of one model turn, gathered until a non-assistant entry.
    """

    __slots__ = ("open", "texts", "reasoning", "calls")

    def __init__(self) -> None:
        self.open = False
        self.texts: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[tuple[Any, ...]] = []
