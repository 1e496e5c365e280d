# -*- test-case-name: tests.test_bridge_textcalls -*-
"""
Where in the answer's Markdown the text has got to: code, quotes, thinking.

A model that explains tool syntax writes the markers too, inside code fences, inline
code, quotation marks, block quotes or its own C{<think>} section (catalogue section 22;
SGLang's C{mask_literals} masks the same regions). A marker in such a region is text.

The tracker only looks at text that has been released, in order, and only when the
healer asks: released text is queued and scanned in one go with regular expressions, so
an answer with no marker in it costs almost nothing here.

Simplifications (documented in docs/text-tool-calls.md): inline code and quotation
marks end at the end of their line; indented code blocks are not tracked.
"""

from __future__ import annotations

import re

# Line kinds.
_HEAD = 0  # start of a line, not yet decided
_TEXT = 1
_FENCE_OPEN = 2  # the line that opens a ~~~ fence (its info string is masked)
_IN_FENCE = 3
_QUOTE = 4  # a Markdown block quote line

OPEN = "open"
"""A marker here may be a call."""
THINK = "think"
"""Inside a thinking section: only its closing tag matters."""
MASKED = "masked"
"""Inside code or a quotation: nothing here is a marker."""

THINK_TAGS = {"<think>": "</think>", "<seed:think>": "</seed:think>", "[THINK]": "[/THINK]"}
"""Opening tags of thinking sections and their closing tags."""

_HEAD_RE = re.compile(r"( *)(`+|~+|>)?")
_EVENTS = re.compile(
    "`+|[\"'\u201c\u2018]|[\u201d\u2019]|" + "|".join(re.escape(tag) for tag in THINK_TAGS)
)
# Lines that may change state beyond themselves: fence lines and thinking tags.
_FENCE_LINE = re.compile(r"(?m)^ {0,3}(?:```|~~~)")
_INTERESTING = re.compile(
    r"(?m)^ {0,3}(?:```|~~~)|" + "|".join(re.escape(tag) for tag in THINK_TAGS)
)
_QUOTE_CLOSE = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}
_SYNC_SIZE = 8192


