"""
The bridge in front of llama.cpp's own C{llama-server} (built from the llama.cpp that
llama-cpp-python's sdist vendors) serving SmolLM2-135M-Instruct, greedy, one slot.

What this server really does, and what the tests pin down:

  - streams with a role-only first chunk, a C{finish_reason} chunk, a usage chunk with
    C{prompt_tokens_details.cached_tokens} (its prompt cache: a repeated prompt is mostly
    cached) and extra C{timings};
  - a prompt longer than the context is an HTTP 400 before streaming
    (C{exceed_context_size_error});
  - during a long prompt evaluation the 200 and its headers come at once, then only SSE
    comment lines (C{:} alone, every C{--sse-ping-interval} seconds) until the first
    token;
  - SmolLM2's chat template has no tools: they are not shown to the model, and
    C{tool_choice} (C{required}, or a named function, which it rejects with a warning)
    has no effect, so forced tool calls are covered with the other two servers.

Codex runs with a short base prompt (C{model_instructions_file}, see
L{support.SHORT_INSTRUCTIONS}) where a reply is wanted, and with its full default prompt
plus a long message for the context-length case.
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai
from twisted.trial.unittest import SynchronousTestCase

from tests.interop import support
from tests.interop.support import Bridge, Shared
from tests.support import http
from tests.support.procs import makeTempDir, precondition

CONTEXT_WINDOW_MESSAGE = "ran out of room in the model's context window"
LONG_INPUT = "word " * 10000
"""About 10k tokens: more than the 8k context."""

SILENCE_LIMIT = 3.0
"""The bridge's C{streamIdleTimeout} for the long-evaluation test."""



def _mainBridge() -> Bridge:
    def make(owner: Any) -> Bridge:
        server = support.startLlamaServer(owner, "-c", "8192", "-n", "256",
                                          "--sse-ping-interval", "1")
        return Bridge(owner, server)

    return Shared.get("llama-server", make, lambda b: b.alive())


def _slowServer() -> support.ChatServer:
    """
    A server that evaluates prompts four tokens at a time (slow on purpose), pings every
    second, and stops every reply after four tokens.
    """
    def make(owner: Any) -> support.ChatServer:
        return support.startLlamaServer(owner, "-c", "4096", "-b", "4", "-ub", "4",
                                        "-n", "4", "--sse-ping-interval", "1")

    return Shared.get("llama-server-slow", make, lambda s: s.alive())


def _slowBridge(tuning: str | None) -> Bridge:
    server = _slowServer()
    return Shared.get(f"llama-server-slow-bridge-{tuning}",
                      lambda owner: Bridge(owner, server, tuning=tuning),
                      lambda b: b.alive())


def _failedMessage(result: Any) -> str:
    failed = [e for e in result.events or [] if e.get("type") == "turn.failed"]
    return failed[-1]["error"]["message"] if failed else ""


