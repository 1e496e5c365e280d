"""
Tests for L{responses_proxy.bridge.request}: Responses request -> Chat Completions request.

The golden files under C{tests/golden/bridge-request/} are bridge-spec section 1 in
executable form for real Codex 0.169 requests; they were reviewed by hand against the spec.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.context import ToolTarget
from responses_proxy.bridge.names import flattenToolName
from responses_proxy.bridge.reasoning import encodeReasoning
from responses_proxy.bridge.request import (
    BridgeRequestError,
    ChatConversion,
    convertRequest,
    parseRequestBody,
)

_HERE = Path(__file__).parent
_FIXTURES = _HERE / "fixtures" / "codex-0.169.0"
_GOLDEN = _HERE / "golden" / "bridge-request"


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _fixture(name: str) -> dict[str, Any]:
    """
    The body of a captured Codex request: C{"C/002"} or C{"apply_patch-followup.json#1"}.
    """
    if "#" in name:
        fileName, index = name.split("#")
        return _load(_FIXTURES / fileName)[int(index)]["body"]
    return _load(_FIXTURES / f"{name}-POST.json")["body"]


def _request(items: Any = None, **fields: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"model": "m", "input": items if items is not None else "hi"}
    request.update(fields)
    return request


def _convert(items: Any = None, **fields: Any) -> ChatConversion:
    return convertRequest(_request(items, **fields))


def _messages(items: Any = None, **fields: Any) -> list[dict[str, Any]]:
    return _convert(items, **fields).body["messages"]


def _user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _developer(*texts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": t} for t in texts],
    }


def _assistant(text: str, **extra: Any) -> dict[str, Any]:
    item = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }
    item.update(extra)
    return item


def _call(callId: str, name: str = "exec_command", arguments: str = "{}", **extra: Any):
    item = {
        "type": "function_call",
        "id": "fc_" + callId,
        "call_id": callId,
        "name": name,
        "arguments": arguments,
    }
    item.update(extra)
    return item


def _output(callId: str, output: Any = "ok", kind: str = "function_call_output"):
    return {"type": kind, "id": "fco_" + callId, "call_id": callId, "output": output}


def _reasoning(summary=(), content=None, encrypted=None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": s} for s in summary],
        "encrypted_content": encrypted,
    }
    if content is not None:
        item["content"] = [{"type": "reasoning_text", "text": c} for c in content]
    return item


def _fn(name: str, **extra: Any) -> dict[str, Any]:
    tool = {
        "type": "function",
        "name": name,
        "description": f"The {name} tool.",
        "strict": False,
        "parameters": {"type": "object", "properties": {}},
    }
    tool.update(extra)
    return tool


def _toolNames(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", [])]


_IMAGE = "data:image/png;base64,iVBORw0KGgo="


# -- parsing and errors -------------------------------------------------------------------


class ParseRequestBodyTests(SynchronousTestCase):
    """
    L{parseRequestBody} accepts a UTF-8 JSON object and nothing else.
    """

    def test_object(self):
        """
        A JSON object is returned as a dict.
        """
        self.assertEqual(parseRequestBody(b'{"model": "m", "input": "hi"}'), _request())

    def test_byteOrderMark(self):
        """
        A leading UTF-8 byte order mark is tolerated.
        """
        self.assertEqual(parseRequestBody(b'\xef\xbb\xbf{"a": 1}'), {"a": 1})

    def test_notUTF8(self):
        """
        Bytes that are not UTF-8 are a 400 with code C{invalid_json}.
        """
        e = self.assertRaises(BridgeRequestError, parseRequestBody, b'{"a": "\xff"}')
        self.assertEqual(e.code, "invalid_json")
        self.assertIn("UTF-8", str(e))

    def test_notJSON(self):
        """
        Text that is not JSON is a 400 naming the position, not echoing the body.
        """
        e = self.assertRaises(BridgeRequestError, parseRequestBody, b'{"secret-ish": ')
        self.assertEqual(e.code, "invalid_json")
        self.assertIn("not valid JSON", str(e))
        self.assertNotIn("secret-ish", str(e))
        self.assertIsNone(e.__context__)

    def test_empty(self):
        """
        An empty body is not JSON.
        """
        e = self.assertRaises(BridgeRequestError, parseRequestBody, b"")
        self.assertEqual(e.code, "invalid_json")

    def test_nonFiniteNumbers(self):
        """
        C{NaN} and C{Infinity} are not JSON and would be refused upstream.
        """
        for raw in (b'{"temperature": NaN}', b'{"a": -Infinity}'):
            self.assertRaises(BridgeRequestError, parseRequestBody, raw)

    def test_notAnObject(self):
        """
        Valid JSON that is not an object is a 400.
        """
        for raw in (b"[]", b'"text"', b"3", b"null"):
            e = self.assertRaises(BridgeRequestError, parseRequestBody, raw)
            self.assertEqual(str(e), "The request body must be a JSON object.")

    def test_deepNesting(self):
        """
        Pathologically deep nesting is a 400, not a crash.
        """
        raw = b"[" * 100000 + b"]" * 100000
        self.assertRaises(BridgeRequestError, parseRequestBody, raw)


class BridgeRequestErrorTests(SynchronousTestCase):
    """
    L{BridgeRequestError} carries a message, a param and a code.
    """

    def test_attributes(self):
        """
        The attributes are what was given; C{str()} is the message alone.
        """
        e = BridgeRequestError("'model' is required.", param="model", code="x")
        self.assertEqual((e.message, e.param, e.code), ("'model' is required.", "model", "x"))
        self.assertEqual(str(e), "'model' is required.")
        self.assertEqual(e.args, ("'model' is required.",))

    def test_defaults(self):
        """
        C{param} and C{code} default to L{None}.
        """
        e = BridgeRequestError("bad")
        self.assertIsNone(e.param)
        self.assertIsNone(e.code)

    def test_errorBody(self):
        """
        L{BridgeRequestError.errorBody} is the Responses-style error object.
        """
        e = BridgeRequestError("bad", param="input", code="invalid_type")
        self.assertEqual(
            e.errorBody(),
            {
                "error": {
                    "message": "bad",
                    "type": "invalid_request_error",
                    "param": "input",
                    "code": "invalid_type",
                }
            },
        )


# -- golden files from real Codex requests ---------------------------------------------

_GOLDEN_CASES = {
    "A-001": "A/001",
    "B-002": "B/002",
    "C-002": "C/002",
    "E-001": "E/001",
    "E-002": "E/002",
    "F-002": "F/002",
    "F-003": "F/003",
    "G-output-schema-001": "G-output-schema/001",
    "apply_patch-followup-1": "apply_patch-followup.json#0",
    "apply_patch-followup-2": "apply_patch-followup.json#1",
    "gpt-5.5-first-request": "gpt-5.5-first-request.json#0",
}


class GoldenTests(SynchronousTestCase):
    """
    Real Codex 0.169 requests convert to exactly the reviewed chat requests.
    """

    def assertGolden(self, golden: str) -> ChatConversion:
        request = _fixture(_GOLDEN_CASES[golden])
        before = copy.deepcopy(request)
        conversion = convertRequest(request)
        self.assertEqual(conversion.body, _load(_GOLDEN / f"{golden}.json"))
        # The request is not modified, and the body is strict JSON.
        self.assertEqual(request, before)
        json.dumps(conversion.body, allow_nan=False)
        return conversion

    def test_allGoldenFiles(self):
        """
        Every golden file has its case, and every case matches.
        """
        self.assertEqual(sorted(p.stem for p in _GOLDEN.glob("*.json")), sorted(_GOLDEN_CASES))
        for golden in _GOLDEN_CASES:
            self.assertGolden(golden)

    def test_developerPromptOneSystemString(self):
        """
        Codex 0.169 sends no C{instructions}; its two developer messages (the second with
        several parts) become one leading system message whose content is a string, the
        texts joined by a blank line. No other system message appears.
        """
        request = _fixture("C/002")
        messages = self.assertGolden("C-002").body["messages"]
        texts = [p["text"] for item in request["input"][:2] for p in item["content"]]
        self.assertEqual(len(texts), 4)
        self.assertEqual(messages[0], {"role": "system", "content": "\n\n".join(texts)})
        self.assertEqual([m["role"] for m in messages].count("system"), 1)
        self.assertNotIn("developer", [m["role"] for m in messages])

    def test_parallelCallsMerged(self):
        """
        E/002: the reasoning and two parallel calls are ONE assistant message with two
        tool_calls (ids are the call_ids, never the item ids), then two tool messages in
        call order.
        """
        messages = self.assertGolden("E-002").body["messages"]
        roles = [m["role"] for m in messages]
        self.assertEqual(roles, ["system", "user", "user", "assistant", "tool", "tool"])
        assistant = messages[3]
        self.assertIsNone(assistant["content"])
        self.assertEqual(assistant["reasoning_content"], "thinking...")
        self.assertEqual([c["id"] for c in assistant["tool_calls"]], ["call_1", "call_2"])
        self.assertEqual(
            [c["function"]["arguments"] for c in assistant["tool_calls"]],
            ['{"cmd":"true"}', '{"cmd":"echo two"}'],
        )
        self.assertEqual([m["tool_call_id"] for m in messages[4:]], ["call_1", "call_2"])
        self.assertTrue(messages[5]["content"].endswith("Output:\ntwo\n"))

    def test_wholeTurnMerged(self):
        """
        C/002: reasoning + commentary + custom call + function call are one assistant
        message; the tool messages follow in call order; the view_image output's image
        travels in a user message after the tool block, detail C{original} -> C{high}.
        """
        messages = self.assertGolden("C-002").body["messages"]
        self.assertEqual(
            [m["role"] for m in messages],
            ["system", "user", "user", "assistant", "tool", "tool", "user"],
        )
        assistant = messages[3]
        self.assertEqual(assistant["content"], "Adding the file now.")
        # The encrypted_content is not ours: the content text is used.
        self.assertEqual(assistant["reasoning_content"], "raw thought")
        patch, image = assistant["tool_calls"]
        self.assertEqual(patch["id"], "call_patch")
        self.assertEqual(patch["function"]["name"], "apply_patch")
        self.assertEqual(
            json.loads(patch["function"]["arguments"]),
            {"input": "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n"},
        )
        self.assertEqual(image["id"], "call_img")
        self.assertEqual(image["function"]["name"], "view_image")
        self.assertEqual([m["tool_call_id"] for m in messages[4:6]], ["call_patch", "call_img"])
        self.assertIn("Success. Updated the following files", messages[4]["content"])
        self.assertIsInstance(messages[5]["content"], str)
        self.assertIn("attachment", messages[5]["content"])
        images = [p for p in messages[6]["content"] if p["type"] == "image_url"]
        self.assertEqual(len(images), 1)
        self.assertEqual(images[0]["image_url"]["detail"], "high")
        self.assertTrue(images[0]["image_url"]["url"].startswith("data:image/png;base64,"))

    def test_toolsConvertedAndDropped(self):
        """
        C/002: flat functions are wrapped, apply_patch (custom) becomes a function with
        one string C{input}, tool_search and web_search are dropped with notes.
        """
        conversion = self.assertGolden("C-002")
        body = conversion.body
        self.assertEqual(
            _toolNames(body),
            [
                "exec_command",
                "write_stdin",
                "request_user_input",
                "apply_patch",
                "view_image",
                "get_goal",
                "create_goal",
                "update_goal",
            ],
        )
        patch = body["tools"][3]["function"]
        self.assertEqual(patch["parameters"]["required"], ["input"])
        self.assertEqual(patch["parameters"]["properties"]["input"]["type"], "string")
        self.assertIn("start: begin_patch hunk+ end_patch", patch["description"])
        self.assertIn("lark", patch["description"])
        self.assertIn("`input`", patch["description"])
        self.assertIn("the whole patch", patch["description"])
        self.assertIn("tools[8]: 'tool_search' tool dropped", conversion.dropped)
        self.assertIn("tools[9]: 'web_search' tool dropped", conversion.dropped)
        self.assertEqual(
            conversion.context.tools["apply_patch"], ToolTarget("custom", "apply_patch")
        )

    def test_namespaceToolsFlattened(self):
        """
        A/001: the multi_agent_v1 namespace is flattened in place; context maps back.
        """
        conversion = self.assertGolden("A-001")
        names = _toolNames(conversion.body)
        self.assertEqual(
            names[4:9],
            [
                "multi_agent_v1__close_agent",
                "multi_agent_v1__resume_agent",
                "multi_agent_v1__send_input",
                "multi_agent_v1__spawn_agent",
                "multi_agent_v1__wait_agent",
            ],
        )
        self.assertEqual(
            conversion.context.tools["multi_agent_v1__close_agent"],
            ToolTarget("function", "close_agent", "multi_agent_v1"),
        )
        self.assertEqual(set(conversion.context.tools), set(names))

    def test_fieldsDropped(self):
        """
        The Responses-only fields Codex sends never reach the chat body; each is noted.
        """
        conversion = self.assertGolden("C-002")
        for field in (
            "store",
            "include",
            "prompt_cache_key",
            "client_metadata",
            "text",
            "reasoning",
            "input",
        ):
            self.assertNotIn(field, conversion.body)
        for note in (
            "field 'include' dropped",
            "field 'prompt_cache_key' dropped",
            "field 'client_metadata' dropped",
            "field 'text.verbosity' dropped",
        ):
            self.assertIn(note, conversion.dropped)
        self.assertIn("field 'reasoning.summary' dropped", self.assertGolden("A-001").dropped)

    def test_notesCarryNoContent(self):
        """
        The notes name fields and indexes, never texts from the request.
        """
        conversion = convertRequest(_fixture("C/002"))
        joined = "\n".join(conversion.dropped)
        for secret in ("Codex", "hello", "raw thought", "Planning", "iVBOR"):
            self.assertNotIn(secret, joined)

    def test_compaction(self):
        """
        F/002 (compaction): C{tools: []}, so no tools, tool_choice or parallel_tool_calls;
        the history's call still maps back through the context.
        """
        conversion = self.assertGolden("F-002")
        for field in ("tools", "tool_choice", "parallel_tool_calls"):
            self.assertNotIn(field, conversion.body)
        self.assertEqual(
            conversion.context.tools, {"exec_command": ToolTarget("function", "exec_command")}
        )
        self.assertEqual(conversion.context.echo["tools"], [])
        self.assertFalse(conversion.context.echo["parallel_tool_calls"])

    def test_outputSchema(self):
        """
        G: C{--output-schema} becomes a json_schema response_format.
        """
        body = self.assertGolden("G-output-schema-001").body
        schema = _load(_FIXTURES / "G-output-schema" / "schema.json")
        self.assertEqual(
            body["response_format"],
            {
                "type": "json_schema",
                "json_schema": {"name": "codex_output_schema", "schema": schema, "strict": True},
            },
        )

    def test_context(self):
        """
        The context carries the model, the stream flag and the echoed fields.
        """
        conversion = convertRequest(_fixture("C/002"))
        request = _fixture("C/002")
        context = conversion.context
        self.assertEqual(context.model, "gpt-5.5")
        self.assertTrue(context.stream)
        self.assertEqual(
            context.echo,
            {
                "tools": request["tools"],
                "tool_choice": "auto",
                "parallel_tool_calls": True,
                "previous_response_id": None,
                "store": False,
                "reasoning": {"effort": "medium"},
                "text": {"verbosity": "low"},
            },
        )


# -- top level ----------------------------------------------------------------------------


class TopLevelTests(SynchronousTestCase):
    """
    Top-level fields: model, input, stream, sampling, refused and dropped fields.
    """

    def test_minimal(self):
        """
        C{input} as a string is one user message; stream absent is C{stream: false}.
        """
        conversion = convertRequest({"model": "qwen3", "input": "hello"})
        self.assertEqual(
            conversion.body,
            {"model": "qwen3", "messages": [{"role": "user", "content": "hello"}], "stream": False},
        )
        self.assertFalse(conversion.context.stream)
        self.assertEqual(conversion.dropped, ())

    def test_streamTrue(self):
        """
        C{stream: true} asks the upstream for usage in the stream.
        """
        body = _convert(stream=True).body
        self.assertIs(body["stream"], True)
        self.assertEqual(body["stream_options"], {"include_usage": True})

    def test_streamFalse(self):
        """
        C{stream: false} (or null) is a non-streaming request without stream_options.
        """
        for value in (False, None):
            conversion = _convert(stream=value)
            self.assertIs(conversion.body["stream"], False)
            self.assertNotIn("stream_options", conversion.body)
            self.assertFalse(conversion.context.stream)

    def test_streamWrongType(self):
        """
        A C{stream} that is not a boolean is a 400.
        """
        e = self.assertRaises(BridgeRequestError, _convert, stream="yes")
        self.assertEqual(e.param, "stream")

    def test_modelRequired(self):
        """
        C{model} must be a non-empty string.
        """
        e = self.assertRaises(BridgeRequestError, convertRequest, {"input": "hi"})
        self.assertEqual((e.param, e.code), ("model", "missing_required_parameter"))
        for bad in ("", 3, ["m"], {"name": "m"}):
            e = self.assertRaises(BridgeRequestError, convertRequest, {"model": bad, "input": "x"})
            self.assertEqual((e.param, e.code), ("model", "invalid_type"))
            self.assertIn("'model'", str(e))

    def test_inputRequired(self):
        """
        A missing (or null) C{input} is a 400.
        """
        for request in ({"model": "m"}, {"model": "m", "input": None}):
            e = self.assertRaises(BridgeRequestError, convertRequest, request)
            self.assertEqual((e.param, e.code), ("input", "missing_required_parameter"))

    def test_inputWrongType(self):
        """
        C{input} that is neither a string nor an array is a 400.
        """
        for bad in (3, {"role": "user", "content": "x"}, True):
            e = self.assertRaises(BridgeRequestError, convertRequest, {"model": "m", "input": bad})
            self.assertEqual((e.param, e.code), ("input", "invalid_type"))

    def test_inputEmpty(self):
        """
        An input with nothing to send (and no instructions) is a 400: chat servers
        refuse an empty C{messages}.
        """
        e = self.assertRaises(BridgeRequestError, _convert, [])
        self.assertEqual(e.param, "input")
        e = self.assertRaises(BridgeRequestError, _convert, [{"type": "web_search_call"}])
        self.assertEqual(e.param, "input")

    def test_requestNotAnObject(self):
        """
        L{convertRequest} given something that is not a mapping is a 400.
        """
        self.assertRaises(BridgeRequestError, convertRequest, ["model"])

    def test_statefulFieldsRefused(self):
        """
        C{conversation}, C{background: true} and C{prompt} need state the bridge does not
        keep: a 400 naming the field and saying why, resolved or not.
        """
        for field, value, why in (
            ("conversation", "conv_1", "no Conversations API"),
            ("conversation", {"id": "conv_1"}, "no Conversations API"),
            ("background", True, "no endpoint to retrieve or poll"),
            ("prompt", {"id": "pmpt_1"}, "server-side"),
        ):
            for resolved in (False, True):
                e = self.assertRaises(
                    BridgeRequestError,
                    convertRequest,
                    _request(**{field: value}),
                    resolved=resolved,
                )
                self.assertEqual(e.param, field)
                self.assertEqual(e.code, "unsupported_parameter")
                self.assertIn(f"'{field}'", str(e))
                self.assertIn(why, str(e))

    def test_previousResponseIdUnresolved(self):
        """
        An unresolved C{previous_response_id} is refused (the glue resolves it first);
        once resolved it is only echoed.
        """
        e = self.assertRaises(BridgeRequestError, _convert, previous_response_id="resp_1")
        self.assertEqual((e.param, e.code), ("previous_response_id", "unsupported_parameter"))
        self.assertIn("not resolved", str(e))
        conversion = convertRequest(_request(previous_response_id="resp_1"), resolved=True)
        self.assertEqual(conversion.context.echo["previous_response_id"], "resp_1")
        self.assertNotIn("previous_response_id", conversion.body)
        self.assertEqual(conversion.body["messages"], [{"role": "user", "content": "hi"}])

    def test_statefulFieldsNullTolerated(self):
        """
        Those fields set to null (or C{background: false}) are harmless.
        """
        conversion = _convert(previous_response_id=None, conversation=None, background=False)
        self.assertIn("field 'background' dropped", conversion.dropped)

    def test_sampling(self):
        """
        C{max_output_tokens} -> C{max_tokens}; temperature, top_p and user are copied.
        """
        body = _convert(max_output_tokens=100, temperature=0.2, top_p=1, user="u-1").body
        self.assertEqual(body["max_tokens"], 100)
        self.assertEqual(body["temperature"], 0.2)
        self.assertEqual(body["top_p"], 1)
        self.assertEqual(body["user"], "u-1")
        self.assertNotIn("max_output_tokens", body)

    def test_samplingNullOmitted(self):
        """
        Null sampling fields are treated as absent.
        """
        body = _convert(max_output_tokens=None, temperature=None, top_p=None, user=None).body
        for field in ("max_tokens", "temperature", "top_p", "user"):
            self.assertNotIn(field, body)

    def test_samplingWrongTypes(self):
        """
        Mapped fields of the wrong type are a 400 naming the field.
        """
        for field, value in (
            ("max_output_tokens", "100"),
            ("max_output_tokens", True),
            ("max_output_tokens", 1.5),
            ("temperature", "hot"),
            ("top_p", False),
            ("user", 7),
            ("parallel_tool_calls", "yes"),
            ("instructions", ["x"]),
            ("tools", {"type": "function"}),
            ("reasoning", "high"),
            ("text", "json"),
        ):
            e = self.assertRaises(BridgeRequestError, _convert, **{field: value})
            self.assertEqual(e.param, field)
            self.assertEqual(e.code, "invalid_type")

    def test_droppedFields(self):
        """
        Responses-only fields are dropped with one note each; unknown fields too.
        """
        fields = {
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "k",
            "client_metadata": {"a": "b"},
            "metadata": {"k": "v"},
            "service_tier": "priority",
            "truncation": "auto",
            "safety_identifier": "s",
            "prompt_cache_retention": "24h",
            "max_tool_calls": 3,
            "future_field": 1,
        }
        conversion = _convert(**fields)
        for field in fields:
            self.assertNotIn(field, conversion.body)
            self.assertIn(f"field {field!r} dropped", conversion.dropped)

    def test_storeNotInChatBody(self):
        """
        C{store} is the bridge's (it stores the response, or not): never sent upstream, and
        not noted as dropped.
        """
        for store in (True, False, None):
            conversion = _convert(store=store)
            self.assertNotIn("store", conversion.body)
            self.assertNotIn("field 'store' dropped", conversion.dropped)

    def test_echo(self):
        """
        The echo holds the tools exactly as sent (the same object), tool_choice and
        parallel_tool_calls, and the optional fields when present.
        """
        tools = [_fn("a"), {"type": "web_search"}]
        request = _request(
            tools=tools,
            tool_choice="required",
            parallel_tool_calls=False,
            instructions="be brief",
            max_output_tokens=10,
            temperature=0.5,
            top_p=0.9,
            reasoning={"effort": "high", "summary": "auto"},
            text={"format": {"type": "json_object"}},
            metadata={"k": "v"},
            user="u",
            store=False,
        )
        echo = convertRequest(request).context.echo
        self.assertIs(echo["tools"], tools)
        self.assertEqual(
            echo,
            {
                "tools": tools,
                "tool_choice": "required",
                "parallel_tool_calls": False,
                "instructions": "be brief",
                "max_output_tokens": 10,
                "temperature": 0.5,
                "top_p": 0.9,
                "reasoning": {"effort": "high", "summary": "auto"},
                "text": {"format": {"type": "json_object"}},
                "metadata": {"k": "v"},
                "user": "u",
                "previous_response_id": None,
                "store": False,
            },
        )

    def test_echoDefaults(self):
        """
        Without those fields the echo has C{tools: []}, C{tool_choice: "auto"},
        C{parallel_tool_calls: true}, C{previous_response_id: null} and C{store: true}
        (OpenAI's defaults), and nothing else.
        """
        self.assertEqual(
            _convert().context.echo,
            {
                "tools": [],
                "tool_choice": "auto",
                "parallel_tool_calls": True,
                "previous_response_id": None,
                "store": True,
            },
        )

    def test_requestNotModified(self):
        """
        Conversion never modifies the request, even when it merges and moves things.
        """
        request = _request(
            [
                _developer("a"),
                _developer("b"),
                _call("c1"),
                _user("between"),
                _output("c1", [{"type": "input_image", "image_url": _IMAGE}]),
            ],
            instructions="i",
            tools=[_fn("exec_command")],
        )
        before = copy.deepcopy(request)
        convertRequest(request)
        self.assertEqual(request, before)


# -- system and developer -----------------------------------------------------------------


class SystemMessageTests(SynchronousTestCase):
    """
    C{instructions} and developer/system messages become system messages with string
    content; consecutive ones merge.
    """

    def test_instructionsFirst(self):
        """
        C{instructions} is the first message, role system.
        """
        messages = _messages("hi", instructions="You are helpful.")
        self.assertEqual(
            messages,
            [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "hi"}],
        )

    def test_emptyInstructionsOmitted(self):
        """
        Empty instructions add no message.
        """
        self.assertEqual(_messages("hi", instructions=""), [{"role": "user", "content": "hi"}])

    def test_instructionsMergeWithDeveloper(self):
        """
        Instructions followed by developer messages: one system message, blank-line joined.
        """
        messages = _messages(
            [_developer("d1"), _developer("d2", "d3"), _user("u")], instructions="i"
        )
        self.assertEqual(
            messages,
            [
                {"role": "system", "content": "i\n\nd1\n\nd2\n\nd3"},
                {"role": "user", "content": "u"},
            ],
        )

    def test_systemRole(self):
        """
        A C{system} message is treated like a C{developer} one; string content works.
        """
        messages = _messages(
            [{"type": "message", "role": "system", "content": "s"}, _developer("d"), _user("u")]
        )
        self.assertEqual(messages[0], {"role": "system", "content": "s\n\nd"})

    def test_midConversationInPlace(self):
        """
        A developer message after an assistant message stays in place as its own system
        message, separate from the leading one.
        """
        messages = _messages([_developer("d1"), _user("u"), _assistant("a"), _developer("d2")])
        self.assertEqual(
            messages,
            [
                {"role": "system", "content": "d1"},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": "a"},
                {"role": "system", "content": "d2"},
            ],
        )

    def test_contentAlwaysString(self):
        """
        System content is a string even when the developer message had only parts;
        image parts cannot go there and are dropped with a note.
        """
        item = {
            "type": "message",
            "role": "developer",
            "content": [
                {"type": "input_text", "text": "rules"},
                {"type": "input_image", "image_url": _IMAGE},
            ],
        }
        conversion = _convert([item, _user("u")])
        self.assertEqual(conversion.body["messages"][0], {"role": "system", "content": "rules"})
        self.assertTrue(any("input[0].content[1]" in n for n in conversion.dropped))

    def test_emptyDeveloperDropped(self):
        """
        A developer message without text is dropped with a note.
        """
        conversion = _convert([{"type": "message", "role": "developer", "content": []}, _user("u")])
        self.assertEqual(conversion.body["messages"], [{"role": "user", "content": "u"}])
        self.assertIn("input[0]: developer message without text dropped", conversion.dropped)


# -- user content -------------------------------------------------------------------------


class UserContentTests(SynchronousTestCase):
    """
    User messages: a string when all text, otherwise chat content parts.
    """

    def userContent(self, *parts: dict[str, Any]) -> Any:
        item = {"type": "message", "role": "user", "content": list(parts)}
        return _messages([item])[0]["content"]

    def test_allText(self):
        """
        Text-only content is one string, the parts joined with a newline.
        """
        self.assertEqual(
            self.userContent(
                {"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}
            ),
            "a\nb",
        )

    def test_stringContent(self):
        """
        String content (the "easy" message shape, without C{type}) is kept.
        """
        self.assertEqual(
            _messages([{"role": "user", "content": "plain"}]),
            [{"role": "user", "content": "plain"}],
        )

    def test_imageParts(self):
        """
        With an image, content is an array of text and image_url parts in order.
        """
        self.assertEqual(
            self.userContent(
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": _IMAGE, "detail": "low"},
            ),
            [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": _IMAGE, "detail": "low"}},
            ],
        )

    def test_imageDetail(self):
        """
        C{original} -> C{high}; absent -> omitted; auto/low/high kept; anything else
        omitted with a note.
        """
        for detail, expected in (
            ("original", {"url": _IMAGE, "detail": "high"}),
            ("high", {"url": _IMAGE, "detail": "high"}),
            ("auto", {"url": _IMAGE, "detail": "auto"}),
            (None, {"url": _IMAGE}),
            ("ultra", {"url": _IMAGE}),
        ):
            part = {"type": "input_image", "image_url": _IMAGE}
            if detail is not None:
                part["detail"] = detail
            self.assertEqual(self.userContent(part), [{"type": "image_url", "image_url": expected}])

    def test_imageChatShapeTolerated(self):
        """
        An C{image_url} given as C{{"url": ...}} is accepted.
        """
        self.assertEqual(
            self.userContent({"type": "input_image", "image_url": {"url": _IMAGE}}),
            [{"type": "image_url", "image_url": {"url": _IMAGE}}],
        )

    def test_imageByFileId(self):
        """
        An image referenced only by C{file_id} cannot be sent: a text note instead.
        """
        content = self.userContent({"type": "input_image", "file_id": "file_1"})
        self.assertIsInstance(content, str)
        self.assertIn("image omitted", content)

    def test_inlineFile(self):
        """
        An inline C{input_file} becomes a chat C{file} part.
        """
        data = "data:application/pdf;base64,JVBERi0x"
        self.assertEqual(
            self.userContent(
                {"type": "input_text", "text": "read"},
                {"type": "input_file", "filename": "a.pdf", "file_data": data},
            ),
            [
                {"type": "text", "text": "read"},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": data}},
            ],
        )
        self.assertEqual(
            self.userContent({"type": "input_file", "file_data": data}),
            [{"type": "file", "file": {"file_data": data}}],
        )

    def test_fileNotInline(self):
        """
        A file given by id or URL becomes a text note naming the file.
        """
        conversion = _convert(
            [
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "read"},
                        {"type": "input_file", "file_id": "file_1", "filename": "a.pdf"},
                        {"type": "input_file", "file_url": "https://example.com/b.pdf"},
                    ],
                }
            ]
        )
        self.assertEqual(
            conversion.body["messages"][0]["content"],
            "read\n[file a.pdf omitted: it was not sent inline]\n"
            "[file omitted: it was not sent inline]",
        )
        self.assertIn(
            "input[0].content[1]: file not sent inline replaced by a note", conversion.dropped
        )

    def test_unknownPartDropped(self):
        """
        Unknown part types are dropped with a note; a message left empty is dropped.
        """
        conversion = _convert(
            [
                {"type": "message", "role": "user", "content": [{"type": "input_audio"}]},
                _user("u"),
            ]
        )
        self.assertEqual(conversion.body["messages"], [{"role": "user", "content": "u"}])
        self.assertIn("input[0].content[0]: 'input_audio' part dropped", conversion.dropped)
        self.assertIn("input[0]: user message without content dropped", conversion.dropped)

    def test_consecutiveUsersKept(self):
        """
        Consecutive user messages stay separate (Codex sends context, then the prompt).
        """
        self.assertEqual(
            _messages([_user("a"), _user("b")]),
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        )

    def test_malformedParts(self):
        """
        A part that is not an object, or text that is not a string, is a 400 naming it.
        """
        e = self.assertRaises(
            BridgeRequestError, _convert, [{"type": "message", "role": "user", "content": ["x"]}]
        )
        self.assertEqual(e.param, "input[0].content[0]")
        e = self.assertRaises(
            BridgeRequestError,
            _convert,
            [_user("ok"), {"role": "user", "content": [{"type": "input_text", "text": 5}]}],
        )
        self.assertEqual(e.param, "input[1].content[0].text")


# -- assistant turns ----------------------------------------------------------------------


class AssistantTurnTests(SynchronousTestCase):
    """
    One model turn (everything between two non-assistant items) is one assistant message.
    """

    def test_textOnly(self):
        """
        An assistant message's output_text parts are joined with a newline.
        """
        item = {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "one"},
                {"type": "output_text", "text": "two"},
            ],
        }
        self.assertEqual(
            _messages([_user("u"), item])[1], {"role": "assistant", "content": "one\ntwo"}
        )

    def test_commentaryAndFinalMerged(self):
        """
        Commentary and final answer of one turn are one message, texts newline-joined.
        """
        messages = _messages(
            [_user("u"), _assistant("c", phase="commentary"), _assistant("f", phase="final_answer")]
        )
        self.assertEqual(messages[1:], [{"role": "assistant", "content": "c\nf"}])

    def test_textAndCallsMerged(self):
        """
        Reasoning, text and calls form one message: text, reasoning_content, tool_calls.
        """
        messages = _messages(
            [
                _user("u"),
                _reasoning(summary=["plan"]),
                _assistant("doing it"),
                _call("c1", arguments='{"cmd":"ls"}'),
                _call("c2", name="view_image", arguments='{"path":"p"}'),
                _output("c1", "o1"),
                _output("c2", "o2"),
                _assistant("done"),
            ]
        )
        self.assertEqual(
            messages[1:],
            [
                {
                    "role": "assistant",
                    "content": "doing it",
                    "reasoning_content": "plan",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "view_image", "arguments": '{"path":"p"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "o1"},
                {"role": "tool", "tool_call_id": "c2", "content": "o2"},
                {"role": "assistant", "content": "done"},
            ],
        )

    def test_contentNullWithCalls(self):
        """
        With calls but no text the content is null.
        """
        messages = _messages([_user("u"), _call("c1"), _output("c1")])
        self.assertIsNone(messages[1]["content"])
        self.assertNotIn("reasoning_content", messages[1])

    def test_sequentialTurns(self):
        """
        Calls separated by an output are separate turns, each with its tool block.
        """
        messages = _messages([_user("u"), _call("c1"), _output("c1"), _call("c2"), _output("c2")])
        self.assertEqual(
            [(m["role"], m.get("tool_call_id")) for m in messages],
            [
                ("user", None),
                ("assistant", None),
                ("tool", "c1"),
                ("assistant", None),
                ("tool", "c2"),
            ],
        )

    def test_droppedItemsDoNotSplitTurn(self):
        """
        A dropped item (a hosted web search) inside a turn does not split it.
        """
        messages = _messages(
            [
                _user("u"),
                _assistant("a"),
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
                _call("c1"),
                _output("c1"),
            ]
        )
        self.assertEqual([m["role"] for m in messages], ["user", "assistant", "tool"])
        self.assertEqual(messages[1]["content"], "a")

    def test_refusal(self):
        """
        A refusal part counts as the assistant's text.
        """
        item = {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "refusal", "refusal": "no"}],
        }
        self.assertEqual(_messages([_user("u"), item])[1], {"role": "assistant", "content": "no"})

    def test_emptyTurnDropped(self):
        """
        A turn with neither text nor calls (only reasoning, or empty text) is not sent:
        chat servers refuse such an assistant message.
        """
        conversion = _convert([_user("u"), _reasoning(summary=["s"]), _assistant(""), _user("v")])
        self.assertEqual(
            conversion.body["messages"],
            [{"role": "user", "content": "u"}, {"role": "user", "content": "v"}],
        )
        self.assertIn("assistant turn without text or calls dropped", conversion.dropped)

    def test_assistantImageDropped(self):
        """
        An image in an assistant message cannot be sent; it is dropped with a note.
        """
        item = {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "t"},
                {"type": "input_image", "image_url": _IMAGE},
            ],
        }
        conversion = _convert([_user("u"), item])
        self.assertEqual(conversion.body["messages"][1], {"role": "assistant", "content": "t"})
        self.assertTrue(any(n.startswith("input[1].content[1]") for n in conversion.dropped))

    def test_idsAndStatusIgnored(self):
        """
        Item C{id}, C{status}, C{phase}, C{end_turn} never reach the chat body.
        """
        messages = _messages(
            [
                _user("u"),
                _assistant(
                    "a", id="msg_1", status="completed", end_turn=True, phase="final_answer"
                ),
            ]
        )
        self.assertEqual(messages[1], {"role": "assistant", "content": "a"})


# -- tool calls in the history ------------------------------------------------------------


class HistoryCallTests(SynchronousTestCase):
    """
    function_call, custom_tool_call and local_shell_call items -> tool_calls entries.
    """

    def toolCall(self, item: dict[str, Any], **fields: Any) -> dict[str, Any]:
        messages = _messages(
            [_user("u"), item, _output(item.get("call_id") or item["id"])], **fields
        )
        (call,) = messages[1]["tool_calls"]
        return call

    def test_callIdNotItemId(self):
        """
        The chat id is the C{call_id}, never the item's C{id}.
        """
        call = self.toolCall(_call("call_abc"))
        self.assertEqual(call["id"], "call_abc")

    def test_namespacedCall(self):
        """
        A call with a namespace is flattened exactly like the namespace's tools.
        """
        for namespace, name, expected in (
            ("multi_agent_v1", "close_agent", "multi_agent_v1__close_agent"),
            ("mcp__github__", "list_issues", "mcp__github__list_issues"),
        ):
            call = self.toolCall(_call("c1", name=name, namespace=namespace))
            self.assertEqual(call["function"]["name"], expected)

    def test_longNamespacedCallMatchesTool(self):
        """
        A long MCP name gets the same alias in the history as in C{tools}.
        """
        name = "search_" + "x" * 70
        tool = {"type": "namespace", "name": "mcp__srv__", "tools": [_fn(name)]}
        conversion = convertRequest(
            _request(
                [_user("u"), _call("c1", name=name, namespace="mcp__srv__"), _output("c1")],
                tools=[tool],
            )
        )
        alias = conversion.body["tools"][0]["function"]["name"]
        self.assertLessEqual(len(alias), 64)
        self.assertEqual(conversion.body["messages"][1]["tool_calls"][0]["function"]["name"], alias)
        self.assertEqual(
            conversion.context.tools[alias], ToolTarget("function", name, "mcp__srv__")
        )

    def test_customCall(self):
        """
        A custom_tool_call's raw input becomes C{{"input": ...}} as JSON text.
        """
        patch = '*** Begin Patch\n*** Add File: é.txt\n+"q"\n*** End Patch\n'
        call = self.toolCall(
            {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": patch}
        )
        self.assertEqual(call["function"]["name"], "apply_patch")
        self.assertEqual(json.loads(call["function"]["arguments"]), {"input": patch})

    def test_localShellCall(self):
        """
        A local_shell_call is a call to C{local_shell} whose arguments are the action's
        command, working_directory, timeout_ms and env (nulls left out).
        """
        item = {
            "type": "local_shell_call",
            "id": "lsc_1",
            "call_id": "c1",
            "status": "completed",
            "action": {
                "type": "exec",
                "command": ["bash", "-lc", "ls"],
                "timeout_ms": 1000,
                "working_directory": None,
                "env": {"A": "1"},
                "user": None,
            },
        }
        call = self.toolCall(item)
        self.assertEqual(call["id"], "c1")
        self.assertEqual(call["function"]["name"], "local_shell")
        self.assertEqual(
            json.loads(call["function"]["arguments"]),
            {"command": ["bash", "-lc", "ls"], "timeout_ms": 1000, "env": {"A": "1"}},
        )

    def test_localShellCallIdFallback(self):
        """
        A local_shell_call without C{call_id} uses its item id (as Codex does).
        """
        item = {"type": "local_shell_call", "id": "lsc_1", "action": {"command": ["ls"]}}
        call = self.toolCall(item)
        self.assertEqual(call["id"], "lsc_1")

    def test_localShellOutput(self):
        """
        A local_shell_call_output answers the call like a function output.
        """
        item = {"type": "local_shell_call", "call_id": "c1", "action": {"command": ["ls"]}}
        messages = _messages(
            [_user("u"), item, {"type": "local_shell_call_output", "call_id": "c1", "output": "x"}]
        )
        self.assertEqual(messages[2], {"role": "tool", "tool_call_id": "c1", "content": "x"})

    def test_argumentsShapes(self):
        """
        Arguments: a string is kept; an object is serialised; empty or missing is C{{}}.
        """
        self.assertEqual(
            self.toolCall(_call("c", arguments='{"a":1}'))["function"]["arguments"], '{"a":1}'
        )
        self.assertEqual(
            json.loads(self.toolCall(_call("c", arguments={"a": 1}))["function"]["arguments"]),
            {"a": 1},
        )
        self.assertEqual(self.toolCall(_call("c", arguments=""))["function"]["arguments"], "{}")
        item = _call("c")
        del item["arguments"]
        self.assertEqual(self.toolCall(item)["function"]["arguments"], "{}")

    def test_malformedCalls(self):
        """
        A call without C{call_id} or C{name}, or with non-string arguments, is a 400.
        """
        bad = _call("c1")
        del bad["call_id"]
        e = self.assertRaises(BridgeRequestError, _convert, [_user("u"), bad])
        self.assertEqual(e.param, "input[1].call_id")
        e = self.assertRaises(BridgeRequestError, _convert, [_user("u"), _call("c1", name="")])
        self.assertEqual(e.param, "input[1].name")
        e = self.assertRaises(BridgeRequestError, _convert, [_user("u"), _call("c1", arguments=3)])
        self.assertEqual(e.param, "input[1].arguments")
        item = {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": []}
        e = self.assertRaises(BridgeRequestError, _convert, [_user("u"), item])
        self.assertEqual(e.param, "input[1].input")

    def test_duplicateCallId(self):
        """
        A second call with the same call_id is dropped with a note.
        """
        conversion = _convert([_user("u"), _call("c1"), _call("c1"), _output("c1")])
        self.assertEqual(len(conversion.body["messages"][1]["tool_calls"]), 1)
        self.assertIn("input[2]: call with a duplicate call_id dropped", conversion.dropped)

    def test_historyTargets(self):
        """
        Calls in the history map back through the context even when the request offers
        no tools (a compaction request); the request's tools take precedence.
        """
        conversion = _convert(
            [
                _user("u"),
                _call("c1", name="close_agent", namespace="multi_agent_v1"),
                {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "x"},
                {"type": "local_shell_call", "call_id": "c3", "action": {"command": ["ls"]}},
                _call("c4", name="exec_command"),
            ],
            tools=[_fn("exec_command", description="current")],
        )
        self.assertEqual(
            dict(conversion.context.tools),
            {
                "exec_command": ToolTarget("function", "exec_command"),
                "multi_agent_v1__close_agent": ToolTarget(
                    "function", "close_agent", "multi_agent_v1"
                ),
                "apply_patch": ToolTarget("custom", "apply_patch"),
                "local_shell": ToolTarget("local_shell", "local_shell"),
            },
        )
        self.assertEqual(_toolNames(conversion.body), ["exec_command"])


# -- tool outputs -------------------------------------------------------------------------


class ToolOutputTests(SynchronousTestCase):
    """
    Outputs become tool messages right after the assistant message holding their call.
    """

    def roles(self, messages: list[dict[str, Any]]) -> list[str]:
        return [
            m["role"] + (":" + m["tool_call_id"] if "tool_call_id" in m else "") for m in messages
        ]

    def test_callOrderNotOutputOrder(self):
        """
        Tool messages follow the order of the calls even if the outputs came reversed.
        """
        messages = _messages([_user("u"), _call("a"), _call("b"), _output("b"), _output("a")])
        self.assertEqual(self.roles(messages), ["user", "assistant", "tool:a", "tool:b"])

    def test_outputBeforeCall(self):
        """
        An output placed before its call still lands after the call's message.
        """
        messages = _messages([_user("u"), _output("a"), _call("a")])
        self.assertEqual(self.roles(messages), ["user", "assistant", "tool:a"])
        self.assertEqual(messages[2]["content"], "ok")

    def test_missingOutputAborted(self):
        """
        A call with no output anywhere is answered with C{aborted}.
        """
        conversion = _convert([_user("u"), _call("a"), _call("b"), _output("b"), _user("next")])
        self.assertEqual(
            conversion.body["messages"][2:4],
            [
                {"role": "tool", "tool_call_id": "a", "content": "aborted"},
                {"role": "tool", "tool_call_id": "b", "content": "ok"},
            ],
        )
        self.assertIn(
            "input[1]: call without an output answered with 'aborted'", conversion.dropped
        )

    def test_trailingCallAborted(self):
        """
        A call at the very end of the input (interrupted turn) is answered too.
        """
        messages = _messages([_user("u"), _call("a")])
        self.assertEqual(messages[-1], {"role": "tool", "tool_call_id": "a", "content": "aborted"})

    def test_orphanOutputDropped(self):
        """
        An output whose call is not in the history is dropped with a note.
        """
        conversion = _convert([_user("u"), _output("ghost"), _assistant("a")])
        self.assertEqual(self.roles(conversion.body["messages"]), ["user", "assistant"])
        self.assertIn("input[1]: output without a matching call dropped", conversion.dropped)

    def test_duplicateOutputDropped(self):
        """
        A second output for the same call is dropped; the first one is used.
        """
        conversion = _convert([_user("u"), _call("a"), _output("a", "one"), _output("a", "two")])
        self.assertEqual(conversion.body["messages"][2]["content"], "one")
        self.assertIn("input[3]: second output for one call dropped", conversion.dropped)

    def test_messageBetweenCallAndOutput(self):
        """
        A message between a call and its output is moved after the tool block.
        """
        messages = _messages(
            [
                _user("u"),
                _call("a"),
                _call("b"),
                _user("interject"),
                _developer("d"),
                _output("a"),
                _output("b"),
            ]
        )
        self.assertEqual(
            self.roles(messages), ["user", "assistant", "tool:a", "tool:b", "user", "system"]
        )
        self.assertEqual(messages[4]["content"], "interject")

    def test_customOutput(self):
        """
        custom_tool_call_output is a tool message like function_call_output.
        """
        item = {"type": "custom_tool_call", "call_id": "p", "name": "apply_patch", "input": "x"}
        messages = _messages(
            [_user("u"), item, _output("p", "Success", kind="custom_tool_call_output")]
        )
        self.assertEqual(messages[2], {"role": "tool", "tool_call_id": "p", "content": "Success"})

    def test_textPartsJoined(self):
        """
        An output array's text parts are joined with a newline.
        """
        output = [{"type": "input_text", "text": "a"}, {"type": "output_text", "text": "b"}]
        messages = _messages([_user("u"), _call("c"), _output("c", output)])
        self.assertEqual(messages[2]["content"], "a\nb")

    def test_imageOutputs(self):
        """
        Images of all outputs of one block go into ONE user message after the whole tool
        block; the tool messages stay text and say where the images went.
        """
        messages = _messages(
            [
                _user("u"),
                _call("a"),
                _call("b"),
                _call("c"),
                _output(
                    "a",
                    [
                        {"type": "input_text", "text": "see"},
                        {"type": "input_image", "image_url": "u1", "detail": "original"},
                    ],
                ),
                _output("b", "plain"),
                _output(
                    "c",
                    [
                        {"type": "input_image", "image_url": "u2"},
                        {"type": "input_image", "image_url": "u3"},
                    ],
                ),
            ]
        )
        self.assertEqual(
            self.roles(messages), ["user", "assistant", "tool:a", "tool:b", "tool:c", "user"]
        )
        self.assertEqual(
            messages[2]["content"],
            "see\n[1 attachment returned by this tool follows in the next user message]",
        )
        self.assertEqual(messages[3]["content"], "plain")
        self.assertEqual(
            messages[4]["content"],
            "[2 attachments returned by this tool follow in the next user message]",
        )
        self.assertEqual(
            messages[5]["content"],
            [
                {"type": "text", "text": "Attachments returned by tool call a:"},
                {"type": "image_url", "image_url": {"url": "u1", "detail": "high"}},
                {"type": "text", "text": "Attachments returned by tool call c:"},
                {"type": "image_url", "image_url": {"url": "u2"}},
                {"type": "image_url", "image_url": {"url": "u3"}},
            ],
        )

    def test_imageUserMessageBeforeMovedMessages(self):
        """
        The image message sits right after the tool block, before messages moved there.
        """
        messages = _messages(
            [
                _user("u"),
                _call("a"),
                _user("moved"),
                _output("a", [{"type": "input_image", "image_url": "u1"}]),
            ]
        )
        self.assertEqual(self.roles(messages), ["user", "assistant", "tool:a", "user", "user"])
        self.assertEqual(messages[4]["content"], "moved")
        self.assertIsInstance(messages[3]["content"], list)

    def test_neverUserForToolResult(self):
        """
        Every output is a C{tool} message with its C{tool_call_id}, whatever its shape.
        """
        for output in ("s", [], None, [{"type": "input_image", "image_url": "u"}]):
            messages = _messages([_user("u"), _call("a"), _output("a", output)])
            self.assertEqual(messages[2]["role"], "tool")
            self.assertEqual(messages[2]["tool_call_id"], "a")
            self.assertIsInstance(messages[2]["content"], str)

    def test_oddOutputs(self):
        """
        A null output is empty text; another JSON value is its JSON text; unknown parts
        are dropped with a note.
        """
        for output, expected in ((None, ""), ({"ok": True}, '{"ok": true}'), (3, "3")):
            messages = _messages([_user("u"), _call("a"), _output("a", output)])
            self.assertEqual(messages[2]["content"], expected)
        conversion = _convert(
            [_user("u"), _call("a"), _output("a", [{"type": "encrypted_content"}])]
        )
        self.assertEqual(conversion.body["messages"][2]["content"], "")
        self.assertIn("input[2].output[0]: 'encrypted_content' part dropped", conversion.dropped)

    def test_malformedOutputs(self):
        """
        An output without call_id, or with a non-object part, is a 400.
        """
        item = _output("a")
        del item["call_id"]
        e = self.assertRaises(BridgeRequestError, _convert, [_user("u"), item])
        self.assertEqual(e.param, "input[1].call_id")
        e = self.assertRaises(
            BridgeRequestError, _convert, [_user("u"), _call("a"), _output("a", ["x"])]
        )
        self.assertEqual(e.param, "input[2].output[0]")


# -- reasoning ------------------------------------------------------------------------------


class ReasoningTests(SynchronousTestCase):
    """
    Reasoning items -> C{reasoning_content} on the assistant message of their turn.
    """

    def reasoningContent(self, item: dict[str, Any]) -> Any:
        messages = _messages([_user("u"), item, _assistant("a")])
        return messages[1].get("reasoning_content")

    def test_ourTokenWins(self):
        """
        Our own token holds the full text and wins over content and summary.
        """
        item = _reasoning(summary=["sum"], content=["raw"], encrypted=encodeReasoning("full"))
        self.assertEqual(self.reasoningContent(item), "full")

    def test_contentOverSummary(self):
        """
        Without our token, the reasoning_text content wins over the summary.
        """
        item = _reasoning(summary=["sum"], content=["raw1", "raw2"], encrypted=None)
        self.assertEqual(self.reasoningContent(item), "raw1\nraw2")

    def test_summary(self):
        """
        Without token or content, the summary texts are used, newline-joined.
        """
        self.assertEqual(self.reasoningContent(_reasoning(summary=["a", "b"])), "a\nb")

    def test_foreignTokenIgnored(self):
        """
        An OpenAI token (not ours) is ignored: the summary is used instead.
        """
        item = _reasoning(summary=["sum"], encrypted="gAAAAABfakeEncryptedReasoning==")
        self.assertEqual(self.reasoningContent(item), "sum")

    def test_damagedTokenIgnored(self):
        """
        A damaged token of ours falls back to the next source.
        """
        item = _reasoning(summary=["sum"], encrypted="rpxr1.!!!not-base64")
        self.assertEqual(self.reasoningContent(item), "sum")

    def test_nothingUsable(self):
        """
        A reasoning item with no text is dropped with a note.
        """
        conversion = _convert([_user("u"), _reasoning(encrypted="opaque"), _assistant("a")])
        self.assertEqual(conversion.body["messages"][1], {"role": "assistant", "content": "a"})
        self.assertIn("input[1]: reasoning item without usable text dropped", conversion.dropped)

    def test_malformedReasoningTolerated(self):
        """
        Odd shapes inside a reasoning item are skipped, never a 400.
        """
        item = {"type": "reasoning", "summary": "x", "content": [3, {"type": "reasoning_text"}]}
        self.assertIsNone(self.reasoningContent(item))

    def test_everyAssistantMessage(self):
        """
        Each turn gets its own reasoning: the final-answer turn too, not only tool turns.
        """
        messages = _messages(
            [
                _user("u"),
                _reasoning(summary=["r1"]),
                _call("a"),
                _output("a"),
                _reasoning(encrypted=encodeReasoning("r2")),
                _assistant("final"),
            ]
        )
        self.assertEqual(messages[1]["reasoning_content"], "r1")
        self.assertEqual(
            messages[3], {"role": "assistant", "content": "final", "reasoning_content": "r2"}
        )

    def test_severalItemsJoined(self):
        """
        Several reasoning items in one turn are joined with a newline.
        """
        messages = _messages(
            [
                _user("u"),
                _reasoning(summary=["r1"]),
                _assistant("c"),
                _reasoning(summary=["r2"]),
                _call("a"),
            ]
        )
        self.assertEqual(messages[1]["reasoning_content"], "r1\nr2")


# -- tools --------------------------------------------------------------------------------


class ToolsTests(SynchronousTestCase):
    """
    Responses tool definitions -> chat functions.
    """

    def test_function(self):
        """
        A flat function tool is wrapped in the chat shape; strict kept when given.
        """
        params = {"type": "object", "properties": {"a": {"type": "string"}}}
        conversion = _convert(
            tools=[
                {
                    "type": "function",
                    "name": "f",
                    "description": "d",
                    "parameters": params,
                    "strict": True,
                }
            ]
        )
        self.assertEqual(
            conversion.body["tools"],
            [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "description": "d",
                        "parameters": params,
                        "strict": True,
                    },
                }
            ],
        )
        # Schemas are shared, not copied.
        self.assertIs(conversion.body["tools"][0]["function"]["parameters"], params)
        self.assertEqual(conversion.context.tools, {"f": ToolTarget("function", "f")})

    def test_functionMinimal(self):
        """
        Absent description, parameters and strict are omitted, not invented.
        """
        body = _convert(tools=[{"type": "function", "name": "f", "defer_loading": True}]).body
        self.assertEqual(body["tools"], [{"type": "function", "function": {"name": "f"}}])

    def test_chatShapeTolerated(self):
        """
        A tool already in the chat shape is accepted.
        """
        body = _convert(
            tools=[{"type": "function", "function": {"name": "f", "description": "d"}}]
        ).body
        self.assertEqual(
            body["tools"], [{"type": "function", "function": {"name": "f", "description": "d"}}]
        )

    def test_custom(self):
        """
        A custom tool is a function with one required string C{input}; its description
        gains the sentence about C{input} and the grammar with its syntax.
        """
        tool = {
            "type": "custom",
            "name": "apply_patch",
            "description": "Edit files.",
            "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"},
        }
        conversion = _convert(tools=[tool])
        (chat,) = conversion.body["tools"]
        function = chat["function"]
        self.assertEqual(function["name"], "apply_patch")
        self.assertEqual(
            function["parameters"],
            {
                "type": "object",
                "properties": {
                    "input": {"type": "string", "description": "The raw text input for the tool."}
                },
                "required": ["input"],
                "additionalProperties": False,
            },
        )
        description = function["description"]
        self.assertTrue(description.startswith("Edit files.\n\n"))
        self.assertIn(
            "put the raw text the tool takes (for example the whole patch) in `input`", description
        )
        self.assertTrue(description.endswith("`input` must match this lark grammar:\nstart: x"))
        self.assertNotIn("strict", function)
        self.assertEqual(
            conversion.context.tools, {"apply_patch": ToolTarget("custom", "apply_patch")}
        )

    def test_customWithoutGrammar(self):
        """
        A custom tool with a text format (or none) gets the sentence but no grammar.
        """
        for fmt in ({"type": "text"}, None):
            tool = {"type": "custom", "name": "note"}
            if fmt is not None:
                tool["format"] = fmt
            description = _convert(tools=[tool]).body["tools"][0]["function"]["description"]
            self.assertIn("`input`", description)
            self.assertNotIn("grammar", description)

    def test_namespace(self):
        """
        Namespace tools are flattened in place, with exactly one C{__} separator.
        """
        conversion = _convert(
            tools=[
                _fn("first"),
                {
                    "type": "namespace",
                    "name": "multi_agent_v1",
                    "description": "agents",
                    "tools": [_fn("spawn_agent")],
                },
                {
                    "type": "namespace",
                    "name": "mcp__github__",
                    "tools": [_fn("list_issues"), _fn("get_pr")],
                },
                _fn("last"),
            ]
        )
        self.assertEqual(
            _toolNames(conversion.body),
            [
                "first",
                "multi_agent_v1__spawn_agent",
                "mcp__github__list_issues",
                "mcp__github__get_pr",
                "last",
            ],
        )
        self.assertEqual(
            conversion.context.tools["mcp__github__list_issues"],
            ToolTarget("function", "list_issues", "mcp__github__"),
        )
        self.assertEqual(
            conversion.context.tools["multi_agent_v1__spawn_agent"],
            ToolTarget("function", "spawn_agent", "multi_agent_v1"),
        )
        # The nested description is kept as is.
        self.assertEqual(
            conversion.body["tools"][1]["function"]["description"], "The spawn_agent tool."
        )

    def test_longAndOddNames(self):
        """
        Names over 64 characters or with odd characters get a stable alias of at most 64
        characters, restorable through the context.
        """
        long = "tool_" + "z" * 80
        tools = [
            {"type": "namespace", "name": "mcp__files__", "tools": [_fn(long), _fn("read.file")]},
            _fn("odd name!"),
        ]
        first = _convert(tools=tools)
        second = _convert(tools=list(reversed(tools)))
        names = _toolNames(first.body)
        self.assertEqual(sorted(names), sorted(_toolNames(second.body)))
        for name in names:
            self.assertRegex(name, r"\A[A-Za-z0-9_-]{1,64}\Z")
        self.assertEqual(
            {first.context.tools[n] for n in names},
            {
                ToolTarget("function", long, "mcp__files__"),
                ToolTarget("function", "read.file", "mcp__files__"),
                ToolTarget("function", "odd name!", None),
            },
        )
        self.assertEqual(names[0], flattenToolName("mcp__files__", long))

    def test_localShell(self):
        """
        The local_shell tool becomes a function with command, working_directory and
        timeout_ms.
        """
        conversion = _convert(tools=[{"type": "local_shell"}])
        (chat,) = conversion.body["tools"]
        function = chat["function"]
        self.assertEqual(function["name"], "local_shell")
        properties = function["parameters"]["properties"]
        self.assertEqual(
            properties["command"],
            {
                "type": "array",
                "items": {"type": "string"},
                "description": properties["command"]["description"],
            },
        )
        self.assertEqual(properties["working_directory"]["type"], "string")
        self.assertEqual(properties["timeout_ms"]["type"], "integer")
        self.assertEqual(function["parameters"]["required"], ["command"])
        self.assertEqual(
            conversion.context.tools, {"local_shell": ToolTarget("local_shell", "local_shell")}
        )
        # A fresh definition each time: requests never share mutable state.
        self.assertIsNot(
            function, _convert(tools=[{"type": "local_shell"}]).body["tools"][0]["function"]
        )

    def test_hostedDropped(self):
        """
        Hosted tools are dropped with a note, never an error; with no tools left,
        tool_choice and parallel_tool_calls are omitted.
        """
        hosted = [
            {"type": "web_search", "external_web_access": False},
            {"type": "web_search_preview"},
            {"type": "file_search", "vector_store_ids": []},
            {"type": "tool_search", "execution": "client"},
            {"type": "image_generation"},
            {"type": "computer_use_preview"},
            {"type": "computer_use"},
            {"type": "mcp", "server_label": "x"},
            {"type": "code_interpreter"},
            {"type": "brand_new_tool"},
        ]
        conversion = _convert(tools=hosted, tool_choice="auto", parallel_tool_calls=True)
        for field in ("tools", "tool_choice", "parallel_tool_calls"):
            self.assertNotIn(field, conversion.body)
        for i, tool in enumerate(hosted):
            self.assertIn(f"tools[{i}]: {tool['type']!r} tool dropped", conversion.dropped)
        self.assertEqual(conversion.context.tools, {})

    def test_nestedNonFunctionDropped(self):
        """
        Inside a namespace, only function and custom tools are kept.
        """
        conversion = _convert(
            tools=[{"type": "namespace", "name": "ns", "tools": [{"type": "web_search"}, _fn("f")]}]
        )
        self.assertEqual(_toolNames(conversion.body), ["ns__f"])
        self.assertIn("tools[0].tools[0]: 'web_search' tool dropped", conversion.dropped)

    def test_duplicateNames(self):
        """
        A second tool with the same chat name is dropped with a note (servers refuse
        duplicate function names); the first one wins.
        """
        conversion = _convert(
            tools=[
                _fn("ns__f", description="flat"),
                {"type": "namespace", "name": "ns", "tools": [_fn("f")]},
            ]
        )
        self.assertEqual(conversion.body["tools"][0]["function"]["description"], "flat")
        self.assertEqual(len(conversion.body["tools"]), 1)
        self.assertEqual(conversion.context.tools["ns__f"], ToolTarget("function", "ns__f"))
        self.assertIn("tools[1].tools[0]: duplicate tool name 'ns__f' dropped", conversion.dropped)

    def test_malformedTools(self):
        """
        A tool that is not an object, or a function without a name, is a 400.
        """
        for tools, param in (
            (["x"], "tools[0]"),
            ([{"type": "function"}], "tools[0].name"),
            ([{"type": "function", "name": "f", "parameters": "x"}], "tools[0].parameters"),
            ([{"type": "namespace", "tools": []}], "tools[0].name"),
            ([{"type": "namespace", "name": "n", "tools": {}}], "tools[0].tools"),
            (
                [{"type": "namespace", "name": "n", "tools": [{"type": "function"}]}],
                "tools[0].tools[0].name",
            ),
        ):
            e = self.assertRaises(BridgeRequestError, _convert, tools=tools)
            self.assertEqual(e.param, param)


# -- tool_choice --------------------------------------------------------------------------


class ToolChoiceTests(SynchronousTestCase):
    """
    C{tool_choice} and C{parallel_tool_calls}.
    """

    tools = [
        _fn("f"),
        {"type": "custom", "name": "apply_patch"},
        {"type": "namespace", "name": "mcp__s__", "tools": [_fn("g")]},
        {"type": "web_search"},
    ]

    def choice(self, value: Any) -> Any:
        return _convert(tools=self.tools, tool_choice=value).body.get("tool_choice", "OMITTED")

    def test_strings(self):
        """
        auto, none and required are passed as they are; absent stays absent.
        """
        for value in ("auto", "none", "required"):
            self.assertEqual(self.choice(value), value)
        self.assertEqual(self.choice(None), "OMITTED")

    def test_namedFunction(self):
        """
        A named function becomes the chat object form.
        """
        self.assertEqual(
            self.choice({"type": "function", "name": "f"}),
            {"type": "function", "function": {"name": "f"}},
        )

    def test_namedCustom(self):
        """
        A named custom tool is forced through its function.
        """
        self.assertEqual(
            self.choice({"type": "custom", "name": "apply_patch"}),
            {"type": "function", "function": {"name": "apply_patch"}},
        )

    def test_namedNamespaced(self):
        """
        A named namespaced function (namespace given, or name already flattened) uses the
        flattened name.
        """
        expected = {"type": "function", "function": {"name": "mcp__s__g"}}
        self.assertEqual(
            self.choice({"type": "function", "name": "g", "namespace": "mcp__s__"}), expected
        )
        self.assertEqual(self.choice({"type": "function", "name": "mcp__s__g"}), expected)

    def test_namedUnknown(self):
        """
        Naming a tool that is not offered is a 400.
        """
        e = self.assertRaises(
            BridgeRequestError,
            _convert,
            tools=self.tools,
            tool_choice={"type": "function", "name": "nope"},
        )
        self.assertEqual((e.param, e.code), ("tool_choice", "invalid_value"))

    def test_hostedChoiceDropped(self):
        """
        Forcing a hosted tool cannot be honoured: tool_choice is omitted with a note.
        """
        conversion = _convert(tools=self.tools, tool_choice={"type": "web_search"})
        self.assertNotIn("tool_choice", conversion.body)
        self.assertIn("tool_choice 'web_search' dropped: hosted tool", conversion.dropped)

    def test_allowedTools(self):
        """
        allowed_tools becomes its mode.
        """
        value = {
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "f"}],
        }
        self.assertEqual(self.choice(value), "required")

    def test_localShell(self):
        """
        Forcing local_shell names the local_shell function.
        """
        body = _convert(tools=[{"type": "local_shell"}], tool_choice={"type": "local_shell"}).body
        self.assertEqual(
            body["tool_choice"], {"type": "function", "function": {"name": "local_shell"}}
        )

    def test_invalid(self):
        """
        An unknown string or a malformed object is a 400.
        """
        for value, param in (
            ("any", "tool_choice"),
            (3, "tool_choice"),
            ({}, "tool_choice.type"),
            ({"type": "function"}, "tool_choice.name"),
            ({"type": "allowed_tools", "mode": "x"}, "tool_choice.mode"),
        ):
            e = self.assertRaises(BridgeRequestError, _convert, tools=self.tools, tool_choice=value)
            self.assertEqual(e.param, param)

    def test_omittedWithoutTools(self):
        """
        With no tools left, tool_choice and parallel_tool_calls are omitted.
        """
        for tools in ([], [{"type": "web_search"}], None):
            body = _convert(tools=tools, tool_choice="required", parallel_tool_calls=False).body
            self.assertNotIn("tool_choice", body)
            self.assertNotIn("parallel_tool_calls", body)

    def test_parallelToolCalls(self):
        """
        parallel_tool_calls is copied when tools remain.
        """
        for value in (True, False):
            body = _convert(tools=[_fn("f")], parallel_tool_calls=value).body
            self.assertIs(body["parallel_tool_calls"], value)
        self.assertNotIn("parallel_tool_calls", _convert(tools=[_fn("f")]).body)


# -- reasoning effort and text format ---------------------------------------------------


class ReasoningEffortTests(SynchronousTestCase):
    """
    C{reasoning.effort} -> C{reasoning_effort}.
    """

    def test_mapping(self):
        """
        minimal -> low, xhigh -> high, none -> omitted, the rest unchanged.
        """
        for effort, expected in (
            ("minimal", "low"),
            ("low", "low"),
            ("medium", "medium"),
            ("high", "high"),
            ("xhigh", "high"),
        ):
            body = _convert(reasoning={"effort": effort}).body
            self.assertEqual(body["reasoning_effort"], expected)
        self.assertNotIn("reasoning_effort", _convert(reasoning={"effort": "none"}).body)

    def test_absent(self):
        """
        No reasoning, a null one, or one with only a summary: no reasoning_effort; the
        summary is dropped with a note.
        """
        for reasoning in (None, {}, {"summary": "auto"}):
            conversion = _convert(reasoning=reasoning)
            self.assertNotIn("reasoning_effort", conversion.body)
            self.assertNotIn("reasoning", conversion.body)
        self.assertIn(
            "field 'reasoning.summary' dropped", _convert(reasoning={"summary": "auto"}).dropped
        )

    def test_unknownEffort(self):
        """
        An unknown effort is dropped with a note.
        """
        conversion = _convert(reasoning={"effort": "extreme"})
        self.assertNotIn("reasoning_effort", conversion.body)
        self.assertIn("reasoning.effort dropped: not a known effort", conversion.dropped)


class TextFormatTests(SynchronousTestCase):
    """
    C{text.format} -> C{response_format}.
    """

    def test_jsonSchema(self):
        """
        json_schema carries name, schema and strict (and description when given).
        """
        schema = {"type": "object"}
        body = _convert(
            text={
                "format": {
                    "type": "json_schema",
                    "name": "n",
                    "schema": schema,
                    "strict": True,
                    "description": "d",
                },
                "verbosity": "low",
            }
        ).body
        self.assertEqual(
            body["response_format"],
            {
                "type": "json_schema",
                "json_schema": {"name": "n", "description": "d", "schema": schema, "strict": True},
            },
        )

    def test_jsonSchemaDefaults(self):
        """
        Without name or strict: the name defaults to C{response}, strict is omitted.
        """
        body = _convert(text={"format": {"type": "json_schema", "schema": {}}}).body
        self.assertEqual(
            body["response_format"],
            {"type": "json_schema", "json_schema": {"name": "response", "schema": {}}},
        )

    def test_jsonObject(self):
        """
        json_object maps to json_object.
        """
        body = _convert(text={"format": {"type": "json_object"}}).body
        self.assertEqual(body["response_format"], {"type": "json_object"})

    def test_textOmitted(self):
        """
        The text format (the default) and verbosity produce no response_format.
        """
        conversion = _convert(text={"format": {"type": "text"}, "verbosity": "low"})
        self.assertNotIn("response_format", conversion.body)
        self.assertIn("field 'text.verbosity' dropped", conversion.dropped)

    def test_invalid(self):
        """
        An unknown format type or a json_schema without a schema is a 400.
        """
        e = self.assertRaises(BridgeRequestError, _convert, text={"format": {"type": "xml"}})
        self.assertEqual(e.param, "text.format.type")
        e = self.assertRaises(
            BridgeRequestError, _convert, text={"format": {"type": "json_schema"}}
        )
        self.assertEqual(e.param, "text.format.schema")
        e = self.assertRaises(BridgeRequestError, _convert, text={"format": "json"})
        self.assertEqual(e.param, "text.format")


# -- items --------------------------------------------------------------------------------


class ItemTests(SynchronousTestCase):
    """
    What items are refused, tolerated or dropped.
    """

    def test_droppedTypes(self):
        """
        Hosted-tool, compaction and unknown items are dropped with a note, never a 400.
        """
        kinds = [
            "web_search_call",
            "tool_search_call",
            "tool_search_output",
            "image_generation_call",
            "compaction",
            "compaction_summary",
            "ghost_snapshot",
            "something_new",
        ]
        items = [_user("u")] + [{"type": kind, "id": "x"} for kind in kinds]
        conversion = _convert(items)
        self.assertEqual(conversion.body["messages"], [{"role": "user", "content": "u"}])
        for i, kind in enumerate(kinds, 1):
            self.assertIn(f"input[{i}]: {kind!r} item dropped", conversion.dropped)

    def test_notAnObject(self):
        """
        An item that is not an object is a 400 naming it.
        """
        e = self.assertRaises(BridgeRequestError, _convert, [_user("u"), "text"])
        self.assertEqual((e.param, e.code), ("input[1]", "invalid_type"))

    def test_missingType(self):
        """
        An item with neither C{type} nor C{role} is a 400.
        """
        e = self.assertRaises(BridgeRequestError, _convert, [{"content": "x"}])
        self.assertEqual((e.param, e.code), ("input[0].type", "missing_required_parameter"))

    def test_badContent(self):
        """
        A message whose content is neither a string nor an array is a 400.
        """
        for content in (None, 3, {"type": "input_text", "text": "x"}):
            e = self.assertRaises(
                BridgeRequestError,
                _convert,
                [{"type": "message", "role": "user", "content": content}],
            )
            self.assertEqual(e.param, "input[0].content")

    def test_badRole(self):
        """
        An unknown role is a 400.
        """
        e = self.assertRaises(
            BridgeRequestError, _convert, [{"type": "message", "role": "tool", "content": "x"}]
        )
        self.assertEqual((e.param, e.code), ("input[0].role", "invalid_value"))

    def test_itemReference(self):
        """
        An item reference that reached conversion unresolved (typed, or the API's typeless
        C{{"id"}} form) is a 400 naming the item, resolved flag or not.
        """
        for item in ({"type": "item_reference", "id": "msg_1"}, {"id": "msg_1"}):
            for resolved in (False, True):
                e = self.assertRaises(
                    BridgeRequestError,
                    convertRequest,
                    _request([_user("x"), item]),
                    resolved=resolved,
                )
                self.assertEqual((e.param, e.code), ("input[1]", "unsupported_parameter"))
                self.assertIn("not resolved", str(e))

    def test_oddTypeLabelInNote(self):
        """
        A huge or non-printable type is not copied into a note.
        """
        conversion = _convert([_user("u"), {"type": "x" * 500}, {"type": "a\nb"}])
        self.assertIn("input[1]: unknown item dropped", conversion.dropped)
        self.assertIn("input[2]: unknown item dropped", conversion.dropped)

    def test_oddFieldNameInNote(self):
        """
        A huge unknown top-level field name is not copied into a note either.
        """
        conversion = _convert(**{"k" * 500: 1, "reasoning": {"z" * 500: 1}})
        self.assertIn("field unknown dropped", conversion.dropped)
        self.assertEqual(sum(n == "field unknown dropped" for n in conversion.dropped), 2)

    def test_unhashableTypes(self):
        """
        A list where a type or detail string belongs is handled, not a crash.
        """
        conversion = _convert(
            [
                {"type": "message", "role": "user", "content": [{"type": ["input_text"]}]},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "u", "detail": ["x"]}],
                },
                {"type": "reasoning", "summary": [{"type": ["summary_text"], "text": "s"}]},
            ]
        )
        self.assertEqual(
            conversion.body["messages"],
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}],
        )
        e = self.assertRaises(BridgeRequestError, _convert, [{"type": {"a": 1}}])
        self.assertEqual((e.param, e.code), ("input[0].type", "invalid_type"))


class RobustnessTests(SynchronousTestCase):
    """
    Whatever JSON a client sends, conversion returns or raises L{BridgeRequestError}.
    """

    def test_mutatedFixtures(self):
        """
        Replace random values inside real Codex requests with other JSON values (a bounded,
        seeded run): never any exception but L{BridgeRequestError}.
        """
        import random

        rng = random.Random(20260124)
        replacements: list[Any] = [
            None,
            True,
            0,
            -1,
            1.5,
            "",
            "x",
            [],
            {},
            ["x"],
            [None],
            {"type": "x"},
            {"type": ["x"]},
            [{"type": None}],
        ]
        bases = [_fixture(name) for name in ("C/002", "E/002", "B/002")]

        def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
            found = [prefix]
            if isinstance(value, dict):
                for key, child in value.items():
                    found.extend(paths(child, prefix + (key,)))
            elif isinstance(value, list):
                for index, child in enumerate(value):
                    found.extend(paths(child, prefix + (index,)))
            return found

        allPaths = [(base, paths(base)[1:]) for base in bases]
        for _ in range(1500):
            base, candidates = rng.choice(allPaths)
            request = copy.deepcopy(base)
            for _ in range(rng.randint(1, 3)):
                path = rng.choice(candidates)
                target = request
                try:
                    for step in path[:-1]:
                        target = target[step]
                    target[path[-1]] = copy.deepcopy(rng.choice(replacements))
                except (KeyError, IndexError, TypeError):
                    continue
            try:
                conversion = convertRequest(request)
            except BridgeRequestError as e:
                self.assertEqual(str(e), e.message)
            else:
                json.dumps(conversion.body, allow_nan=False)
