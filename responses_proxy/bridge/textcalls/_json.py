# -*- test-case-name: tests.test_bridge_textcalls -*-
"""
Parsers for the formats whose arguments are a JSON object (or a literal list).

DeepSeek V3/R1 and V3.1 special tokens, Kimi K2 sections, Mistral C{[TOOL_CALLS]},
gpt-oss harmony headers, and the formats behind their own special markers: Granite,
Llama 3 C{<|python_tag|>}, Llama 4 C{<|python_start|>}, LFM2, Nemotron, Apriel,
Command-R7B, Apertus and Gemma 4. A JSON body is found with a string-aware bracket scan,
so a closing marker written inside an argument string does not cut the call.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any

from responses_proxy.bridge.textcalls._cursor import Cursor, Invalid
from responses_proxy.bridge.textcalls._values import ParseContext, jsonable

Call = tuple[str, dict[str, Any]]
Parser = Callable[[Cursor, str, int], tuple[list[Call], str]]

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")

# DeepSeek V3 / R1 / V3.1 ------------------------------------------------------------

DEEPSEEK_SECTIONS = (
    "<\uff5ctool\u2581calls\u2581begin\uff5c>",
    "<\uff5ctool_calls_begin\uff5c>",
    "<\uff5ctool calls begin\uff5c>",
    "<\uff5ctool\\_calls\\_begin\uff5c>",
    "<\uff5ctool\u2581calls\uff5c>",
)
"""Section openers: the real token and the look-alikes llama.cpp accepts."""
DEEPSEEK_CALL = "<\uff5ctool\u2581call\u2581begin\uff5c>"
_DS_SEP = "<\uff5ctool\u2581sep\uff5c>"
_DS_CALL_END = "<\uff5ctool\u2581call\u2581end\uff5c>"
_DS_SECTION_END = "<\uff5ctool\u2581calls\u2581end\uff5c>"
_DS_EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
_DS_TYPE = re.compile("[^\\s<\uff5c]+")
_DS_NAME = re.compile("[^\\s<\uff5c`]+")


def parseDeepSeek(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    V3/R1 C{function<｜tool▁sep｜>NAME} + fenced JSON, or V3.1 C{NAME<｜tool▁sep｜>{json}},
    each in C{<｜tool▁call▁begin｜>}...C{<｜tool▁call▁end｜>}, inside an optional section.
    """
    c.pos = openerEnd
    calls: list[Call]
    (calls, fmt), resumed = c.resumeLoop("deepseek", ([], ""))
    inCall = opener == DEEPSEEK_CALL and not resumed
    while True:
        if not inCall:
            save = c.pos
            c.ws()
            if c.lit(_DS_SECTION_END):
                break
            if c.atEnd():
                if c.final and calls:
                    c.pos = save
                    break
                c.need()
            if not c.lit(DEEPSEEK_CALL) and calls:
                # Text after a call: the section was not closed.
                c.pos = save
                break
        inCall = False
        try:
            call, kind, ended = _deepSeekCall(c)
        except Invalid:
            if not calls:
                raise
            # A bad sibling ends the section; the calls before it stand.
            c.pos = save
            break
        calls.append(call)
        fmt = fmt or kind
        if not ended:
            break
        c.saveLoop("deepseek", openerEnd, (calls, fmt))
    c.lit(_DS_EOS)
    return calls, fmt


def _deepSeekCall(c: Cursor) -> tuple[Call, str, bool]:
    """
    One DeepSeek call after its C{<｜tool▁call▁begin｜>}.

    @return: the call, the format's name, and whether its end token was there (the
        content may end without it).
    """
    kind = c.run(_DS_TYPE)
    c.spaces()
    c.expect(_DS_SEP)
    if kind == "function" and c.peek() not in "{[":
        name = c.ctx.known(c.run(_DS_NAME))
        c.ws()
        c.expect("```")
        c.lit("json")
        c.ws()
        arguments = c.ctx.arguments(name, c.json())
        c.ws()
        c.expect("```")
        fmt = "deepseek-v3"
    else:
        name = c.ctx.known(kind)
        c.ws()
        arguments = c.ctx.arguments(name, c.json())
        fmt = "deepseek-v3.1"
    save = c.pos
    c.ws()
    if c.lit(_DS_CALL_END):
        return (name, arguments), fmt, True
    if c.atEnd() and c.final:
        c.pos = save
        return (name, arguments), fmt, False
    raise Invalid()


