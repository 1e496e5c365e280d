# -*- test-case-name: tests.test_bridge_textcalls -*-
"""
Parsers for the XML-style formats, whose argument values are raw text.

Qwen3-Coder and Seed-OSS (C{<function=NAME><parameter=KEY>}), GLM
(C{<arg_key>/<arg_value>}), and the C{invoke}/C{parameter} family: DeepSeek DSML (V3.2,
V4, V4.1 and the malformed spellings of catalogue section 9), MiniMax-M2 and the bare
C{<invoke>} leak. Values are typed by the tool's schema (L{ParseContext.coerce}) once
the call is complete.

A value ends at its closing tag only when the closing tag is followed by what the
format allows next (another parameter, the end of the call): a literal C{</parameter>}
inside a value (code that edits a parser) then stays part of the value, as vLLM's
structural look-ahead does.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from responses_proxy.bridge.textcalls._cursor import Cursor, Invalid, NeedMore

Call = tuple[str, dict[str, Any]]

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_NEWLINE_ESCAPE = "\\n"


def _strip1(value: str) -> str:
    """
    Remove the one leading and one trailing newline the Qwen template wraps values in.
    """
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


def _assignment(c: Cursor, word: str) -> bool:
    """
    Consume C{<word=} (spaces allowed around the word and the C{=}) if it comes next.
    """
    save = c.pos
    if not c.lit("<"):
        return False
    c.spaces()
    if not c.lit(word):
        c.pos = save
        return False
    c.spaces()
    if not c.lit("="):
        c.pos = save
        return False
    return True


def _assignedName(c: Cursor) -> str:
    """
    Read the name of C{<function=NAME>} or C{<parameter=NAME>} up to its C{>}.
    """
    text = c.text
    end = text.find(">", c.pos)
    newline = text.find("\n", c.pos)
    if end < 0:
        if newline >= 0 or len(text) - c.pos > 256:
            raise Invalid()
        c.need()
    if 0 <= newline < end:
        raise Invalid()
    name = text[c.pos : end].strip()
    if not name:
        raise Invalid()
    c.pos = end + 1
    return name


_QWEN_VALUE_END = re.compile(r"</parameter>|\n(?=<parameter=)|\n(?=</function>)")


def _qwenValue(c: Cursor, wrapper: str | None) -> str:
    """
    Read a Qwen/Seed parameter value, tolerating a missing C{</parameter>} before the
    next C{<parameter=} or before the end of the function.
    """
    text = c.text
    index = c.resumeAt("qwen")
    while True:
        match = _QWEN_VALUE_END.search(text, index)
        if match is None:
            c.need()
        probe = c.fork(match.end())
        if match.group() == "</parameter>":
            probe.ws()
            if probe.atEnd():
                if not c.final:
                    c.need()
                ok = True
            else:
                ok = probe.ahead("</function>") or _assignment(probe, "parameter")
        elif text.startswith("<parameter=", match.end()):
            ok = True
        else:
            probe.expect("</function>")
            ok = _functionEnds(probe, wrapper)
        if ok:
            value = text[c.pos : match.start()]
            c.pos = match.end()
            return value
        index = match.start() + 1
        c.rejected("qwen", index)


def _functionEnds(c: Cursor, wrapper: str | None) -> bool:
    """
    Whether what follows a C{</function>} lets it end the call: the wrapper's closer,
    another call, or the end of the content.
    """
    c.ws()
    if c.atEnd():
        if not c.final:
            c.need()
        return True
    if wrapper is None:
        return True
    return c.ahead("</" + wrapper[1:]) or c.ahead(wrapper) or _assignment(c, "function")


def qwenFunction(c: Cursor, wrapper: str | None) -> tuple[Call, bool]:
    """
    Parse C{<function=NAME>} ... C{</function>} at the cursor.

    @param wrapper: the block's opening tag (C{<tool_call>}, C{<seed:tool_call>}), or
        L{None} for a bare function.
    @return: the call, and whether its body was a JSON object (Llama 4 and
        Functionary write C{<function=NAME>{...}</function>}).
    """
    if not _assignment(c, "function"):
        raise Invalid()
    name = c.ctx.known(_assignedName(c))
    c.ws()
    if c.peek() == "{":
        arguments = c.ctx.arguments(name, c.json())
        c.ws()
        c.expect("</function>")
        return (name, arguments), True
    start = c.pos
    arguments: dict[str, Any]
    arguments, _ = c.resumeLoop("qwen-params", {})
    while True:
        c.ws()
        if c.lit("</function>"):
            return (name, arguments), False
        if not _assignment(c, "parameter"):
            raise Invalid()
        key = _assignedName(c)
        value = _strip1(_qwenValue(c, wrapper))
        arguments[key] = c.ctx.value(name, key, value, None)
        c.saveLoop("qwen-params", start, arguments)


def _functionAhead(c: Cursor) -> bool:
    """
    Whether another C{<function=} comes next (after whitespace), without consuming.
    """
    save = c.pos
    c.ws()
    found = _assignment(c, "function")
    c.pos = save
    return found


def _wrappedFunctions(c: Cursor, wrapper: str) -> list[Call]:
    """
    Parse one or more functions and the end of their C{wrapper} block: its closer, the
    next block's opener (a missing closer), or the end of the content.
    """
    calls = [qwenFunction(c, wrapper)[0]]
    while _functionAhead(c):
        c.ws()
        calls.append(qwenFunction(c, wrapper)[0])
    _blockEnd(c, wrapper)
    return calls


def _blockEnd(c: Cursor, wrapper: str) -> None:
    """
    Consume the closer of a C{<tool_call>}-style block, or accept its absence before
    the next block or at the end of the content.
    """
    c.ws()
    if c.lit("</" + wrapper[1:]):
        if wrapper == "<tool_call>":
            c.lit("<|observation|>")
        return
    if c.atEnd():
        if c.final:
            return
        c.need()
    if c.ahead(wrapper):
        return
    raise Invalid()


def parseToolCall(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    C{<tool_call>}: Hermes JSON, Granite 3.1 array, Qwen XML or GLM, told apart by
    what follows the tag.
    """
    c.pos = openerEnd
    c.ws()
    first = c.peek()
    if first == "{":
        call = c.ctx.namedCall(c.json())
        _blockEnd(c, opener)
        return [call], "hermes"
    if first == "[":
        calls = c.ctx.namedCalls(c.json())
        save = c.pos
        c.ws()
        if not c.lit("</tool_call>"):
            c.pos = save
        return calls, "granite"
    if first == "<":
        return _wrappedFunctions(c, opener), "qwen3-coder"
    return [_glm(c)], "glm"


