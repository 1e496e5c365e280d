"""
Tests for L{responses_proxy.bridge.textcalls}: healing tool calls written as text.

The samples under C{tests/fixtures/textcalls/} are byte-exact copies of the fenced
samples of the tool-call-text catalogue (see that directory's README); the shorter
variants below are copied from the catalogue's running text. Every case is also fed in
seeded random pieces, one code point at a time, and as UTF-8 bytes cut anywhere, and
must give the same pieces as one feed.
"""

from __future__ import annotations

import codecs
import json
import random
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.textcalls import (
    CallPiece,
    TextCallHealer,
    TextPiece,
    _healer,
    healerFor,
)
from responses_proxy.bridge.textcalls._context import MASKED, OPEN, THINK, MarkdownContext

_FIXTURES = Path(__file__).parent / "fixtures" / "textcalls"

_S = {"type": "string"}
_I = {"type": "integer"}


def _obj(**properties: Any) -> dict[str, Any]:
    """
    An object schema with C{properties}.
    """
    return {"type": "object", "properties": properties}


TOOLS: dict[str, Any] = {
    "get_weather": _obj(city=_S, unit=_S, location=_S, date=_S, days=_I, n=_I),
    "get_current_weather": _obj(location=_S, city=_S, state=_S, unit=_S),
    "search": _obj(query=_S, filters={"type": "object"}),
    "read": _obj(path=_S, filePath=_S, offset=_I, limit=_I),
    "Read": _obj(file_path=_S, offset=_I, limit=_I),
    "Bash": _obj(command=_S),
    "bash": _obj(command=_S),
    "exec_command": _obj(cmd=_S, yield_time_ms=_I),
    "apply_patch": _obj(input=_S),
    "get_pages": _obj(pages=_S),
    "function_name": _obj(param=_S, count=_I),
    "readWorkspaceFile": _obj(arg0=_S),
    "func1": _obj(param1=_S, param2=_S),
    "add": _obj(a={"type": "number"}, b={"type": "number"}),
    "multiply": _obj(a={"type": "number"}, b={"type": "number"}),
    "special_function": _obj(arg1=_I),
    "file_search": _obj(query=_S),
    "trending_songs": _obj(n=_S, genre=_S),
    "get_current_time": _obj(location=_S),
    "write": _obj(path=_S, text=_S),
    "typed": _obj(
        i=_I,
        f={"type": "number"},
        b={"type": "boolean"},
        o={"type": "object"},
        a={"type": "array"},
        s=_S,
        n={"type": ["integer", "null"]},
        u={"anyOf": [{"type": "integer"}, {"type": "string"}]},
    ),
    "untyped": None,
    "no_args": _obj(),
}


class C:
    """
    An expected call.
    """

    def __init__(self, name: str, arguments: dict[str, Any], fmt: str | None = None) -> None:
        """
        @param fmt: the format name to expect, or L{None} for any.
        """
        self.name = name
        self.arguments = arguments
        self.fmt = fmt

    def __repr__(self) -> str:
        return f"C({self.name!r}, {self.arguments!r}, {self.fmt!r})"


def fixture(name: str) -> str:
    """
    The catalogue sample C{name}, byte for byte.
    """
    return (_FIXTURES / (name + ".txt")).read_text(encoding="utf-8")


def normalise(pieces: list[Any]) -> list[Any]:
    """
    Merge adjacent text pieces (a split feed returns more of them).
    """
    result: list[Any] = []
    for piece in pieces:
        if isinstance(piece, TextPiece):
            if not piece.text:
                continue
            if result and isinstance(result[-1], TextPiece):
                result[-1] = TextPiece(result[-1].text + piece.text)
                continue
        result.append(piece)
    return result


def heal(text: str, cuts: list[int] | None = None, tools: Any = None) -> list[Any]:
    """
    Feed C{text} cut at C{cuts}, then finish.
    """
    healer = TextCallHealer(TOOLS if tools is None else tools)
    pieces: list[Any] = []
    previous = 0
    for cut in (cuts or []) + [len(text)]:
        pieces.extend(healer.feed(text[previous:cut]))
        previous = cut
    pieces.extend(healer.finish())
    return normalise(pieces)


def healBytes(text: str, rng: random.Random) -> list[Any]:
    """
    Feed C{text} as UTF-8 bytes cut at random, decoded incrementally (pieces may be
    empty or end before a multi-byte character is complete).
    """
    data = text.encode("utf-8")
    decoder = codecs.getincrementaldecoder("utf-8")()
    healer = TextCallHealer(TOOLS)
    pieces: list[Any] = []
    index = 0
    while index < len(data):
        size = rng.randint(1, 7)
        pieces.extend(healer.feed(decoder.decode(data[index : index + size])))
        index += size
    pieces.extend(healer.feed(decoder.decode(b"", final=True)))
    pieces.extend(healer.finish())
    return normalise(pieces)


def expected(*items: Any) -> list[Any]:
    """
    The pieces a case should give: strings are text, L{C} are calls.
    """
    return [TextPiece(item) if isinstance(item, str) else item for item in items if item != ""]


def matches(actual: list[Any], wanted: list[Any]) -> bool:
    """
    Compare pieces, reading call arguments as JSON.
    """
    if len(actual) != len(wanted):
        return False
    for got, want in zip(actual, wanted, strict=True):
        if isinstance(want, TextPiece):
            if got != want:
                return False
            continue
        if not isinstance(got, CallPiece) or got.name != want.name:
            return False
        if json.loads(got.arguments) != want.arguments:
            return False
        if want.fmt is not None and got.format != want.fmt:
            return False
    return True


# Every case: (text, expected pieces). Keys name the case in failure messages.

