"""
Provider quirks over real processes: the proxy in bridge mode against the fake chat
upstream, one case per behaviour of bridge-spec sections 2 and 2.7.

Each case checks both sides: the chat request the upstream received (messages, tools,
stream options, headers, the proxy's key exactly once and never the client's), and the
Responses events the client received (types in order, output indexes, ids stable from
C{added} to C{done}, whole texts and arguments in C{output_item.done}, the terminal event).
Every event stream is validated by L{tests.sdkcheck}; completed streams also go through
the SDK's accumulator, and a representative few through the real SDK client over HTTP.

The processes are shared by the module's tests with the same tuning (a
L{ProcessFixture}: started by the first test, stopped by C{tearDownModule}, or with the
test process under trial); C{fake.reset()} separates the cases.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import openai
from openai.types.responses import Response
from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.names import flattenToolName
from responses_proxy.bridge.reasoning import decodeReasoning
from tests import sdkcheck
from tests.support import http, wire
from tests.support.chat import chatChunk as chunk
from tests.support.chat import chatCompletion
from tests.support.chat import sseText as frame
from tests.support.chat import toolCall as call
from tests.support.events import codexRequest
from tests.support.fake import Recorded
from tests.support.proxy import DEFAULT_KEY, SharedBridges

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "codex-0.169.0"
GOLDEN = HERE / "golden" / "bridge-request"

KEY = DEFAULT_KEY.decode("ascii")
CLIENT_KEY = "sk-client-0000-must-never-reach-the-upstream"
CLIENT_HEADERS = [
    ("Authorization", "Bearer " + CLIENT_KEY),
    ("X-Title", "quirk-suite"),
    ("Accept", "text/event-stream"),
    ("Accept-Encoding", "gzip, br"),
]
CHAT_PATH = "/v1/chat/completions"

# Codex's pattern for the retry delay in a rate-limit message (codex-wire.md 3.5).
CODEX_RETRY = re.compile(r"(?i)try again in\s*(\d+(?:\.\d+)?)\s*(s|ms|seconds?)")
CALL_ID = re.compile(r"call_[0-9a-f]{32}\Z")
MiB = 1024 * 1024


# -- the shared processes ----------------------------------------------------------------------


# One fake chat upstream and one bridge per tuning, shared by the module's tests.
_BRIDGES = SharedBridges()


def tearDownModule() -> None:
    """
    Stop the shared processes (pytest and unittest call this; trial does not, and its
    workers' children end with them).
    """
    _BRIDGES.stop()


# -- requests ----------------------------------------------------------------------------------


def _fixtureBody(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text())
    if isinstance(data, list):
        data = data[0]
    return data["body"]


_A001 = _fixtureBody("A/001-POST.json")
_GPT55 = _fixtureBody("gpt-5.5-first-request.json")


def codexBody(model: str = "deepseek-chat", **fields: Any) -> dict[str, Any]:
    """
    Codex 0.169's first request of scenario A (developer messages, function tools, the
    C{multi_agent_v1} namespace, C{web_search}), for another model.
    """
    body = copy.deepcopy(_A001)
    body["model"] = model
    body.update(fields)
    return body


def patchBody(model: str = "qwen3-coder-plus") -> dict[str, Any]:
    """
    Codex 0.169's first request for gpt-5.5: it offers the freeform C{apply_patch} tool.
    """
    body = copy.deepcopy(_GPT55)
    body["model"] = model
    return body


def smallBody(model: str = "deepseek-chat", **fields: Any) -> dict[str, Any]:
    """
    A small hand-written Codex-like request.
    """
    return codexRequest(model, **fields)


def toolDef(body: dict[str, Any], name: str) -> dict[str, Any]:
    for tool in body["tools"]:
        if tool.get("name") == name:
            return copy.deepcopy(tool)
    raise KeyError(name)


# -- chat chunks and reply specs ---------------------------------------------------------------


def sse(*values: Any, done: bool = True, **fields: Any) -> dict[str, Any]:
    """
    A reply spec streaming C{values} as C{data: <json>} events, then C{[DONE]}.
    """
    spec: dict[str, Any] = {"sse": list(values) + (["[DONE]"] if done else [])}
    spec.update(fields)
    return spec


def raw(*pieces: Any, **fields: Any) -> dict[str, Any]:
    """
    A reply spec writing exact pieces (text, bytes, C{{"gate": NAME}} or any chunk dict),
    as C{text/event-stream}.
    """
    chunks: list[dict[str, Any]] = []
    for piece in pieces:
        if isinstance(piece, dict):
            chunks.append(piece)
        elif isinstance(piece, bytes):
            chunks.append({"b64": base64.b64encode(piece).decode("ascii")})
        else:
            chunks.append({"data": piece})
    spec: dict[str, Any] = {
        "chunks": chunks,
        "headers": [["content-type", "text/event-stream"]],
    }
    spec.update(fields)
    return spec


USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 80,
    "total_tokens": 1280,
    "prompt_tokens_details": {"cached_tokens": 1024},
    "completion_tokens_details": {"reasoning_tokens": 40},
}
MAPPED_USAGE = {
    "input_tokens": 1200,
    "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
    "output_tokens": 80,
    "output_tokens_details": {"reasoning_tokens": 40},
    "total_tokens": 1280,
}
# DeepSeek reports its cache hits at the top level too.
DEEPSEEK_USAGE = {
    "prompt_tokens": 900,
    "completion_tokens": 60,
    "total_tokens": 960,
    "prompt_tokens_details": {"cached_tokens": 640},
    "completion_tokens_details": {"reasoning_tokens": 25},
    "prompt_cache_hit_tokens": 640,
    "prompt_cache_miss_tokens": 260,
}
DEEPSEEK_MAPPED = {
    "input_tokens": 900,
    "input_tokens_details": {"cached_tokens": 640, "cache_write_tokens": 0},
    "output_tokens": 60,
    "output_tokens_details": {"reasoning_tokens": 25},
    "total_tokens": 960,
}


# -- expected event shapes ---------------------------------------------------------------------

OPEN = ["response.created", "response.in_progress"]
REASONING = [
    "response.output_item.added",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_text.delta*",
    "response.reasoning_summary_text.done",
    "response.reasoning_summary_part.done",
    "response.output_item.done",
]
MESSAGE = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta*",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
CALL = [
    "response.output_item.added",
    "response.function_call_arguments.delta*",
    "response.function_call_arguments.done",
    "response.output_item.done",
]
CUSTOM_CALL = [
    "response.output_item.added",
    "response.custom_tool_call_input.delta*",
    "response.custom_tool_call_input.done",
    "response.output_item.done",
]
COMPLETED = ["response.completed"]


def calls(n: int) -> list[str]:
    """
    C{n} function calls opened one after another: all close together at the finish.
    """
    return (
        ["response.output_item.added", "response.function_call_arguments.delta*"] * n
        + ["response.function_call_arguments.done", "response.output_item.done"] * n
    )


def shape(events: Iterable[dict[str, Any]]) -> list[str]:
    """
    Event types in order, each run of one delta type collapsed to C{"<type>*"}.
    """
    out: list[str] = []
    for event in events:
        kind = event["type"]
        if kind.endswith(".delta"):
            kind += "*"
            if out and out[-1] == kind:
                continue
        out.append(kind)
    return out


def withoutKeepAlives(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The events without the keep-alive C{response.in_progress} events after the opening one.
    """
    return events[:2] + [e for e in events[2:] if e["type"] != "response.in_progress"]


class ItemView:
    """
    One output item as the client saw it: its C{added} and C{done} items and the events
    that named it.
    """

    def __init__(self, index: int, added: dict[str, Any]) -> None:
        self.index = index
        self.added = added
        self.done: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []

    def deltas(self, kind: str) -> list[str]:
        return [e["delta"] for e in self.events if e["type"] == kind]


def itemViews(events: list[dict[str, Any]]) -> list[ItemView]:
    views: dict[int, ItemView] = {}
    for event in events:
        index = event.get("output_index")
        if index is None:
            continue
        if event["type"] == "response.output_item.added":
            views[index] = ItemView(index, event["item"])
        elif event["type"] == "response.output_item.done":
            views[index].done = event["item"]
        else:
            views[index].events.append(event)
    return [views[i] for i in sorted(views)]


def messageText(item: dict[str, Any]) -> str:
    return "".join(part["text"] for part in item["content"])


def summaryText(item: dict[str, Any]) -> str:
    return "".join(part["text"] for part in item["summary"])


# -- reading the client side -------------------------------------------------------------------


