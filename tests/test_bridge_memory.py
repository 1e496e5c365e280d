"""
In-memory tests of L{responses_proxy.web.bridge}: the real site, the real treq client and the pure
converters, with a fake chat upstream resource and a fake clock for the timers.
"""

from __future__ import annotations

import json

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.profiles import PROFILES
from responses_proxy.config import Limits
from tests import sdkcheck
from tests.memoryproxy import KEY, MemoryProxy, request, upstreamBody
from tests.support.chat import chatCompletion, chunkEvent
from tests.support.events import codexRequest
from tests.support.wire import RawResponse

CODEX_BODY = codexRequest(instructions="Be brief.", text="hi")


USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


class BridgeBase(SynchronousTestCase):
    def setUp(self) -> None:
        self.proxy = MemoryProxy(bridge=True, limits=self.limits())
        self.client = self.proxy.connect()

    def limits(self) -> Limits:
        return Limits()

    def send(self, body: dict | bytes = CODEX_BODY, headers=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.client.send(request(body=raw, headers=headers))
        self.proxy.pump()

    def upstream(self):
        self.assertEqual(len(self.proxy.upstreamRequests), 1)
        return self.proxy.upstreamRequests[0]

    def openStream(self):
        """
        Send the request and start an SSE answer: the upstream request and its
        notifyFinish() (fires when the proxy lets the upstream go).
        """
        self.send()
        up = self.upstream()
        lost = up.notifyFinish()
        # A test that does not look at it must not leave its failure unhandled.
        self.addCleanup(lost.addErrback, lambda _: None)
        self.startStream(up)
        return up, lost

    def completeStream(self, up) -> list[dict]:
        """
        The upstream finishes (stop, usage, [DONE], end of body): the client's events,
        validated, ending in response.completed.
        """
        up.write(chunkEvent({}, "stop", USAGE))
        up.write(b"data: [DONE]\n\n")
        up.finish()
        self.proxy.pump()
        events = sdkcheck.validateEvents(self.client.response().body)
        self.assertEqual(events[-1]["type"], "response.completed")
        return events

    def startStream(self, up, headers=((b"content-type", b"text/event-stream"),)):
        up.setResponseCode(200)
        for name, value in headers:
            up.setHeader(name, value)

    def events(self) -> list[dict]:
        return [data for _, data in sdkcheck.parseEvents(self.client.response().body)]

    def finished(self) -> bool:
        return self.client.response().complete


class RequestSideTests(BridgeBase):
    """
    What the chat upstream receives.
    """

    def test_profileApplied(self) -> None:
        """The service's provider profile shapes the chat request (OpenAI's: the developer
        role kept, max_completion_tokens)."""
        proxy = MemoryProxy(bridge=True, profile=PROFILES["openai"])
        client = proxy.connect()
        body = dict(CODEX_BODY, max_output_tokens=100)
        body["input"] = [
            {"type": "message", "role": "developer", "content": "Rules."},
            *CODEX_BODY["input"],
        ]
        client.send(request(body=json.dumps(body).encode()))
        proxy.pump()
        [up] = proxy.upstreamRequests
        sent = json.loads(upstreamBody(up))
        self.assertEqual(sent["max_completion_tokens"], 100)
        self.assertNotIn("max_tokens", sent)
        self.assertEqual(
            sent["messages"][0], {"role": "developer", "content": "Be brief.\n\nRules."}
        )

    def test_convertedRequestAndHeaders(self) -> None:
        """The chat body, and headers: key, JSON, SSE accept, identity encoding."""
        self.send(
            headers=[
                (b"Authorization", b"Bearer codex"),
                (b"X-Title", b"mine"),
                (b"Accept-Encoding", b"gzip"),
                (b"Accept", b"*/*"),
            ]
        )
        up = self.upstream()
        body = json.loads(upstreamBody(up))
        self.assertEqual(body["model"], "deepseek-chat")
        self.assertEqual(body["messages"][0], {"role": "system", "content": "Be brief."})
        self.assertEqual(body["messages"][1], {"role": "user", "content": "hi"})
        self.assertEqual(body["stream"], True)
        self.assertEqual(body["stream_options"], {"include_usage": True})
        for dropped in ["store", "include", "input", "instructions"]:
            self.assertNotIn(dropped, body)
        headers = up.requestHeaders
        self.assertEqual(headers.getRawHeaders(b"authorization"), [b"Bearer " + KEY])
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(headers.getRawHeaders(b"accept"), [b"text/event-stream"])
        self.assertEqual(headers.getRawHeaders(b"accept-encoding"), [b"identity"])
        self.assertEqual(headers.getRawHeaders(b"x-title"), [b"mine"])
        self.assertEqual(headers.getRawHeaders(b"content-length"), [b"%d" % len(upstreamBody(up))])

    def test_badBodiesAre400WithoutUpstream(self) -> None:
        """Not JSON, stateful fields, wrong input type: 400 Responses-style; nothing sent."""
        for body in [
            b"not json",
            json.dumps(dict(CODEX_BODY, previous_response_id="r")).encode(),
            json.dumps(dict(CODEX_BODY, input=5)).encode(),
            json.dumps(dict(CODEX_BODY, background=True)).encode(),
        ]:
            proxy = MemoryProxy(bridge=True)
            client = proxy.connect()
            client.send(request(body=body))
            proxy.pump()
            resp = client.response()
            self.assertEqual(resp.status, 400, body)
            error = resp.json()["error"]
            self.assertEqual(set(error), {"message", "type", "code", "param"})
            self.assertEqual(proxy.upstreamRequests, [])


class StreamTests(BridgeBase):
    """
    Chat SSE in, Responses events out, as they arrive.
    """

    def test_textStream(self) -> None:
        """A text reply streams through; each delta is written before the upstream ends."""
        self.send()
        up = self.upstream()
        self.startStream(
            up,
            [
                (b"content-type", b"text/event-stream"),
                (b"openai-model", b"other"),
                (b"x-request-id", b"req_9"),
                (b"retry-after", b"1"),
            ],
        )
        up.write(chunkEvent({"role": "assistant", "content": ""}))
        up.write(chunkEvent({"content": "Hel"}))
        self.proxy.pump()
        resp = self.client.response()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.headerValues("content-type"), ["text/event-stream"])
        self.assertEqual(resp.headerValues("cache-control"), ["no-cache"])
        self.assertEqual(resp.headerValues("x-request-id"), ["req_9"])
        self.assertEqual(resp.headerValues("openai-model"), [])
        self.assertEqual(
            [e["type"] for e in self.events()],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
            ],
        )
        up.write(chunkEvent({"content": "lo"}))
        up.write(chunkEvent({}, finish="stop"))
        up.write(chunkEvent(usage=USAGE))
        up.write(b"data: [DONE]\n\n")
        up.finish()
        self.proxy.pump()
        self.assertTrue(self.finished())
        events = sdkcheck.validateEvents(self.client.response().body)
        final = sdkcheck.finalResponse(events)
        self.assertEqual(final.output_text, "Hello")
        self.assertEqual(final.usage.total_tokens, 15)

    def test_terminalEndsResponseAndDrainsUpstream(self) -> None:
        """After usage follows finish_reason, the client's response ends without waiting
        for [DONE]; the upstream body may still end by itself (its connection can then be
        reused), so it is not cut at once."""
        up, lost = self.openStream()
        up.write(chunkEvent({"content": "x"}, finish="stop"))
        up.write(chunkEvent(usage=USAGE))
        self.proxy.pump()
        self.assertTrue(self.finished())
        self.assertEqual(self.events()[-1]["type"], "response.completed")
        self.assertNoResult(lost)
        up.write(b"data: [DONE]\n\n")
        up.finish()
        self.proxy.pump()
        self.assertIsNone(self.successResultOf(lost))
        self.proxy.clock.advance(10)
        self.assertEqual(self.events()[-1]["type"], "response.completed")

    def test_upstreamThatDoesNotEndIsCut(self) -> None:
        """An upstream that keeps its body open after the terminal event is cut 2 s later."""
        up, lost = self.openStream()
        up.write(chunkEvent({"content": "x"}, finish="stop"))
        up.write(chunkEvent(usage=USAGE))
        self.proxy.pump()
        self.assertTrue(self.finished())
        self.proxy.clock.advance(1.9)
        self.proxy.pump()
        self.assertNoResult(lost)
        self.proxy.clock.advance(0.2)
        self.proxy.pump()
        self.failureResultOf(lost)

    def test_keepAliveDuringSilence(self) -> None:
        """15 s without an event: a response.in_progress event, and again 15 s later (an SSE
        comment does not count as an event); the stream then completes normally."""
        up, _ = self.openStream()
        up.write(chunkEvent({"role": "assistant", "content": ""}))
        up.write(b": OPENROUTER PROCESSING\n\n")
        self.proxy.pump()

        def keepAlives() -> list[dict]:
            return [e for e in self.events()[2:] if e["type"] == "response.in_progress"]

        self.assertEqual(keepAlives(), [])
        self.proxy.clock.advance(14)
        self.assertEqual(keepAlives(), [])
        self.proxy.clock.advance(1)
        self.assertEqual(len(keepAlives()), 1)
        self.proxy.clock.advance(15)
        self.assertEqual(len(keepAlives()), 2)
        up.write(chunkEvent({"content": "a"}))
        self.proxy.pump()
        self.proxy.clock.advance(10)
        self.assertEqual(len(keepAlives()), 2)
        for event in keepAlives():
            self.assertEqual(event["response"]["status"], "in_progress")
            self.assertEqual(event["response"]["output"], [])
        events = self.completeStream(up)
        self.assertEqual(sdkcheck.finalResponse(events).output_text, "a")
        self.assertEqual(len({e["response"]["id"] for e in events if "response" in e}), 1)

    def test_silenceLimitFailsStream(self) -> None:
        """300 s without upstream data: keep-alives, then response.failed (server_error,
        "sent nothing"), the open message left open, the upstream dropped."""
        up, lost = self.openStream()
        up.write(chunkEvent({"content": "partial"}))
        self.proxy.pump()
        for _ in range(19):
            self.proxy.clock.advance(15)
        self.assertFalse(self.finished())
        self.proxy.clock.advance(15)
        self.proxy.pump()
        events = self.events()
        self.assertEqual(events[-1]["type"], "response.failed")
        error = events[-1]["response"]["error"]
        self.assertEqual(error["code"], "server_error")
        self.assertIn("sent nothing", error["message"])
        self.assertEqual(events[-1]["response"]["output"], [])
        types = [e["type"] for e in events]
        self.assertEqual(types.count("response.in_progress"), 1 + 19)
        self.assertEqual(
            [t for t in types[2:] if t != "response.in_progress"],
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.failed",
            ],
        )
        self.assertTrue(self.finished())
        self.failureResultOf(lost)

    def test_pingsCountAsLife(self) -> None:
        """Comments (llama.cpp's pings during a long prompt evaluation) keep the silence
        limit away; only bytes stopping altogether end the stream."""
        self.proxy = MemoryProxy(bridge=True, limits=Limits(streamIdleTimeout=20))
        self.client = self.proxy.connect()
        self.send()
        up = self.upstream()
        self.startStream(up)
        self.proxy.pump()
        for _ in range(10):
            self.proxy.clock.advance(10)
            up.write(b": ping\n\n")
            self.proxy.pump()
        self.assertFalse(self.finished())
        up.write(chunkEvent({"content": "finally"}))
        self.proxy.pump()
        self.proxy.clock.advance(19)
        self.assertFalse(self.finished())
        self.proxy.clock.advance(1)
        self.proxy.pump()
        self.assertEqual(self.events()[-1]["type"], "response.failed")
        self.assertTrue(self.finished())

    def test_onlyCommentsForeverFails(self) -> None:
        """A stream that sends comments but no data for the data limit is failed, saying so."""
        self.proxy = MemoryProxy(
            bridge=True, limits=Limits(streamIdleTimeout=20, streamDataTimeout=60)
        )
        self.client = self.proxy.connect()
        self.send()
        up = self.upstream()
        lost = up.notifyFinish()
        self.startStream(up)
        up.write(b": ping\n\n")
        self.proxy.pump()
        for _ in range(6):
            self.proxy.clock.advance(10)
            up.write(b": ping\n\n")
            self.proxy.pump()
        events = self.events()
        self.assertEqual(events[-1]["type"], "response.failed")
        self.assertIn("only keep-alive comments", events[-1]["response"]["error"]["message"])
        self.failureResultOf(lost)

    def test_wallClockStepKeepsHealthyStream(self) -> None:
        """A wall clock jumping 18 s does not end a stream 8 s into a 20 s silence limit;
        the limit still ends a dead stream after 20 s of real time."""
        self.proxy = MemoryProxy(bridge=True, limits=Limits(streamIdleTimeout=20))
        self.client = self.proxy.connect()
        self.send()
        up = self.upstream()
        self.startStream(up)
        up.write(chunkEvent({"content": "a"}))
        self.proxy.pump()
        self.proxy.clock.advance(8)
        self.proxy.stepWall(18)
        self.proxy.pump()
        self.assertFalse(self.finished())
        up.write(chunkEvent({"content": "b"}, finish="stop", usage=USAGE))
        self.proxy.pump()
        self.assertEqual(self.events()[-1]["type"], "response.completed")

    def test_wallClockStepDeadStream(self) -> None:
        """After a wall-clock step, a stream that really is silent is failed after the
        limit's real length, not before."""
        self.proxy = MemoryProxy(bridge=True, limits=Limits(streamIdleTimeout=20))
        self.client = self.proxy.connect()
        self.send()
        up = self.upstream()
        self.startStream(up)
        up.write(b": ping\n\n")
        self.proxy.pump()
        self.proxy.stepWall(18)
        self.proxy.clock.advance(19)
        self.assertFalse(self.finished())
        self.proxy.clock.advance(1)
        self.proxy.pump()
        self.assertEqual(self.events()[-1]["type"], "response.failed")

    def test_dataInShortGapsIsNotSilence(self) -> None:
        """A stream (labelled JSON) whose data keeps coming in gaps under the silence limit,
        for longer than the limit in all, is not failed."""
        self.send()
        up = self.upstream()
        self.startStream(up, [(b"content-type", b"application/json")])
        up.write(chunkEvent({"role": "assistant", "content": ""}))
        self.proxy.pump()
        for i in range(4):
            self.proxy.clock.advance(200)
            up.write(chunkEvent({"content": f"part{i} "}))
            self.proxy.pump()
        events = self.completeStream(up)
        self.assertEqual(sdkcheck.finalResponse(events).output_text, "part0 part1 part2 part3 ")

    def test_tailWait(self) -> None:
        """finish_reason then nothing: the items close at once, after 5 s the terminal
        event is sent anyway, and the upstream is let go."""
        up, lost = self.openStream()
        up.write(chunkEvent({"content": "x"}, finish="stop"))
        self.proxy.pump()
        self.assertFalse(self.finished())
        self.assertEqual(self.events()[-1]["type"], "response.output_item.done")
        self.assertEqual(self.events()[-1]["item"]["content"][0]["text"], "x")
        self.proxy.clock.advance(4.9)
        self.assertFalse(self.finished())
        self.proxy.clock.advance(0.1)
        self.proxy.pump()
        events = self.events()
        self.assertEqual(events[-1]["type"], "response.completed")
        self.assertIsNone(events[-1]["response"]["usage"])
        self.assertTrue(self.finished())
        self.proxy.clock.advance(10)
        self.proxy.pump()
        self.failureResultOf(lost)

    def test_bodyThatNeverEnds(self) -> None:
        """An error reply, or a whole stream:false reply, whose body stops half-way: after
        the silence limit a 504 upstream_timeout, and the upstream connection is closed.
        (The fake upstream plays the reply spec on the fake clock.)"""
        cases = [
            ({"status": 500, "chunks": [{"data": '{"error": {"message": "boo'}]}, CODEX_BODY),
            (
                {"chunks": [{"data": '{"id": "chatcmpl-1", "choices": [{"index'}]},
                dict(CODEX_BODY, stream=False),
            ),
        ]
        for spec, body in cases:
            proxy = MemoryProxy(bridge=True)
            proxy.upstream.queue.append(dict(spec, then="hang"))
            client = proxy.connect()
            client.send(request(body=json.dumps(body).encode()))
            proxy.pump()
            [record] = proxy.upstream.records
            proxy.clock.advance(299)
            proxy.pump()
            self.assertEqual(client.received(), b"")
            self.assertEqual(record.outcome, "pending")
            proxy.clock.advance(1)
            proxy.pump()
            resp = client.response()
            self.assertEqual(resp.status, 504, resp.body)
            self.assertEqual(resp.json()["error"]["code"], "upstream_timeout")
            self.assertEqual(record.outcome, "lost")

    def test_cutStreamFails(self) -> None:
        """The upstream dying mid-stream: response.failed, never completed; the client's
        response itself ends cleanly so Codex reads the failure."""
        up, _ = self.openStream()
        up.write(chunkEvent({"content": "partial"}))
        self.proxy.pump()
        up.channel.transport.abortConnection()
        self.proxy.pump()
        events = self.events()
        self.assertEqual(events[-1]["type"], "response.failed")
        self.assertNotIn("response.completed", [e["type"] for e in events])
        self.assertTrue(self.finished())

    def test_clientGoneStopsUpstream(self) -> None:
        """The client leaving closes the upstream connection."""
        up, lost = self.openStream()
        up.write(chunkEvent({"content": "a"}))
        self.proxy.pump()
        self.client.disconnect()
        self.proxy.pump()
        self.failureResultOf(lost)

    def test_jsonReplyToStreamingRequest(self) -> None:
        """A 2xx JSON completion to a streaming request is converted to events."""
        self.send()
        up = self.upstream()
        up.setHeader(b"content-type", b"application/json")
        up.write(json.dumps(chatCompletion({"content": "whole"}, usage=USAGE)).encode())
        up.finish()
        self.proxy.pump()
        events = sdkcheck.validateEvents(self.client.response().body)
        self.assertEqual(sdkcheck.finalResponse(events).output_text, "whole")

    def test_echoedKeyRedacted(self) -> None:
        """Upstream text that quotes the key never reaches the client."""
        up, _ = self.openStream()
        up.write(chunkEvent({"content": "your key is " + KEY.decode()}, finish="stop"))
        up.write(chunkEvent(usage=USAGE))
        self.proxy.pump()
        self.assertNotIn(KEY, self.client.received())
        self.assertNotIn(KEY[-8:], self.client.received())