SAMPLES: dict[str, tuple[str, list[Any]]] = {
    "hermes": (
        fixture("hermes"),
        expected(
            C("get_weather", {"city": "Zürich", "unit": "c"}, "hermes"),
            "\n",
            C(
                "search",
                {"query": 'café "best"', "filters": {"tags": ["a", "b"], "max": 3}},
                "hermes",
            ),
        ),
    ),
    "qwen_xml": (
        fixture("qwen_xml"),
        expected(
            C("get_weather", {"city": "Zürich", "unit": "c"}, "qwen3-coder"),
            "\n",
            C("search", {"filters": {"tags": ["a", "b"], "max": 3}}, "qwen3-coder"),
        ),
    ),
    "qwen_xml_lmstudio": (
        fixture("qwen_xml_lmstudio"),
        expected(
            "Let me read all these files to understand how tokenWindow is used in both "
            "LlmConfig and AiConfigPreferenceView.\n\n",
            C(
                "readWorkspaceFile",
                {"arg0": "/org/sterl/llmpeon/parts/config/AiConfigPreferenceView.java"},
            ),
        ),
    ),
    "glm45": (
        fixture("glm45"),
        expected(
            C("get_weather", {"city": "Zürich", "unit": "c"}, "glm"),
            "\n",
            C("search", {"query": 'café "best"', "filters": {"tags": ["a", "b"], "max": 3}}),
        ),
    ),
    "glm47": (
        fixture("glm47"),
        expected(
            C("get_weather", {"city": "Zürich", "unit": "c"}, "glm"),
            C("search", {"query": 'café "best"'}, "glm"),
        ),
    ),
    "deepseek_v3": (
        fixture("deepseek_v3"),
        expected(
            C("get_current_weather", {"location": "Tokyo"}, "deepseek-v3"),
            C("get_current_weather", {"location": "Paris"}, "deepseek-v3"),
        ),
    ),
    "deepseek_v31": (
        fixture("deepseek_v31"),
        expected(
            C("get_weather", {"city": "Zürich", "unit": "c"}, "deepseek-v3.1"),
            C("search", {"query": "café"}, "deepseek-v3.1"),
        ),
    ),
    "dsml_v32": (
        fixture("dsml_v32"),
        expected(
            C("get_weather", {"location": "杭州", "date": "2024-01-16"}, "deepseek-dsml"),
            C("get_weather", {"location": "北京", "date": "2024-01-16"}, "deepseek-dsml"),
        ),
    ),
    "dsml_v4": (fixture("dsml_v4"), expected(C("Bash", {"command": "pwd"}, "deepseek-dsml"))),
    "dsml_v41": (
        fixture("dsml_v41"),
        expected("\n", C("function_name", {"param": "string_value", "count": 5})),
    ),
    "dsml_v41_doubled": (
        fixture("dsml_v41_doubled"),
        expected(C("read", {"path": "/Users/xiaodi/.agents/skills/grill-me/SKILL.md"})),
    ),
    "dsml_variant2": (
        fixture("dsml_variant2"),
        expected(C("exec_command", {"cmd": "echo alpha"}, "deepseek-dsml")),
    ),
    "dsml_variant3": (fixture("dsml_variant3"), expected(C("get_pages", {"pages": "3-5"}))),
    "dsml_variant7": (
        fixture("dsml_variant7"),
        expected(
            C("Read", {"file_path": "/tmp/gen_report.js", "offset": 100, "limit": 20}),
            " ",
        ),
    ),
    "dsml_variant8": (
        fixture("dsml_variant8"),
        expected(
            C(
                "read",
                {
                    "filePath": "/home/codearea/steelclaw/workspace/coding/mighty-app/"
                    "frontend/src/lib/api.ts"
                },
                "invoke-xml",
            )
        ),
    ),
    "dsml_variant9": (
        fixture("dsml_variant9"),
        expected(C("bash", {"command": 'opencrabs --version 2>/dev/null || echo "..."'})),
    ),
    "kimi": (
        fixture("kimi"),
        expected(
            C("get_weather", {"city": "Zürich", "unit": "c"}, "kimi-k2"),
            C("search", {"query": "café"}, "kimi-k2"),
        ),
    ),
    "mistral_v3": (
        fixture("mistral_v3"),
        expected(
            C("add", {"a": 3.5, "b": 4}, "mistral"),
            C(
                "get_current_weather",
                {"city": "San Francisco", "state": "CA", "unit": "celsius"},
                "mistral",
            ),
        ),
    ),
    "mistral_callid": (fixture("mistral_callid"), expected(C("special_function", {"arg1": 1}))),
    "mistral_v11": (
        fixture("mistral_v11"),
        expected(C("add", {"a": 3.5, "b": 4}), C("multiply", {"a": 3, "b": 6})),
    ),
    "mistral_braces": (
        fixture("mistral_braces"),
        expected(
            C(
                "file_search",
                {
                    "query": "/{.github/copilot-instructions.md,AGENT.md,AGENTS.md,CLAUDE.md,"
                    ".cursorrules,.windsurfrules,.clinerules,.cursor/rules/,.windsurf/rules/,"
                    ".clinerules/,README.md}"
                },
            )
        ),
    ),
    "llama_python_tag": (
        fixture("llama_python_tag"),
        expected(C("trending_songs", {"n": "10", "genre": "all"}, "llama3-json")),
    ),
    "harmony_spec": (
        fixture("harmony_spec"),
        expected(
            "<|channel|>analysis<|message|>Need to use function get_weather.<|end|>",
            C("get_weather", {"location": "San Francisco"}, "gpt-oss"),
        ),
    ),
    "harmony_live": (
        fixture("harmony_live"),
        expected(
            "<|channel|>analysis<|message|>We need to use the get_weather function. Provide "
            'city "Berlin".<|end|>\n',
            C("get_weather", {"city": "Berlin"}, "gpt-oss"),
        ),
    ),
    "minimax": (
        fixture("minimax"),
        expected(C("func1", {"param1": "value1", "param2": "value2"}, "minimax-m2")),
    ),
    "seed": (
        fixture("seed"),
        expected(C("get_weather", {"location": "San Francisco", "unit": "celsius"}, "seed-oss")),
    ),
    "granite30": (
        fixture("granite30"),
        expected(C("get_current_weather", {"city": "Boston"}, "granite")),
    ),
    "gemma4": (fixture("gemma4"), expected(C("get_weather", {"city": "Paris", "days": 3}))),
}

# Samples of formats this healer deliberately leaves alone, templates with
# placeholders, and other text that must come out untouched.
UNTOUCHED_SAMPLES = [
    "dsml_v32_prompt",
    "glm_prompt",
    "kimi_format",
    "llama_bare",
    "pythonic_single",
    "pythonic_double",
    "phi4",
]

DS = "\uff5c"  # the DeepSeek bar
SP = "\u2581"  # the DeepSeek word separator
DSML_CALL = (
    f'<{DS}DSML{DS}tool_calls>\n<{DS}DSML{DS}invoke name="read">\n'
    f'<{DS}DSML{DS}parameter name="path" string="true">/a</{DS}DSML{DS}parameter>\n'
    f"</{DS}DSML{DS}invoke>\n</{DS}DSML{DS}tool_calls>"
)
HERMES_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
OSLO = C("get_weather", {"city": "Oslo"})