class EventReader:
    """
    Read a streamed response event by event, keeping every byte for L{sdkcheck}.
    """

    def __init__(self, response: http.StreamingResponse) -> None:
        self.response = response
        self._parts: list[bytes] = []
        self._sse = wire.SSESplitter()
        self._pending: list[dict[str, Any]] = []
        self.ended = False
        self.seen: list[dict[str, Any]] = []

    def _more(self, timeout: float, parse: bool = True) -> bool:
        piece = self.response.readChunk(timeout)
        if piece is None:
            self.ended = True
            return False
        self._parts.append(piece)
        if parse:
            for event in self._sse.events(piece):
                data = event.json()
                data["_t"] = event.t
                self._pending.append(data)
        return True

    def next(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """
        The next event (its data), or L{None} at the end of the body.
        """
        deadline = time.monotonic() + timeout
        while not self._pending:
            if self.ended:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise http.ReadTimeout(f"no event within {timeout} s")
            self._more(remaining)
        event = self._pending.pop(0)
        self.seen.append(event)
        return event

    def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """
        Read until an event matches; each read within C{timeout}.
        """
        for _ in range(10_000):
            event = self.next(timeout)
            if event is None:
                raise AssertionError("the stream ended before the expected event")
            if predicate(event):
                return event
        raise AssertionError("too many events")

    def rest(self, timeout: float = 10.0) -> bytes:
        """
        Read to the end of the body (each read within C{timeout}); all the bytes.
        """
        while not self.ended:
            self._more(timeout, parse=False)
        return b"".join(self._parts)


class Exchange:
    """
    One request through the proxy: what the client got and what the upstream saw.
    """

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        upstream: Recorded | None,
        complete: bool,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.upstream = upstream
        self.complete = complete
        self.events: list[dict[str, Any]] = []
        self.document: Any = None

    def header(self, name: str) -> str | None:
        values = wire.headerValues(self.headers, name)
        return values[0] if values else None

    @property
    def chat(self) -> dict[str, Any]:
        assert self.upstream is not None
        return self.upstream.json()

    @property
    def terminal(self) -> dict[str, Any]:
        return self.events[-1]

    @property
    def response(self) -> dict[str, Any]:
        return self.events[-1]["response"]

    def items(self) -> list[ItemView]:
        return itemViews(self.events)


# -- the test base -----------------------------------------------------------------------------


class QuirkBase(SynchronousTestCase):
    """
    A fake chat upstream and the proxy in bridge mode, shared by the tests of a class.
    """

    tuning: str | None = None

    def setUp(self) -> None:
        self.fake, self.proxy = _BRIDGES.acquire(self.tuning)
        self.fake.reset()

    # -- driving

    def openStream(
        self, body: dict[str, Any], headers: list[tuple[str, str]] | None = None
    ) -> EventReader:
        response = http.openStream(
            self.proxy.port,
            "/v1/responses",
            body,
            headers=CLIENT_HEADERS if headers is None else headers,
            timeout=10,
        )
        self.addCleanup(response.close)
        return EventReader(response)

    def finishStream(self, reader: EventReader, timeout: float = 10.0) -> Exchange:
        """
        Read the rest, check the framing and every event, and the upstream request.
        """
        response = reader.response
        body = reader.rest(timeout)
        return self.checkStream(response.status, response.headers, body, response.complete)

    def checkStream(
        self, status: int, headers: list[tuple[str, str]], body: bytes, complete: bool
    ) -> Exchange:
        ex = Exchange(status, headers, body, None, complete)
        self.assertEqual(status, 200)
        self.assertTrue(complete, "the response body did not end cleanly")
        self.assertEqual(ex.header("content-type"), "text/event-stream")
        self.assertEqual(ex.header("cache-control"), "no-cache")
        self.assertIsNone(ex.header("openai-model"))
        [ex.upstream] = self.fake.waitRequests(1)
        ex.events = sdkcheck.validateEvents(body)
        self.checkIds(ex.events)
        self.checkUpstream(ex.upstream, stream=True)
        self.checkNoKey(body)
        if ex.terminal["type"] == "response.completed":
            self.checkAccumulated(ex)
        return ex

    def bigStream(self, spec: dict[str, Any], timeout: float = 20.0) -> Exchange:
        """
        L{stream} for replies of many megabytes: the whole response is read from the
        socket into one buffer (linear time), then checked the same way.
        """
        self.fake.enqueue(spec)
        payload = json.dumps(smallBody()).encode("utf-8")
        request = http.buildRequest(
            "POST", "/v1/responses", payload,
            [*CLIENT_HEADERS, ("Content-Type", "application/json")],
        )
        with http.RawConnection(self.proxy.port, timeout) as conn:
            conn.send(request)
            response = conn.readResponse(timeout)
        return self.checkStream(
            response.status, response.headers, response.body, response.complete
        )

    def stream(
        self,
        spec: dict[str, Any],
        body: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> Exchange:
        """
        Queue one reply, send one streaming request, read and check the whole stream.
        """
        self.fake.enqueue(spec)
        reader = self.openStream(smallBody() if body is None else body)
        return self.finishStream(reader, timeout)

    def post(self, spec: dict[str, Any], body: dict[str, Any]) -> Exchange:
        """
        Queue one reply, send one request, read the whole (non-SSE) response.
        """
        self.fake.enqueue(spec)
        resp = http.post(self.proxy.port, "/v1/responses", body, headers=CLIENT_HEADERS)
        [upstream] = self.fake.waitRequests(1)
        ex = Exchange(resp.status, resp.headers, resp.body, upstream, True)
        ex.document = json.loads(resp.body)
        self.checkUpstream(upstream, stream=bool(body.get("stream")))
        self.checkNoKey(resp.body)
        return ex

    def sdkStream(self, spec: dict[str, Any], **kwargs: Any) -> tuple[Response, dict[str, Any]]:
        """
        The same reply through the real OpenAI SDK client over HTTP.

        @return: C{get_final_response()} and the chat request the upstream received.
        """
        self.fake.reset()
        self.fake.enqueue(spec)
        client = openai.OpenAI(
            base_url=self.proxy.url("/v1"), api_key=CLIENT_KEY, max_retries=0, timeout=20
        )
        try:
            with client.responses.stream(**kwargs) as stream:
                final = stream.get_final_response()
        finally:
            client.close()
        [upstream] = self.fake.waitRequests(1)
        self.checkUpstream(upstream, stream=True, sdk=True)
        return final, upstream.json()

    # -- checks

    def checkUpstream(self, upstream: Recorded, stream: bool, sdk: bool = False) -> None:
        """
        The chat request: path, the proxy's key once, never the client's, the body's
        own headers, the client's provider headers forwarded.
        """
        self.assertEqual(upstream.method, "POST")
        self.assertEqual(upstream.target, CHAT_PATH)
        auth = upstream.headerValues("authorization")
        self.assertEqual(len(auth), 1, "Authorization must be sent exactly once")
        self.assertTrue(auth[0] == "Bearer " + KEY, "the upstream did not get the proxy's key")
        self.assertFalse(
            any(CLIENT_KEY in value for _, value in upstream.headers),
            "the client's key reached the upstream",
        )
        self.assertFalse(CLIENT_KEY.encode() in upstream.body, "client key in the chat body")
        self.assertEqual(upstream.headerValues("content-type"), ["application/json"])
        self.assertEqual(
            upstream.headerValues("accept"),
            ["text/event-stream" if stream else "application/json"],
        )
        self.assertEqual(upstream.headerValues("accept-encoding"), ["identity"])
        self.assertEqual(upstream.headerValues("content-length"), [str(len(upstream.body))])
        if not sdk:
            self.assertEqual(upstream.headerValues("x-title"), ["quirk-suite"])
        chat = upstream.json()
        if stream:
            self.assertIs(chat["stream"], True)
            self.assertEqual(chat["stream_options"], {"include_usage": True})
        else:
            self.assertFalse(chat.get("stream", False))
            self.assertNotIn("stream_options", chat)
        for dropped in ("input", "instructions", "store", "include", "prompt_cache_key"):
            self.assertNotIn(dropped, chat)
        for message in chat["messages"]:
            if message["role"] == "system":
                self.assertIsInstance(message["content"], str)

    def checkNoKey(self, data: bytes) -> None:
        self.assertFalse(KEY.encode() in data, "the proxy's key reached the client")

    def checkIds(self, events: list[dict[str, Any]]) -> None:
        """
        Every event that names an item uses the id of the item at its output index; one
        response id; C{added} and C{done} items agree on id, type, call id and name.
        """
        ids: dict[int, str] = {}
        for event in events:
            index = event.get("output_index")
            if event["type"] == "response.output_item.added":
                self.assertNotIn(event["item"]["id"], ids.values())
                ids[index] = event["item"]["id"]
            elif "item_id" in event:
                self.assertEqual(event["item_id"], ids[index], event["type"])
        for view in itemViews(events):
            if view.done is None:
                continue
            for key in ("id", "type", "call_id", "name", "namespace"):
                self.assertEqual(view.added.get(key), view.done.get(key), key)

    def checkAccumulated(self, ex: Exchange) -> Response:
        """
        The SDK's accumulator rebuilds the same response from the events.
        """
        final = sdkcheck.finalResponse(ex.events)
        response = ex.response
        self.assertEqual(final.id, response["id"])
        self.assertEqual(final.status, "completed")
        self.assertEqual([item.id for item in final.output], [i["id"] for i in response["output"]])
        texts = [messageText(i) for i in response["output"] if i["type"] == "message"]
        self.assertEqual(final.output_text, "".join(texts))
        return final

    def assertShape(self, events: list[dict[str, Any]], *parts: list[str]) -> None:
        expected: list[str] = []
        for part in parts:
            expected += part
        self.assertEqual(shape(events), expected)

    def assertCompleted(self, ex: Exchange, usage: dict[str, Any] | None = MAPPED_USAGE) -> None:
        response = ex.response
        self.assertEqual(ex.terminal["type"], "response.completed")
        self.assertEqual(response["status"], "completed")
        self.assertIsNone(response["error"])
        self.assertIsNone(response["incomplete_details"])
        self.assertEqual(response["usage"], usage)
        self.assertTrue(response["id"].startswith("resp_"))
        self.assertEqual(response["object"], "response")

    def assertFailed(self, ex: Exchange, code: str) -> dict[str, Any]:
        types = [e["type"] for e in ex.events]
        self.assertEqual(ex.terminal["type"], "response.failed")
        self.assertNotIn("response.completed", types)
        response = ex.response
        self.assertEqual(response["status"], "failed")
        self.assertEqual(response["error"]["code"], code)
        self.assertTrue(response["error"]["message"])
        return response["error"]

    def assertUpstreamReleased(self, ex: Exchange) -> None:
        """
        The proxy closed its upstream connection (the fake's reply was left open).
        """
        assert ex.upstream is not None
        self.fake.waitClosed(ex.upstream.conn, timeout=5)


# -- reasoning ---------------------------------------------------------------------------------


class ReasoningQuirkTests(QuirkBase):
    """
    The ways chat providers stream their thinking.
    """

    DEEPSEEK = sse(
        chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
        chunk({"content": None, "reasoning_content": "The user"}),
        chunk({"content": None, "reasoning_content": " wants a greeting."}),
        chunk({"content": "Hello", "reasoning_content": None}),
        chunk({"content": "! How can I help?", "reasoning_content": None}),
        chunk({"content": "", "reasoning_content": None}, "stop", DEEPSEEK_USAGE),
    )

    def test_deepseekReasoningContent(self) -> None:
        """
        DeepSeek's C{reasoning_content} deltas become a reasoning item (summary and the
        round-trip token), then the content a message; usage mapped with cache hits.
        """
        ex = self.stream(self.DEEPSEEK, codexBody("deepseek-reasoner"))
        chat = ex.chat
        self.assertEqual(chat["model"], "deepseek-reasoner")
        self.assertEqual(chat["messages"][0]["role"], "system")
        names = [tool["function"]["name"] for tool in chat["tools"]]
        self.assertIn("multi_agent_v1__spawn_agent", names)
        self.assertNotIn("web_search", names)
        self.assertNotIn("reasoning_effort", chat)  # summary only, no effort

        self.assertShape(ex.events, OPEN, REASONING, MESSAGE, COMPLETED)
        for opening in ex.events[:2]:
            response = opening["response"]
            self.assertEqual(response["status"], "in_progress")
            self.assertEqual(response["model"], "deepseek-reasoner")
            self.assertEqual(response["output"], [])
            self.assertIsNone(response["usage"])
            self.assertEqual(response["id"], ex.response["id"])
            self.assertEqual(response["created_at"], ex.response["created_at"])
        reasoning, message = ex.items()
        self.assertEqual(reasoning.index, 0)
        self.assertEqual(message.index, 1)
        self.assertTrue(reasoning.added["id"].startswith("rs_"))
        self.assertEqual(reasoning.added["summary"], [])
        self.assertEqual(summaryText(reasoning.done), "The user wants a greeting.")
        self.assertEqual(
            decodeReasoning(reasoning.done["encrypted_content"]), "The user wants a greeting."
        )
        self.assertTrue(message.added["id"].startswith("msg_"))
        self.assertEqual(message.done["role"], "assistant")
        self.assertEqual(message.done["status"], "completed")
        self.assertEqual(messageText(message.done), "Hello! How can I help?")
        self.assertCompleted(ex, DEEPSEEK_MAPPED)
        self.assertEqual(ex.response["model"], "deepseek-reasoner")

        final, chat = self.sdkStream(
            self.DEEPSEEK,
            model="deepseek-reasoner",
            instructions="Be brief.",
            input="Say hello.",
            reasoning={"effort": "high", "summary": "auto"},
        )
        self.assertEqual(
            chat["messages"],
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
        )
        self.assertEqual(chat["reasoning_effort"], "high")
        self.assertEqual(final.status, "completed")
        self.assertEqual([item.type for item in final.output], ["reasoning", "message"])
        self.assertEqual(final.output[0].summary[0].text, "The user wants a greeting.")
        self.assertEqual(final.output_text, "Hello! How can I help?")
        assert final.usage is not None
        self.assertEqual(final.usage.total_tokens, 960)
        self.assertEqual(final.usage.input_tokens_details.cached_tokens, 640)

    def test_kimiReasoningToolCallUsageInChoice(self) -> None:
        """
        Kimi: reasoning, then a call with Moonshot's C{functions.NAME:N} id; usage inside
        the choice with C{finish_reason}; the upstream then goes quiet without C{[DONE]}:
        the response ends at once and the upstream connection is let go.
        """
        spec = sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"reasoning_content": "List the files first."}),
            chunk({"tool_calls": [call(0, "functions.exec_command:0", "exec_command", "")]}),
            chunk({"tool_calls": [call(0, arguments='{"cmd": "ls"}')]}),
            chunk(
                choices=[
                    {"index": 0, "delta": {}, "finish_reason": "tool_calls", "usage": USAGE}
                ]
            ),
            done=False,
            then="hang",
        )
        ex = self.stream(spec, codexBody("kimi-k2-thinking"), timeout=3)
        self.assertShape(ex.events, OPEN, REASONING, CALL, COMPLETED)
        reasoning, fc = ex.items()
        self.assertEqual(summaryText(reasoning.done), "List the files first.")
        self.assertEqual(fc.index, 1)
        self.assertEqual(fc.done["type"], "function_call")
        self.assertEqual(fc.done["call_id"], "functions.exec_command:0")
        self.assertEqual(fc.done["name"], "exec_command")
        self.assertEqual(fc.done["arguments"], '{"cmd": "ls"}')
        self.assertEqual(fc.done["status"], "completed")
        self.assertCompleted(ex)
        self.assertUpstreamReleased(ex)

    def test_reasoningRoundTripForToolCallTurns(self) -> None:
        """
        DeepSeek and Kimi refuse a tool-call turn sent back without its
        C{reasoning_content}. Turn one's items, sent back by the client with the call's
        output, give an assistant message carrying the reasoning and the call, then the
        tool message.
        """
        spec = sse(
            chunk({"role": "assistant", "reasoning_content": "Need the date."}),
            chunk({"content": "Checking."}),
            chunk({"tool_calls": [call(0, "call_rt1", "exec_command", '{"cmd":"date"}')]}),
            chunk({}, "tool_calls", USAGE),
        )
        first = codexBody("deepseek-reasoner")
        ex = self.stream(spec, first)
        output = ex.response["output"]
        self.assertEqual([i["type"] for i in output], ["reasoning", "message", "function_call"])

        self.fake.reset()
        second = codexBody("deepseek-reasoner")
        second["input"] = first["input"] + output + [
            {"type": "function_call_output", "call_id": "call_rt1",
             "output": "Thu Jan  1 00:00:00 UTC 2026"}
        ]
        ex = self.stream(sse(chunk({"content": "It is 2026."}), chunk({}, "stop", USAGE)), second)
        messages = ex.chat["messages"]
        assistant, tool = messages[-2:]
        self.assertEqual(assistant["role"], "assistant")
        self.assertEqual(assistant["reasoning_content"], "Need the date.")
        self.assertEqual(assistant["content"], "Checking.")
        self.assertEqual(
            assistant["tool_calls"],
            [{"id": "call_rt1", "type": "function",
              "function": {"name": "exec_command", "arguments": '{"cmd":"date"}'}}],
        )
        self.assertEqual(
            tool, {"role": "tool", "tool_call_id": "call_rt1",
                   "content": "Thu Jan  1 00:00:00 UTC 2026"}
        )
        self.assertEqual(messageText(ex.items()[0].done), "It is 2026.")

    def test_openRouterReasoningAndProcessingComments(self) -> None:
        """
        OpenRouter: C{: OPENROUTER PROCESSING} comments, C{reasoning} deltas that repeat
        the text in C{reasoning_details} (used once), usage in a last chunk.
        """

        def details(text: str) -> list[dict[str, Any]]:
            return [{"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}]

        spec = raw(
            ": OPENROUTER PROCESSING\n\n",
            ": OPENROUTER PROCESSING\n\n",
            frame(
                chunk(
                    {"role": "assistant", "content": "", "reasoning": "Thinking",
                     "reasoning_details": details("Thinking")},
                    provider="DeepInfra",
                )
            ),
            ": OPENROUTER PROCESSING\n\n",
            frame(chunk({"content": "", "reasoning": " hard.",
                         "reasoning_details": details(" hard.")})),
            frame(chunk({"content": "Done.", "reasoning": None})),
            frame(chunk({"content": ""}, "stop", native_finish_reason="stop")),
            frame(
                chunk(
                    choices=[{"index": 0, "delta": {"content": ""}, "finish_reason": None}],
                    usage=dict(USAGE, cost=0.0012, is_byok=False),
                )
            ),
            frame("[DONE]"),
        )
        ex = self.stream(spec, smallBody("deepseek/deepseek-r1"))
        self.assertShape(ex.events, OPEN, REASONING, MESSAGE, COMPLETED)
        reasoning, message = ex.items()
        self.assertEqual(summaryText(reasoning.done), "Thinking hard.")
        self.assertEqual(
            reasoning.deltas("response.reasoning_summary_text.delta"), ["Thinking", " hard."]
        )
        self.assertEqual(messageText(message.done), "Done.")
        self.assertCompleted(ex)

    def test_thinkTagsSplitAcrossChunks(self) -> None:
        """
        A leading C{<think>...</think>} in content, both tags split across chunks: the
        inside is reasoning, the rest the message, no tag text anywhere.
        """
        spec = sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "<th"}),
            chunk({"content": "ink>\nI should"}),
            chunk({"content": " greet.\n</"}),
            chunk({"content": "think>\n\nHi"}),
            chunk({"content": " there!"}),
            chunk({}, "stop"),
            chunk(usage=USAGE),
        )
        ex = self.stream(spec, smallBody("qwq-32b"))
        self.assertShape(ex.events, OPEN, REASONING, MESSAGE, COMPLETED)
        reasoning, message = ex.items()
        self.assertEqual(summaryText(reasoning.done).strip(), "I should greet.")
        self.assertEqual(messageText(message.done), "Hi there!")
        self.assertNotIn("think>", ex.body.decode("utf-8"))
        self.assertNotIn("<th", ex.body.decode("utf-8"))
        self.assertCompleted(ex)


    def test_emptyThinkBlock(self) -> None:
        """
        Qwen3 with thinking switched off (Ollama, vLLM without a reasoning parser)
        starts its content with an empty C{<think>\\n\\n</think>}: no reasoning item (an
        empty one would show as a blank summary and go back as C{reasoning_content}),
        just the message. Whitespace-only C{reasoning_content} opens nothing either.
        """
        spec = sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "<think>\n\n</think>\n\n"}),
            chunk({"content": "Hello!"}),
            chunk({}, "stop", USAGE),
        )
        ex = self.stream(spec, smallBody("qwen3:32b"))
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        self.assertEqual(messageText(ex.items()[0].done), "Hello!")

        self.fake.reset()
        spec = sse(
            chunk({"role": "assistant", "content": "", "reasoning_content": "\n"}),
            chunk({"reasoning_content": "\n\n"}),
            chunk({"tool_calls": [call(0, "call_ws", "exec_command", '{"cmd":"ls"}')]}),
            chunk({}, "tool_calls", USAGE),
        )
        ex = self.stream(spec, codexBody("deepseek-reasoner"))
        self.assertShape(ex.events, OPEN, CALL, COMPLETED)


