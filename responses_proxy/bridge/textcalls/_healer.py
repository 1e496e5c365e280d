# -*- test-case-name: tests.test_bridge_textcalls -*-
"""
The streaming healer: content text in, text pieces and structured calls out.

Text is released as it arrives except from a character that may start a marker
(C{<} or C{[}) to the end of the chunk, and only while that tail is a proper prefix of
a marker. Once a whole opener is seen outside code, quotes and thinking, the text from
it on is a candidate block, held until its format's parser says it is complete (calls
come out), or that it can never be a call (the opener is released as text and the rest
is scanned again). At the end of the content an unfinished block is released as text.

Every decision depends only on the text, never on where the chunks were split.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from responses_proxy.bridge.textcalls import _json, _xml
from responses_proxy.bridge.textcalls._context import OPEN, THINK, THINK_TAGS, MarkdownContext
from responses_proxy.bridge.textcalls._cursor import Cursor, Invalid, NeedMore
from responses_proxy.bridge.textcalls._json import Parser
from responses_proxy.bridge.textcalls._values import ParseContext, argumentsJson


@attrs.frozen
class TextPiece:
    """
    Content text to pass on as it is.
    """

    text: str


@attrs.frozen
class CallPiece:
    """
    A tool call the model wrote as text.

    @ivar name: the chat-side tool name (one offered in the request).
    @ivar arguments: a JSON object string.
    @ivar format: the name of the markup it was written in, for the log.
    """

    name: str
    arguments: str
    format: str


Piece = TextPiece | CallPiece

_OPENERS: dict[str, Parser] = {
    "<tool_call>": _xml.parseToolCall,
    "<seed:tool_call>": _xml.parseSeed,
    "<function=": _xml.parseBareFunction,
    "<function>": _xml.parseFunctionName,
    "<function_calls>": _xml.parseInvokeSection,
    "<minimax:tool_call>": _xml.parseInvokeSection,
    "<invoke": _xml.parseInvoke,
    **{opener: _json.parseDeepSeek for opener in _json.DEEPSEEK_SECTIONS},
    _json.DEEPSEEK_CALL: _json.parseDeepSeek,
    **{opener: _json.parseKimi for opener in _json.KIMI_SECTIONS},
    _json.KIMI_CALL: _json.parseKimi,
    "[TOOL_CALLS": _json.parseMistral,
    "<|start|>": _json.parseHarmony,
    "<|channel|>": _json.parseHarmony,
    "<|tool_call|>": _json.jsonMarker("granite", None),
    "<function_call>": _json.jsonMarker("granite-20b-fc", None),
    "<|python_tag|>": _json.parsePythonTag,
    "<|python_start|>": _json.parsePythonStart,
    "<|tool_call_start|>": _json.parseLfm2,
    "<TOOLCALL>": _json.jsonMarker("nemotron", "</TOOLCALL>"),
    "<tool_calls>": _json.jsonMarker("apriel", "</tool_calls>"),
    "<|START_ACTION|>": _json.jsonMarker("command-r7b", "<|END_ACTION|>", "commandr"),
    "<|tools_prefix|>": _json.jsonMarker("apertus", "<|tools_suffix|>", "apertus"),
    "<|tool_call>": _json.parseGemma,
}
_DSML_BLOCK = "dsml-block"
_DSML_INVOKE = "dsml-invoke"
_PARSERS: dict[str, Parser] = {
    **_OPENERS,
    _DSML_BLOCK: _xml.parseDsml,
    _DSML_INVOKE: _xml.parseInvoke,
}

_CONTEXT_TAGS = frozenset(THINK_TAGS) | frozenset(THINK_TAGS.values())
_LITERALS = tuple(_OPENERS) + tuple(_CONTEXT_TAGS)
"""Every literal marker; none is a prefix of another, so the first match is the one."""

_CANDIDATE = re.compile(r"[<\[]")
_LITERAL = re.compile("|".join(re.escape(literal) for literal in _LITERALS))
_CALL_PREFIXES = frozenset(o[:i] for o in _OPENERS for i in range(1, len(o)))
_OPEN_THINK_PREFIXES = frozenset(t[:i] for t in THINK_TAGS for i in range(1, len(t)))
_ANY_PREFIXES = _CALL_PREFIXES | frozenset(t[:i] for t in _CONTEXT_TAGS for i in range(1, len(t)))
_PARTIAL_LIMIT = max(48, max(len(literal) for literal in _LITERALS))

_DSML_NAMES = tuple(_xml.BLOCK_NAMES) + ("invoke",)
_DSML_OPEN = re.compile(f"<[ ]{{0,3}}{_xml.DSML_MARKER}([A-Za-z_]+)")
_DSML_OPEN_PART = re.compile(
    r"<[ ]{0,3}(?:"
    + _xml.BARS
    + r"[ ]{0,3}(?:D(?:S(?:M(?:L[ ]{0,3}(?:"
    + _xml.BARS
    + r"[ ]{0,3})?)?)?)?)?)?\Z"
)

# What a candidate position holds.
_CALL = 1
_CONTEXT = 2
_PARTIAL = 3

_GATE = ">}])"
_SMALL_BLOCK = 4096
MAX_BLOCK = 1 << 20
"""The longest candidate block, in characters: a call must be complete within it."""


def _dsmlPartial(tail: str) -> bool:
    """
    Whether C{tail} (the end of the text) may grow into a DSML opener.
    """
    if _DSML_OPEN_PART.match(tail):
        return True
    match = _DSML_OPEN.match(tail)
    if match is None or match.end() != len(tail):
        return False
    name = match.group(1)
    return any(known.startswith(name) for known in _DSML_NAMES)


def _classify(text: str, at: int) -> tuple[int, int, str]:
    """
    What starts at C{text[at]} (a C{<} or C{[}).

    @return: C{(kind, end, opener)}: L{_CALL} with the opener's end and key,
        L{_CONTEXT} with the thinking tag's end, L{_PARTIAL} when the rest of the
        text may still become a marker, or C{0}.
    """
    match = _LITERAL.match(text, at)
    if match is not None:
        literal = match.group()
        return (_CONTEXT if literal in _CONTEXT_TAGS else _CALL), match.end(), literal
    if text[at] == "<":
        match = _DSML_OPEN.match(text, at)
        if match is not None and match.end() < len(text):
            name = match.group(1)
            if name in _xml.BLOCK_NAMES:
                return _CALL, match.end(), _DSML_BLOCK
            if name == "invoke":
                return _CALL, match.end(), _DSML_INVOKE
    if len(text) - at < _PARTIAL_LIMIT:
        tail = text[at:]
        if tail in _ANY_PREFIXES or (text[at] == "<" and _dsmlPartial(tail)):
            return _PARTIAL, 0, ""
    return 0, 0, ""


class TextCallHealer:
    """
    Turn tool calls written as text in one reply's content back into calls.

    Feed the content deltas in order, then call L{finish} once at the end of the
    content. The pieces returned, concatenated, are the content with every healed
    block replaced by its calls; when nothing is healed they are exactly the content.
    """

    def __init__(self, tools: Mapping[str, Mapping[str, Any] | None]) -> None:
        """
        @param tools: chat-side function name -> its JSON schema C{parameters} (or
            L{None}): the only names that may be called.
        """
        self._ctx = ParseContext(tools)
        self._markdown = MarkdownContext()
        # Text not yet decided starts at _held[_heldFrom:]; offsets instead of slices
        # keep one long feed with many failed openers linear.
        self._held = ""
        self._heldFrom = 0
        # A candidate block: _block[0][_blockStart:] + _block[1:].
        self._block: list[str] | None = None
        self._blockStart = 0
        self._blockSize = 0
        self._parsedSize = 0
        self._opener = ""
        self._openerEnd = 0
        self._memo: dict[Any, Any] = {}
        self._texts: list[str] = []
        self._finished = False

    def feed(self, text: str) -> list[Piece]:
        """
        Take the next piece of content.

        @return: the pieces that are decided; text that may still be part of a call
            is held back.
        """
        if self._finished:
            raise RuntimeError("TextCallHealer.feed() after finish()")
        if not text:
            return []
        block = self._block
        if block is not None:
            if self._blockStart:
                # Drop what came before the block once, so joins copy only the block.
                start = self._blockStart
                block[0] = block[0][start:]
                self._openerEnd -= start
                self._blockStart = 0
                self._memo = {}
            block.append(text)
            self._blockSize += len(text)
            if not self._due(text):
                return []
        elif not self._held:
            if _CANDIDATE.search(text) is None:
                self._markdown.feed(text)
                return [TextPiece(text)]
            self._held = text
        else:
            self._held += text
        out: list[Piece] = []
        self._drain(out, False)
        return self._flush(out)

    def finish(self) -> list[Piece]:
        """
        The content has ended: decide everything held. An unfinished block is text.

        @return: the remaining pieces.
        """
        if self._finished:
            return []
        self._finished = True
        out: list[Piece] = []
        self._drain(out, True)
        self._emit(out, self._held[self._heldFrom :])
        self._held = ""
        self._heldFrom = 0
        return self._flush(out)

    def _emit(self, out: list[Piece], text: str) -> None:
        """
        Release text; consecutive text becomes one piece (see L{_flush}).
        """
        if text:
            self._markdown.feed(text)
            self._texts.append(text)

    def _flush(self, out: list[Piece]) -> list[Piece]:
        """
        Turn the text released since the last piece into one L{TextPiece}.

        @return: C{out}.
        """
        texts = self._texts
        if texts:
            out.append(TextPiece(texts[0] if len(texts) == 1 else "".join(texts)))
            self._texts = []
        return out

    def _due(self, text: str) -> bool:
        """
        Whether a growing block is worth parsing again: always while it is small; then
        when the new text could end a structure, or after it grew by an eighth (so
        failure is still noticed), keeping the total cost of a long block linear.
        """
        size = self._blockSize
        if size <= _SMALL_BLOCK or size - self._parsedSize >= self._parsedSize >> 3:
            return True
        return any(char in text for char in _GATE)

    def _drain(self, out: list[Piece], final: bool) -> None:
        """
        Decide as much as the text so far allows.
        """
        while True:
            if self._block is None:
                self._scan(out, final)
                if self._block is None:
                    return
            if not self._parseBlock(out, final):
                return

    def _scan(self, out: list[Piece], final: bool) -> None:
        """
        Release held text up to the next opener, a possible marker at the end, or the
        end; enter a block at an opener outside code, quotes and thinking.
        """
        text = self._held
        start = index = self._heldFrom
        self._held = ""
        self._heldFrom = 0
        while True:
            match = _CANDIDATE.search(text, index)
            if match is None:
                break
            at = match.start()
            kind, end, opener = _classify(text, at)
            if not kind:
                index = at + 1
                continue
            if kind == _CONTEXT:
                index = end
                continue
            self._emit(out, text[start:at])
            start = at
            mode = self._markdown.mode()
            if kind == _CALL:
                if mode == OPEN:
                    self._enter(text, at, opener, end)
                    return
            elif not final and self._holds(text[at:], mode):
                self._held = text[at:]
                return
            index = at + 1
        self._emit(out, text[start:])

    def _holds(self, tail: str, mode: str) -> bool:
        """
        Whether a possible marker at the end of the text is worth waiting for here.
        """
        if mode == OPEN:
            return tail in _CALL_PREFIXES or tail in _OPEN_THINK_PREFIXES or _dsmlPartial(tail)
        if mode == THINK:
            closer = self._markdown.thinkCloser() or ""
            return len(tail) < len(closer) and closer.startswith(tail)
        return False

    def _enter(self, text: str, at: int, opener: str, openerEnd: int) -> None:
        """
        Start holding the candidate block that starts at C{text[at]}.
        """
        self._block = [text]
        self._blockStart = at
        self._blockSize = len(text) - at
        self._parsedSize = 0
        self._opener = opener
        self._openerEnd = openerEnd
        self._memo = {}

    def _parseBlock(self, out: list[Piece], final: bool) -> bool:
        """
        Parse the candidate block.

        @return: whether it was decided (and the text after it is held for scanning).
        """
        parts = self._block
        assert parts is not None
        text = parts[0] if len(parts) == 1 else "".join(parts)
        self._block = [text]
        start = self._blockStart
        self._parsedSize = len(text) - start
        # Past the limit, only its first MAX_BLOCK characters are looked at, so the
        # outcome does not depend on when the parse happened to run.
        tooLong = len(text) - start > MAX_BLOCK
        if tooLong:
            self._memo = {}
        cursor = Cursor(
            text[: start + MAX_BLOCK] if tooLong else text,
            start,
            final and not tooLong,
            self._ctx,
            self._memo,
        )
        try:
            calls, fmt = _PARSERS[self._opener](cursor, self._opener, self._openerEnd)
        except NeedMore:
            if not (final or tooLong):
                return False
            if final and not tooLong:
                self._block = None
                self._emit(out, text[start:])
                return True
            calls, fmt = [], ""
        except Invalid:
            calls, fmt = [], ""
        self._block = None
        self._memo = {}
        self._held = text
        if not calls or cursor.pos < self._openerEnd:
            self._emit(out, text[start : self._openerEnd])
            self._heldFrom = self._openerEnd
            return True
        self._flush(out)
        for name, arguments in calls:
            out.append(CallPiece(name, argumentsJson(self._ctx.resolve(arguments)), fmt))
        self._heldFrom = cursor.pos
        return True


def healerFor(tools: Mapping[str, Mapping[str, Any] | None] | None) -> TextCallHealer | None:
    """
    @param tools: the request's chat-side tools (name -> C{parameters} schema).
    @return: a healer, or L{None} when no tools were offered (content is then never
        touched).
    """
    if not tools:
        return None
    return TextCallHealer(tools)