VARIANTS: dict[str, tuple[str, list[Any]]] = {
    "hermes no newlines": (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>',
        expected(OSLO),
    ),
    "hermes parameters key": (
        '<tool_call>{"name": "get_weather", "parameters": {"city": "Oslo"}}</tool_call>',
        expected(OSLO),
    ),
    "hermes string arguments": (
        '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}</tool_call>',
        expected(OSLO),
    ),
    "hermes closer inside an argument": (
        '<tool_call>{"name": "write", "arguments": {"path": "p", "text": "a</tool_call>b"}}'
        "</tool_call> done",
        expected(C("write", {"path": "p", "text": "a</tool_call>b"}), " done"),
    ),
    "hermes unclosed at the end": (
        'Sure.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}\n',
        expected("Sure.\n", OSLO),
    ),
    "hermes consecutive without closer": (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}\n'
        '<tool_call>{"name": "search", "arguments": {"query": "q"}}</tool_call>',
        expected(OSLO, C("search", {"query": "q"})),
    ),
    "hermes raw newline in a string": (
        '<tool_call>{"name": "write", "arguments": {"path": "p", "text": "a\nb"}}</tool_call>',
        expected(C("write", {"path": "p", "text": "a\nb"})),
    ),
    "hermes arguments wrapper": (
        '<tool_call>{"name": "read", "arguments": {"arguments": {"path": "/x"}}}</tool_call>',
        expected(C("read", {"path": "/x"})),
    ),
    "custom tool input not unwrapped": (
        '<tool_call>{"name": "apply_patch", "arguments": {"input": "*** Begin Patch"}}</tool_call>',
        expected(C("apply_patch", {"input": "*** Begin Patch"})),
    ),
    "openai function shape": (
        '<tool_call>{"type": "function", "function": {"name": "get_weather", '
        '"arguments": "{\\"city\\":\\"Oslo\\"}"}}</tool_call>',
        expected(OSLO),
    ),
    "text around calls": (
        "Checking.\n" + HERMES_CALL + "\nThen " + HERMES_CALL + " end.",
        expected("Checking.\n", OSLO, "\nThen ", OSLO, " end."),
    ),
    "observation token after glm": (
        "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Oslo</arg_value>"
        "</tool_call><|observation|>",
        expected(C("get_weather", {"city": "Oslo"}, "glm")),
    ),
    "granite 3.1 array": (
        '<tool_call>[{"name": "get_weather", "arguments": {"city": "Oslo"}}, '
        '{"name": "search", "arguments": {"query": "q"}}]',
        expected(C("get_weather", {"city": "Oslo"}, "granite"), C("search", {"query": "q"})),
    ),
    "qwen bare function": (
        "<function=get_weather>\n<parameter=city>\nOslo\n</parameter>\n</function>",
        expected(C("get_weather", {"city": "Oslo"}, "qwen3-coder")),
    ),
    "llama4 function json": (
        '<function=get_weather>{"city": "Oslo"}</function>',
        expected(C("get_weather", {"city": "Oslo"}, "function-json")),
    ),
    "qwen missing parameter closer before next": (
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n<parameter=unit>\nc\n"
        "</parameter>\n</function>\n</tool_call>",
        expected(C("get_weather", {"city": "Oslo", "unit": "c"})),
    ),
    "qwen missing last parameter closer": (
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n</function>\n</tool_call>",
        expected(C("get_weather", {"city": "Oslo"})),
    ),
    "qwen markup inside a value": (
        "<tool_call>\n<function=write>\n<parameter=text>\nx</parameter>y\n</function>z\n"
        "</parameter>\n<parameter=path>\np\n</parameter>\n</function>\n</tool_call>",
        expected(C("write", {"text": "x</parameter>y\n</function>z", "path": "p"})),
    ),
    "closers inside values, many": (
        "<tool_call>\n<function=write>\n<parameter=text>\n"
        + "<p></parameter>x\n" * 5
        + "\n</parameter>\n<parameter=path>\np\n</parameter>\n</function>\n</tool_call>"
        + f'<{DS}DSML{DS}tool_calls>\n<{DS}DSML{DS}invoke name="write">\n<{DS}DSML{DS}parameter'
        + ' name="text" string="true">'
        + "<p></parameter>x\n" * 5
        + f'</{DS}DSML{DS}parameter>\n<{DS}DSML{DS}parameter name="path" string="true">p'
        + f"</{DS}DSML{DS}parameter>\n</{DS}DSML{DS}invoke>\n</{DS}DSML{DS}tool_calls>",
        expected(
            C("write", {"text": "<p></parameter>x\n" * 5, "path": "p"}),
            C("write", {"text": "<p></parameter>x\n" * 5, "path": "p"}),
        ),
    ),
    "qwen spaces in tags": (
        "<tool_call>\n<function = get_weather>\n< parameter = city >\nOslo\n</parameter>\n"
        "</function>\n</tool_call>",
        expected(C("get_weather", {"city": "Oslo"})),
    ),
    "qwen exact value whitespace": (
        "<tool_call>\n<function=write>\n<parameter=text>\n\n  indented\n\n</parameter>\n"
        "<parameter=path>\np\n</parameter>\n</function>\n</tool_call>",
        expected(C("write", {"text": "\n  indented\n", "path": "p"})),
    ),
    "hermes json inside qwen deployment": (
        "<tool_call>\n"
        + '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
        + "\n</tool_call>",
        expected(C("get_weather", {"city": "Oslo"}, "hermes")),
    ),
    "glm zero arguments": (
        "<tool_call>no_args</tool_call><tool_call>no_args\n</tool_call>",
        expected(C("no_args", {}), C("no_args", {})),
    ),
    "glm escaped newline": (
        "<tool_call>get_weather\\n<arg_key>city</arg_key>\\n<arg_value>Oslo</arg_value>\\n"
        "</tool_call>",
        expected(C("get_weather", {"city": "Oslo"})),
    ),
    "glm number-looking string": (
        "<tool_call>typed<arg_key>s</arg_key><arg_value>123_456</arg_value><arg_key>i"
        "</arg_key><arg_value>123_456</arg_value></tool_call>",
        expected(C("typed", {"s": "123_456", "i": "123_456"})),
    ),
    "glm closer inside a value": (
        "<tool_call>write<arg_key>text</arg_key><arg_value>a</arg_value>b</arg_value>"
        "<arg_key>path</arg_key><arg_value>p</arg_value></tool_call>",
        expected(C("write", {"text": "a</arg_value>b", "path": "p"})),
    ),
    "glm value whitespace kept": (
        "<tool_call>write<arg_key>text</arg_key><arg_value> a\n</arg_value><arg_key>path"
        "</arg_key><arg_value>p</arg_value></tool_call>",
        expected(C("write", {"text": " a\n", "path": "p"})),
    ),
    "deepseek look-alike opener": (
        f"<{DS}tool_calls_begin{DS}><{DS}tool{SP}call{SP}begin{DS}>function<{DS}tool{SP}sep"
        f'{DS}>get_weather\n```json\n{{"city": "Oslo"}}\n```<{DS}tool{SP}call{SP}end{DS}>'
        f"<{DS}tool{SP}calls{SP}end{DS}>",
        expected(C("get_weather", {"city": "Oslo"}, "deepseek-v3")),
    ),
    "deepseek short opener no call token": (
        f"<{DS}tool{SP}calls{DS}>get_weather<{DS}tool{SP}sep{DS}>"
        f'{{"city": "Oslo"}}<{DS}tool{SP}call{SP}end{DS}>',
        expected(C("get_weather", {"city": "Oslo"}, "deepseek-v3.1")),
    ),
    "deepseek unterminated at the end": (
        f"Text<{DS}tool{SP}calls{SP}begin{DS}><{DS}tool{SP}call{SP}begin{DS}>get_weather"
        f'<{DS}tool{SP}sep{DS}>{{"city": "Oslo"}}',
        expected("Text", C("get_weather", {"city": "Oslo"})),
    ),
    "deepseek bad sibling": (
        f"<{DS}tool{SP}calls{SP}begin{DS}><{DS}tool{SP}call{SP}begin{DS}>get_weather"
        f'<{DS}tool{SP}sep{DS}>{{"city": "Oslo"}}<{DS}tool{SP}call{SP}end{DS}>'
        f"<{DS}tool{SP}call{SP}begin{DS}>nope<{DS}tool{SP}sep{DS}>{{}}"
        f"<{DS}tool{SP}call{SP}end{DS}><{DS}tool{SP}calls{SP}end{DS}>",
        expected(
            C("get_weather", {"city": "Oslo"}),
            f"<{DS}tool{SP}call{SP}begin{DS}>nope<{DS}tool{SP}sep{DS}>{{}}"
            f"<{DS}tool{SP}call{SP}end{DS}><{DS}tool{SP}calls{SP}end{DS}>",
        ),
    ),
    "dsml u2016 bars": (
        '<\u2016DSML\u2016tool_calls>\n<\u2016DSML\u2016invoke name="read">\n'
        '<\u2016DSML\u2016parameter name="path" string="true">/a</\u2016DSML\u2016parameter>\n'
        "</\u2016DSML\u2016invoke>\n</\u2016DSML\u2016tool_calls>",
        expected(C("read", {"path": "/a"}, "deepseek-dsml")),
    ),
    "dsml u2016 split example is text": (
        "hello<\u2016DSML\u2016tool_calls>world",
        expected("hello<\u2016DSML\u2016tool_calls>world"),
    ),
    "dsml ascii pipes": (
        '<||DSML||tool_calls>\n<||DSML||invoke name="read">\n<||DSML||parameter name="path" '
        'string="true">/a</||DSML||parameter>\n</||DSML||invoke>\n</||DSML||tool_calls>',
        expected(C("read", {"path": "/a"})),
    ),
    "dsml spaced pipes tool_use": (
        '< | DSML | tool_use>\n< | DSML | invoke name="read">\n< | DSML | parameter name="path"'
        ' string="true">/a</ | DSML | parameter>\n</ | DSML | invoke>\n</ | DSML | tool_use>',
        expected(C("read", {"path": "/a"})),
    ),
    "dsml misspelled opener": (
        DSML_CALL.replace(f"<{DS}DSML{DS}tool_calls>", f"<{DS}DSML{DS}toolcalls>"),
        expected(C("read", {"path": "/a"})),
    ),
    "dsml underscore block": (
        DSML_CALL.replace("tool_calls", "_tool_calls"),
        expected(C("read", {"path": "/a"})),
    ),
    "dsml function_calls v32 and mixed closer": (
        f'<{DS}DSML{DS}function_calls>\n<{DS}DSML{DS}invoke name="read">\n<{DS}DSML{DS}'
        'parameter name="path" string="true">/a</parameter>\n<parameter name="offset" '
        f'string="false">3</{DS}DSML{DS}parameter>\n</{DS}DSML{DS}invoke>\n'
        f"</{DS}DSML{DS}function_calls>",
        expected(C("read", {"path": "/a", "offset": 3})),
    ),
    "dsml direct json": (
        f'<{DS}DSML{DS}tool_calls>\n<{DS}DSML{DS}invoke name="get_weather">\n'
        f'{{ "city": "Oslo" }}\n</{DS}DSML{DS}invoke>\n</{DS}DSML{DS}tool_calls>',
        expected(C("get_weather", {"city": "Oslo"})),
    ),
    "dsml self-closing zero-arg invoke": (
        f'<{DS}DSML{DS}tool_calls>\n<{DS}DSML{DS}invoke name="no_args"/>\n'
        f"</{DS}DSML{DS}tool_calls>",
        expected(C("no_args", {})),
    ),
    "dsml missing last parameter closer": (
        f'<{DS}DSML{DS}tool_calls>\n<{DS}DSML{DS}invoke name="read">\n<{DS}DSML{DS}parameter'
        f' name="path" string="true">/a\n</{DS}DSML{DS}invoke>\n</{DS}DSML{DS}tool_calls>',
        expected(C("read", {"path": "/a"})),
    ),
    "dsml closer inside a value": (
        f'<{DS}DSML{DS}tool_calls>\n<{DS}DSML{DS}invoke name="write">\n<{DS}DSML{DS}'
        f'parameter name="text" string="true">a</{DS}DSML{DS}parameter> and b</{DS}DSML{DS}'
        f'parameter>\n<{DS}DSML{DS}parameter name="path" string="true">p</{DS}DSML{DS}'
        f"parameter>\n</{DS}DSML{DS}invoke>\n</{DS}DSML{DS}tool_calls>",
        expected(C("write", {"text": f"a</{DS}DSML{DS}parameter> and b", "path": "p"})),
    ),
    "dsml bare invoke and unterminated": (
        f'Reading.\n\n<{DS}DSML{DS}invoke name="read">\n<{DS}DSML{DS}parameter name="path" '
        f'string="true">/a</{DS}DSML{DS}parameter>\n</{DS}DSML{DS}invoke>\nDone.',
        expected("Reading.\n\n", C("read", {"path": "/a"}, "deepseek-dsml"), "\nDone."),
    ),
    "dsml bad sibling": (
        f'<{DS}DSML{DS}tool_calls>\n<{DS}DSML{DS}invoke name="read">\n<{DS}DSML{DS}parameter'
        f' name="path" string="true">/a</{DS}DSML{DS}parameter>\n</{DS}DSML{DS}invoke>\n'
        f'<{DS}DSML{DS}invoke name="nope">\n</{DS}DSML{DS}invoke>\n</{DS}DSML{DS}tool_calls>',
        expected(
            C("read", {"path": "/a"}),
            f'\n<{DS}DSML{DS}invoke name="nope">\n</{DS}DSML{DS}invoke>\n</{DS}DSML{DS}tool_calls>',
        ),
    ),
    "dsml arguments wrapper": (
        f'<{DS}DSML{DS}tool_calls>\n<{DS}DSML{DS}invoke name="read">\n'
        f'{{"arguments": {{"path": "/a"}}}}\n</{DS}DSML{DS}invoke>\n</{DS}DSML{DS}tool_calls>',
        expected(C("read", {"path": "/a"})),
    ),
    "dsml end of sentence swallowed": (
        DSML_CALL + f"<{DS}end{SP}of{SP}sentence{DS}>",
        expected(C("read", {"path": "/a"})),
    ),
    "dsml less function_calls": (
        '<function_calls>\n<invoke name="read">\n<parameter name="path" string="true">/a'
        "</parameter>\n</invoke>\n</function_calls>",
        expected(C("read", {"path": "/a"}, "invoke-xml")),
    ),
    "minimax typed": (
        '<minimax:tool_call>\n<invoke name="typed">\n<parameter name="i">7</parameter>\n'
        '<parameter name="b">true</parameter>\n<parameter name="o">{"k": [1]}</parameter>\n'
        "</invoke>\n</minimax:tool_call>",
        expected(C("typed", {"i": 7, "b": True, "o": {"k": [1]}}, "minimax-m2")),
    ),
    "kimi singular and bare ids": (
        "<|tool_call_section_begin|> <|tool_call_begin|> get_weather:0 "
        '<|tool_call_argument_begin|> {"city": "Oslo"} <|tool_call_end|> '
        "<|tool_call_section_end|>",
        expected(C("get_weather", {"city": "Oslo"}, "kimi-k2")),
    ),
    "kimi unterminated then text": (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:3<|tool_call_"
        'argument_begin|>{"city": "Oslo"}<|tool_call_end|>\nDone',
        expected(C("get_weather", {"city": "Oslo"}), "\nDone"),
    ),
    "mistral text before": (
        'Hello[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Oslo"}}]',
        expected("Hello", OSLO),
    ),
    "mistral missing brackets": (
        '[TOOL_CALLSget_weather[ARGS{"city": "Oslo"}',
        expected(OSLO),
    ),
    "mistral legacy name then json": (
        '[TOOL_CALLS]get_weather{"city": "Oslo"}[TOOL_CALLS]search{"query": "q"}',
        expected(OSLO, C("search", {"query": "q"})),
    ),
    "mistral fake marker in reasoning": (
        '[THINK]Let me think about [TOOL_CALLS]special_function[ARGS]{"arg1":1} and more'
        '[/THINK][TOOL_CALLS]special_function[ARGS]{"arg1": 1}',
        expected(
            '[THINK]Let me think about [TOOL_CALLS]special_function[ARGS]{"arg1":1} and more'
            "[/THINK]",
            C("special_function", {"arg1": 1}, "mistral"),
        ),
    ),
    "harmony recipient in role": (
        "<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json"
        '<|message|>{"city": "Oslo"}<|call|>',
        expected(C("get_weather", {"city": "Oslo"}, "gpt-oss")),
    ),
    "harmony json without constrain": (
        '<|channel|>commentary to=functions.get_weather json<|message|>{"city": "Oslo"}',
        expected(OSLO),
    ),
    "harmony no space before constrain": (
        "<|start|>assistant<|channel|>commentary to=functions.get_weather<|constrain|>json"
        '<|message|>{"city": "Oslo"}<|call|>',
        expected(OSLO),
    ),
    "harmony final answer is text": (
        "<|start|>assistant<|channel|>final<|message|>The answer is 4.<|return|>",
        expected("<|start|>assistant<|channel|>final<|message|>The answer is 4.<|return|>"),
    ),
    "harmony builtin tool is text": (
        '<|channel|>analysis to=browser.search <|constrain|>json<|message|>{"q": "x"}<|call|>',
        expected(
            '<|channel|>analysis to=browser.search <|constrain|>json<|message|>{"q": "x"}<|call|>'
        ),
    ),
    "seed several functions": (
        "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Oslo</parameter>\n"
        "</function>\n</seed:tool_call>\n<seed:tool_call>\n<function=search>\n"
        "<parameter=query>q</parameter>\n</function>\n</seed:tool_call>",
        expected(OSLO, "\n", C("search", {"query": "q"}, "seed-oss")),
    ),
    "granite 20b function_call": (
        '<function_call> {"name": "get_weather", "arguments": {"city": "Oslo"}} '
        '<function_call> {"name": "search", "arguments": {"query": "q"}}',
        expected(
            C("get_weather", {"city": "Oslo"}, "granite-20b-fc"), " ", C("search", {"query": "q"})
        ),
    ),
    "llama python tag eot": (
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}<|eot_id|>',
        expected(C("get_weather", {"city": "Oslo"}, "llama3-json")),
    ),
    "llama python tag builtin is text": (
        '<|python_tag|>brave_search.call(query="gold")<|eom_id|>',
        expected('<|python_tag|>brave_search.call(query="gold")<|eom_id|>'),
    ),
    "llama4 pythonic": (
        "<|python_start|>[get_weather(city='Oslo', days=2), search(query=\"q\")]<|python_end|>",
        expected(
            C("get_weather", {"city": "Oslo", "days": 2}, "llama4-pythonic"),
            C("search", {"query": "q"}),
        ),
    ),
    "lfm2 json": (
        '<|tool_call_start|>[{"name": "get_current_time", "arguments": {"location": "Paris"}}]'
        "<|tool_call_end|>",
        expected(C("get_current_time", {"location": "Paris"}, "lfm2")),
    ),
    "lfm2 pythonic": (
        '<|tool_call_start|>[get_current_time(location="Paris")]<|tool_call_end|>',
        expected(C("get_current_time", {"location": "Paris"}, "lfm2")),
    ),
    "nemotron": (
        '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</TOOLCALL>',
        expected(C("get_weather", {"city": "Oslo"}, "nemotron")),
    ),
    "apriel": (
        '<tool_calls>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</tool_calls>',
        expected(C("get_weather", {"city": "Oslo"}, "apriel")),
    ),
    "command r7b": (
        '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": '
        '{"city": "Oslo"}}]<|END_ACTION|>',
        expected(C("get_weather", {"city": "Oslo"}, "command-r7b")),
    ),
    "apertus": (
        '<|tools_prefix|>[{"get_weather": {"city": "Oslo"}}]<|tools_suffix|>',
        expected(C("get_weather", {"city": "Oslo"}, "apertus")),
    ),
    "gemma nested and turn closer": (
        '<|tool_call>call:search{query:<|"|>a, b<|"|>,filters:{tags:[<|"|>x<|"|>,2],'
        "on:true}}<turn|>",
        expected(C("search", {"query": "a, b", "filters": {"tags": ["x", 2], "on": True}})),
    ),
}