# -- tool calls --------------------------------------------------------------------------------


PATCH = (
    "*** Begin Patch\n"
    "*** Add File: hello.txt\n"
    "+Hello, \"world\" \\o/ \u4e16\u754c\n"
    "*** Update File: src/app.py\n"
    "@@ def main():\n"
    "-    print('hi')\n"
    "+    print(\"hello\")\n"
    "*** End Patch\n"
)


class ToolCallQuirkTests(QuirkBase):
    """
    The ways chat providers stream tool calls.
    """

    def test_vllmIndexOnlyContinuation(self) -> None:
        """
        vLLM: a whitespace-only content delta before the call (no message item), the id
        and name in the first tool-call delta, then deltas that carry only C{index}.
        """
        spec = sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "\n\n"}),
            chunk({"tool_calls": [call(0, "chatcmpl-tool-9f2c", "exec_command", "")]}),
            chunk({"tool_calls": [call(0, arguments='{"cmd": ')]}),
            chunk({"tool_calls": [call(0, arguments='"ls -la", ')]}),
            chunk({"tool_calls": [call(0, arguments='"workdir": "/tmp"}')]}),
            chunk({"content": None}, "tool_calls"),
            chunk(usage=USAGE),
        )
        ex = self.stream(spec, codexBody("Qwen/Qwen3-Coder-30B-A3B-Instruct"))
        self.assertEqual(ex.chat["tool_choice"], "auto")
        self.assertIs(ex.chat["parallel_tool_calls"], True)
        self.assertShape(ex.events, OPEN, CALL, COMPLETED)
        [fc] = ex.items()
        self.assertEqual(fc.index, 0)
        self.assertTrue(fc.added["id"].startswith("fc_"))
        self.assertEqual(fc.added["arguments"], "")
        self.assertEqual(fc.added["name"], "exec_command")
        self.assertEqual(fc.done["call_id"], "chatcmpl-tool-9f2c")
        self.assertEqual(fc.done["arguments"], '{"cmd": "ls -la", "workdir": "/tmp"}')
        self.assertEqual(fc.done["status"], "completed")
        self.assertNotIn("namespace", fc.done)
        self.assertEqual(
            "".join(fc.deltas("response.function_call_arguments.delta")), fc.done["arguments"]
        )
        self.assertCompleted(ex)

    def test_llamaCppPythonFunctionCallBesideToolCalls(self) -> None:
        """
        llama-cpp-python: every chunk carries the same call in C{function_call} and in
        C{tool_calls[0]}; the client gets one call with its arguments once, streamed and
        as a whole (C{stream: false}) reply.
        """
        pieces = ['{"cmd": ', '"ls"', "}"]

        def both(arguments: str) -> dict[str, Any]:
            return chunk({
                "function_call": {"name": "exec_command", "arguments": arguments},
                "tool_calls": [call(0, "call__0_exec_command_cmpl-1", "exec_command",
                                    arguments)],
            })

        spec = sse(chunk({"role": "assistant", "content": None}),
                   *[both(piece) for piece in pieces], chunk({}, "tool_calls"))
        ex = self.stream(spec, codexBody("llama-cpp-python"))
        self.assertShape(ex.events, OPEN, CALL, COMPLETED)
        [fc] = ex.items()
        self.assertEqual(fc.done["call_id"], "call__0_exec_command_cmpl-1")
        self.assertEqual(fc.done["arguments"], '{"cmd": "ls"}')
        self.assertEqual(fc.deltas("response.function_call_arguments.delta"), pieces)

        self.fake.reset()
        function = {"name": "exec_command", "arguments": '{"cmd": "ls"}'}
        completion = copy.deepcopy(COMPLETION)
        completion["choices"][0]["message"] = {
            "role": "assistant", "content": None, "function_call": function,
            "tool_calls": [{"id": "call__0_exec_command_cmpl-1", "type": "function",
                            "function": function}],
        }
        body = smallBody("llama-cpp-python", stream=False,
                         tools=[toolDef(_A001, "exec_command")])
        ex = self.post({"body": json.dumps(completion)}, body)
        self.assertEqual(ex.status, 200)
        [item] = ex.document["output"]
        self.assertEqual((item["name"], item["arguments"]), ("exec_command", '{"cmd": "ls"}'))

    def test_ollamaWholeCallsInOneChunkWithoutIndex(self) -> None:
        """
        Ollama: two whole calls in one chunk, without C{index}, then C{finish_reason}
        C{stop} with usage: two calls, completed.
        """
        spec = sse(
            chunk(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "call_8zq1", "type": "function",
                         "function": {"name": "exec_command", "arguments": '{"cmd":"pwd"}'}},
                        {"id": "call_8zq2", "type": "function",
                         "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'}},
                    ],
                }
            ),
            chunk({"role": "assistant", "content": ""}, "stop", USAGE),
        )
        ex = self.stream(spec, codexBody("qwen3:8b"))
        self.assertShape(ex.events, OPEN, calls(2), COMPLETED)
        first, second = ex.items()
        self.assertEqual((first.index, second.index), (0, 1))
        self.assertEqual(first.done["call_id"], "call_8zq1")
        self.assertEqual(first.done["arguments"], '{"cmd":"pwd"}')
        self.assertEqual(second.done["call_id"], "call_8zq2")
        self.assertEqual(second.done["arguments"], '{"cmd":"ls"}')
        self.assertNotEqual(first.done["id"], second.done["id"])
        self.assertCompleted(ex)

        # Ollama versions that number every call 0: a known index with a new id is a
        # new call, in one chunk or in two.
        for chunks in [
            [chunk({"tool_calls": [call(0, "call_o1", "exec_command", '{"cmd":"pwd"}'),
                                   call(0, "call_o2", "exec_command", '{"cmd":"ls"}')]})],
            [chunk({"tool_calls": [call(0, "call_o1", "exec_command", '{"cmd":"pwd"}')]}),
             chunk({"tool_calls": [call(0, "call_o2", "exec_command", '{"cmd":"ls"}')]})],
        ]:
            self.fake.reset()
            ex = self.stream(sse(*chunks, chunk({}, "tool_calls", USAGE)), codexBody("qwen3:8b"))
            self.assertShape(ex.events, OPEN, calls(2), COMPLETED)
            self.assertEqual(
                [(c.done["call_id"], c.done["arguments"]) for c in ex.items()],
                [("call_o1", '{"cmd":"pwd"}'), ("call_o2", '{"cmd":"ls"}')],
            )

    PARALLEL = sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [call(0, "call_a", "exec_command", "")]}),
        chunk({"tool_calls": [call(0, arguments='{"cmd":')]}),
        chunk({"tool_calls": [call(1, "call_b", "exec_command", "")]}),
        chunk({"tool_calls": [call(1, arguments='{"cmd":')]}),
        chunk({"tool_calls": [call(0, arguments='"git status"}')]}),
        chunk({"tool_calls": [call(2, "call_c", "view_image", '{"path":')]}),
        chunk({"tool_calls": [call(1, arguments='"git diff"}')]}),
        chunk({"tool_calls": [call(2, arguments='"/tmp/a.png"}')]}),
        chunk({}, "tool_calls"),
        chunk(usage=USAGE),
    )

    def test_threeInterleavedParallelCalls(self) -> None:
        """
        Three calls whose deltas interleave: items open in order of first delta, deltas
        go to the right item, each C{done} has its whole arguments.
        """
        ex = self.stream(self.PARALLEL, codexBody("deepseek-chat"))
        calls = ex.items()
        self.assertEqual([c.index for c in calls], [0, 1, 2])
        self.assertEqual([c.done["call_id"] for c in calls], ["call_a", "call_b", "call_c"])
        self.assertEqual(
            [c.done["name"] for c in calls], ["exec_command", "exec_command", "view_image"]
        )
        self.assertEqual(
            [c.done["arguments"] for c in calls],
            ['{"cmd":"git status"}', '{"cmd":"git diff"}', '{"path":"/tmp/a.png"}'],
        )
        deltaOrder = [
            e["output_index"]
            for e in ex.events
            if e["type"] == "response.function_call_arguments.delta"
        ]
        self.assertEqual(deltaOrder, [0, 1, 0, 2, 1, 2])
        # Items close together at the finish, in output_index order.
        self.assertEqual(
            shape(ex.events)[-8:],
            ["response.function_call_arguments.delta*"]
            + ["response.function_call_arguments.done", "response.output_item.done"] * 3
            + COMPLETED,
        )
        self.assertEqual(
            [e["output_index"] for e in ex.events if e["type"] == "response.output_item.done"],
            [0, 1, 2],
        )
        self.assertCompleted(ex)

        tools = [toolDef(_A001, "exec_command"), toolDef(_A001, "view_image")]
        final, chat = self.sdkStream(
            self.PARALLEL, model="deepseek-chat", input="Check the repo.", tools=tools
        )
        self.assertEqual(
            [t["function"]["name"] for t in chat["tools"]], ["exec_command", "view_image"]
        )
        self.assertEqual(final.status, "completed")
        self.assertEqual([item.type for item in final.output], ["function_call"] * 3)
        self.assertEqual(
            [(item.call_id, item.name, item.arguments) for item in final.output],
            [
                ("call_a", "exec_command", '{"cmd":"git status"}'),
                ("call_b", "exec_command", '{"cmd":"git diff"}'),
                ("call_c", "view_image", '{"path":"/tmp/a.png"}'),
            ],
        )

    def test_callsWithoutId(self) -> None:
        """
        Calls with no upstream id (and no index, one whole call per chunk) get generated
        C{call_...} ids, unique and the same in C{added} and C{done}.
        """
        spec = sse(
            chunk({"role": "assistant"}),
            chunk({"tool_calls": [call(name="exec_command", arguments='{"cmd":"pwd"}')]}),
            chunk({"tool_calls": [call(name="exec_command", arguments='{"cmd":"id"}')]}),
            chunk({}, "tool_calls", USAGE),
        )
        ex = self.stream(spec, codexBody("llama3.1"))
        self.assertShape(ex.events, OPEN, calls(2), COMPLETED)
        first, second = ex.items()
        for view in (first, second):
            self.assertRegex(view.added["call_id"], CALL_ID)
            self.assertEqual(view.added["call_id"], view.done["call_id"])
        self.assertNotEqual(first.done["call_id"], second.done["call_id"])
        self.assertEqual(first.done["arguments"], '{"cmd":"pwd"}')
        self.assertEqual(second.done["arguments"], '{"cmd":"id"}')
        self.assertCompleted(ex)

    def patchSpec(self) -> dict[str, Any]:
        arguments = json.dumps({"input": PATCH}, ensure_ascii=False)
        # Split everywhere awkward: inside the key, right after a backslash, inside the
        # \" escapes, inside the CJK text.
        cuts = [3, 11, arguments.index("\\n") + 1, arguments.index('\\"') + 1,
                arguments.index("\u4e16") + 1, len(arguments) - 2]
        pieces = [arguments[a:b] for a, b in zip([0, *cuts], [*cuts, len(arguments)], strict=True)]
        self.assertEqual("".join(pieces), arguments)
        return sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "I'll add the file."}),
            chunk({"tool_calls": [call(0, "call_patch1", "apply_patch", "")]}),
            *[chunk({"tool_calls": [call(0, arguments=piece)]}) for piece in pieces],
            chunk({}, "tool_calls"),
            chunk(usage=USAGE),
        )

    def test_customToolApplyPatch(self) -> None:
        """
        The freeform C{apply_patch} tool goes up as a function with one string
        parameter C{input}; the model's call comes back as a C{custom_tool_call} whose
        C{input} is the raw patch, streamed as input deltas.
        """
        ex = self.stream(self.patchSpec(), patchBody())
        [tool] = [t for t in ex.chat["tools"] if t["function"]["name"] == "apply_patch"]
        self.assertEqual(tool["type"], "function")
        parameters = tool["function"]["parameters"]
        self.assertEqual(parameters["required"], ["input"])
        self.assertEqual(parameters["properties"]["input"]["type"], "string")
        self.assertIn("lark grammar", tool["function"]["description"])
        self.assertIn("begin_patch", tool["function"]["description"])
        self.assertNotIn("custom", [t["type"] for t in ex.chat["tools"]])
        self.assertEqual(ex.chat["reasoning_effort"], "medium")

        self.assertShape(ex.events, OPEN, MESSAGE, CUSTOM_CALL, COMPLETED)
        message, patch = ex.items()
        self.assertEqual(messageText(message.done), "I'll add the file.")
        self.assertEqual(patch.index, 1)
        self.assertEqual(patch.added["type"], "custom_tool_call")
        self.assertTrue(patch.added["id"].startswith("ctc_"))
        self.assertEqual(patch.added["input"], "")
        self.assertEqual(patch.done["name"], "apply_patch")
        self.assertEqual(patch.done["call_id"], "call_patch1")
        self.assertEqual(patch.done["input"], PATCH)
        self.assertEqual("".join(patch.deltas("response.custom_tool_call_input.delta")), PATCH)
        self.assertCompleted(ex)

        final, chat = self.sdkStream(
            self.patchSpec(),
            model="qwen3-coder-plus",
            input="Add hello.txt.",
            tools=[toolDef(_GPT55, "apply_patch")],
        )
        self.assertEqual([t["function"]["name"] for t in chat["tools"]], ["apply_patch"])
        self.assertEqual([item.type for item in final.output], ["message", "custom_tool_call"])
        self.assertEqual(final.output[1].input, PATCH)
        self.assertEqual(final.output[1].call_id, "call_patch1")

    def test_localShellAndEmptyArguments(self) -> None:
        """
        The C{local_shell} tool goes up as a function; its call comes back as a
        C{local_shell_call} with the action. A call whose arguments never came gets
        C{{}}.
        """
        body = codexBody("gpt-oss-120b")
        body["tools"] = [{"type": "local_shell"}, toolDef(_A001, "get_goal")]
        spec = sse(
            chunk({"role": "assistant", "content": None}),
            chunk({"tool_calls": [call(0, "call_sh1", "local_shell", "")]}),
            chunk({"tool_calls": [call(0, arguments='{"command": ["ls", "-la"], ')]}),
            chunk({"tool_calls": [call(0, arguments='"workdir": "/tmp", "timeout_ms": 5000}')]}),
            chunk({"tool_calls": [call(1, "call_goal", "get_goal")]}),
            chunk({}, "tool_calls", USAGE),
        )
        ex = self.stream(spec, body)
        [shell] = [t for t in ex.chat["tools"] if t["function"]["name"] == "local_shell"]
        self.assertEqual(shell["function"]["parameters"]["properties"]["command"]["type"],
                         "array")
        shellCall, goal = ex.items()
        self.assertEqual(shellCall.added["type"], "local_shell_call")
        self.assertTrue(shellCall.added["id"].startswith("lsc_"))
        self.assertEqual(shellCall.done["call_id"], "call_sh1")
        self.assertEqual(shellCall.done["status"], "completed")
        action = shellCall.done["action"]
        self.assertEqual(action["type"], "exec")
        self.assertEqual(action["command"], ["ls", "-la"])
        self.assertEqual(action["working_directory"], "/tmp")
        self.assertEqual(action["timeout_ms"], 5000)
        self.assertEqual(goal.done["name"], "get_goal")
        self.assertEqual(goal.done["arguments"], "{}")
        self.assertEqual(goal.deltas("response.function_call_arguments.delta"), ["{}"])
        self.assertCompleted(ex)

    def test_mcpToolWithAliasedName(self) -> None:
        """
        An MCP namespace (C{mcp__server__}) whose tool name is not a valid chat name
        goes up under a stable alias; the call comes back with the real name and
        namespace.
        """
        body = codexBody("deepseek-chat")
        body["tools"].append({
            "type": "namespace",
            "name": "mcp__docs__",
            "description": "Docs server.",
            "tools": [{"type": "function", "name": "search.query", "strict": False,
                       "description": "Search the docs.",
                       "parameters": {"type": "object",
                                      "properties": {"q": {"type": "string"}},
                                      "required": ["q"]}}],
        })
        alias = flattenToolName("mcp__docs__", "search.query")
        self.assertRegex(alias, r"\Amcp__docs__search_query_[0-9a-f]{10}\Z")
        spec = sse(
            chunk({"tool_calls": [call(0, "call_mcp", alias, '{"q": "retry"}')]}),
            chunk({}, "tool_calls", USAGE),
        )
        ex = self.stream(spec, body)
        self.assertIn(alias, [t["function"]["name"] for t in ex.chat["tools"]])
        [fc] = ex.items()
        for item in (fc.added, fc.done):
            self.assertEqual(item["name"], "search.query")
            self.assertEqual(item["namespace"], "mcp__docs__")
        self.assertEqual(fc.done["arguments"], '{"q": "retry"}')

    def test_namespaceToolCall(self) -> None:
        """
        A/001 exactly as Codex sent it converts to the reviewed golden chat request; a
        call to the flattened C{multi_agent_v1__spawn_agent} comes back as a
        C{function_call} with C{name} and C{namespace} restored.
        """
        arguments = '{"message":"run the tests","agent_type":"worker"}'
        spec = sse(
            chunk({"role": "assistant", "content": None}),
            chunk({"tool_calls": [call(0, "call_ns1", "multi_agent_v1__spawn_agent", "")]}),
            chunk({"tool_calls": [call(0, arguments=arguments[:20])]}),
            chunk({"tool_calls": [call(0, arguments=arguments[20:])]}),
            chunk({}, "tool_calls"),
            chunk(usage=USAGE),
        )
        ex = self.stream(spec, copy.deepcopy(_A001))
        self.assertEqual(ex.chat, json.loads((GOLDEN / "A-001.json").read_text()))
        self.assertShape(ex.events, OPEN, CALL, COMPLETED)
        [fc] = ex.items()
        for item in (fc.added, fc.done):
            self.assertEqual(item["type"], "function_call")
            self.assertEqual(item["name"], "spawn_agent")
            self.assertEqual(item["namespace"], "multi_agent_v1")
            self.assertEqual(item["call_id"], "call_ns1")
        self.assertEqual(fc.done["arguments"], arguments)
        self.assertCompleted(ex)
        self.assertEqual(ex.response["output"][0]["namespace"], "multi_agent_v1")
        # The request's own tools and choices are echoed, hosted and namespace tools too.
        for event in (ex.events[0], ex.terminal):
            self.assertEqual(event["response"]["tools"], _A001["tools"])
            self.assertEqual(event["response"]["tool_choice"], "auto")
            self.assertIs(event["response"]["parallel_tool_calls"], True)