class LlamaServerTests(SynchronousTestCase):
    """
    Codex and the OpenAI SDK → the bridge → llama-server with SmolLM2-135M.
    """

    skip = support.SKIP

    def useBridge(self, bridge: Bridge) -> Bridge:
        self.bridge = bridge
        self.server = bridge.server
        self.mark = bridge.mark()
        return bridge

    def exchanges(self, count: int) -> list[support.Exchange]:
        return self.bridge.exchangesSince(self.mark, count)

    def shortCodex(self) -> Any:
        instructions = makeTempDir(self, "interop-instructions-") / "base.md"
        instructions.write_text(support.SHORT_INSTRUCTIONS)
        return self.bridge.codex(self, "smollm2", config={
            "model_instructions_file": str(instructions), **support.SHORT_PROMPT_CONFIG})

    # -- text, usage and the prompt cache -------------------------------------------------------

    def test_codexTextTwiceCachedTokens(self) -> None:
        """
        Codex prints what SmolLM2 streamed; run again with the same prompt, the server
        reports all of it but the last token cached, and Codex's turn usage carries the
        server's numbers (C{cached_input_tokens} included).
        """
        self.useBridge(_mainBridge())
        codex = self.shortCodex()
        results = [codex.run("Say hello."), codex.run("Say hello.")]
        first, second = self.exchanges(2)
        support.record(self.server, "codex-text", first, "codex 0.171.0")
        support.record(self.server, "codex-cached-prompt", second, "codex 0.171.0",
                       note="the same prompt again: the server's prompt cache")
        for result, ex in zip(results, (first, second), strict=True):
            self.assertEqual(support.finishReasons(ex.chunks), ["stop"], ex.raw[-1500:])
            self.assertEqual(result.exitCode, 0, result.describe())
            text = support.streamedText(ex.chunks)
            self.assertTrue(text.strip())
            self.assertEqual(result.agentMessages(), [text])
            usage = support.usageOf(support.streamedUsage(ex.chunks))
            [turn] = [e for e in result.events if e["type"] == "turn.completed"]
            self.assertEqual(
                (turn["usage"]["input_tokens"], turn["usage"]["cached_input_tokens"],
                 turn["usage"]["output_tokens"]),
                (usage["input_tokens"], usage["cached_tokens"], usage["output_tokens"]))
        # The same prompt twice (no per-run blocks, see SHORT_PROMPT_CONFIG): the server
        # evaluates only the last token again.
        self.assertEqual(first.chatRequest["messages"], second.chatRequest["messages"])
        usage = support.usageOf(support.streamedUsage(second.chunks))
        self.assertEqual(usage["cached_tokens"], usage["input_tokens"] - 1)

    def test_sdkRepeatedPromptCachedTokens(self) -> None:
        """
        The same streamed request twice through the SDK's wire format: the second
        response's C{input_tokens_details.cached_tokens} is the server's
        C{cached_tokens}, not zero, and every usage field is the server's.
        """
        self.useBridge(_mainBridge())
        body = {"model": "smollm2", "instructions": "You answer in French. " * 40,
                "input": "Bonjour !", "max_output_tokens": 4, "temperature": 0,
                "stream": True}
        outs = [self.bridge.stream(body), self.bridge.stream(body)]
        first, second = self.exchanges(2)
        support.record(self.server, "sdk-repeated-prompt", second, "openai sdk",
                       note="the same prompt again: cached_tokens from the prompt cache")
        for out, ex in zip(outs, (first, second), strict=True):
            self.assertIn(out.terminal["type"], ("response.completed", "response.incomplete"))
            self.assertEqual(support.responsesUsage(out.response["usage"]),
                             support.usageOf(support.streamedUsage(ex.chunks)))
        self.assertGreater(outs[1].response["usage"]["input_tokens_details"]["cached_tokens"],
                           100)

    def test_sdkLengthIsIncomplete(self) -> None:
        """
        C{max_output_tokens} → C{max_tokens}; the server stops with C{finish_reason:
        length}: C{response.incomplete} (C{max_output_tokens}), the text that arrived,
        and the usage.
        """
        self.useBridge(_mainBridge())
        out = self.bridge.stream({"model": "smollm2", "input": "Write a poem about the sea.",
                                  "max_output_tokens": 5, "stream": True})
        [ex] = self.exchanges(1)
        support.record(self.server, "sdk-length", ex, "openai sdk")
        self.assertEqual(ex.chatRequest["max_tokens"], 5)
        self.assertEqual(support.finishReasons(ex.chunks), ["length"])
        self.assertEqual(out.terminal["type"], "response.incomplete")
        self.assertEqual(out.response["incomplete_details"], {"reason": "max_output_tokens"})
        [message] = out.doneItems()
        self.assertEqual(message["content"][0]["text"], support.streamedText(ex.chunks))
        self.assertEqual(out.response["usage"]["output_tokens"], 5)

    def test_codexLengthIsIncomplete(self) -> None:
        """
        A server that stops every reply after four tokens (C{-n 4}): Codex reports the
        incomplete response (C{max_output_tokens}) and exits non-zero, after one request.
        """
        self.useBridge(_slowBridge(None))
        result = self.shortCodex().run("Write a poem about the sea.")
        [ex] = self.exchanges(1)
        support.record(self.server, "codex-length", ex, "codex 0.171.0",
                       note="the server was started with -n 4")
        self.assertEqual(support.finishReasons(ex.chunks), ["length"])
        self.assertNotEqual(result.exitCode, 0, result.describe())
        self.assertIn("max_output_tokens", _failedMessage(result), result.describe())

    # -- context length ----------------------------------------------------------------------------

    def test_contextLengthSDK(self) -> None:
        """
        A prompt longer than the context: llama-server's 400
        (C{exceed_context_size_error}) reaches the SDK as a 400 with code
        C{context_length_exceeded} and the server's message.
        """
        self.useBridge(_mainBridge())
        with self.bridge.sdk() as client:
            with self.assertRaises(openai.BadRequestError) as caught:
                client.responses.create(model="smollm2", input=LONG_INPUT, stream=True)
        [ex] = self.exchanges(1)
        support.record(self.server, "context-length", ex, "openai sdk")
        upstream = json.loads(ex.raw)["error"]
        self.assertEqual((ex.status, upstream["type"]), (400, "exceed_context_size_error"))
        error = caught.exception.body
        self.assertEqual(error["code"], "context_length_exceeded")
        self.assertIn("exceeds the available context size", error["message"])

    def test_contextLengthCodex(self) -> None:
        """
        Codex's full default prompt plus a long message: Codex shows its own "ran out of
        room" message after one request, although retries are allowed.
        """
        self.useBridge(_mainBridge())
        codex = self.bridge.codex(self, "smollm2", providerOptions={
            "request_max_retries": 2, "stream_max_retries": 2})
        result = codex.run("Summarise this: " + LONG_INPUT)
        [ex] = self.exchanges(1)
        support.record(self.server, "codex-context-length", ex, "codex 0.171.0")
        self.assertEqual(ex.status, 400)
        self.assertNotEqual(result.exitCode, 0, result.describe())
        self.assertIn(CONTEXT_WINDOW_MESSAGE, _failedMessage(result), result.describe())

    # -- a long prompt evaluation: only pings -----------------------------------------------

    def test_longPromptEvaluationOnlyPings(self) -> None:
        """
        A prompt that takes the (slow) server longer than the bridge's silence limit to
        evaluate, with C{streamIdleTimeout} at 3 s. Asked directly, the server sends its
        headers, then only C{:} comment lines every second until the first token. Through
        the bridge the stream must survive until the reply (four tokens, C{finish_reason:
        length}): the client gets keep-alive C{response.in_progress} events, then
        C{response.incomplete}.
        """
        self.useBridge(_slowBridge(f"streamIdleTimeout={SILENCE_LIMIT},keepAliveInterval=0.5"))
        filler = "The quick brown fox jumps over the lazy dog. " * 150

        # Directly: what the server sends while it evaluates (recorded with its timing,
        # for the replay in the fast suite); a new prompt each time, nothing cached.
        direct = {"model": "smollm2", "stream": True,
                  "stream_options": {"include_usage": True},
                  "messages": [{"role": "user", "content": self.marker() + filler}]}
        headers, pieces = self.readDirect(direct)
        firstData = next((t for t, piece in pieces if b"data:" in piece), None)
        # What the case needs (not the bug): the first token came later than the
        # silence limit, after comment lines only. A machine so fast that it does not
        # must not pass for the expected failure.
        precondition(firstData is not None and firstData > SILENCE_LIMIT + 1,
                     f"the first token came after {firstData} s, not more than "
                     f"{SILENCE_LIMIT + 1} s: make the prompt longer")
        before = b"".join(piece for t, piece in pieces if t < firstData).decode()
        comments = support.commentLines(before)
        precondition(len(comments) >= 2 and set(comments) == {":"}, before)
        support.recordTimed(self.server, "long-prompt-pings", direct, headers, pieces,
                            note="llama-server -b 4 -ub 4 --sse-ping-interval 1, asked "
                                 "directly: only comment lines while the prompt is evaluated")

        # Through the bridge.
        started = time.monotonic()
        out = self.bridge.stream({"model": "smollm2", "stream": True,
                                  "input": self.marker() + filler})
        elapsed = time.monotonic() - started
        [ex] = self.exchanges(1)
        self.assertEqual(out.status, 200)
        self.assertGreater(out.types().count("response.in_progress"), 2)
        self.assertEqual(out.terminal["type"], "response.incomplete",
                         (out.response.get("error"), f"after {elapsed:.1f} s"))
        self.assertEqual(support.finishReasons(ex.chunks), ["length"])
        self.assertGreaterEqual(len(support.commentLines(ex.raw)), 2)

    def marker(self) -> str:
        """
        @return: a new start for a prompt, so the server's prompt cache has none of it.
        """
        return f"Request {time.monotonic_ns()}. "

    def readDirect(
        self, body: dict[str, Any]
    ) -> tuple[list[tuple[str, str]], list[tuple[float, bytes]]]:
        """
        Send a chat request straight to the server and read the whole body.

        @return: the response headers, and the body's pieces as they arrived with the
            seconds since the headers.
        """
        with http.openStream(self.server.port, "/v1/chat/completions", body,
                             headers=[("Authorization", "Bearer " + support.UPSTREAM_KEY)],
                             timeout=30) as response:
            self.assertEqual(response.status, 200)
            start = time.monotonic()
            pieces = []
            for _ in range(100_000):
                piece = response.readChunk(60)
                if piece is None:
                    break
                pieces.append((time.monotonic() - start, piece))
            headers = list(response.headers)
        return headers, pieces