FALSE_POSITIVES: dict[str, str] = {
    "fenced block": "Call it like this:\n```xml\n" + HERMES_CALL + "\n```\nThat is all.",
    "tilde fence": "Example:\n~~~\n" + DSML_CALL + "\n~~~\n",
    "indented fence": "  ```\n  " + HERMES_CALL + "\n  ```",
    "unclosed fence": "```\n" + HERMES_CALL,
    "inline code": "Write `" + HERMES_CALL.replace("\n", " ") + "` to call.",
    "double backtick code": "Write ``a ` " + HERMES_CALL.replace("\n", " ") + "`` here.",
    "double quotes": 'He wrote "' + HERMES_CALL.replace("\n", " ") + '" there.',
    "typographic quotes": "The model said \u201c" + DSML_CALL.replace("\n", " ") + "\u201d.",
    "single quotes": 'Reply with \'[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}\'.',
    "block quote": "> " + HERMES_CALL.replace("\n", " "),
    "think section": "<think>I could write " + HERMES_CALL + "</think>",
    "seed think section": "<seed:think>maybe " + HERMES_CALL + "</seed:think>",
    "unknown tool": '<tool_call>{"name": "delete_all", "arguments": {}}</tool_call>',
    "unknown tool glm": (
        "<tool_call>delete_all<arg_key>a</arg_key><arg_value>b</arg_value></tool_call>"
    ),
    "unknown dsml invoke": DSML_CALL.replace('"read"', '"rm"'),
    "unknown kimi id": (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.rm:0<|tool_call_argument_begin|>"
        "{}<|tool_call_end|><|tool_calls_section_end|>"
    ),
    "narration": 'Use the <tool_call> tag, or <function=name> and <invoke name="x"> tags.',
    "continue narration": "The read_file tool is called with TOOL_NAME: read_file and args.",
    "qwenpaw brackets": "```\n[Read] file\n[Edit] file\n[FunctionName]\n```\nand [Read] too",
    "bare json answer": '{"name": "read", "arguments": {"path": "/etc/passwd"}}',
    "bare json name only": '{"name": "read", "path": "/x"}',
    "invalid json body": '<tool_call>{"name": "read", "arguments": {path: /x}}</tool_call>',
    "extra keys in call": '<tool_call>{"name": "read", "path": "/x"}</tool_call>',
    "html and comparisons": "Use <div class='a'> when a < b and c > d; Vec<T> and <b>bold</b>.",
    "almost markers": "<tool_calls are> <tool_callx> <function_callz> [TOOL_CALL] <|start|>user",
    "dsml word": 'The <｜DSML｜ token and <|DSML|invoked> and <invoked name="read">.',
    "harmony analysis only": "<|channel|>analysis<|message|>Thinking about it.<|end|>",
    "truncated call": '<tool_call>{"name": "get_weather", "arguments": {"city": "Os',
    "truncated dsml section": (
        f'<{DS}DSML{DS}tool_calls>\n<{DS}DSML{DS}invoke name="read">\n<{DS}DSML{DS}parameter'
        f' name="path" string="true">/a</{DS}DSML{DS}parameter>\n</{DS}DSML{DS}invoke>\n'
        f'<{DS}DSML{DS}invoke name="read">\n<{DS}DSML{DS}parameter name="path" string="true"'
        ">/b"
    ),
    "truncated glm without closer": (
        "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Oslo</arg_value>"
    ),
    "truncated qwen": "<tool_call>\n<function=read>\n<parameter=path>\n/a\n</parameter>\n",
    "open marker at the end": "Let me check. <tool_call>",
    "partial marker at the end": "Let me check. <｜DSML｜tool_ca",
    "granite 3.1 closer mismatch": "<|tool_call|>[1, 2, 3]",
    "gemma bad args": "<|tool_call>call:get_weather{city Paris}<tool_call|>",
    "pythonic with code": "<|python_start|>[get_weather(city=__import__('os'))]<|python_end|>",
    "stripped mistral tokens": 'get_weather{"city": "Paris"} and [{"name": "read"}]',
    "gemma without its marker": 'call:get_weather{city:<|"|>Paris<|"|>}',
    "openclaw pseudo xml": (
        f"<{DS}DSML{DS}_tool_calls>I will read it.\n"
        '<tool_calls><tool_coke name="read" path="/a"></tool_calls>'
    ),
    "wrapper-less invoke in code": (
        'The model wrote `<invoke name="read"><parameter name="path">/a</parameter></invoke>`.'
    ),
    "call in a quoted line": "> <function=read>\n<parameter=path>\n/a\n</parameter>\n</function>",
}