# Kimi K2 ----------------------------------------------------------------------------

KIMI_SECTIONS = ("<|tool_calls_section_begin|>", "<|tool_call_section_begin|>")
KIMI_CALL = "<|tool_call_begin|>"
_KIMI_ENDS = ("<|tool_calls_section_end|>", "<|tool_call_section_end|>")
_KIMI_ID = re.compile(r"[^\s<]+")
_KIMI_INDEX = re.compile(r":\d+\Z")


def parseKimi(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    C{<|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{json}<|tool_call_end|>}
    calls, inside an optional section (singular or plural spelling).
    """
    c.pos = openerEnd
    calls: list[Call]
    calls, resumed = c.resumeLoop("kimi", [])
    inCall = opener == KIMI_CALL and not resumed
    while True:
        if not inCall:
            save = c.pos
            c.ws()
            if c.lit(_KIMI_ENDS[0]) or c.lit(_KIMI_ENDS[1]):
                break
            if c.atEnd():
                if c.final and calls:
                    c.pos = save
                    break
                c.need()
            if not c.lit(KIMI_CALL):
                if calls:
                    c.pos = save
                    break
                raise Invalid()
        inCall = False
        try:
            call, ended = _kimiCall(c)
        except Invalid:
            if not calls:
                raise
            c.pos = save
            break
        calls.append(call)
        if not ended:
            break
        c.saveLoop("kimi", openerEnd, calls)
    return calls, "kimi-k2"


def _kimiCall(c: Cursor) -> tuple[Call, bool]:
    """
    One Kimi call after its C{<|tool_call_begin|>}.

    @return: the call, and whether its end token was there.
    """
    c.ws()
    ident = c.run(_KIMI_ID)
    c.ws()
    if ident.startswith("functions."):
        ident = ident[len("functions.") :]
    name = c.ctx.known(_KIMI_INDEX.sub("", ident))
    c.expect("<|tool_call_argument_begin|>")
    c.ws()
    call = (name, c.ctx.arguments(name, c.json()))
    save = c.pos
    c.ws()
    if c.lit("<|tool_call_end|>"):
        return call, True
    if c.atEnd() and c.final:
        c.pos = save
        return call, False
    raise Invalid()


# Mistral ----------------------------------------------------------------------------

_CALL_ID = re.compile(r"[A-Za-z0-9]+")


def parseMistral(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    C{[TOOL_CALLS]} then a JSON array (v3/v7), or C{NAME[ARGS]{json}} with an optional
    C{[CALL_ID]id} (v11+), or C{NAME{json}}; the brackets may be missing.
    """
    c.pos = openerEnd
    c.lit("]")
    c.ws()
    first = c.peek()
    if first in "[{":
        return c.ctx.namedCalls(c.json()), "mistral"
    name = c.ctx.known(c.run(_NAME))
    if c.lit("[CALL_ID]"):
        c.run(_CALL_ID)
    if not c.lit("[ARGS]"):
        c.lit("[ARGS")
    return [(name, c.ctx.arguments(name, c.json()))], "mistral"


# gpt-oss harmony --------------------------------------------------------------------

_HARMONY_TAIL = (
    r"(?P<chan>[A-Za-z_]+)(?:[ \t]+to=(?P<r2>[^\s<]+))?[ \t]*"
    r"(?:<\|constrain\|>)?[ \t]*(?:[A-Za-z0-9_\-]+)?[ \t]*\Z"
)
_HARMONY_START = re.compile(
    r"assistant(?:[ \t]+to=(?P<r1>[^\s<]+))?[ \t]*<\|channel\|>" + _HARMONY_TAIL
)
_HARMONY_CHANNEL = re.compile(r"(?P<r1>)" + _HARMONY_TAIL)
_HARMONY_MESSAGE = "<|message|>"


def parseHarmony(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    C{<|start|>assistant<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>}
    then C{{json}<|call|>}: the recipient in the role or the channel part, with or
    without C{<|constrain|>}, C{<|call|>} optional (it is a stop token).
    """
    c.pos = openerEnd
    text = c.text
    end = text.find(_HARMONY_MESSAGE, openerEnd)
    if end < 0:
        rest = text[openerEnd:]
        if "\n" in rest or len(rest) > 200:
            raise Invalid()
        c.need()
    pattern = _HARMONY_START if opener == "<|start|>" else _HARMONY_CHANNEL
    match = pattern.match(text[openerEnd:end])
    if match is None:
        raise Invalid()
    recipient = match.group("r1") or match.group("r2") or ""
    if not recipient.startswith("functions."):
        raise Invalid()
    name = c.ctx.known(recipient[len("functions.") :])
    c.pos = end + len(_HARMONY_MESSAGE)
    arguments = c.ctx.arguments(name, c.json())
    c.lit("<|call|>")
    return [(name, arguments)], "gpt-oss"


# Formats behind their own markers --------------------------------------------------


def _closed(c: Cursor, closer: str | None, required: bool) -> None:
    """
    Consume C{closer} after a body; when C{required}, only the end of the content may
    stand in for it.
    """
    if closer is None:
        return
    save = c.pos
    c.ws()
    if c.lit(closer):
        return
    if required and not (c.atEnd() and c.final):
        raise Invalid()
    c.pos = save


def _commandR(ctx: ParseContext, value: Any) -> list[Call]:
    """
    Command-R7B: C{[{"tool_call_id": ..., "tool_name": ..., "parameters": {...}}]}.
    """
    if not isinstance(value, list) or not value:
        raise Invalid()
    calls = []
    for item in value:
        if not isinstance(item, dict) or not set(item) <= {
            "tool_call_id",
            "tool_name",
            "parameters",
        }:
            raise Invalid()
        name = item.get("tool_name")
        if not isinstance(name, str):
            raise Invalid()
        calls.append((ctx.known(name), ctx.arguments(name, item.get("parameters"))))
    return calls


def _apertus(ctx: ParseContext, value: Any) -> list[Call]:
    """
    Apertus: C{[{"NAME": {args}}, ...]}.
    """
    if not isinstance(value, list) or not value:
        raise Invalid()
    calls = []
    for item in value:
        if not isinstance(item, dict) or len(item) != 1:
            raise Invalid()
        ((name, arguments),) = item.items()
        calls.append((ctx.known(name), ctx.arguments(name, arguments)))
    return calls


def pythonicCalls(ctx: ParseContext, source: str) -> list[Call]:
    """
    Read C{[f(a=1, b='x'), g()]}: keyword arguments with literal values only.
    """
    source = source.strip()
    if not source.startswith("[") or len(source) > 1_000_000:
        raise Invalid()
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        raise Invalid() from e
    body = tree.body
    if not isinstance(body, ast.List) or not body.elts:
        raise Invalid()
    calls = []
    for node in body.elts:
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
            raise Invalid()
        name = ctx.known(node.func.id)
        arguments = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise Invalid()
            try:
                arguments[keyword.arg] = jsonable(ast.literal_eval(keyword.value))
            except (ValueError, TypeError, SyntaxError, RecursionError) as e:
                raise Invalid() from e
        calls.append((name, arguments))
    return calls


def jsonMarker(fmt: str, closer: str | None, shape: str = "named", required: bool = True) -> Parser:
    """
    Build the parser of a format that is a marker, a JSON body and a closer.

    @param shape: C{"named"} (call objects or an array of them), C{"commandr"} or
        C{"apertus"}.
    @param required: the closer must be there (or the content end).
    """

    def parse(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
        c.pos = openerEnd
        c.ws()
        value = c.json()
        if shape == "commandr":
            calls = _commandR(c.ctx, value)
        elif shape == "apertus":
            calls = _apertus(c.ctx, value)
        else:
            calls = c.ctx.namedCalls(value)
        _closed(c, closer, required)
        return calls, fmt

    return parse


def parsePythonTag(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    Llama 3.x C{<|python_tag|>{"name": ..., "parameters": {...}}}, then an optional
    C{<|eom_id|>} or C{<|eot_id|>}.
    """
    c.pos = openerEnd
    c.ws()
    call = c.ctx.namedCall(c.json())
    save = c.pos
    c.ws()
    if not (c.lit("<|eom_id|>") or c.lit("<|eot_id|>")):
        c.pos = save
    return [call], "llama3-json"


def _until(c: Cursor, closer: str) -> str:
    """
    @return: the text up to C{closer} (or the end of the content), consuming both.
    """
    end = c.text.find(closer, c.pos)
    if end < 0:
        if not c.final:
            c.need()
        body = c.text[c.pos :]
        c.pos = len(c.text)
        return body
    body = c.text[c.pos : end]
    c.pos = end + len(closer)
    return body


def parsePythonStart(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    Llama 4 C{<|python_start|>[f(a=1)]<|python_end|>}.
    """
    c.pos = openerEnd
    return pythonicCalls(c.ctx, _until(c, "<|python_end|>")), "llama4-pythonic"


def parseLfm2(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    LFM2 C{<|tool_call_start|>[...]<|tool_call_end|>}: a JSON array or a pythonic list.
    """
    c.pos = openerEnd
    body = _until(c, "<|tool_call_end|>")
    try:
        value = c.ctx.loads(body)
    except Invalid:
        return pythonicCalls(c.ctx, body), "lfm2"
    return c.ctx.namedCalls(value), "lfm2"


# Gemma 4 ----------------------------------------------------------------------------

_GEMMA_QUOTE = '<|"|>'
_GEMMA_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_GEMMA_SCALAR = re.compile(r"[^,}\]<]+")
_GEMMA_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_GEMMA_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\Z")


def _gemmaString(c: Cursor) -> str:
    """
    A C{<|"|>}-quoted or JSON-quoted string at the cursor.
    """
    if c.lit(_GEMMA_QUOTE):
        end = c.find(_GEMMA_QUOTE)
        value = c.text[c.pos : end]
        c.pos = end + len(_GEMMA_QUOTE)
        return value
    match = _GEMMA_STRING.match(c.text, c.pos)
    if match is None:
        c.need()
    c.pos = match.end()
    return c.ctx.loads(match.group())


def _gemmaValue(c: Cursor, depth: int) -> Any:
    """
    One Gemma 4 argument value: a string, an object, a list, or a bare scalar.
    """
    if depth > 32:
        raise Invalid()
    first = c.peek()
    if first == "{":
        return _gemmaObject(c, depth + 1)
    if first == "[":
        c.pos += 1
        items: list[Any] = []
        c.ws()
        if c.lit("]"):
            return items
        while True:
            c.ws()
            items.append(_gemmaValue(c, depth + 1))
            c.ws()
            if c.lit(","):
                continue
            c.expect("]")
            return items
    if first == '"' or c.ahead(_GEMMA_QUOTE):
        return _gemmaString(c)
    match = _GEMMA_SCALAR.match(c.text, c.pos)
    if match is None:
        raise Invalid()
    if match.end() >= len(c.text) and not c.final:
        c.need()
    c.pos = match.end()
    word = match.group().strip()
    if word in ("true", "false"):
        return word == "true"
    if word == "null":
        return None
    if _GEMMA_NUMBER.match(word):
        number = float(word)
        return int(word) if number.is_integer() and word.lstrip("-").isdigit() else number
    return word


def _gemmaObject(c: Cursor, depth: int) -> dict[str, Any]:
    """
    C{{key:value,...}} with bare or quoted keys.
    """
    c.expect("{")
    result: dict[str, Any] = {}
    c.ws()
    if c.lit("}"):
        return result
    while True:
        c.ws()
        if c.peek() == '"' or c.ahead(_GEMMA_QUOTE):
            key = _gemmaString(c)
        else:
            key = c.run(_GEMMA_KEY)
        c.ws()
        c.expect(":")
        c.ws()
        result[key] = _gemmaValue(c, depth)
        c.ws()
        if c.lit(","):
            continue
        c.expect("}")
        return result


def parseGemma(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    Gemma 4 C{<|tool_call>call:NAME{key:<|"|>v<|"|>,n:1}<tool_call|>}.
    """
    c.pos = openerEnd
    c.expect("call:")
    name = c.ctx.known(c.run(_NAME))
    arguments = _gemmaObject(c, 0)
    if not (c.lit("<tool_call|>") or c.lit("<turn|>")):
        if not (c.atEnd() and c.final):
            raise Invalid()
    return [(name, arguments)], "gemma4"