# -- framing -----------------------------------------------------------------------------------


def gatedPieces(data: bytes, cuts: list[int]) -> list[Any]:
    """
    C{data} cut at byte offsets, each later piece behind its own gate C{g1}, C{g2}...
    """
    pieces: list[Any] = []
    bounds = [0, *cuts, len(data)]
    for number, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        if number:
            pieces.append({"gate": f"g{number}"})
        pieces.append(data[a:b])
    return pieces


class FramingQuirkTests(QuirkBase):
    """
    Tolerated upstream framing (bridge-spec section 2.7).
    """

    def textSpec(self, *texts: str, **fields: Any) -> dict[str, Any]:
        return sse(
            chunk({"role": "assistant", "content": ""}),
            *[chunk({"content": text}) for text in texts],
            chunk({}, "stop"),
            chunk(usage=USAGE),
            **fields,
        )

    def test_usageOnlyLastChunkWithEmptyChoices(self) -> None:
        """
        OpenAI's last chunk: C{choices: []} and the usage. The terminal event is sent at
        once (no C{[DONE]}, the upstream left open), with the upstream's own numbers.
        """
        spec = sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hi."}),
            chunk({}, "stop"),
            chunk(usage=USAGE, system_fingerprint="fp_1"),
            done=False,
            then="hang",
        )
        ex = self.stream(spec, timeout=3)
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        self.assertCompleted(ex, MAPPED_USAGE)
        self.assertUpstreamReleased(ex)

    def test_noDoneEndOfStream(self) -> None:
        """
        No C{[DONE]}: EOF after finish and usage completes with the usage; EOF after
        C{finish_reason} alone completes at once with C{usage: null}.
        """
        ex = self.stream(self.textSpec("Hello", done=False))
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        self.assertCompleted(ex, MAPPED_USAGE)

        self.fake.reset()
        spec = sse(chunk({"content": "Bye"}), chunk({}, "stop"), done=False)
        started = time.monotonic()
        ex = self.stream(spec, timeout=3)
        self.assertLess(time.monotonic() - started, 3)  # EOF, not the 5 s tail wait
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        self.assertCompleted(ex, None)
        self.assertEqual(messageText(ex.items()[0].done), "Bye")

    def test_crlfLineEnds(self) -> None:
        """
        CRLF line ends (one split across TCP writes, CR in one, LF in the next),
        C{event:}/C{id:}/C{retry:} lines and comments are all tolerated.
        """
        first = (
            ": keep-alive\r\n\r\n"
            "retry: 3000\r\n\r\n"
            + "event: message\r\nid: 1\r\n"
            + frame(chunk({"role": "assistant", "content": ""}), eol="\r\n")
            + "id: 2\r\n"
            + frame(chunk({"content": "Hello"}), eol="\r\n")
            + "data: " + json.dumps(chunk({"content": " world"})) + "\r"
        )
        second = (
            "\n\r\n"
            + frame(chunk({}, "stop"), eol="\r\n")
            + frame(chunk(usage=USAGE), eol="\r\n")
            + "data: [DONE]\r\n\r\n"
        )
        self.fake.enqueue(raw(first, {"gate": "lf"}, second))
        reader = self.openStream(smallBody())
        reader.until(lambda e: e["type"] == "response.output_text.delta")
        self.fake.release("lf")
        ex = self.finishStream(reader)
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        [message] = ex.items()
        self.assertEqual(message.deltas("response.output_text.delta"), ["Hello", " world"])
        self.assertEqual(messageText(message.done), "Hello world")
        self.assertCompleted(ex)

    def test_dataWithoutSpace(self) -> None:
        """
        C{data:} without a space after the colon, C{[DONE]} included.
        """
        spec = raw(
            frame(chunk({"role": "assistant", "content": ""}), space=False),
            frame(chunk({"content": "Compact"}), space=False),
            frame(chunk({"content": " framing."}), space=False),
            frame(chunk({}, "stop"), space=False),
            frame(chunk(usage=USAGE), space=False),
            "data:[DONE]\n\n",
        )
        ex = self.stream(spec)
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        self.assertEqual(messageText(ex.items()[0].done), "Compact framing.")
        self.assertCompleted(ex)

    ROLE_ONLY = sse(
        # Azure: a first chunk with empty choices and prompt filter results.
        chunk(prompt_filter_results=[{"prompt_index": 0, "content_filter_results": {}}]),
        chunk({"role": "assistant"}),
        chunk({"content": ""}),
        chunk({}),
        chunk(choices=[]),
        chunk({"content": "Hi"}),
        chunk({}),
        chunk({"content": None, "tool_calls": []}),
        chunk({"content": "!"}),
        chunk(choices=[]),
        chunk({}, "stop"),
        chunk(usage=USAGE),
    )

    def test_roleOnlyFirstChunkEmptyDeltasEmptyChoices(self) -> None:
        """
        A role-only first chunk, empty deltas, C{content: ""}, empty C{tool_calls} and
        chunks with empty C{choices} open nothing: exactly one message, two deltas.
        """
        ex = self.stream(self.ROLE_ONLY)
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        [message] = ex.items()
        self.assertEqual(message.deltas("response.output_text.delta"), ["Hi", "!"])
        self.assertEqual(messageText(message.done), "Hi!")
        self.assertCompleted(ex)

        final, chat = self.sdkStream(self.ROLE_ONLY, model="gpt-4o-mini", input="Greet me.")
        self.assertEqual(chat["messages"], [{"role": "user", "content": "Greet me."}])
        self.assertEqual(final.status, "completed")
        self.assertEqual(final.output_text, "Hi!")
        assert final.usage is not None
        self.assertEqual(final.usage.output_tokens, 80)

    def test_multiByteCharactersSplitAcrossWrites(self) -> None:
        """
        Raw UTF-8 (an accented letter, an emoji, CJK) cut inside characters across TCP
        writes arrives whole; each write is held back by a gate until the client has
        seen the text before it.
        """
        texts = ["A", "Caf\u00e9 ", "\U0001f44b\U0001f3fd ", "\u4e16\u754c", "\u3002"]
        body = "".join(frame(chunk({"content": text})) for text in texts).encode("utf-8")
        head = frame(chunk({"role": "assistant", "content": ""})).encode("utf-8")
        tail = (frame(chunk({}, "stop")) + frame(chunk(usage=USAGE)) + frame("[DONE]")).encode()
        data = head + body + tail
        cuts = [
            data.index("\u00e9".encode()) + 1,  # inside the 2-byte \u00e9
            data.index("\U0001f3fd".encode()) + 2,  # inside the 4-byte skin-tone modifier
            data.index("\u4e16".encode()) + 1,  # inside a 3-byte CJK character
            data.index("\u3002".encode()) + 2,  # inside the last byte of another
        ]
        self.fake.enqueue(raw(*gatedPieces(data, cuts)))
        reader = self.openStream(smallBody())
        # Each piece ends inside a character of the event after a whole one: the client
        # sees that whole event's delta before the next piece is let go.
        for gate in ["g1", "g2", "g3", "g4"]:
            reader.until(lambda e: e["type"] == "response.output_text.delta")
            self.fake.release(gate)
        ex = self.finishStream(reader)
        [message] = ex.items()
        self.assertEqual(message.deltas("response.output_text.delta"), texts)
        self.assertEqual(messageText(message.done), "".join(texts))
        self.assertCompleted(ex)

    def test_fiveMiBDataLine(self) -> None:
        """
        One content delta of 5 MiB (multi-byte text) in one C{data:} line arrives intact.
        """
        unit = "lorem ipsum \u4e16\u754c \U0001f642 0123456789\n"
        text = unit * (5 * MiB // len(unit.encode("utf-8")) + 1)
        line = frame(chunk({"content": text}))
        self.assertGreater(len(line.encode("utf-8")), 5 * MiB)
        spec = raw(
            frame(chunk({"role": "assistant", "content": ""})),
            line,
            frame(chunk({}, "stop", USAGE)),
            frame("[DONE]"),
        )
        ex = self.bigStream(spec)
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        [message] = ex.items()
        deltas = message.deltas("response.output_text.delta")
        self.assertEqual(len(deltas), 1)
        self.assertTrue(deltas[0] == text, "the 5 MiB delta was altered")
        self.assertTrue(messageText(message.done) == text, "the done text was altered")
        self.assertCompleted(ex)

    def test_sixteenMiBDataLine(self) -> None:
        """
        A C{data:} line of exactly 16 MiB (the least the spec allows) still passes.
        """
        head = 'data: {"choices":[{"index":0,"delta":{"content":"'
        tail = '"}}]}'
        text = "y" * (16 * MiB - len(head) - len(tail))
        line = head + text + tail
        self.assertEqual(len(line), 16 * MiB)
        ex = self.bigStream(raw(line + "\n\n", frame(chunk({}, "stop", USAGE))), timeout=30)
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        self.assertTrue(messageText(ex.items()[0].done) == text, "the 16 MiB text was altered")

    def test_lineOver16MiBFailsCleanly(self) -> None:
        """
        A C{data:} line over 16 MiB fails the stream with C{response.failed}
        (C{server_error}); the response ends (not hung), the upstream connection is
        closed, and the proxy serves the next request.
        """
        long = 'data: {"choices":[{"index":0,"delta":{"content":"' + "x" * (16 * MiB + 64)
        spec = raw(
            frame(chunk({"role": "assistant", "content": ""})),
            frame(chunk({"content": "Start"})),
            long,
            then="hang",
        )
        ex = self.bigStream(spec)
        error = self.assertFailed(ex, "server_error")
        self.assertIn("size limit", error["message"])
        self.assertEqual(
            shape(ex.events),
            OPEN + MESSAGE[:3] + ["response.failed"],
        )
        self.assertEqual(ex.response["output"], [])  # the open message is not closed
        self.assertUpstreamReleased(ex)

        self.fake.reset()
        ex = self.stream(self.textSpec("Still here."))
        self.assertEqual(messageText(ex.items()[0].done), "Still here.")


    def test_sseLabelledAsJSON(self) -> None:
        """
        A chat stream sent with a wrong content type (C{application/json},
        C{text/plain}): its events are relayed as they arrive. (That data flowing for
        longer than the silence limit is not silence: test_bridge_memory, on a fake clock.)
        """
        for contentType in ["application/json", "text/plain; charset=utf-8"]:
            self.fake.reset()
            parts = [frame(chunk({"content": f"part{i} "})) for i in range(1, 8)]
            spec = raw(
                frame(chunk({"role": "assistant", "content": ""})),
                frame(chunk({"content": "part0 "})),
                {"gate": "more"},
                *parts,
                frame(chunk({}, "stop", USAGE)),
                frame("[DONE]"),
                headers=[["content-type", contentType]],
            )
            self.fake.enqueue(spec)
            reader = self.openStream(smallBody())
            # Relayed as it arrives: the first delta comes while the rest is held back.
            reader.until(lambda e: e["type"] == "response.output_text.delta", timeout=3)
            self.fake.release("more")
            terminal = reader.until(lambda e: e["type"] in sdkcheck.TERMINAL_TYPES, timeout=3)
            self.assertEqual(terminal["type"], "response.completed", terminal["response"])
            ex = self.finishStream(reader)
            self.assertShape(withoutKeepAlives(ex.events), OPEN, MESSAGE, COMPLETED)
            text = "".join(f"part{i} " for i in range(8))
            self.assertEqual(messageText(ex.items()[0].done), text)
            self.assertCompleted(ex)


# -- endings -----------------------------------------------------------------------------------


class EndingQuirkTests(QuirkBase):
    """
    How a reply can end: length, content filter, an error object, a cut.
    """

    def test_lengthIncompleteKeepsTextDropsHalfCall(self) -> None:
        """
        C{length} after text and a call cut inside its JSON: C{response.incomplete}
        (C{max_output_tokens}); the text is kept, the half call never gets a C{done}.
        """
        spec = sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Let me look "}),
            chunk({"content": "at the files."}),
            chunk({"tool_calls": [call(0, "call_len", "exec_command", "")]}),
            chunk({"tool_calls": [call(0, arguments='{"cmd": "ls -')]}),
            chunk({}, "length"),
            chunk(usage=USAGE),
        )
        ex = self.stream(spec, codexBody("deepseek-chat", max_output_tokens=64))
        self.assertEqual(ex.chat["max_tokens"], 64)
        self.assertEqual(
            shape(ex.events),
            OPEN + MESSAGE
            + ["response.output_item.added", "response.function_call_arguments.delta*",
               "response.incomplete"],
        )
        message, half = ex.items()
        self.assertIsNone(half.done)
        self.assertEqual(messageText(message.done), "Let me look at the files.")
        response = ex.response
        self.assertEqual(response["status"], "incomplete")
        self.assertEqual(response["incomplete_details"], {"reason": "max_output_tokens"})
        self.assertEqual([item["type"] for item in response["output"]], ["message"])
        self.assertEqual(response["usage"], MAPPED_USAGE)
        self.assertIsNone(response["error"])

    def test_lengthTextOnly(self) -> None:
        """
        C{length} during text: the message closes with what arrived, C{incomplete}.
        """
        spec = sse(chunk({"content": "The answer is"}), chunk({}, "length", USAGE))
        ex = self.stream(spec)
        self.assertShape(ex.events, OPEN, MESSAGE, ["response.incomplete"])
        [message] = ex.items()
        self.assertEqual(message.done["status"], "incomplete")
        self.assertEqual(messageText(message.done), "The answer is")
        self.assertEqual(ex.response["incomplete_details"], {"reason": "max_output_tokens"})

    def test_contentFilterIncomplete(self) -> None:
        """
        C{content_filter}: C{response.incomplete}, reason C{content_filter}.
        """
        spec = sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "I can"}),
            chunk({}, "content_filter"),
            chunk(usage=USAGE),
        )
        ex = self.stream(spec)
        self.assertShape(ex.events, OPEN, MESSAGE, ["response.incomplete"])
        [message] = ex.items()
        self.assertEqual(message.done["status"], "incomplete")
        self.assertEqual(messageText(message.done), "I can")
        self.assertEqual(ex.response["status"], "incomplete")
        self.assertEqual(ex.response["incomplete_details"], {"reason": "content_filter"})
        self.assertEqual(ex.response["usage"], MAPPED_USAGE)

    def test_midStreamErrorObject(self) -> None:
        """
        An C{{"error": ...}} object inside a 2xx stream: C{response.failed} with the
        mapped code, the open message left open, never a completed response.
        """
        cases = [
            (
                {"error": {"message": "This model's maximum context length is 65536 tokens. "
                                      "However, you requested 70123 tokens.",
                           "type": "invalid_request_error", "code": "context_length_exceeded"}},
                "context_length_exceeded",
                "maximum context length",
            ),
            (
                chunk(
                    choices=[{"index": 0, "delta": {"content": ""}, "finish_reason": "error",
                              "native_finish_reason": "error"}],
                    error={"code": 429, "message": "Rate limit exceeded: free-models-per-min.",
                           "metadata": {"raw": "retry in 12 seconds"}},
                    provider="Chutes",
                ),
                "rate_limit_exceeded",
                "Rate limit exceeded",
            ),
            (
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                "server_is_overloaded",
                "Overloaded",
            ),
            (
                {"error": {"message": "Internal error while generating", "code": 500}},
                "server_error",
                "Internal error",
            ),
            (
                # vLLM (before 0.9) sends its ErrorResponse at the top level of the chunk.
                {"object": "error", "message": "Engine loop has died",
                 "type": "InternalServerError", "param": None, "code": 500},
                "server_error",
                "Engine loop has died",
            ),
        ]
        for errorChunk, code, wording in cases:
            self.fake.reset()
            spec = sse(
                chunk({"role": "assistant", "content": ""}),
                chunk({"content": "Hel"}),
                errorChunk,
                chunk({"content": "lo"}, "stop", USAGE),
            )
            ex = self.stream(spec)
            error = self.assertFailed(ex, code)
            self.assertIn(wording, error["message"])
            if code == "rate_limit_exceeded":
                self.assertRegex(error["message"], CODEX_RETRY)
            self.assertEqual(shape(ex.events), OPEN + MESSAGE[:3] + ["response.failed"])
            self.assertEqual(ex.response["output"], [])

    def test_truncatedStreamFails(self) -> None:
        """
        The upstream closing (FIN without the last chunk) or resetting before any
        C{finish_reason}: C{response.failed} C{server_error}, the half call never
        closed, and the client's response itself ends cleanly.
        """
        for then, partialLine in [("close", ""), ("reset", 'data: {"choices":[{"ind')]:
            self.fake.reset()
            body = (
                frame(chunk({"role": "assistant", "content": ""}))
                + frame(chunk({"content": "Running it."}))
                + frame(chunk({"tool_calls": [call(0, "call_cut", "exec_command", "")]}))
                + frame(chunk({"tool_calls": [call(0, arguments='{"cmd": "rm -rf bu')]}))
                + partialLine
            )
            ex = self.stream(raw(body, then=then))
            self.assertFailed(ex, "server_error")
            self.assertEqual(
                shape(ex.events),
                OPEN + MESSAGE
                + ["response.output_item.added", "response.function_call_arguments.delta*",
                   "response.failed"],
                then,
            )
            message, half = ex.items()
            self.assertIsNone(half.done)
            self.assertEqual(messageText(message.done), "Running it.")
            self.assertEqual([i["type"] for i in ex.response["output"]], ["message"])