# A real call after text that merely looks like markup must still be found.
AFTER_NOISE: dict[str, tuple[str, list[Any]]] = {
    "after fence": (
        "```\n" + HERMES_CALL + "\n```\n" + HERMES_CALL,
        expected("```\n" + HERMES_CALL + "\n```\n", OSLO),
    ),
    "after think": (
        "<think>plan: " + HERMES_CALL + "</think>\n" + HERMES_CALL,
        expected("<think>plan: " + HERMES_CALL + "</think>\n", OSLO),
    ),
    "after quotes": (
        'I\'ll call "get_weather" now.\n' + HERMES_CALL,
        expected('I\'ll call "get_weather" now.\n', OSLO),
    ),
    "after inline code": (
        "Run `ls` first. " + HERMES_CALL,
        expected("Run `ls` first. ", OSLO),
    ),
    "after apostrophes": (
        "Let's see what's there: " + HERMES_CALL,
        expected("Let's see what's there: ", OSLO),
    ),
    "after unknown": (
        '<tool_call>{"name": "rm", "arguments": {}}</tool_call>\n' + HERMES_CALL,
        expected('<tool_call>{"name": "rm", "arguments": {}}</tool_call>\n', OSLO),
    ),
    "after a triple backtick span": (
        "```" + HERMES_CALL.replace("\n", " ") + "``` is the form.\n" + HERMES_CALL,
        expected("```" + HERMES_CALL.replace("\n", " ") + "``` is the form.\n", OSLO),
    ),
    "stray opener before a call": (
        "<tool_call>\n" + HERMES_CALL,
        expected("<tool_call>\n", OSLO),
    ),
}


