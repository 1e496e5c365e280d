"""
Tests for L{responses_proxy.bridge.errors}: upstream errors with Codex's codes.
"""

from __future__ import annotations

import json
import re
from email.utils import formatdate
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.errors import (
    MAX_MESSAGE_LENGTH,
    extractError,
    mapStreamError,
    mapUpstreamError,
    retryAfterSeconds,
    sanitiseMessage,
)

# Codex's own pattern for the retry delay of rate_limit_exceeded.
CODEX_RETRY = re.compile(r"(?i)try again in\s*(\d+(?:\.\d+)?)\s*(s|ms|seconds?)")

# Context-length errors as providers word them (bodies as sent).
CONTEXT_BODIES: list[tuple[int, Any]] = [
    (400, {"error": {"message": "This model's maximum context length is 128000 tokens. "
                                "However, your messages resulted in 130000 tokens.",
                     "type": "invalid_request_error", "param": "messages",
                     "code": "context_length_exceeded"}}),
    # DeepSeek
    (400, {"error": {"message": "This model's maximum context length is 131072 tokens. However,"
                                " you requested 140000 tokens (139000 in the messages, 1000 in "
                                "the completion). Please reduce the length of the messages or "
                                "completion.", "type": "invalid_request_error", "param": None,
                     "code": "invalid_request_error"}}),
    # vLLM (old flat shape and the newer "maximum model length" wording)
    (400, {"object": "error", "message": "This model's maximum context length is 8192 tokens. "
           "However, you requested 9000 tokens.", "type": "BadRequestError", "param": None,
           "code": 400}),
    (400, {"error": {"message": "The decoder prompt (length 40000) is longer than the maximum "
                                "model length of 32768. Make sure that `max_model_len` is no "
                                "smaller than the number of text tokens.",
                     "type": "BadRequestError", "code": 400}}),
    # Qwen / Dashscope
    (400, {"error": {"code": "invalid_parameter_error", "type": "invalid_request_error",
                     "message": "<400> InternalError.Algo.InvalidParameter: Range of input "
                                "length should be [1, 129024]"}}),
    # llama.cpp
    (400, {"error": {"code": 400, "message": "the request exceeds the available context size, "
                                             "try increasing it",
                     "type": "exceed_context_size_error", "n_prompt_tokens": 9000,
                     "n_ctx": 8192}}),
    (500, {"error": {"code": 500, "message": "Context size has been exceeded.",
                     "type": "server_error"}}),
    # Ollama
    (500, {"error": "input length exceeds the context length"}),
    # Bedrock (its own shape and through a compatibility layer)
    (400, {"message": "Input is too long for requested model."}),
    (400, {"__type": "ValidationException",
           "message": "Too many input tokens. Max input tokens: 8192, request input token "
                      "count: 9279"}),
    # Anthropic-style
    (400, {"type": "error", "error": {"type": "invalid_request_error",
                                      "message": "prompt is too long: 208000 tokens > 200000 "
                                                 "maximum"}}),
    # Gemini's compatibility layer (a list)
    (400, [{"error": {"code": 400, "message": "The input token count (1200000) exceeds the "
                                              "maximum number of tokens allowed (1048576).",
                      "status": "INVALID_ARGUMENT"}}]),
    # Moonshot / Kimi
    (400, {"error": {"message": "Invalid request: Your request exceeded model token limit: "
                                "131072", "type": "invalid_request_error"}}),
    # Mistral
    (400, {"object": "error", "message": "Prompt contains 40000 tokens and 0 draft tokens, too "
           "large for model with 32768 maximum context length", "type": "invalid_request_error"}),
    # Zhipu GLM
    (400, {"error": {"code": "1261", "message": "Prompt exceeds max length"}}),
    # OpenRouter, provider's message in metadata.raw
    (400, {"error": {"code": 400, "message": "Provider returned error",
                     "metadata": {"raw": "context window exceeded", "provider_name": "X"}}}),
    # TGI
    (422, {"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
                    "4096. Given: 5000 `inputs` tokens and 100 `max_new_tokens`",
           "error_type": "validation"}),
    # generic phrasings
    (400, {"detail": "too many tokens in the prompt"}),
    (413, {"error": {"message": "Input is too long"}}),
    (400, {"error": {"message": "the prompt exceeds the context window of this model"}}),
]

