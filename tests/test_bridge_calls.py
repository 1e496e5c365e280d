"""
Tests for L{responses_proxy.bridge.calls}: which call a C{tool_calls} entry continues,
a custom tool's input decoded as it streams, and the local shell action.

The same rules are exercised end to end, through events, in
L{tests.test_bridge_stream.ToolCallTests}.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.calls import (
    Call,
    CallTable,
    CustomInput,
    isJson,
    jsonText,
    shellAction,
)


def _named(call: Call, name: str, arguments: str = "") -> Call:
    call.name = name
    if arguments:
        call.parts.append(arguments)
    return call


class CallTableTests(SynchronousTestCase):
    """
    L{CallTable.find}: the keying rules of bridge-spec section 2.2.
    """

    def test_byIndex(self) -> None:
        """
        An index seen before continues its call; a new index starts one.
        """
        table = CallTable()
        first = table.find(0, None, "f", [])
        self.assertIs(table.find(0, None, None, []), first)
        second = table.find(1, None, None, [])
        self.assertIsNot(second, first)
        self.assertEqual(table.calls, [first, second])

    def test_byId(self) -> None:
        """
        A known id continues its call wherever it appears; an index seen before
        with another id is a new call.
        """
        table = CallTable()
        a = table.find(0, "a", "f", [])
        self.assertIs(table.find(None, "a", None, []), a)
        self.assertIs(table.find(3, "a", None, []), a)
        b = table.find(0, "b", "f", [])
        self.assertIsNot(b, a)

    def test_lateId(self) -> None:
        """
        An id arriving at an index whose call has none yet belongs to that call.
        """
        table = CallTable()
        call = table.find(0, None, "f", [])
        self.assertIs(table.find(0, "late", None, []), call)
        self.assertEqual(call.upstreamId, "late")
        self.assertIs(table.find(None, "late", None, []), call)

    def test_neitherContinuesLatest(self) -> None:
        """
        An entry with neither index nor id continues the latest call.
        """
        table = CallTable()
        call = _named(table.find(None, "a", "f", []), "f")
        self.assertIs(table.find(None, None, None, []), call)

    def test_neitherStartsNew(self) -> None:
        """
        ... unless that call was touched in the same chunk, or the entry names
        another function, or repeats the name after complete JSON arguments.
        """
        table = CallTable()
        call = _named(table.find(None, None, "f", []), "f", '{"a":')
        self.assertIsNot(table.find(None, None, None, [call]), call)
        table = CallTable()
        call = _named(table.find(None, None, "f", []), "f", '{"a":')
        self.assertIsNot(table.find(None, None, "g", []), call)
        table = CallTable()
        call = _named(table.find(None, None, "f", []), "f", '{"a":')
        self.assertIs(table.find(None, None, "f", []), call)
        call.parts.append("1}")
        self.assertIsNot(table.find(None, None, "f", []), call)

    def test_opened(self) -> None:
        """
        Only calls with an open item are listed, in output order.
        """
        table = CallTable()
        a, b, c = (table.find(i, None, "f", []) for i in range(3))
        a.outputIndex, c.outputIndex = 5, 4
        self.assertEqual(table.opened(), [c, a])


class CustomInputTests(SynchronousTestCase):
    """
    L{CustomInput}: the input of a custom tool from streamed chat arguments.
    """

    def _stream(self, raw: str, size: int) -> tuple[list[str], str]:
        decoder = CustomInput()
        pieces = [decoder.piece(raw[i : i + size]) for i in range(0, len(raw), size)]
        return [p for p in pieces if p], decoder.final(raw)

    def test_inputObject(self) -> None:
        """
        C{{"input": "..."}} streams the decoded string, whatever the split, and the
        pieces add up to the final input.
        """
        patch = '*** Begin Patch\n+h\u00e9 "q" \\ \U0001f600 \t\n*** End Patch\n'
        raw = json.dumps({"input": patch})
        for size in (1, 2, 5, 7, len(raw)):
            pieces, final = self._stream(raw, size)
            self.assertEqual("".join(pieces), patch, size)
            self.assertEqual(final, patch, size)

    def test_asciiEscapes(self) -> None:
        """
        Escapes split across chunks, including a surrogate pair written as two
        C{\\u} escapes, decode whole.
        """
        raw = json.dumps({"input": "a\U0001f600\u00e9b"}, ensure_ascii=True)
        for size in range(1, 8):
            pieces, final = self._stream(raw, size)
            self.assertEqual("".join(pieces), "a\U0001f600\u00e9b", size)
            self.assertEqual(final, "a\U0001f600\u00e9b")

    def test_rawText(self) -> None:
        """
        Arguments that are plain text stream as they are and are the input.
        """
        pieces, final = self._stream("*** Begin Patch\n", 4)
        self.assertEqual(pieces, ["*** ", "Begi", "n Pa", "tch\n"])
        self.assertEqual(final, "*** Begin Patch\n")

    def test_otherJsonHeld(self) -> None:
        """
        Other JSON objects are held (no pieces) and are the input as they are; a
        JSON string gives its value; other keys beside C{input} are ignored; text
        that starts with neither C{{} nor C{"} streams raw.
        """
        self.assertEqual(self._stream('{"patch": "x"}', 3), ([], '{"patch": "x"}'))
        self.assertEqual(self._stream('"just a string"', 3)[1], "just a string")
        self.assertEqual(self._stream('{"input": "x", "extra": 1}', 3)[1], "x")
        self.assertEqual(self._stream("[1, 2]", 3), (["[1,", " 2]"], "[1, 2]"))

    def test_unterminated(self) -> None:
        """
        C{{"input": "...} that never closes gives the decoded string so far;
        junk after a closed string leaves the decoded string too.
        """
        self.assertEqual(self._stream('{"input": "line\\nnext', 4)[1], "line\nnext")
        self.assertEqual(self._stream('{"input": "x"} trailing', 4)[1], "x")


class ShellActionTests(SynchronousTestCase):
    """
    L{shellAction}: a C{local_shell_call} action from C{local_shell} arguments.
    """

    def test_full(self) -> None:
        """
        Every field is read; non-string parts and values are JSON-encoded.
        """
        action = shellAction(json.dumps({
            "action": {"command": ["echo", 5], "env": {"A": 1, "B": "b"}, "workdir": "/w",
                       "timeout_ms": 10, "user": "u"}}))
        self.assertEqual(action, {"type": "exec", "command": ["echo", "5"],
                                  "env": {"A": "1", "B": "b"}, "working_directory": "/w",
                                  "timeout_ms": 10, "user": "u"})

    def test_stringAndUnusable(self) -> None:
        """
        A string command runs through C{bash -lc}; unusable arguments give an empty
        command.
        """
        self.assertEqual(shellAction('{"command": "ls | wc"}')["command"],
                         ["bash", "-lc", "ls | wc"])
        for raw in ("", "nope", "[1]", '{"command": 5}'):
            self.assertEqual(shellAction(raw), {"type": "exec", "command": [], "env": {}}, raw)


class JsonTests(SynchronousTestCase):
    """
    L{isJson} and L{jsonText}.
    """

    def test_isJson(self) -> None:
        """
        One complete JSON value (control characters allowed) is JSON.
        """
        self.assertTrue(isJson('{"a": "x\ty"}'))
        self.assertTrue(isJson("3"))
        for text in ("", '{"a":', "{} {}", "nope"):
            self.assertFalse(isJson(text), text)

    def test_jsonText(self) -> None:
        """
        Compact, non-ASCII kept.
        """
        self.assertEqual(jsonText({"a": [1, "\u00e9"]}), '{"a":[1,"\u00e9"]}')