def allCases() -> dict[str, tuple[str, list[Any]]]:
    """
    Every case with its expected pieces.
    """
    cases = dict(SAMPLES)
    cases.update(VARIANTS)
    cases.update(AFTER_NOISE)
    for name in UNTOUCHED_SAMPLES:
        text = fixture(name)
        cases["sample " + name] = (text, expected(text))
    for name, text in FALSE_POSITIVES.items():
        cases["text " + name] = (text, expected(text))
    return cases


class CaseTestMixin:
    """
    Checks shared by the case tables.
    """

    def check(self, cases: dict[str, tuple[str, list[Any]]]) -> None:
        """
        Each case, fed whole, gives exactly its expected pieces.
        """
        for name, (text, wanted) in cases.items():
            got = heal(text)
            self.assertTrue(matches(got, wanted), f"{name}: {got!r} != {wanted!r}")


class CatalogueSampleTests(CaseTestMixin, SynchronousTestCase):
    """
    The catalogue's verbatim samples.
    """

    def test_samples(self):
        """
        Every catalogued sample of a supported format heals into its calls.
        """
        self.check(SAMPLES)

    def test_untouchedSamples(self):
        """
        Samples of formats left alone (bare JSON, pythonic, functools) and format
        templates with placeholders stay text, byte for byte.
        """
        for name in UNTOUCHED_SAMPLES:
            text = fixture(name)
            self.assertEqual(heal(text), [TextPiece(text)], name)

    def test_fixturesAreExact(self):
        """
        The fixtures hold the special characters themselves, not look-alikes.
        """
        self.assertIn("<\uff5ctool\u2581calls\u2581begin\uff5c>", fixture("deepseek_v3"))
        self.assertIn("\u201c", fixture("dsml_variant3"))
        self.assertTrue(fixture("dsml_v41").startswith("\n<\uff5cDSML\uff5c calls>"))
        self.assertTrue(fixture("dsml_variant7").endswith("```\u0020"))


class VariantTests(CaseTestMixin, SynchronousTestCase):
    """
    Variants and malformations from the catalogue's text.
    """

    def test_variants(self):
        """
        Every catalogued variant heals into the calls it means.
        """
        self.check(VARIANTS)

    def test_realCallsAfterNoise(self):
        """
        A real call after code, thinking, quotes or a failed block is still found.
        """
        self.check(AFTER_NOISE)


class FalsePositiveTests(SynchronousTestCase):
    """
    Text that only talks about tool syntax stays text, nothing lost.
    """

    def test_staysText(self):
        """
        Each case comes out as exactly its input text.
        """
        for name, text in FALSE_POSITIVES.items():
            self.assertEqual(heal(text), [TextPiece(text)], name)

    def test_openersUnambiguous(self):
        """
        No marker is a prefix of another, so a complete one never waits for more text.
        """
        for a in _healer._LITERALS:
            for b in _healer._LITERALS:
                self.assertTrue(a == b or not b.startswith(a), (a, b))

    def test_noToolsNoHealer(self):
        """
        A request without tools gets no healer, so content is never touched.
        """
        self.assertIsNone(healerFor({}))
        self.assertIsNone(healerFor(None))
        self.assertIsInstance(healerFor({"read": None}), TextCallHealer)

    def test_onlyOfferedTools(self):
        """
        The same markup heals or not depending on the tools of the request.
        """
        self.assertEqual(heal(HERMES_CALL, tools={"read": None}), [TextPiece(HERMES_CALL)])
        self.assertTrue(matches(heal(HERMES_CALL, tools={"get_weather": None}), expected(OSLO)))