QUOTA_BODIES: list[tuple[int, Any]] = [
    (429, {"error": {"message": "You exceeded your current quota, please check your plan and "
                                "billing details.", "type": "insufficient_quota",
                     "param": None, "code": "insufficient_quota"}}),
    # DeepSeek
    (402, {"error": {"message": "Insufficient Balance", "type": "unknown_error",
                     "param": None, "code": "invalid_request_error"}}),
    # OpenRouter
    (402, {"error": {"code": 402, "message": "This request requires more credits, or fewer "
                                             "max_tokens."}}),
    # Anthropic-style
    (400, {"type": "error", "error": {"type": "invalid_request_error",
                                      "message": "Your credit balance is too low to access the "
                                                 "API."}}),
    # Dashscope
    (400, {"error": {"code": "Arrearage", "message": "Access denied, please make sure your "
                                                     "account is in good standing."}}),
    # Zhipu
    (429, {"error": {"code": "1113", "message": "余额不足或无可用资源包,请充值。"}}),
]


def _map(status: int, body: Any, retryAfter: str | None = None, **kwargs: Any):
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return mapUpstreamError(status, raw, retryAfter, **kwargs)


class UpstreamErrorTests(SynchronousTestCase):
    """
    L{mapUpstreamError}: errors before streaming starts.
    """

    def assertShape(self, body: dict[str, Any]) -> dict[str, Any]:
        self.assertEqual(set(body), {"error"})
        error = body["error"]
        self.assertEqual(set(error), {"message", "type", "code", "param"})
        self.assertIsInstance(error["message"], str)
        self.assertTrue(error["message"])
        return error

    def test_contextLength(self) -> None:
        """
        Every provider's wording of "the prompt is too long" gets
        C{context_length_exceeded}; the status is kept.
        """
        for status, body in CONTEXT_BODIES:
            sent, mapped = _map(status, body)
            error = self.assertShape(mapped)
            self.assertEqual(sent, status)
            self.assertEqual(error["code"], "context_length_exceeded", body)

    def test_quota(self) -> None:
        """
        Billing, balance and quota errors get C{insufficient_quota}.
        """
        for status, body in QUOTA_BODIES:
            sent, mapped = _map(status, body)
            error = self.assertShape(mapped)
            self.assertEqual(sent, status)
            self.assertEqual(error["code"], "insufficient_quota", body)
            self.assertEqual(error["type"], "insufficient_quota")

    def test_rateLimitRetryAfterSeconds(self) -> None:
        """
        A 429 with C{Retry-After} in seconds: C{rate_limit_exceeded} and a
        message Codex's pattern reads the delay from.
        """
        sent, mapped = _map(429, {"error": {"message": "Rate limit reached."}}, "7")
        error = self.assertShape(mapped)
        self.assertEqual((sent, error["code"]), (429, "rate_limit_exceeded"))
        self.assertTrue(error["message"].startswith("Rate limit reached."))
        match = CODEX_RETRY.search(error["message"])
        self.assertEqual((match.group(1), match.group(2)), ("7", "s"))

    def test_rateLimitRetryAfterFraction(self) -> None:
        _, mapped = _map(429, {"error": {"message": "slow"}}, "1.5")
        self.assertEqual(CODEX_RETRY.search(mapped["error"]["message"]).group(1), "1.5")

    def test_rateLimitRetryAfterDate(self) -> None:
        """
        C{Retry-After} as an HTTP-date counts from now.
        """
        now = 1_800_000_000.0
        _, mapped = _map(429, b"", formatdate(now + 30, usegmt=True), now=now)
        error = mapped["error"]
        self.assertEqual(error["code"], "rate_limit_exceeded")
        self.assertEqual(CODEX_RETRY.search(error["message"]).group(1), "30")

    def test_rateLimitUpstreamHint(self) -> None:
        """
        OpenAI's own "Please try again in 20s" is kept as it is, even with a
        C{Retry-After}; its mention of billing does not make it a quota error.
        """
        message = ("Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000. "
                   "Please try again in 20s. Add a payment method at .../account/billing.")
        _, mapped = _map(429, {"error": {"message": message, "type": "tokens",
                                         "code": "rate_limit_exceeded"}}, "3")
        error = mapped["error"]
        self.assertEqual(error["code"], "rate_limit_exceeded")
        self.assertEqual(error["message"], message)

    def test_rateLimitOtherWording(self) -> None:
        """
        Gemini's "Please retry in 35.5s" (a per-minute quota, not billing) is a
        rate limit, rephrased so Codex reads the delay.
        """
        body = [{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                           "message": "You exceeded your current quota, please check your plan "
                                      "and billing details. Please retry in 35.5s."}}]
        _, mapped = _map(429, body)
        error = mapped["error"]
        self.assertEqual(error["code"], "rate_limit_exceeded")
        self.assertEqual(CODEX_RETRY.search(error["message"]).group(1), "35.5")

    def test_rateLimitRetryInfo(self) -> None:
        """
        Google's C{RetryInfo.retryDelay} detail gives the delay too.
        """
        body = {"error": {"code": 429, "message": "Resource has been exhausted.",
                          "status": "RESOURCE_EXHAUSTED",
                          "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                       "retryDelay": "12s"}]}}
        _, mapped = _map(429, body)
        self.assertEqual(CODEX_RETRY.search(mapped["error"]["message"]).group(1), "12")

    def test_rateLimitNoDelay(self) -> None:
        """
        A plain 429 is C{rate_limit_exceeded} with no invented delay.
        """
        _, mapped = _map(429, {"error": {"message": "Too many requests"}})
        self.assertEqual(mapped["error"]["code"], "rate_limit_exceeded")
        self.assertIsNone(CODEX_RETRY.search(mapped["error"]["message"]))

    def test_overloaded(self) -> None:
        """
        503 and "overloaded" wordings get C{server_is_overloaded}.
        """
        for status, body in [
            (503, {"error": {"message": "Service Unavailable"}}),
            (503, b"<html><head><title>503 Service Temporarily Unavailable</title></head></html>"),
            (529, {"type": "error", "error": {"type": "overloaded_error",
                                              "message": "Overloaded"}}),
            (500, {"error": {"message": "The engine is currently overloaded, please try later"}}),
        ]:
            sent, mapped = _map(status, body)
            self.assertEqual(sent, status)
            self.assertEqual(mapped["error"]["code"], "server_is_overloaded", body)

    def test_otherErrorsKeepTheirCode(self) -> None:
        """
        Errors Codex has no code for keep the upstream's status, message, type,
        code and param.
        """
        sent, mapped = _map(401, {"error": {"message": "Invalid API key", "type":
                                            "invalid_request_error", "code": "invalid_api_key",
                                            "param": None}})
        self.assertEqual(sent, 401)
        self.assertEqual(mapped["error"], {"message": "Invalid API key",
                                           "type": "invalid_request_error",
                                           "code": "invalid_api_key", "param": None})
        sent, mapped = _map(400, {"error": {"message": "bad tool schema", "param": "tools[0]",
                                            "code": 400}})
        self.assertEqual(mapped["error"]["param"], "tools[0]")
        self.assertIsNone(mapped["error"]["code"])
        self.assertEqual(mapped["error"]["type"], "invalid_request_error")

    def test_serverErrorType(self) -> None:
        sent, mapped = _map(500, {"message": "boom"})
        self.assertEqual((sent, mapped["error"]["type"]), (500, "server_error"))

    def test_bodyShapes(self) -> None:
        """
        The message is found in every common body shape.
        """
        cases = [
            ({"error": {"message": "m1"}}, "m1"),
            ({"error": "m2"}, "m2"),
            ({"message": "m3", "code": "X"}, "m3"),
            ({"Message": "m4"}, "m4"),
            ({"detail": "m5"}, "m5"),
            ({"detail": [{"loc": ["body", "model"], "msg": "field required",
                          "type": "value_error.missing"}]}, "field required"),
            ([{"error": {"message": "m7"}}], "m7"),
            ({"error": {"message": "m8"}, "message": "ignored"}, "m8"),
            ("plain string", "plain string"),
            ({"errors": ["odd"]}, '{"errors": ["odd"]}'),
            ({"error": {"error": {"message": "nested"}}}, "nested"),
        ]
        for body, expected in cases:
            _, mapped = _map(400, body)
            self.assertEqual(mapped["error"]["message"], expected, body)

    def test_nonJsonBodies(self) -> None:
        """
        HTML pages, plain text and empty bodies still give a clear message.
        """
        _, mapped = _map(502, b"<html><head><title>502 Bad Gateway</title></head>"
                              b"<body><center>nginx</center></body></html>")
        self.assertEqual(mapped["error"]["message"],
                         "upstream returned HTTP 502 (not JSON): 502 Bad Gateway")
        _, mapped = _map(500, b"<p>Internal <b>error</b></p><script>x()</script>")
        self.assertIn("Internal error", mapped["error"]["message"])
        self.assertNotIn("<", mapped["error"]["message"])
        _, mapped = _map(500, b"upstream connect error or disconnect/reset before headers")
        self.assertEqual(mapped["error"]["message"],
                         "upstream connect error or disconnect/reset before headers")
        _, mapped = _map(504, b"")
        self.assertEqual(mapped["error"]["message"],
                         "upstream returned HTTP 504 with an empty body")
        _, mapped = _map(400, b"\xff\xfe garbage \x00")
        self.assertTrue(mapped["error"]["message"])

    def test_sseFramedBody(self) -> None:
        """
        An error sent in SSE framing (a server answering a streaming request): the
        first JSON C{data:} payload is the error, so its message and code are used.
        """
        body = (b'event: error\r\n: note\r\ndata: not json\r\n\r\n'
                b'data: {"error": {"message": "This model\'s maximum context length is '
                b'8192 tokens.", "type": "invalid_request_error", "code": null}}\n\n')
        status, mapped = _map(400, body)
        self.assertEqual(status, 400)
        error = mapped["error"]
        self.assertEqual(error["code"], "context_length_exceeded")
        self.assertEqual(error["message"], "This model's maximum context length is 8192 tokens.")
        _, mapped = _map(500, b"data: [DONE]\n\n")
        self.assertEqual(mapped["error"]["message"], "data: [DONE]")

    def test_sanitised(self) -> None:
        """
        Messages lose control and bidi characters and are bounded.
        """
        _, mapped = _map(400, {"error": {"message": "a\x1b[31mb\r\nc\u202ed\x00" + "x" * 10000}})
        message = mapped["error"]["message"]
        self.assertLessEqual(len(message), MAX_MESSAGE_LENGTH)
        self.assertTrue(message.startswith("a [31mb c d"))
        self.assertTrue(message.endswith("\u2026"))
        self.assertIsNone(re.search(r"[\x00-\x1f\x7f\u202e]", message))
        _, mapped = _map(400, {"error": {"message": "m", "type": "t\n" * 200, "code": "c\x07"}})
        self.assertLessEqual(len(mapped["error"]["type"]), 100)
        self.assertEqual(mapped["error"]["code"], "c")

    def test_openRouterRaw(self) -> None:
        """
        OpenRouter's provider message (C{metadata.raw}) is added to its
        generic one.
        """
        _, mapped = _map(400, {"error": {"code": 400, "message": "Provider returned error",
                                         "metadata": {"raw": "invalid tool name"}}})
        self.assertEqual(mapped["error"]["message"], "Provider returned error (invalid tool name)")

    def test_jsonSerialisable(self) -> None:
        for status, body in CONTEXT_BODIES + QUOTA_BODIES:
            json.dumps(_map(status, body)[1])


class StreamErrorTests(SynchronousTestCase):
    """
    L{mapStreamError}: C{{"error": ...}} inside a 2xx stream.
    """

    def test_context(self) -> None:
        for _, body in CONTEXT_BODIES:
            error = body[0] if isinstance(body, list) else body
            code, message = mapStreamError(error.get("error", error))
            self.assertEqual(code, "context_length_exceeded", body)
            self.assertTrue(message)

    def test_quota(self) -> None:
        code, _ = mapStreamError({"message": "Insufficient Balance", "code": 402})
        self.assertEqual(code, "insufficient_quota")

    def test_rateLimit(self) -> None:
        """
        A rate-limit error mid-stream keeps a Codex-readable delay.
        """
        code, message = mapStreamError({"code": 429, "message": "slow down, retry after 2s"})
        self.assertEqual(code, "rate_limit_exceeded")
        self.assertEqual(CODEX_RETRY.search(message).group(1), "2")
        code, message = mapStreamError({"code": "rate_limit_exceeded",
                                        "message": "Please try again in 250ms."})
        self.assertEqual(code, "rate_limit_exceeded")
        self.assertEqual(CODEX_RETRY.search(message).group(2), "ms")

    def test_overloaded(self) -> None:
        self.assertEqual(mapStreamError({"type": "overloaded_error", "message": "Overloaded"})[0],
                         "server_is_overloaded")
        self.assertEqual(mapStreamError({"code": 503, "message": "unavailable"})[0],
                         "server_is_overloaded")

    def test_unknownIsServerError(self) -> None:
        """
        Anything else is C{server_error}, which Codex retries.
        """
        for error in [{"code": 502, "message": "Provider disconnected"},
                      {"message": "boom", "code": "internal"}, "just a string", 42, None, {}]:
            code, message = mapStreamError(error)
            self.assertEqual(code, "server_error", error)
            self.assertTrue(message)
        self.assertEqual(mapStreamError("just a string"), ("server_error", "just a string"))

    def test_codexCodesKept(self) -> None:
        """
        Codes Codex knows are passed through.
        """
        self.assertEqual(mapStreamError({"code": "invalid_prompt", "message": "no"}),
                         ("invalid_prompt", "no"))

    def test_wholeChunk(self) -> None:
        """
        The whole chunk (with its C{error} key) is accepted too.
        """
        self.assertEqual(mapStreamError({"error": {"message": "prompt is too long"}})[0],
                         "context_length_exceeded")

    def test_sanitised(self) -> None:
        _, message = mapStreamError({"message": "a\nb\x00" + "y" * 5000})
        self.assertTrue(message.startswith("a b"))
        self.assertLessEqual(len(message), MAX_MESSAGE_LENGTH)


class HelperTests(SynchronousTestCase):
    """
    L{retryAfterSeconds}, L{sanitiseMessage}, L{extractError}.
    """

    def test_retryAfter(self) -> None:
        self.assertEqual(retryAfterSeconds("10"), 10.0)
        self.assertEqual(retryAfterSeconds(" 0.25 "), 0.25)
        self.assertIsNone(retryAfterSeconds(None))
        self.assertIsNone(retryAfterSeconds(""))
        self.assertIsNone(retryAfterSeconds("-3"))
        self.assertIsNone(retryAfterSeconds("nan"))
        self.assertIsNone(retryAfterSeconds("soon"))
        now = 1_800_000_000.0
        self.assertEqual(retryAfterSeconds(formatdate(now + 90, usegmt=True), now), 90.0)
        self.assertEqual(retryAfterSeconds(formatdate(now - 90, usegmt=True), now), 0.0)

    def test_sanitise(self) -> None:
        self.assertEqual(sanitiseMessage("  a\t\tb \n"), "a b")
        self.assertEqual(sanitiseMessage(None), "")
        self.assertEqual(sanitiseMessage(12), "12")
        self.assertEqual(sanitiseMessage("abcdef", 4), "abc\u2026")

    def test_extractFields(self) -> None:
        found = extractError(b'{"error":{"message":"m","type":"t","code":"c","param":"p"}}')
        self.assertEqual(found, {"message": "m", "type": "t", "code": "c", "param": "p"})


class SSEFramedErrorTests(SynchronousTestCase):
    """
    An error in SSE framing is read with the project's one SSE parser.
    """

    def test_lastLineWithoutLineEnd(self) -> None:
        """A body read whole whose last data line has no line end still gives its message."""
        from responses_proxy.bridge.errors import extractError

        body = b'data: {"error": {"message": "context too long", "code": "ctx"}}'
        self.assertEqual(extractError(body)["message"], "context too long")
        self.assertEqual(extractError(b": ping\r\n" + body)["message"], "context too long")