class ErrorTests(BridgeBase):
    """
    Upstream errors before streaming keep their status with Codex's codes.
    """

    def answer(self, status: int, body: bytes, headers=()) -> tuple[int, RawResponse, dict]:
        self.send()
        up = self.upstream()
        up.setResponseCode(status)
        for name, value in headers:
            up.setHeader(name, value)
        up.write(body)
        up.finish()
        self.proxy.pump()
        resp = self.client.response()
        return resp.status, resp, resp.json()

    def test_rateLimit(self) -> None:
        """429 with Retry-After: 429, rate_limit_exceeded, 'try again in', header kept."""
        status, resp, body = self.answer(
            429, b'{"error": {"message": "Rate limit reached"}}', [(b"retry-after", b"2")]
        )
        self.assertEqual(status, 429)
        self.assertEqual(body["error"]["code"], "rate_limit_exceeded")
        self.assertRegex(body["error"]["message"], r"(?i)try again in\s*2(\.0+)?\s*s")
        self.assertEqual(resp.headerValues("retry-after"), ["2"])

    def test_contextLength(self) -> None:
        """A provider's context-length 400 becomes context_length_exceeded."""
        status, _, body = self.answer(
            400,
            b'{"error": {"message": "This model\'s maximum context length is 65536 tokens. '
            b'However, you requested 70000 tokens", "type": "invalid_request_error"}}',
        )
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["code"], "context_length_exceeded")

    def test_htmlError(self) -> None:
        """A 502 HTML page is a clear JSON error."""
        status, _, body = self.answer(502, b"<html><body>Bad Gateway</body></html>")
        self.assertEqual(status, 502)
        self.assertIn("Bad Gateway", body["error"]["message"])


