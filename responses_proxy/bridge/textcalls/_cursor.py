# -*- test-case-name: tests.test_bridge_textcalls -*-
"""
A cursor over a tool-call block whose text may still be growing.

Every format parser is a plain recursive-descent parser over one block of text. The
block arrives in pieces, so each step must tell three outcomes apart: the text so far
is a valid prefix (L{NeedMore}), it can never become a call (L{Invalid}), or it parsed.
The parsers are written so that the answer for a prefix never changes once given:
that is what makes the healer's result independent of where the chunks were split.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:
    from responses_proxy.bridge.textcalls._values import ParseContext

_T = TypeVar("_T")


class NeedMore(Exception):
    """
    The block so far is a valid prefix of a call; wait for more text.
    """


class Invalid(Exception):
    """
    The block can never become a call; it is text.
    """


_WS = re.compile(r"\s*")
_SPACES = re.compile(r"[ \t]*")
_JSON_TOKEN = re.compile(r'[{}\[\]"]')
_JSON_STRING = re.compile(r'["\\]')
_OBJECT_START = re.compile(r"\{\s*")


class Cursor:
    """
    A position in a block of text, with the primitives every parser needs.

    @ivar text: the block so far, starting at its opener.
    @ivar pos: where parsing is.
    @ivar final: the block will not grow any more (end of content): partial literals
        at the end then simply do not match.
    @ivar ctx: the request's tools and value conversions.
    """

    __slots__ = ("text", "pos", "final", "ctx", "_memo")

    def __init__(
        self,
        text: str,
        pos: int,
        final: bool,
        ctx: ParseContext,
        memo: dict[Any, Any],
    ) -> None:
        self.text = text
        self.pos = pos
        self.final = final
        self.ctx = ctx
        self._memo = memo

    def fork(self, pos: int) -> Cursor:
        """
        @return: a cursor over the same text at C{pos}, for looking ahead.
        """
        return Cursor(self.text, pos, self.final, self.ctx, self._memo)

    def resumeAt(self, key: str) -> int:
        """
        Where a search that started at the cursor under C{key} may resume: every
        candidate before it was already rejected for good (the text only grows).
        """
        return self._memo.get((key, self.pos), self.pos)

    def rejected(self, key: str, index: int) -> None:
        """
        Record that the search under C{key} from the cursor rejected everything before
        C{index}.
        """
        self._memo[(key, self.pos)] = index

    def resumeLoop(self, key: str, fresh: _T) -> tuple[_T, bool]:
        """
        Resume the loop that starts at the cursor under C{key} where an earlier parse of
        this block left it: the cursor moves to its position after the last complete
        item, and what it had built (shared, to be extended in place) is returned. A
        complete item never changes as the block grows, so a long block is not re-parsed
        from its start every time.

        @param fresh: what the loop starts with when there is nothing to resume.
        @return: what the loop has built, and whether it was resumed.
        """
        state = self._memo.get((key, self.pos))
        if state is None:
            return fresh, False
        self.pos, built = state
        return built, True

    def saveLoop(self, key: str, start: int, built: Any) -> None:
        """
        Record the state of the loop under C{key} that started at C{start}, now at the
        cursor after a complete item.
        """
        self._memo[(key, start)] = (self.pos, built)

    def atEnd(self) -> bool:
        """
        @return: whether all the text so far has been consumed.
        """
        return self.pos >= len(self.text)

    def need(self) -> NoReturn:
        """
        Stop here: the text ends in the middle of something that may still match.
        """
        raise NeedMore()

    def peek(self) -> str:
        """
        @return: the next character (waiting for it if there is none yet).
        """
        if self.pos >= len(self.text):
            self.need()
        return self.text[self.pos]

    def ws(self) -> None:
        """
        Skip whitespace.
        """
        self.pos = _WS.match(self.text, self.pos).end()

    def spaces(self) -> None:
        """
        Skip spaces and tabs (not newlines).
        """
        self.pos = _SPACES.match(self.text, self.pos).end()

    def ahead(self, literal: str) -> bool:
        """
        Whether C{literal} comes next, without consuming it.

        @raise NeedMore: the text ends inside what could be C{literal}.
        """
        text = self.text
        pos = self.pos
        if text.startswith(literal, pos):
            return True
        if not self.final and len(text) - pos < len(literal):
            if literal.startswith(text[pos:]):
                self.need()
        return False

    def lit(self, literal: str) -> bool:
        """
        Consume C{literal} if it comes next.

        @raise NeedMore: the text ends inside what could be C{literal}.
        """
        if self.ahead(literal):
            self.pos += len(literal)
            return True
        return False

    def expect(self, literal: str) -> None:
        """
        Consume C{literal}, which must come next.
        """
        if not self.lit(literal):
            raise Invalid()

    def run(self, pattern: re.Pattern[str], limit: int = 256) -> str:
        """
        Consume a non-empty run matched by C{pattern} (a greedy character class).

        @param limit: the longest acceptable run: a name or an id, never a value.
        @raise NeedMore: the run reaches the end of the text and may go on.
        """
        match = pattern.match(self.text, self.pos)
        if match is None or match.end() == self.pos:
            if self.pos >= len(self.text):
                self.need()
            raise Invalid()
        end = match.end()
        if end - self.pos > limit:
            raise Invalid()
        if end >= len(self.text) and not self.final:
            self.need()
        self.pos = end
        return match.group()

    def find(self, literal: str, limit: int | None = None) -> int:
        """
        @param limit: give up (L{Invalid}) when C{literal} is not within this many
            characters.
        @return: the index of the next C{literal}.
        """
        text = self.text
        index = text.find(literal, self.pos)
        if index < 0:
            if limit is not None and len(text) - self.pos > limit:
                raise Invalid()
            self.need()
        if limit is not None and index - self.pos > limit:
            raise Invalid()
        return index

    def jsonEnd(self) -> int:
        """
        Find where the JSON object or array at the cursor ends, string-aware.

        The scan state is kept per start position, so a block that grows is never
        re-scanned from its start: a long argument costs linear time in total.

        @return: the index just after the closing bracket.
        """
        text = self.text
        start = self.pos
        state = self._memo.get(start)
        if state is None:
            first = self.peek()
            if first not in "{[":
                raise Invalid()
            if first == "{":
                # An object's first key must be a string: fail prose early.
                match = _OBJECT_START.match(text, start)
                after = match.end()
                if after >= len(text):
                    self.need()
                if text[after] not in '"}':
                    raise Invalid()
            index, depth, inString = start, 0, False
        else:
            index, depth, inString = state
            if depth == 0 and not inString and index > start:
                return index
        length = len(text)
        while True:
            if inString:
                match = _JSON_STRING.search(text, index)
                if match is None:
                    index = length
                    break
                at = match.start()
                if text[at] == "\\":
                    if at + 1 >= length:
                        index = at
                        break
                    index = at + 2
                    continue
                inString = False
                index = at + 1
                continue
            match = _JSON_TOKEN.search(text, index)
            if match is None:
                index = length
                break
            at = match.start()
            char = text[at]
            index = at + 1
            if char == '"':
                inString = True
            elif char in "{[":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    self._memo[start] = (index, 0, False)
                    return index
        self._memo[start] = (index, depth, inString)
        self.need()

    def json(self) -> Any:
        """
        Consume the JSON object or array at the cursor.

        @raise Invalid: it is complete but is not valid JSON.
        """
        end = self.jsonEnd()
        value = self.ctx.loads(self.text[self.pos : end])
        self.pos = end
        return value