# -- errors before streaming -------------------------------------------------------------------


class UpstreamErrorTests(QuirkBase):
    """
    Non-2xx upstream replies: the upstream's status, a Responses-style body with the
    code Codex acts on.
    """

    def error(
        self, status: int, body: Any, headers: list[list[str]] | None = None
    ) -> tuple[Exchange, dict[str, Any]]:
        spec: dict[str, Any] = {"status": status, "headers": headers or []}
        if isinstance(body, str):
            spec["body"] = body
        else:
            spec["body"] = json.dumps(body)
        self.fake.reset()
        ex = self.post(spec, codexBody("deepseek-chat"))
        self.assertEqual(ex.status, status)
        self.assertEqual(ex.header("content-type"), "application/json")
        error = ex.document["error"]
        self.assertEqual(set(error), {"message", "type", "code", "param"})
        return ex, error

    def test_contextLength400Wordings(self) -> None:
        """
        Context-length 400s worded by OpenAI/DeepSeek, vLLM, Dashscope, llama.cpp,
        Moonshot, Anthropic-style, Bedrock and Gemini: 400 C{context_length_exceeded}.
        """
        wordings = [
            {"error": {"message": "This model's maximum context length is 65536 tokens. "
                                  "However, you requested 70000 tokens (70000 in the messages, "
                                  "0 in the completion). Please reduce the length of the "
                                  "messages or completion.",
                       "type": "invalid_request_error", "param": None,
                       "code": "invalid_request_error"}},
            {"object": "error", "message": "This model's maximum context length is 32768 "
             "tokens. However, you requested 40000 tokens in the messages, Please reduce the "
             "length of the messages.", "type": "BadRequestError", "param": None, "code": 400},
            {"error": {"message": "Range of input length should be [1, 30720]",
                       "type": "invalid_request_error", "param": None,
                       "code": "invalid_parameter_error"}},
            {"error": {"code": 400, "message": "the request exceeds the available context "
                       "size, try increasing it", "type": "exceed_context_size_error",
                       "n_prompt_tokens": 9000, "n_ctx": 8192}},
            {"error": {"message": "Invalid request: Your request exceeded model token limit: "
                       "131072", "type": "invalid_request_error"}},
            {"type": "error", "error": {"type": "invalid_request_error",
                                        "message": "prompt is too long: 210000 tokens > "
                                                   "200000 maximum"}},
            {"message": "Input is too long for requested model."},
            [{"error": {"code": 400, "message": "The input token count (1200000) exceeds the "
                        "maximum number of tokens allowed (1048576).",
                        "status": "INVALID_ARGUMENT"}}],
        ]
        for body in wordings:
            ex, error = self.error(400, body)
            self.assertEqual(error["code"], "context_length_exceeded", body)
            self.assertEqual(error["type"], "invalid_request_error", body)
            self.assertTrue(error["message"], body)

    def test_unauthorized401(self) -> None:
        """
        401 stays 401 with the upstream's message; a key the upstream quotes back is
        redacted.
        """
        ex, error = self.error(
            401,
            {"error": {"message": f"Authentication Fails, Your api key: {KEY} is invalid",
                       "type": "authentication_error", "param": None,
                       "code": "invalid_request_error"}},
        )
        self.assertIn("Authentication Fails", error["message"])
        self.assertEqual(error["type"], "authentication_error")
        self.checkNoKey(ex.body)

    def test_rateLimit429RetryAfter(self) -> None:
        """
        429 with C{Retry-After}: 429 C{rate_limit_exceeded}, "try again in 7s" in the
        message, C{Retry-After}, request-id and rate-limit headers kept.
        """
        ex, error = self.error(
            429,
            {"error": {"message": "Rate limit reached for requests", "type": "requests",
                       "param": None, "code": "rate_limit_exceeded"}},
            [["Retry-After", "7"], ["x-request-id", "req_429"],
             ["x-ratelimit-remaining-requests", "0"], ["openai-model", "other-model"]],
        )
        self.assertEqual(error["code"], "rate_limit_exceeded")
        self.assertIn("Rate limit reached", error["message"])
        match = CODEX_RETRY.search(error["message"])
        assert match is not None, error["message"]
        self.assertEqual(float(match.group(1)), 7.0)
        self.assertEqual(ex.header("retry-after"), "7")
        self.assertEqual(ex.header("x-request-id"), "req_429")
        self.assertEqual(ex.header("x-ratelimit-remaining-requests"), "0")
        self.assertIsNone(ex.header("openai-model"))

    def test_quota402(self) -> None:
        """
        DeepSeek's 402 "Insufficient Balance": C{insufficient_quota} (Codex stops).
        """
        ex, error = self.error(
            402, {"error": {"message": "Insufficient Balance", "type": "unknown_error",
                            "param": None, "code": "invalid_request_error"}}
        )
        self.assertEqual(error["code"], "insufficient_quota")
        self.assertEqual(error["type"], "insufficient_quota")
        self.assertIn("Insufficient Balance", error["message"])

    def test_server500(self) -> None:
        """
        500 stays 500 with the upstream's message.
        """
        ex, error = self.error(500, {"error": {"message": "Internal server error",
                                               "type": "internal_error"}})
        self.assertIn("Internal server error", error["message"])
        self.assertEqual(error["type"], "internal_error")
        self.assertNotEqual(error["code"], "server_is_overloaded")

    def test_overloaded503(self) -> None:
        """
        503 (and an Anthropic-style 529) overloaded: C{server_is_overloaded}.
        """
        ex, error = self.error(
            503, {"error": {"message": "The engine is currently overloaded, please try again "
                                       "later", "type": "server_error"}}
        )
        self.assertEqual(error["code"], "server_is_overloaded")
        self.assertIn("overloaded", error["message"])
        ex, error = self.error(
            529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )
        self.assertEqual(error["code"], "server_is_overloaded")