class NonStreamingTests(BridgeBase):
    """
    C{stream: false}.
    """

    def test_wholeResponseObject(self) -> None:
        """A chat completion becomes one Responses object."""
        self.send(dict(CODEX_BODY, stream=False))
        up = self.upstream()
        self.assertEqual(json.loads(upstreamBody(up))["stream"], False)
        self.assertEqual(up.requestHeaders.getRawHeaders(b"accept"), [b"application/json"])
        up.setHeader(b"content-type", b"application/json")
        completion = chatCompletion({"content": "ok", "reasoning_content": "think"}, usage=USAGE)
        up.write(json.dumps(completion).encode())
        up.finish()
        self.proxy.pump()
        resp = self.client.response()
        self.assertEqual(resp.status, 200)
        document = resp.json()
        self.assertEqual(document["object"], "response")
        self.assertEqual(document["status"], "completed")
        self.assertEqual([i["type"] for i in document["output"]], ["reasoning", "message"])
        from openai.types.responses import Response

        self.assertEqual(Response.model_validate(document).output_text, "ok")


SHELL_TOOL = {
    "type": "function",
    "name": "shell",
    "description": "Run a command.",
    "parameters": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "timeout": {"type": "integer"}},
        "required": ["command"],
    },
}
HERMES = (
    '<tool_call>\n{"name": "shell", "arguments": {"command": "ls -la", "timeout": 5}}\n</tool_call>'
)
GLM = (
    "<tool_call>shell\n<arg_key>command</arg_key>\n<arg_value>ls</arg_value>\n"
    "<arg_key>timeout</arg_key>\n<arg_value>5</arg_value>\n</tool_call>"
)