class MarkdownContext:
    """
    Incremental Markdown context of released text.
    """

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._pendingSize = 0
        self._fence: tuple[str, int] | None = None
        self._think: str | None = None
        self._kind = _HEAD
        self._head = ""
        self._closing = False  # this in-fence line may close the fence
        self._candidate = 0  # this line opens a fence if no backtick follows
        self._ticks = 0  # length of the open inline code span's backtick run
        self._run = 0  # backtick run at the end of the scanned text, not yet ended
        self._quote: str | None = None  # closing quotation mark awaited
        self._prev = ""  # the last character scanned on this line

    def feed(self, text: str) -> None:
        """
        Queue released text.
        """
        self._pending.append(text)
        self._pendingSize += len(text)
        if self._pendingSize > _SYNC_SIZE:
            self._sync()

    def _sync(self) -> None:
        """
        Scan the queued text.
        """
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending = []
        self._pendingSize = 0
        self._scan(text)

    def mode(self) -> str:
        """
        The context right after all text released so far, for a marker that starts
        with C{<} or C{[} (which ends any backtick run in progress).

        @return: L{OPEN}, L{THINK} or L{MASKED}.
        """
        self._sync()
        if self._think is not None:
            return THINK
        if self._fence is not None or self._kind in (_FENCE_OPEN, _IN_FENCE, _QUOTE):
            return MASKED
        if self._kind == _HEAD:
            match = _HEAD_RE.match(self._head)
            spaces, run = match.group(1), match.group(2)
            if run and (run[0] == "`" or len(spaces) <= 3):
                # A fence opening, a block quote, or an inline code span opening.
                return OPEN if run[0] == "~" and len(run) < 3 else MASKED
            return OPEN
        if self._run:
            if self._ticks == 0 and self._quote is None:
                return MASKED
            if self._ticks == self._run:
                return OPEN if self._quote is None else MASKED
            return MASKED
        if self._ticks or self._quote is not None:
            return MASKED
        return OPEN

    def thinkCloser(self) -> str | None:
        """
        @return: the closing tag of the thinking section the text is in, if any.
        """
        self._sync()
        return self._think

    def _scan(self, text: str) -> None:
        """
        Advance the state over C{text}.
        """
        index = 0
        length = len(text)
        while index < length:
            if self._think is not None:
                end = text.find(self._think, index)
                if end < 0:
                    return
                index = end + len(self._think)
                self._think = None
                self._kind = _TEXT
                self._ticks = self._run = 0
                self._quote = None
                self._prev = ">"
                continue
            if self._kind == _HEAD and not self._head:
                index = self._skipLines(text, index)
                if index >= length:
                    return
            newline = text.find("\n", index)
            stop = length if newline < 0 else newline
            index = self._line(text, index, stop, newline >= 0)
            if index < stop:
                continue  # a thinking section opened
            if newline < 0:
                return
            self._endLine()
            index = newline + 1

    def _skipLines(self, text: str, index: int) -> int:
        """
        From a line start, skip the complete lines that cannot change anything after
        themselves: inline code and quotations end with their line, so only fence
        lines and thinking tags (outside a fence, only fence lines) matter.

        @return: the start of the first line worth scanning.
        """
        last = text.rfind("\n", index)
        if last < 0:
            return index
        pattern = _FENCE_LINE if self._fence is not None else _INTERESTING
        match = pattern.search(text, index, last + 1)
        if match is None:
            return last + 1
        return text.rfind("\n", index, match.start()) + 1 or index

    def _line(self, text: str, start: int, stop: int, ended: bool) -> int:
        """
        Scan C{text[start:stop]}, part of one line.

        @param ended: a newline follows C{stop}.
        @return: C{stop}, or where scanning stopped because a thinking section opened.
        """
        if self._kind == _HEAD:
            head = self._head + text[start:stop]
            match = _HEAD_RE.match(head)
            if match.end() == len(head) and not ended:
                self._head = head
                return stop
            self._head = ""
            spaces, run = match.group(1), match.group(2)
            rest = head[match.end() :]
            fence = self._fence
            if fence is not None:
                self._kind = _IN_FENCE
                self._closing = bool(
                    run
                    and len(spaces) <= 3
                    and run[0] == fence[0]
                    and len(run) >= fence[1]
                    and not rest.strip()
                )
                return stop
            if len(spaces) > 3 or not run:
                self._kind = _TEXT
                return self._text(head, len(spaces), len(head), ended, stop)
            char = run[0]
            if char == ">":
                self._kind = _QUOTE
                return stop
            if len(run) >= 3 and char == "~":
                self._fence = (char, len(run))
                self._kind = _FENCE_OPEN
                return stop
            self._kind = _TEXT
            if len(run) >= 3:
                # A fence only if no backtick follows on this line (CommonMark): until
                # the line ends it reads as an open inline code span, masked either way.
                self._ticks = self._candidate = len(run)
                self._prev = "`"
                return self._text(head, match.end(), len(head), ended, stop)
            return self._text(head, len(spaces), len(head), ended, stop)
        if self._kind == _TEXT:
            return self._text(text, start, stop, ended, stop)
        if self._kind == _IN_FENCE and self._closing and text[start:stop].strip():
            self._closing = False
        return stop

    def _text(self, text: str, start: int, stop: int, ended: bool, originStop: int) -> int:
        """
        Scan ordinary line text for backtick runs, quotation marks and thinking tags.

        @param originStop: the caller's C{stop}: C{text} may be a line head joined from
            several pieces, which ends where the caller's text ends.
        @return: C{originStop}, or the caller's index just after an opening thinking tag.
        """
        if self._run and not text.startswith("`", start):
            self._endRun()
        for match in _EVENTS.finditer(text, start, stop):
            token = match.group()
            at = match.start()
            char = token[0]
            if char == "`":
                self._candidate = 0
                run = len(token)
                if at == start and self._run:
                    run += self._run
                self._run = run
                if match.end() < stop or ended:
                    self._endRun()
                continue
            if self._run:
                self._endRun()
            if self._ticks:
                continue
            if len(token) > 1:
                if self._quote is None and token in THINK_TAGS:
                    self._think = THINK_TAGS[token]
                    return originStop - (stop - match.end())
                continue
            if self._quote is not None:
                if char == self._quote:
                    self._quote = None
                continue
            if char in _QUOTE_CLOSE:
                before = text[at - 1] if at > start else self._prev
                if not before.isalnum():
                    self._quote = _QUOTE_CLOSE[char]
        if stop > start:
            self._prev = text[stop - 1]
        return originStop

    def _endRun(self) -> None:
        """
        A backtick run has ended: it opens or closes an inline code span.
        """
        run = self._run
        self._run = 0
        if self._quote is not None:
            return
        if self._ticks == 0:
            self._ticks = run
        elif self._ticks == run:
            self._ticks = 0

    def _endLine(self) -> None:
        """
        A newline: inline spans and quotations end; a closing fence line closes.
        """
        if self._kind == _HEAD:
            self._line("", 0, 0, True)
        if self._kind == _IN_FENCE and self._closing:
            self._fence = None
        if self._candidate:
            self._fence = ("`", self._candidate)
            self._candidate = 0
        self._kind = _HEAD
        self._head = ""
        self._closing = False
        self._ticks = self._run = 0
        self._quote = None
        self._prev = ""