# -- request shapes and whole replies ----------------------------------------------------------


COMPLETION = chatCompletion(
    {
        "content": "Let me check.",
        "reasoning_content": "Need to list the files.",
        "tool_calls": [call(callId="call_nf1", name="exec_command", arguments='{"cmd":"ls"}')],
    },
    "tool_calls",
    USAGE,
    model="deepseek-reasoner",
)


class RequestShapeTests(QuirkBase):
    """
    Request shapes strict servers need, C{stream: false}, and JSON replies to streams.
    """

    def test_systemMessageIsOneString(self) -> None:
        """
        Instructions plus several developer messages (one with two parts): the leading
        system message is ONE plain string (servers such as vLLM's Qwen templates refuse
        a list), joined by blank lines; a later developer message stays in place.
        """
        body = codexBody("Qwen/Qwen2.5-72B-Instruct", instructions="You are Codex.")
        body["input"].append(
            {"type": "message", "role": "developer",
             "content": [{"type": "input_text", "text": "Be terse."}]}
        )
        spec = sse(chunk({"content": "ok"}), chunk({}, "stop", USAGE))
        ex = self.stream(spec, body)
        messages = ex.chat["messages"]
        self.assertEqual([m["role"] for m in messages], ["system", "user", "user", "system"])
        first = messages[0]["content"]
        self.assertIsInstance(first, str)
        texts = [
            part["text"]
            for item in _A001["input"]
            if item.get("role") == "developer"
            for part in item["content"]
        ]
        self.assertEqual(len(texts), 3)
        self.assertEqual(first, "\n\n".join(["You are Codex.", *texts]))
        self.assertEqual(messages[3], {"role": "system", "content": "Be terse."})
        self.assertEqual(messageText(ex.items()[0].done), "ok")
        self.assertCompleted(ex)

    def test_streamFalse(self) -> None:
        """
        C{stream: false}: a non-streaming chat request, and one Responses object back
        with the same items a stream would have.
        """
        body = smallBody("deepseek-reasoner", stream=False,
                         tools=[toolDef(_A001, "exec_command")])
        ex = self.post({"body": json.dumps(COMPLETION)}, body)
        self.assertEqual(ex.status, 200)
        self.assertEqual(ex.header("content-type"), "application/json")
        document = ex.document
        Response.model_validate(document)
        self.assertEqual(document["object"], "response")
        self.assertEqual(document["status"], "completed")
        self.assertEqual(document["model"], "deepseek-reasoner")
        self.assertEqual(document["usage"], MAPPED_USAGE)
        reasoning, message, fc = document["output"]
        self.assertEqual(summaryText(reasoning), "Need to list the files.")
        self.assertEqual(messageText(message), "Let me check.")
        self.assertEqual(
            (fc["type"], fc["call_id"], fc["name"], fc["arguments"]),
            ("function_call", "call_nf1", "exec_command", '{"cmd":"ls"}'),
        )

        self.fake.reset()
        self.fake.enqueue({"body": json.dumps(COMPLETION)})
        client = openai.OpenAI(base_url=self.proxy.url("/v1"), api_key=CLIENT_KEY, max_retries=0)
        try:
            response = client.responses.create(model="deepseek-reasoner", input="ls")
        finally:
            client.close()
        self.assertEqual([item.type for item in response.output],
                         ["reasoning", "message", "function_call"])
        self.assertEqual(response.output_text, "Let me check.")
        [upstream] = self.fake.waitRequests(1)
        self.checkUpstream(upstream, stream=False, sdk=True)

        # A server that streams although asked not to: still one Responses object.
        self.fake.reset()
        spec = sse(
            chunk({"role": "assistant", "reasoning_content": "Need to list the files."}),
            chunk({"content": "Let me check."}),
            chunk({"tool_calls": [call(0, "call_nf1", "exec_command", '{"cmd":"ls"}')]}),
            chunk({}, "tool_calls", USAGE),
        )
        ex = self.post(spec, body)
        self.assertEqual(ex.status, 200)
        self.assertEqual(ex.header("content-type"), "application/json")
        Response.model_validate(ex.document)
        self.assertEqual(ex.document["status"], "completed")
        self.assertEqual([i["type"] for i in ex.document["output"]],
                         ["reasoning", "message", "function_call"])
        self.assertEqual(ex.document["output"][2]["arguments"], '{"cmd":"ls"}')
        self.assertEqual(ex.document["usage"], MAPPED_USAGE)

    def test_jsonReplyToStreamingRequest(self) -> None:
        """
        A 2xx JSON completion to a streaming request is converted to the whole event
        sequence; a 2xx JSON error object becomes C{response.failed} with its code.
        """
        completion = copy.deepcopy(COMPLETION)
        completion["choices"][0]["message"] = {"role": "assistant", "content": "From JSON."}
        completion["choices"][0]["finish_reason"] = "stop"
        ex = self.stream({"body": json.dumps(completion)}, smallBody())
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        self.assertEqual(messageText(ex.items()[0].done), "From JSON.")
        self.assertCompleted(ex)

        self.fake.reset()
        error = {"error": {"message": "Your request exceeded model token limit: 8192",
                           "type": "invalid_request_error"}}
        ex = self.stream({"body": json.dumps(error)}, smallBody())
        self.assertFailed(ex, "context_length_exceeded")
        self.assertEqual(shape(ex.events), OPEN + ["response.failed"])


