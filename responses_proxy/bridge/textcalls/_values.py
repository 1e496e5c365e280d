# -*- test-case-name: tests.test_bridge_textcalls -*-
"""
Tool names and argument values: what a parsed block must satisfy to become a call.

Only tools offered in the request are accepted. XML-style formats write every
argument as raw text, so values are typed by the tool's JSON schema (as vLLM and SGLang
do); JSON-style formats carry an arguments object that is checked, unwrapped when the
model added a spurious C{{"arguments": ...}} layer, and re-serialised.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from responses_proxy.bridge.textcalls._cursor import Invalid

_INTEGER = re.compile(r"[-+]?\d+\Z")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\Z")
_NULLS = frozenset({"null", "None", "none", "nil"})
_PRECEDENCE = ("null", "integer", "number", "boolean", "object", "array")
_CALL_KEYS = frozenset({"name", "arguments", "parameters", "type", "id", "call_id"})
_LITERAL_LIMIT = 65536
_SCHEMA_DEPTH = 4


def _rejectConstant(name: str) -> Any:
    """
    C{NaN} and C{Infinity} are not JSON: refuse them rather than pass them on.
    """
    raise ValueError(name)


def _finiteFloat(text: str) -> float:
    """
    Parse a JSON float, refusing values that overflow to infinity.
    """
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return value


_decoder = json.JSONDecoder(strict=False, parse_constant=_rejectConstant, parse_float=_finiteFloat)


def _loads(text: str) -> Any:
    """
    Decode JSON leniently (raw control characters allowed in strings).

    @raise ValueError: not one JSON value.
    """
    try:
        return _decoder.decode(text)
    except RecursionError as e:
        raise ValueError("too deep") from e


def jsonable(value: Any, depth: int = 0) -> Any:
    """
    Turn a Python literal into JSON data (tuples become lists).

    @raise ValueError: it holds something JSON cannot say (sets, bytes, complex,
        non-string keys, non-finite floats).
    """
    if depth > 64:
        raise ValueError("too deep")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not finite")
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        result = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise ValueError("key")
            result[key] = jsonable(v, depth + 1)
        return result
    raise ValueError(type(value).__name__)


def pythonLiteral(text: str) -> Any:
    """
    Read a Python literal (C{True}, C{{'k': 'v'}}) the way older chat templates
    rendered non-string values.

    @raise ValueError: not a literal, or not expressible as JSON.
    """
    if len(text) > _LITERAL_LIMIT:
        raise ValueError("too long")
    try:
        return jsonable(ast.literal_eval(text))
    except (SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise ValueError("not a literal") from e


def _structured(text: str) -> Any:
    """
    @return: the value of JSON or Python-literal C{text}.
    @raise ValueError: neither.
    """
    try:
        return _loads(text)
    except ValueError:
        return pythonLiteral(text)


def _schemaTypes(schema: object, depth: int = 0) -> list[str]:
    """
    @return: the JSON types a schema allows (C{type}, a type list, C{anyOf}/C{oneOf}).
    """
    if not isinstance(schema, Mapping) or depth > _SCHEMA_DEPTH:
        return []
    types: list[str] = []
    declared = schema.get("type")
    if isinstance(declared, str):
        types.append(declared)
    elif isinstance(declared, list):
        types.extend(t for t in declared if isinstance(t, str))
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            for option in options:
                types.extend(_schemaTypes(option, depth + 1))
    if not types:
        if isinstance(schema.get("properties"), Mapping):
            types.append("object")
        elif "items" in schema:
            types.append("array")
    return types


def _convert(kind: str, raw: str) -> tuple[bool, Any]:
    """
    @return: C{(True, value)} when C{raw} reads as JSON type C{kind}.
    """
    text = raw.strip()
    if kind == "null":
        return (True, None) if text in _NULLS else (False, None)
    if kind == "integer":
        if _INTEGER.match(text):
            try:
                return True, int(text)
            except ValueError:
                return False, None
        return False, None
    if kind == "number":
        if _NUMBER.match(text):
            if _INTEGER.match(text):
                try:
                    return True, int(text)
                except ValueError:
                    return False, None
            value = float(text)
            if math.isfinite(value):
                return True, value
        return False, None
    if kind == "boolean":
        lowered = text.lower()
        if lowered in ("true", "false"):
            return True, lowered == "true"
        return False, None
    if kind in ("object", "array"):
        try:
            value = _structured(text)
        except ValueError:
            return False, None
        wanted = dict if kind == "object" else list
        if isinstance(value, wanted):
            return True, value
    return False, None


def _guess(raw: str) -> Any:
    """
    Type a value with no schema to go by: JSON, then a Python literal, then the text.
    """
    try:
        return _structured(raw.strip())
    except ValueError:
        return raw


class RawValue:
    """
    An XML-style argument value, typed only once its call is complete (parsers run
    again as a block grows; typing can cost an C{ast.literal_eval}).
    """

    __slots__ = ("tool", "key", "raw", "claimed")

    def __init__(self, tool: str, key: str, raw: str, claimed: bool | None) -> None:
        self.tool = tool
        self.key = key
        self.raw = raw
        self.claimed = claimed


class ParseContext:
    """
    The request's tools, as the parsers see them.
    """

    def __init__(self, tools: Mapping[str, Mapping[str, Any] | None]) -> None:
        """
        @param tools: chat-side function name -> its JSON schema C{parameters}.
        """
        self._tools = dict(tools)

    def known(self, name: str) -> str:
        """
        @return: C{name}, which must be a tool offered in this request.
        @raise Invalid: it is not.
        """
        if name not in self._tools:
            raise Invalid()
        return name

    def loads(self, text: str) -> Any:
        """
        @return: decoded JSON.
        @raise Invalid: C{text} is not one valid JSON value.
        """
        try:
            return _loads(text)
        except ValueError as e:
            raise Invalid() from e

    def _properties(self, tool: str) -> Mapping[str, Any] | None:
        """
        @return: the C{properties} of the tool's schema, if it has a schema.
        """
        schema = self._tools.get(tool)
        if not isinstance(schema, Mapping):
            return None
        properties = schema.get("properties")
        return properties if isinstance(properties, Mapping) else {}

    def value(self, tool: str, key: str, raw: str, claimed: bool | None) -> RawValue:
        """
        Keep a raw XML-style argument value, to be typed by L{resolve}.

        @param claimed: see L{coerce}.
        """
        return RawValue(tool, key, raw, claimed)

    def resolve(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """
        @return: C{arguments} with every L{RawValue} typed.
        """
        return {
            key: self.coerce(v.tool, v.key, v.raw, v.claimed) if type(v) is RawValue else v
            for key, v in arguments.items()
        }

    def coerce(self, tool: str, key: str, raw: str, claimed: bool | None) -> Any:
        """
        Type one raw XML-style argument value by the tool's schema.

        @param claimed: what the model said about the value: C{True} for DSML
            C{string="true"}, C{False} for C{string="false"}, L{None} when the format
            does not say.
        @return: the typed value; the raw text when it does not read as the schema's
            type (the tool then reports the mistake better than we could).
        """
        properties = self._properties(tool)
        if properties is None:
            return raw if claimed else _guess(raw)
        types = _schemaTypes(properties.get(key))
        if not types:
            # Unknown parameter or untyped schema: text, unless the model said JSON.
            return _guess(raw) if claimed is False else raw
        if claimed and "string" in types:
            return raw
        for kind in _PRECEDENCE:
            if kind in types:
                ok, value = _convert(kind, raw)
                if ok:
                    return value
        return raw

    def arguments(self, tool: str, value: Any) -> dict[str, Any]:
        """
        Check a JSON-style arguments value: an object, or a string holding one.

        A lone C{{"arguments": {...}}} or C{{"input": {...}}} wrapper whose inner keys
        are the schema's (and whose outer key is not) is removed, as vLLM does.

        @raise Invalid: not an object.
        """
        if value is None:
            return {}
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return {}
            value = self.loads(text)
        if not isinstance(value, dict):
            raise Invalid()
        if len(value) == 1:
            ((key, inner),) = value.items()
            properties = self._properties(tool)
            if (
                key in ("arguments", "input")
                and isinstance(inner, dict)
                and inner
                and properties
                and key not in properties
                and all(k in properties for k in inner)
            ):
                return inner
        return value

    def namedCall(self, obj: Any) -> tuple[str, dict[str, Any]]:
        """
        Read one JSON call object: C{{"name": ..., "arguments"|"parameters": ...}},
        also in OpenAI's C{{"type": "function", "function": {...}}} shape.

        @raise Invalid: another shape, extra keys, or an unknown tool.
        """
        if not isinstance(obj, dict):
            raise Invalid()
        inner = obj.get("function")
        if isinstance(inner, dict) and set(obj) <= {"function", "type", "id"}:
            obj = inner
        name = obj.get("name")
        if not isinstance(name, str) or not set(obj) <= _CALL_KEYS:
            raise Invalid()
        self.known(name)
        value = obj.get("arguments")
        if value is None:
            value = obj.get("parameters")
        return name, self.arguments(name, value)

    def namedCalls(self, value: Any) -> list[tuple[str, dict[str, Any]]]:
        """
        @return: the calls of a JSON array of call objects (or of one object).
        """
        items = value if isinstance(value, list) else [value]
        if not items:
            raise Invalid()
        return [self.namedCall(item) for item in items]


def argumentsJson(arguments: Mapping[str, Any]) -> str:
    """
    @return: the compact JSON object string a C{function_call} item carries.
    """
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