class TextCallTests(BridgeBase):
    """
    Tool calls written as text in C{content} (bridge-spec section 6), through the glue.
    """

    def stream(self, body: dict, pieces: list[str]) -> tuple[list[dict], list]:
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.send(body)
        up = self.upstream()
        self.startStream(up)
        for piece in pieces:
            up.write(chunkEvent({"content": piece}))
            self.proxy.pump()
        up.write(chunkEvent({}, "stop", USAGE))
        up.write(b"data: [DONE]\n\n")
        up.finish()
        self.proxy.pump()
        events = sdkcheck.validateEvents(self.client.response().body)
        healedLines = [e for e in observer if "formats" in e]
        return events, healedLines

    def test_streamedCallHealed(self) -> None:
        """Hermes markup split across chunks becomes one function_call item with typed
        arguments; the text before it stays a message; stop still completes; one log line
        names the format."""
        markup = "Listing.\n" + HERMES
        pieces = [markup[i : i + 5] for i in range(0, len(markup), 5)]
        events, lines = self.stream(dict(CODEX_BODY, tools=[SHELL_TOOL]), pieces)
        final = events[-1]["response"]
        self.assertEqual(final["status"], "completed")
        self.assertEqual([i["type"] for i in final["output"]], ["message", "function_call"])
        message, call = final["output"]
        self.assertEqual(message["content"][0]["text"].strip(), "Listing.")
        self.assertEqual(call["name"], "shell")
        self.assertEqual(json.loads(call["arguments"]), {"command": "ls -la", "timeout": 5})
        self.assertNotIn("<tool_call>", json.dumps(events))
        self.assertEqual(len(lines), 1)
        self.assertIn("hermes", lines[0]["formats"].lower())

    def test_toolChoiceNoneLeavesText(self) -> None:
        """With tool_choice none (or no tools), markup is the model's text, untouched."""
        for body in [dict(CODEX_BODY, tools=[SHELL_TOOL], tool_choice="none"), CODEX_BODY]:
            self.setUp()
            events, lines = self.stream(body, [HERMES])
            final = events[-1]["response"]
            self.assertEqual([i["type"] for i in final["output"]], ["message"])
            self.assertEqual(final["output"][0]["content"][0]["text"], HERMES)
            self.assertEqual(lines, [])

    def test_wholeReplyHealed(self) -> None:
        """stream: false: GLM markup in the completion's content becomes a call."""
        self.send(dict(CODEX_BODY, tools=[SHELL_TOOL], stream=False))
        up = self.upstream()
        up.setHeader(b"content-type", b"application/json")
        up.write(json.dumps(chatCompletion({"content": GLM}, usage=USAGE)).encode())
        up.finish()
        self.proxy.pump()
        document = self.client.response().json()
        [call] = document["output"]
        self.assertEqual((call["type"], call["name"]), ("function_call", "shell"))
        self.assertEqual(json.loads(call["arguments"]), {"command": "ls", "timeout": 5})


class ReferenceCycleTests(BridgeBase):
    """
    A finished exchange is freed by reference counting alone, not at the next full
    garbage collection (many streams in flight held tens of MiB until then).
    """

    def test_noCyclesLeftAfterAStream(self) -> None:
        """With the collector off, nothing of a completed bridged stream survives."""
        import gc

        from responses_proxy.bridge.stream import ResponsesStream
        from responses_proxy.web.exchange import UpstreamExchange

        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        up, lost = self.openStream()
        up.write(chunkEvent({"reasoning_content": "think"}))
        up.write(chunkEvent({"content": "done"}))
        self.completeStream(up)
        self.client.disconnect()
        self.proxy.pump()
        survivors = [
            type(o).__name__
            for o in gc.get_objects()
            if isinstance(o, (UpstreamExchange, ResponsesStream))
            or type(o).__name__ == "_Bridge"
        ]
        self.assertEqual(survivors, [])