def parseSeed(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    C{<seed:tool_call>}: Seed-OSS, Qwen-style functions in a different wrapper.
    """
    c.pos = openerEnd
    c.ws()
    return _wrappedFunctions(c, opener), "seed-oss"


def parseBareFunction(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    C{<function=NAME>} with no wrapper (Qwen fallback, Llama 4 custom format,
    Functionary v3.1); a stray C{</tool_call>} after it belongs to it.
    """
    # The cursor starts at the block, which begins with this opener.
    call, isJson = qwenFunction(c, None)
    save = c.pos
    c.ws()
    if not c.lit("</tool_call>"):
        c.pos = save
    return [call], "function-json" if isJson else "qwen3-coder"


def _gap(c: Cursor) -> None:
    """
    Skip whitespace and the literal C{\\n} escapes SGLang saw GLM write instead.
    """
    c.ws()
    while c.lit(_NEWLINE_ESCAPE):
        c.ws()


def _glmValue(c: Cursor) -> str:
    """
    Read a GLM C{<arg_value>} up to the C{</arg_value>} that ends it structurally.
    """
    text = c.text
    index = c.resumeAt("glm")
    while True:
        end = text.find("</arg_value>", index)
        if end < 0:
            c.need()
        probe = c.fork(end + len("</arg_value>"))
        _gap(probe)
        if probe.atEnd():
            if not c.final:
                c.need()
            ok = True
        else:
            ok = (
                probe.ahead("<arg_key>")
                or probe.ahead("</tool_call>")
                or probe.ahead("<tool_call>")
            )
        if ok:
            value = text[c.pos : end]
            c.pos = end + len("</arg_value>")
            return value
        index = end + 1
        c.rejected("glm", index)


def _glm(c: Cursor) -> Call:
    """
    GLM 4.5-4.7: C{NAME} then C{<arg_key>K</arg_key><arg_value>V</arg_value>} pairs,
    with or without newlines between them.
    """
    name = c.ctx.known(c.run(_NAME))
    start = c.pos
    arguments: dict[str, Any]
    arguments, _ = c.resumeLoop("glm-args", {})
    while True:
        _gap(c)
        if not c.lit("<arg_key>"):
            break
        end = c.find("</arg_key>", 256)
        key = c.text[c.pos : end].strip()
        if not key or "<" in key:
            raise Invalid()
        c.pos = end + len("</arg_key>")
        _gap(c)
        c.expect("<arg_value>")
        arguments[key] = c.ctx.value(name, key, _glmValue(c), None)
        c.saveLoop("glm-args", start, arguments)
    if c.lit("</tool_call>"):
        c.lit("<|observation|>")
    elif not c.ahead("<tool_call>"):
        raise Invalid()
    return name, arguments


# The invoke family ----------------------------------------------------------------

BARS = "[|\uff5c\u2016]{1,2}"
"""One or two bars of C{|}, U+FF5C or U+2016 (a regular expression)."""
DSML_MARKER = f"{BARS}[ ]{{0,3}}DSML[ ]{{0,3}}{BARS}[ ]{{0,3}}"
"""The DSML marker in all its reported spellings (a regular expression)."""
_TAG_HEAD = re.compile(f"<[ ]{{0,3}}(/)?[ ]{{0,3}}({DSML_MARKER})?([A-Za-z_][A-Za-z0-9_:]*)")
_TAG_HEAD_PART = re.compile(
    r"<[ ]{0,3}(?:/[ ]{0,3})?(?:"
    + BARS
    + r"[ ]{0,3}(?:D(?:S(?:M(?:L[ ]{0,3}(?:"
    + BARS
    + r"[ ]{0,3})?)?)?)?)?)?\Z"
)
_ATTR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_SPACE = re.compile(r"[ \t]*")
_ATTR_SPACE = re.compile(r"\s*")
_DOUBLE_CLOSE = re.compile('["\u201c\u201d]')
_QUOTES = "\"'\u201c\u201d"

BLOCK_NAMES = frozenset(
    {"function_calls", "tool_calls", "toolcalls", "toolcall", "_tool_calls", "tool_use", "calls"}
)
"""DSML block (section) tag names: V3.2, V4, V4.1 and reported misspellings."""


@attrs.frozen
class _Tag:
    """
    One tag of the invoke family, normalised.

    @ivar kind: C{"block"} for any section wrapper, else the tag name.
    """

    closing: bool
    kind: str
    dsml: bool
    attrs: dict[str, str]
    selfClosing: bool


def _kind(name: str) -> str:
    """
    @return: the normalised kind of a tag name.
    """
    if name in BLOCK_NAMES or name == "minimax:tool_call":
        return "block"
    return name


def _tag(c: Cursor) -> _Tag:
    """
    Read one tag, with or without a DSML marker in any of its reported spellings
    (one or two bars of C{|}, C{U+FF5C} or C{U+2016}, spaces), and typographic quotes
    around attribute values.
    """
    text = c.text
    length = len(text)
    match = _TAG_HEAD.match(text, c.pos)
    if match is None:
        if c.pos >= length or _TAG_HEAD_PART.match(text, c.pos):
            c.need()
        raise Invalid()
    index = match.end()
    if index >= length:
        c.need()
    closing = match.group(1) is not None
    attributes: dict[str, str] = {}
    selfClosing = False
    while True:
        at = _ATTR_SPACE.match(text, index).end()
        if at >= length:
            c.need()
        char = text[at]
        if char == ">":
            index = at + 1
            break
        if char == "/":
            if at + 1 >= length:
                c.need()
            if text[at + 1] != ">":
                raise Invalid()
            selfClosing = True
            index = at + 2
            break
        if at == index or closing:
            raise Invalid()
        name = _ATTR_NAME.match(text, at)
        if name is None:
            raise Invalid()
        at = _SPACE.match(text, name.end()).end()
        if at >= length:
            c.need()
        if text[at] != "=":
            raise Invalid()
        at = _SPACE.match(text, at + 1).end()
        if at >= length:
            c.need()
        quote = text[at]
        if quote not in _QUOTES:
            raise Invalid()
        if quote == "'":
            end = text.find("'", at + 1)
            close = end
        else:
            found = _DOUBLE_CLOSE.search(text, at + 1)
            close = -1 if found is None else found.start()
        if close < 0:
            c.need()
        attributes[name.group()] = text[at + 1 : close]
        index = close + 1
    if closing and selfClosing:
        raise Invalid()
    c.pos = index
    return _Tag(closing, _kind(match.group(3)), match.group(2) is not None, attributes, selfClosing)


def _tryTag(c: Cursor) -> _Tag | None:
    """
    Read a tag if one comes next: for looking past the end of a complete call, where
    the end of the content means "no tag".

    @return: the tag, or L{None} (the cursor then has not moved).
    """
    save = c.pos
    try:
        return _tag(c)
    except Invalid:
        pass
    except NeedMore:
        if not c.final:
            raise
    c.pos = save
    return None


def _claim(value: str | None) -> bool | None:
    """
    @return: what a DSML C{string="..."} attribute says about the value's type.
    """
    if value is None:
        return None
    value = value.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    return None


_VALUE_END = re.compile(
    f"<[ ]{{0,3}}/[ ]{{0,3}}(?:{DSML_MARKER})?parameter[ ]*>"
    f"|\\n(?=<[ ]{{0,3}}(?:{DSML_MARKER})?parameter[ \\t])"
    f"|\\n(?=<[ ]{{0,3}}/[ ]{{0,3}}(?:{DSML_MARKER})?invoke[ ]*>)"
)


def _endsValue(t: _Tag) -> bool:
    """
    Whether tag C{t} may follow a parameter's closing tag.
    """
    if t.closing:
        return t.kind in ("invoke", "function")
    return t.kind == "parameter" or (t.kind == "invoke" and t.selfClosing)


def _invokeValue(c: Cursor) -> str:
    """
    Read a C{<parameter>} value, ended by any spelling of its closing tag that is
    followed by another parameter or the end of the invoke; a missing closing tag is
    tolerated before the next parameter or the invoke's closer on a new line.
    """
    text = c.text
    index = c.resumeAt("invoke")
    while True:
        match = _VALUE_END.search(text, index)
        if match is None:
            c.need()
        if match.group().startswith("<"):
            probe = c.fork(match.end())
            probe.ws()
            if probe.atEnd():
                if not c.final:
                    c.need()
                ok = True
            else:
                t = _tryTag(probe)
                ok = t is not None and _endsValue(t)
        else:
            ok = True
        if ok:
            value = text[c.pos : match.start()]
            c.pos = match.end()
            return value
        index = match.start() + 1
        c.rejected("invoke", index)


def _parameters(c: Cursor, name: str) -> dict[str, Any]:
    """
    Read parameters up to the closing C{</invoke>} (or C{</function>}).
    """
    start = c.pos
    arguments: dict[str, Any]
    arguments, _ = c.resumeLoop("invoke-params", {})
    while True:
        c.ws()
        t = _tag(c)
        if t.closing:
            if t.kind in ("invoke", "function"):
                return arguments
            raise Invalid()
        key = t.attrs.get("name")
        if key is None:
            raise Invalid()
        key = key.strip()
        if t.kind == "parameter" and not t.selfClosing:
            value = _invokeValue(c)
            claimed = _claim(t.attrs.get("string"))
            arguments[key] = c.ctx.value(name, key, value, claimed)
        elif t.kind == "invoke" and t.selfClosing and "string" in t.attrs:
            # A parameter written as a self-closing invoke with its value in the
            # "string" attribute (catalogue section 9, item 2).
            arguments[key] = c.ctx.value(name, key, t.attrs["string"], True)
        else:
            raise Invalid()
        c.saveLoop("invoke-params", start, arguments)


def _invoke(c: Cursor, t: _Tag) -> Call:
    """
    The body of an C{<invoke name="...">}: parameters, a JSON object, or nothing
    (self-closing).
    """
    raw = t.attrs.get("name")
    if raw is None:
        raise Invalid()
    name = c.ctx.known(raw.strip())
    if t.selfClosing:
        return name, {}
    c.ws()
    if c.peek() == "{":
        arguments = c.ctx.arguments(name, c.json())
        c.ws()
        close = _tag(c)
        if not (close.closing and close.kind in ("invoke", "function")):
            raise Invalid()
        return name, arguments
    return name, _parameters(c, name)


def _invokes(c: Cursor) -> list[Call]:
    """
    One or more invokes, then optionally a section closer. Anything else after a
    complete invoke ends the block before it (an unterminated section).
    """
    start = c.pos
    calls: list[Call]
    calls, _ = c.resumeLoop("invokes", [])
    while True:
        save = c.pos
        c.ws()
        if c.atEnd():
            if c.final and calls:
                c.pos = save
                return calls
            c.need()
        t = _tryTag(c) if c.peek() == "<" else None
        if t is None:
            if not calls:
                raise Invalid()
            c.pos = save
            return calls
        if t.kind == "invoke" and not t.closing:
            if not calls:
                calls.append(_invoke(c, t))
            else:
                try:
                    calls.append(_invoke(c, t))
                except Invalid:
                    # A bad sibling ends the block; the calls before it stand.
                    c.pos = save
                    return calls
            c.saveLoop("invokes", start, calls)
            continue
        if calls and t.kind == "block" and t.closing:
            return calls
        if not calls:
            raise Invalid()
        c.pos = save
        return calls


def _eos(c: Cursor) -> None:
    """
    Swallow a DeepSeek end-of-sentence token right after a block.
    """
    c.lit("<\uff5cend\u2581of\u2581sentence\uff5c>")


def _fencedName(c: Cursor) -> list[Call]:
    """
    C{<｜DSML｜toolcall>NAME} and a (fenced) JSON object, with no closer: the V3-style
    body after a DSML opener (catalogue section 9, item 7).
    """
    name = c.ctx.known(c.run(_NAME))
    c.ws()
    fenced = c.lit("```")
    if fenced:
        c.lit("json")
        c.ws()
    arguments = c.ctx.arguments(name, c.json())
    if fenced:
        c.ws()
        c.expect("```")
    _strayClosers(c)
    return [(name, arguments)]


def _strayClosers(c: Cursor) -> None:
    """
    Swallow closing invoke/section tags that follow a call (catalogue section 9,
    item 11): they belong to the call's markup.
    """
    while True:
        save = c.pos
        c.ws()
        if c.atEnd():
            if not c.final:
                c.need()
            c.pos = save
            return
        t = _tryTag(c) if c.peek() == "<" else None
        if t is None:
            c.pos = save
            return
        if not (t.closing and t.kind in ("block", "invoke", "function")):
            c.pos = save
            return


def parseDsml(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    A DSML section opener (any spelling): invokes, or a bare name with JSON.
    """
    # The cursor starts at the block, which begins with this opener.
    t = _tag(c)
    if t.closing or t.selfClosing or t.kind != "block" or t.attrs:
        raise Invalid()
    save = c.pos
    c.ws()
    if c.peek() != "<":
        calls = _fencedName(c)
    else:
        c.pos = save
        calls = _invokes(c)
    _eos(c)
    return calls, "deepseek-dsml"


def parseInvoke(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    A bare C{<invoke name=...>} (with or without a DSML marker) and its siblings.
    """
    # The cursor starts at the block, which begins with this opener.
    calls = _invokes(c)
    dsml = opener != "<invoke"
    if dsml:
        _eos(c)
    return calls, "deepseek-dsml" if dsml else "invoke-xml"


def parseInvokeSection(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    C{<minimax:tool_call>} (MiniMax-M2) and C{<function_calls>} (DSML without its
    marker): a plain XML section of invokes.
    """
    c.pos = openerEnd
    calls = _invokes(c)
    return calls, "minimax-m2" if opener == "<minimax:tool_call>" else "invoke-xml"


def parseFunctionName(c: Cursor, opener: str, openerEnd: int) -> tuple[list[Call], str]:
    """
    C{<function><name>NAME</name>} then DSML-style parameters and closers (catalogue
    section 9, item 9).
    """
    c.pos = openerEnd
    c.ws()
    c.expect("<name>")
    end = c.find("</name>", 256)
    name = c.ctx.known(c.text[c.pos : end].strip())
    c.pos = end + len("</name>")
    arguments = _parameters(c, name)
    _strayClosers(c)
    _eos(c)
    return [(name, arguments)], "deepseek-dsml"