# -- timers ------------------------------------------------------------------------------------


class TimerTests(QuirkBase):
    """
    One smoke test per bridge timer, shortened through C{CODEX_PROXY_TUNING}: proof that
    each is wired to the real reactor and clock. Their logic is tested on a fake clock in
    L{tests.test_bridge_memory}.
    """

    tuning = "keepAliveInterval=0.2,streamIdleTimeout=1.5,tailWait=0.5"

    def test_keepAliveWhileUpstreamSendsOnlyComments(self) -> None:
        """
        SSE comments (OpenRouter's processing notes) are not relayed and do not stand
        in for keep-alives: Codex counts only real events.
        """
        comments = [{"data": ": OPENROUTER PROCESSING\n\n", "delay": 0.1} for _ in range(8)]
        spec = raw(
            frame(chunk({"role": "assistant", "content": ""})),
            *comments,
            frame(chunk({"content": "Here."})),
            frame(chunk({}, "stop", USAGE)),
        )
        ex = self.stream(spec)
        kinds = [e["type"] for e in ex.events]
        self.assertGreaterEqual(kinds.count("response.in_progress"), 3)
        self.assertNotIn(b"OPENROUTER", ex.body)
        self.assertShape(withoutKeepAlives(ex.events), OPEN, MESSAGE, COMPLETED)
        self.assertCompleted(ex)

        # The SDK client over HTTP takes keep-alives in its stride.
        final, _ = self.sdkStream(spec, model="deepseek/deepseek-r1", input="Where?")
        self.assertEqual(final.status, "completed")
        self.assertEqual(final.output_text, "Here.")

    def test_silenceLimit(self) -> None:
        """
        No upstream data for the silence limit: C{response.failed} C{server_error}
        (keep-alives before it), the open message left open, the upstream let go.
        """
        spec = raw(
            frame(chunk({"role": "assistant", "content": ""})),
            frame(chunk({"content": "Partial"})),
            then="hang",
        )
        self.fake.enqueue(spec)
        reader = self.openStream(smallBody())
        delta = reader.until(lambda e: e["type"] == "response.output_text.delta")
        failed = reader.until(lambda e: e["type"] == "response.failed", timeout=3)
        [upstream] = self.fake.waitRequests(1)
        self.assertGreaterEqual(failed["_t"] - upstream.t, 1.5)
        self.assertLess(delta["_t"], failed["_t"])
        ex = self.finishStream(reader, timeout=5)
        error = self.assertFailed(ex, "server_error")
        self.assertIn("sent nothing", error["message"])
        self.assertGreaterEqual([e["type"] for e in ex.events].count("response.in_progress"), 3)
        self.assertEqual(
            shape(withoutKeepAlives(ex.events)), OPEN + MESSAGE[:3] + ["response.failed"]
        )
        self.assertEqual(ex.response["output"], [])
        self.assertUpstreamReleased(ex)

    def test_tailWaitAfterFinish(self) -> None:
        """
        C{finish_reason} then nothing (no usage, no C{[DONE]}, no EOF): items close at
        once, the terminal event follows after the tail wait, and the upstream is let go.
        """
        spec = raw(
            frame(chunk({"role": "assistant", "content": ""})),
            frame(chunk({"content": "All done."})),
            frame(chunk({}, "stop")),
            then="hang",
        )
        self.fake.enqueue(spec)
        reader = self.openStream(smallBody())
        done = reader.until(lambda e: e["type"] == "response.output_item.done")
        terminal = reader.until(lambda e: e["type"] == "response.completed", timeout=3)
        # The finish was sent as the request arrived: the terminal event waited for the
        # tail, the items' done events did not.
        [upstream] = self.fake.waitRequests(1)
        self.assertGreaterEqual(terminal["_t"] - upstream.t, 0.5)
        self.assertLess(done["_t"], terminal["_t"])
        self.assertLess(terminal["_t"] - upstream.t, 3)
        ex = self.finishStream(reader, timeout=3)
        self.assertShape(withoutKeepAlives(ex.events), OPEN, MESSAGE, COMPLETED)
        self.assertCompleted(ex, None)
        self.assertEqual(messageText(ex.items()[0].done), "All done.")
        self.assertUpstreamReleased(ex)