class SplitTests(SynchronousTestCase):
    """
    Chunk boundaries anywhere give the same result as one feed.
    """

    def test_randomSplits(self):
        """
        Twenty seeded random cuttings of every case.
        """
        for name, (text, _) in allCases().items():
            whole = heal(text)
            for seed in range(20):
                rng = random.Random(f"{name}/{seed}")
                count = rng.randint(1, max(1, min(len(text) - 1, 60)))
                cuts = sorted(rng.sample(range(1, len(text)), min(count, len(text) - 1)))
                self.assertEqual(heal(text, cuts), whole, f"{name} cut at {cuts}")

    def test_everyCodePoint(self):
        """
        One code point per feed (full-width DeepSeek bars and U+2581 included).
        """
        for name, (text, _) in allCases().items():
            self.assertEqual(heal(text, list(range(1, len(text)))), heal(text), name)

    def test_utf8Bytes(self):
        """
        UTF-8 bytes cut anywhere, even inside a character, decoded incrementally.
        """
        for name, (text, _) in allCases().items():
            whole = heal(text)
            for seed in range(5):
                rng = random.Random(f"bytes {name}/{seed}")
                self.assertEqual(healBytes(text, rng), whole, name)

    def test_generatedDocuments(self):
        """
        Documents spliced from pieces of every case (markers cut in half, fences,
        quotes, thinking tags, calls) give the same result however they are cut, and
        lose nothing when no call is made.
        """
        texts = [text for text, _ in allCases().values()]
        fragments = sorted(
            {t[i : i + 1 + (i * 7919) % 23] for t in texts for i in range(0, len(t), 5)}
        )
        for seed in range(300):
            rng = random.Random(seed)
            parts = []
            for _ in range(rng.randint(1, 10)):
                pool = texts if rng.random() < 0.3 else fragments
                parts.append(rng.choice(pool))
            text = "".join(parts)
            whole = heal(text)
            if not any(isinstance(p, CallPiece) for p in whole):
                self.assertEqual(whole, [TextPiece(text)] if text else [], text)
            for _ in range(3):
                cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, 30)))
                self.assertEqual(heal(text, cuts), whole, f"{text!r} cut at {cuts}")
            self.assertEqual(heal(text, list(range(1, len(text)))), whole, repr(text))

    def test_largeBlocks(self):
        """
        Blocks long enough to be re-parsed only now and then, with many parameters,
        many calls and closing tags inside values, give the same calls however cut.
        """
        inner = "<p></parameter> x</arg_value> y</\uff5cDSML\uff5cparameter> z\n" * 120
        params = "".join(f"<parameter=p{i}>\n{i}\n</parameter>\n" for i in range(150))
        dsml = "".join(
            f'<{DS}DSML{DS}invoke name="write">\n<{DS}DSML{DS}parameter name="path" '
            f'string="true">{i}</{DS}DSML{DS}parameter>\n<{DS}DSML{DS}parameter '
            f'name="text" string="true">{inner[: 40 * i]}</{DS}DSML{DS}parameter>\n'
            f"</{DS}DSML{DS}invoke>\n"
            for i in range(12)
        )
        kimi = "".join(
            f"<|tool_call_begin|>functions.write:{i}<|tool_call_argument_begin|>"
            + json.dumps({"path": str(i), "text": inner[: 50 * i]})
            + "<|tool_call_end|>"
            for i in range(40)
        )
        cases = {
            "qwen": (
                "<tool_call>\n<function=write>\n<parameter=text>\n"
                + inner
                + "\n</parameter>\n<parameter=path>\np\n</parameter>\n</function>\n"
                "</tool_call> after",
                1,
            ),
            "qwen many": ("<function=untyped>\n" + params + "</function> after", 1),
            "glm": (
                "<tool_call>write<arg_key>text</arg_key><arg_value>"
                + inner
                + "</arg_value><arg_key>path</arg_key><arg_value>p</arg_value></tool_call>",
                1,
            ),
            "dsml": (f"<{DS}DSML{DS}tool_calls>\n{dsml}</{DS}DSML{DS}tool_calls>", 12),
            "kimi": (
                f"<|tool_calls_section_begin|>{kimi}<|tool_calls_section_end|> after",
                40,
            ),
        }
        for name, (text, count) in cases.items():
            self.assertGreater(len(text), 4096, name)
            whole = heal(text)
            self.assertEqual(sum(isinstance(p, CallPiece) for p in whole), count, name)
            for seed in range(4):
                rng = random.Random(f"large {name} {seed}")
                cuts = sorted(rng.sample(range(1, len(text)), len(text) // rng.randint(3, 12)))
                self.assertEqual(heal(text, cuts), whole, name)
        (text, _) = cases["qwen"]
        (piece, _after) = heal(text)
        self.assertEqual(json.loads(piece.arguments), {"text": inner, "path": "p"})

    def test_nothingLost(self):
        """
        With no call made, the text pieces are the input; with calls, the text pieces
        plus the healed blocks are.
        """
        for name, (text, _) in allCases().items():
            pieces = heal(text, list(range(1, len(text), 3)))
            joined = "".join(p.text for p in pieces if isinstance(p, TextPiece))
            if not any(isinstance(p, CallPiece) for p in pieces):
                self.assertEqual(joined, text, name)
            else:
                self.assertLess(len(joined), len(text), name)


class HoldBackTests(SynchronousTestCase):
    """
    Plain text is held back only while it may be the start of a marker.
    """

    def test_plainTextImmediately(self):
        """
        Text with no marker character comes out in the same feed.
        """
        healer = TextCallHealer(TOOLS)
        self.assertEqual(healer.feed("Hello, "), [TextPiece("Hello, ")])
        self.assertEqual(healer.feed("world."), [TextPiece("world.")])
        self.assertEqual(healer.finish(), [])

    def test_possiblePrefixHeld(self):
        """
        Only the possible marker prefix is held, and released once it is not one.
        """
        healer = TextCallHealer(TOOLS)
        self.assertEqual(healer.feed("Hello <tool"), [TextPiece("Hello ")])
        self.assertEqual(healer.feed("s are fine"), [TextPiece("<tools are fine")])
        self.assertEqual(healer.feed("a <"), [TextPiece("a ")])
        self.assertEqual(healer.feed("b"), [TextPiece("<b")])
        self.assertEqual(healer.feed("[TOOL_"), [])
        self.assertEqual(healer.feed("CALLED]"), [TextPiece("[TOOL_CALLED]")])
        self.assertEqual(healer.feed("x <\uff5cDS"), [TextPiece("x ")])
        self.assertEqual(healer.finish(), [TextPiece("<\uff5cDS")])

    def test_nothingHeldInCode(self):
        """
        Inside code a C{<} can start no marker, so it is not held.
        """
        healer = TextCallHealer(TOOLS)
        self.assertEqual(healer.feed("```\nif a <"), [TextPiece("```\nif a <")])
        self.assertEqual(healer.feed("`x <"), [TextPiece("`x <")])

    def test_textBeforeBlockReleased(self):
        """
        Text before an opener is released before the block completes; text after it
        as soon as it completes.
        """
        healer = TextCallHealer(TOOLS)
        self.assertEqual(healer.feed("Sure.\n<tool_call>\n{"), [TextPiece("Sure.\n")])
        self.assertEqual(healer.feed('"name": "get_weather", "arguments": {"city"'), [])
        pieces = healer.feed(': "Oslo"}}\n</tool_call>\nNext')
        self.assertTrue(matches(pieces, expected(OSLO, "\nNext")), pieces)

    def test_failedBlockReleased(self):
        """
        A block that cannot be a call is released as soon as that is certain.
        """
        healer = TextCallHealer(TOOLS)
        self.assertEqual(healer.feed("<tool_call>rm"), [])
        self.assertEqual(healer.feed("\n"), [TextPiece("<tool_call>rm\n")])

    def test_feedAfterFinish(self):
        """
        The healer is single-use.
        """
        healer = TextCallHealer(TOOLS)
        healer.finish()
        self.assertEqual(healer.finish(), [])
        self.assertRaises(RuntimeError, healer.feed, "x")

    def test_longBlockLinear(self):
        """
        A long argument fed in small pieces heals with its value intact.
        """
        body = "line with <tags> and {braces} and ]brackets[\n" * 2000
        text = (
            '<tool_call>{"name": "write", "arguments": {"path": "p", "text": '
            + json.dumps(body)
            + "}}</tool_call>"
        )
        cuts = list(range(7, len(text), 7))
        self.assertTrue(
            matches(heal(text, cuts), expected(C("write", {"path": "p", "text": body})))
        )


class TypingTests(SynchronousTestCase):
    """
    XML-style values are typed by the tool's schema.
    """

    def qwen(self, tool: str, **values: str) -> dict[str, Any]:
        """
        Heal a Qwen XML call of C{tool} with raw C{values}.
        """
        params = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in values.items())
        text = f"<tool_call>\n<function={tool}>\n{params}</function>\n</tool_call>"
        (piece,) = heal(text)
        self.assertIsInstance(piece, CallPiece)
        return json.loads(piece.arguments)

    def test_schemaTypes(self):
        """
        Integer, number, boolean, object, array, string, nullable and anyOf.
        """
        self.assertEqual(
            self.qwen(
                "typed",
                i="42",
                f="2.5",
                b="True",
                o='{"a": 1}',
                a="['x', 'y']",
                s="007",
                n="None",
                u="12",
            ),
            {
                "i": 42,
                "f": 2.5,
                "b": True,
                "o": {"a": 1},
                "a": ["x", "y"],
                "s": "007",
                "n": None,
                "u": 12,
            },
        )

    def test_fallbackToString(self):
        """
        A value that does not read as its type stays the raw text.
        """
        self.assertEqual(
            self.qwen("typed", i="4.5", f="1e999", b="yes", o="[1]", a="{", u="abc"),
            {"i": "4.5", "f": "1e999", "b": "yes", "o": "[1]", "a": "{", "u": "abc"},
        )

    def test_noSchema(self):
        """
        A tool without a schema: JSON, then a Python literal, then text.
        """
        self.assertEqual(
            self.qwen("untyped", a="3", b="{'k': (1, 2)}", c="hello", d="null"),
            {"a": 3, "b": {"k": [1, 2]}, "c": "hello", "d": None},
        )

    def test_unknownParameterString(self):
        """
        A parameter the schema does not list stays a string.
        """
        self.assertEqual(self.qwen("typed", extra="5"), {"extra": "5"})

    def test_dsmlStringClaim(self):
        """
        DSML's C{string="false"} reads the value as JSON when the schema does not say.
        """
        text = (
            f'<{DS}DSML{DS}tool_calls>\n<{DS}DSML{DS}invoke name="untyped">\n'
            f'<{DS}DSML{DS}parameter name="x" string="false">[1, 2]</{DS}DSML{DS}parameter>\n'
            f'<{DS}DSML{DS}parameter name="y" string="true">[1, 2]</{DS}DSML{DS}parameter>\n'
            f"</{DS}DSML{DS}invoke>\n</{DS}DSML{DS}tool_calls>"
        )
        (piece,) = heal(text)
        self.assertEqual(json.loads(piece.arguments), {"x": [1, 2], "y": "[1, 2]"})

    def test_argumentsAreCompactJson(self):
        """
        Arguments are a compact JSON object string, non-ASCII kept.
        """
        (piece,) = heal(fixture("glm47").split("<tool_call>search")[0])
        self.assertEqual(piece.arguments, '{"city":"Zürich","unit":"c"}')


class BlockLimitTests(SynchronousTestCase):
    """
    A candidate block is held for at most L{_healer.MAX_BLOCK} characters.
    """

    def test_longerThanLimitIsText(self):
        """
        A call that does not end within the limit stays text, however it is cut; one
        that ends within it heals.
        """
        self.patch(_healer, "MAX_BLOCK", 80)
        short = '<tool_call>{"name": "read", "arguments": {"path": "/a"}}</tool_call>'
        long = '<tool_call>{"name": "read", "arguments": {"path": "/' + "a" * 80 + '"}}</tool_call>'
        for text, healed in ((short + " x", True), (long + " x", False)):
            for cuts in ([], list(range(1, len(text))), list(range(5, len(text), 9))):
                pieces = heal(text, cuts)
                self.assertEqual(any(isinstance(p, CallPiece) for p in pieces), healed)
                if not healed:
                    self.assertEqual(pieces, [TextPiece(text)])


MARKDOWN = """\
Intro with `code <m>` and "a quote <m>" and it's <o>.
> quoted <m>
```python
if a <m> b:
    print("<m>")
```
~~~
<m>
~~~
  ```
indented <m>
  ```
````
``` not a closer <m>
````
```inline span <m>``` <o>
Back <o> and ``a ` b <m>`` and \u201ctypographic <m>\u201d <o>.
<think>thinking <t>
more <t> </think> after <o>
[THINK] <t> [/THINK] <o>
`unclosed <m>
next line <o>
"""
_MODES = {"<o>": OPEN, "<m>": MASKED, "<t>": THINK}
_MARKS = [i for i in range(len(MARKDOWN)) if MARKDOWN[i : i + 3] in _MODES]


def _cut(text: str, cuts: list[int]) -> list[str]:
    """
    @return: C{text} cut at the sorted positions C{cuts}.
    """
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


class MarkdownContextTests(SynchronousTestCase):
    """
    L{MarkdownContext}: code, quotations and thinking, however the text is fed.
    """

    def modes(self, cuts: list[int]) -> list[str]:
        """
        Feed the sample cut at C{cuts} (which include every mark); query at each mark.
        """
        context = MarkdownContext()
        result = []
        offset = 0
        for piece in _cut(MARKDOWN, cuts):
            if offset in _MARKS:
                result.append(context.mode())
            context.feed(piece)
            offset += len(piece)
        return result

    def test_modes(self):
        """
        Each mark is open, masked or in thinking as its letter says.
        """
        self.assertEqual(self.modes(_MARKS), [_MODES[MARKDOWN[i : i + 3]] for i in _MARKS])

    def test_segmentationIndependent(self):
        """
        The mode at each mark is the same whether the text before it was fed in one
        piece, one character at a time, or in random pieces.
        """
        wanted = [_MODES[MARKDOWN[i : i + 3]] for i in _MARKS]
        self.assertEqual(self.modes(list(range(1, len(MARKDOWN)))), wanted)
        for at, mode in zip(_MARKS, wanted, strict=True):
            context = MarkdownContext()
            context.feed(MARKDOWN[:at])
            self.assertEqual(context.mode(), mode, MARKDOWN[:at][-30:])
        rng = random.Random(7)
        for _ in range(20):
            cuts = sorted(set(rng.sample(range(1, len(MARKDOWN)), 40)) | set(_MARKS))
            self.assertEqual(self.modes(cuts), wanted)