class MoreProviderTests(QuirkBase):
    """
    More providers' stream shapes, and what travels around the stream.
    """

    def test_streamHeaders(self) -> None:
        """
        On a 2xx stream, request-id and rate-limit headers reach the client;
        C{openai-model} and the upstream's framing (C{Content-Length}) do not.
        """
        spec = sse(
            chunk({"content": "Hi"}),
            chunk({}, "stop", USAGE),
            headers=[["openai-model", "deepseek-v3.2"], ["x-request-id", "req_stream"],
                     ["x-ratelimit-remaining-tokens", "99"], ["set-cookie", "a=b"],
                     ["retry-after", "3"]],
            content_length=True,
        )
        ex = self.stream(spec)
        self.assertEqual(ex.header("x-request-id"), "req_stream")
        self.assertEqual(ex.header("x-ratelimit-remaining-tokens"), "99")
        self.assertEqual(ex.header("retry-after"), "3")
        self.assertIsNone(ex.header("openai-model"))
        self.assertIsNone(ex.header("content-length"))
        self.assertIsNone(ex.header("set-cookie"))
        self.assertCompleted(ex)

    def test_geminiEverythingInOneChunk(self) -> None:
        """
        Gemini's compatibility layer: text, a whole call without index and
        C{finish_reason: stop} and usage, all in one chunk.
        """
        spec = sse(
            chunk(
                {"role": "assistant", "content": "Checking.",
                 "tool_calls": [{"id": "function-call-1", "type": "function",
                                 "function": {"name": "exec_command",
                                              "arguments": '{"cmd":"date"}'}}]},
                "stop",
                {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            ),
        )
        ex = self.stream(spec, codexBody("gemini-2.5-pro"))
        self.assertShape(ex.events, OPEN, MESSAGE, CALL, COMPLETED)
        message, fc = ex.items()
        self.assertEqual(messageText(message.done), "Checking.")
        self.assertEqual(fc.done["call_id"], "function-call-1")
        self.assertEqual(fc.done["arguments"], '{"cmd":"date"}')
        self.assertEqual(ex.response["usage"]["total_tokens"], 15)

    def test_mistralThinkingParts(self) -> None:
        """
        Mistral's Magistral: content as a list of parts, C{thinking} parts are reasoning.
        """
        spec = sse(
            chunk({"role": "assistant", "content": [
                {"type": "thinking", "thinking": [{"type": "text", "text": "Simple."}]}]}),
            chunk({"content": [{"type": "text", "text": "Hello"}]}),
            chunk({"content": " there."}),
            chunk({}, "stop", {"prompt_tokens": 7, "completion_tokens": 3}),
        )
        ex = self.stream(spec, smallBody("magistral-medium-latest"))
        self.assertEqual(ex.response["usage"], {
            "input_tokens": 7,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 3,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 10,
        })
        self.assertShape(ex.events, OPEN, REASONING, MESSAGE, COMPLETED)
        reasoning, message = ex.items()
        self.assertEqual(summaryText(reasoning.done), "Simple.")
        self.assertEqual(messageText(message.done), "Hello there.")

    def test_dashscopeEmptyIdAndNameInContinuations(self) -> None:
        """
        Qwen on Dashscope: continuation deltas carry C{"id": ""} and C{"name": ""}.
        """
        spec = sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"tool_calls": [call(0, "call_dash1", "exec_command", "")]}),
            chunk({"tool_calls": [
                {"index": 0, "id": "", "type": "function",
                 "function": {"name": "", "arguments": '{"cmd": "uname'}}]}),
            chunk({"tool_calls": [
                {"index": 0, "id": "", "type": "function",
                 "function": {"name": "", "arguments": ' -a"}'}}]}),
            chunk({}, "tool_calls"),
            chunk(usage=USAGE),
        )
        ex = self.stream(spec, codexBody("qwen3-max"))
        self.assertShape(ex.events, OPEN, CALL, COMPLETED)
        [fc] = ex.items()
        self.assertEqual(fc.done["call_id"], "call_dash1")
        self.assertEqual(fc.done["name"], "exec_command")
        self.assertEqual(fc.done["arguments"], '{"cmd": "uname -a"}')

    def test_invalidUtf8AndUnknownFinishReason(self) -> None:
        """
        A byte that is not UTF-8 inside a content string becomes U+FFFD (the output
        stays UTF-8); an unknown C{finish_reason} (C{eos}) counts as C{stop}.
        """
        bad = b'data: {"choices":[{"index":0,"delta":{"content":"caf\xe9!"}}]}\n\n'
        spec = raw(
            frame(chunk({"role": "assistant", "content": ""})),
            bad,
            frame(chunk({}, "eos", USAGE)),
        )
        ex = self.stream(spec)
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        self.assertEqual(messageText(ex.items()[0].done), "caf\ufffd!")

    def test_eventsWithoutBlankLines(self) -> None:
        """
        A server that separates its events with single newlines only, and ends
        without a blank line.
        """
        lines = [
            frame(chunk({"role": "assistant", "content": ""}))[:-1],
            frame(chunk({"content": "One"}))[:-1],
            frame(chunk({"content": " line."}))[:-1],
            frame(chunk({}, "stop", USAGE))[:-1],
        ]
        ex = self.stream(raw("".join(lines)))
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        self.assertEqual(messageText(ex.items()[0].done), "One line.")

    def test_emptyStreamFails(self) -> None:
        """
        A 2xx SSE reply with an empty body, comments only, or only C{[DONE]}
        (llama-cpp-python answers 200, then raises): C{response.failed}, saying the
        upstream sent no data.
        """
        for body in ["", ": ping\n\n", "data: [DONE]\n\n"]:
            self.fake.reset()
            ex = self.stream(raw(body))
            error = self.assertFailed(ex, "server_error")
            self.assertEqual(shape(ex.events), OPEN + ["response.failed"])
            self.assertIn("without sending any data", error["message"])

    def test_sseFramedErrorBeforeStreaming(self) -> None:
        """
        A non-2xx reply whose body is SSE-framed (C{data: {"error": ...}}): the
        status is kept and the error's code is still recognised.
        """
        body = frame({"error": {"message": "This model's maximum context length is 8192 "
                                           "tokens.", "type": "invalid_request_error"}})
        self.fake.enqueue({"status": 400, "body": body,
                           "headers": [["content-type", "text/event-stream"]]})
        resp = http.post(self.proxy.port, "/v1/responses", smallBody(), headers=CLIENT_HEADERS)
        self.assertEqual(resp.status, 400)
        error = json.loads(resp.body)["error"]
        self.assertEqual(error["code"], "context_length_exceeded")
        self.assertNotIn("data:", error["message"])

    def test_keepAliveConnectionServesTwoStreams(self) -> None:
        """
        Codex reuses its connection: two bridged streams, one after the other, on
        one client connection.
        """
        self.fake.enqueue(sse(chunk({"content": "first"}), chunk({}, "stop", USAGE)),
                          sse(chunk({"content": "second"}), chunk({}, "stop", USAGE)))
        payload = json.dumps(smallBody()).encode()
        with http.RawConnection(self.proxy.port, timeout=10) as conn:
            texts = []
            for _ in range(2):
                conn.send(http.buildRequest("POST", "/v1/responses", payload,
                                            [("Content-Type", "application/json")]))
                resp = conn.readResponse(timeout=10)
                self.assertEqual(resp.status, 200)
                self.assertTrue(resp.complete)
                events = sdkcheck.validateEvents(resp.body)
                self.assertEqual(events[-1]["type"], "response.completed")
                texts.append(messageText(events[-1]["response"]["output"][0]))
        self.assertEqual(texts, ["first", "second"])

    def test_clientLeavingStopsUpstream(self) -> None:
        """
        The client going away mid-stream closes the upstream connection.
        """
        self.fake.enqueue(raw(frame(chunk({"content": "Hi"})), then="hang"))
        reader = self.openStream(smallBody())
        reader.until(lambda e: e["type"] == "response.output_text.delta")
        [upstream] = self.fake.waitRequests(1)
        reader.response.conn.abort()
        self.fake.waitClosed(upstream.conn, timeout=5)

    def test_oneByteWrites(self) -> None:
        """
        A server that writes its stream a byte at a time (each byte its own write).
        """
        text = frame(chunk({"content": "Slow \u00e9\U0001f40c."})).encode("utf-8")
        pieces = [{"b64": base64.b64encode(text[i:i + 1]).decode(), "delay": 0.001}
                  for i in range(len(text))]
        spec = raw(*pieces, frame(chunk({}, "stop", USAGE)))
        ex = self.stream(spec)
        self.assertShape(ex.events, OPEN, MESSAGE, COMPLETED)
        self.assertEqual(messageText(ex.items()[0].done), "Slow \u00e9\U0001f40c.")

    def test_concurrentStreamsStayApart(self) -> None:
        """
        Two streams at once (Codex's sub-agents): each gets its own reply, with its own
        ids, while the other is held open.
        """
        self.fake.enqueue(
            raw(frame(chunk({"content": "first"})), {"gate": "a"},
                frame(chunk({}, "stop", USAGE))),
            sse(chunk({"content": "second"}), chunk({}, "stop", USAGE)),
        )
        first = self.openStream(smallBody())
        first.until(lambda e: e["type"] == "response.output_text.delta")
        second = self.openStream(smallBody("other-model"))
        body = second.rest()
        events = sdkcheck.validateEvents(body)
        self.assertEqual(messageText(events[-1]["response"]["output"][0]), "second")
        self.assertEqual(events[-1]["response"]["model"], "other-model")
        self.fake.release("a")
        events1 = sdkcheck.validateEvents(first.rest())
        self.assertEqual(messageText(events1[-1]["response"]["output"][0]), "first")
        self.assertNotEqual(events[0]["response"]["id"], events1[0]["response"]["id"])
        requests = self.fake.waitRequests(2)
        self.assertEqual([r.json()["model"] for r in requests], ["deepseek-chat", "other-model"])
