# -*- test-case-name: tests.test_bridge_errors -*-
"""
Upstream errors -> Responses-style errors with the codes Codex acts on.

Codex reads C{error.code} (bridge-spec.md section 4, codex-wire.md section
3.5): C{context_length_exceeded} makes it say the context window is full
instead of retrying, C{insufficient_quota} and C{server_is_overloaded} stop it,
and C{rate_limit_exceeded} is retried after the delay it parses from "try again
in N s" in the message. Chat providers word these errors in a dozen ways; this
module recognises them, keeps the upstream's own message (sanitised), and
builds C{{"error": {"message", "type", "code", "param"}}}.

Pure: no I/O. The key never reaches this module; the glue's redactor filters
every byte written to the client.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from responses_proxy.replies import errorDocument
from responses_proxy.sse import SSELineTooLong, SSEParser

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "classifyError",
    "extractError",
    "mapStreamError",
    "mapUpstreamError",
    "retryAfterSeconds",
    "sanitiseMessage",
]

MAX_MESSAGE_LENGTH = 2000

CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
INSUFFICIENT_QUOTA = "insufficient_quota"
RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
SERVER_IS_OVERLOADED = "server_is_overloaded"
SERVER_ERROR = "server_error"

# Codes Codex gives a meaning to inside response.failed; any other code is
# reported as server_error (which Codex retries).
_CODEX_STREAM_CODES = frozenset(
    {
        CONTEXT_LENGTH_EXCEEDED,
        INSUFFICIENT_QUOTA,
        RATE_LIMIT_EXCEEDED,
        SERVER_IS_OVERLOADED,
        "slow_down",
        "usage_not_included",
        "invalid_prompt",
        "cyber_policy",
    }
)

# Wordings of "the prompt does not fit the model's context", by provider:
# OpenAI/Azure/DeepSeek/vLLM/OpenRouter ("maximum context length is N tokens",
# "reduce the length of the messages"), vLLM/SGLang ("longer than the maximum
# model length", "model's context length"), Anthropic-style ("prompt is too
# long"), Bedrock ("Input is too long for requested model", "Too many input
# tokens"), Gemini ("input token count ... exceeds the maximum number of
# tokens"), llama.cpp ("exceeds the available context size",
# exceed_context_size_error), Ollama/llama-cpp-python ("exceeds context
# length", "exceed context window"), Dashscope/Qwen ("Range of input length
# should be"), Moonshot/Kimi ("exceeded model token limit"), Mistral ("too large
# for model with N maximum context length"), Zhipu ("Prompt exceeds max
# length"), TGI ("inputs tokens + max_new_tokens must be"), Chinese wordings.
_CONTEXT_PATTERN = re.compile(
    "|".join(
        [
            r"context[_ ]length[_ ]exceeded",
            r"context[_ ]window[_ ]exceeded",
            r"exceed(?:s|ed)?[_ ]context",
            r"maximum context length",
            r"max(?:imum)? context (?:length|size|window)",
            r"context (?:length|window|size|limit)",
            r"maximum model length",
            r"max_model_len",
            r"too many (?:input )?tokens",
            r"prompt is too long",
            r"prompt too long",
            r"input is too long",
            r"input too long",
            r"(?:input|prompt) (?:length|tokens?) exceeds?",
            r"exceeds? the (?:maximum|max) (?:number of )?(?:input )?tokens",
            r"input token count",
            r"max input tokens",
            r"range of input length",
            r"model token limit",
            r"exceeds? (?:the )?token limit",
            r"prompt exceeds max length",
            r"reduce the length of the messages",
            r"inputs`? tokens \+ `?max_new_tokens",
            r"requested tokens \(\d+\) exceed",
            r"上下文长度",
            r"超过最大长度",
            r"输入长度超",
            r"超出最大",
        ]
    ),
    re.IGNORECASE,
)

# Billing, balance and hard quota: Codex stops and says so.
_QUOTA_PATTERN = re.compile(
    "|".join(
        [
            r"insufficient[_ ]quota",
            r"exceeded your current quota",
            r"quota[_ ]exceeded",
            r"out of quota",
            r"insufficient[_ ](?:account )?balance",
            r"insufficient[_ ](?:credits?|funds)",
            r"not enough (?:credits?|balance|funds)",
            r"credit balance is too low",
            r"requires more credits",
            r"out of credits",
            r"billing",
            r"payment required",
            r"arrearage",
            r"account (?:balance|is in arrears|has been suspended|is not active)",
            r"余额不足",
            r"欠费",
        ]
    ),
    re.IGNORECASE,
)

_OVERLOADED_PATTERN = re.compile(
    r"server[_ ]is[_ ]overloaded|overloaded|at capacity|over capacity",
    re.IGNORECASE,
)

_RATE_LIMIT_PATTERN = re.compile(
    r"rate[_ ]limit|too many requests|requests per|tokens per min|throttl",
    re.IGNORECASE,
)

# Codex's own pattern for the retry delay (codex-wire.md section 3.5).
_CODEX_RETRY_PATTERN = re.compile(r"try again in\s*(\d+(?:\.\d+)?)\s*(s|ms|seconds?)", re.I)
# Other providers' wordings of a delay (Gemini: "Please retry in 35.5s").
_OTHER_RETRY_PATTERN = re.compile(
    r"(?:retry|try again)(?: (?:in|after))\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|seconds?)\b", re.I
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")
_SPACES = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SCRIPT = re.compile(r"<(script|style)[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def sanitiseMessage(text: object, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """
    Make upstream text safe to show: no control or bidi characters, spaces
    collapsed, at most C{limit} characters (cut ones end in an ellipsis).

    @param text: anything; non-strings are converted with C{str}.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if len(text) > limit * 4:
        text = text[: limit * 4]
    text = _CONTROL.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    return text


def _htmlText(text: str) -> str:
    """
    The readable part of an HTML error page: its title, else its text.
    """
    title = _TITLE.search(text)
    if title:
        found = sanitiseMessage(_TAG.sub(" ", title.group(1)))
        if found:
            return found
    return sanitiseMessage(_TAG.sub(" ", _SCRIPT.sub(" ", text)))


def _str(value: object) -> str | None:
    """
    A non-empty string, or L{None}.
    """
    if isinstance(value, str) and value.strip():
        return value
    return None


def _fromObject(value: object, depth: int = 0) -> dict[str, Any]:
    """
    Find C{message}, C{type}, C{code}, C{param} and hints in one parsed body.
    """
    found: dict[str, Any] = {}
    if depth > 4:
        return found
    if isinstance(value, str):
        if value.strip():
            found["message"] = value
        return found
    if isinstance(value, list):
        # Gemini's compatibility layer answers [{"error": {...}}]; FastAPI's
        # validation errors are a list of {"msg": ...}.
        messages = []
        for entry in value[:8]:
            inner = _fromObject(entry, depth + 1)
            for key, item in inner.items():
                if key == "message":
                    messages.append(item)
                else:
                    found.setdefault(key, item)
        if messages:
            found["message"] = "; ".join(messages)
        return found
    if not isinstance(value, Mapping):
        return found
    error = value.get("error")
    if isinstance(error, (Mapping, list)):
        found = _fromObject(error, depth + 1)
    elif _str(error):
        found["message"] = error
    for key in ("message", "Message", "msg", "error_msg", "errorMessage", "detail", "details"):
        if "message" in found:
            break
        inner = value.get(key)
        if _str(inner):
            found["message"] = inner
        elif isinstance(inner, (Mapping, list)) and inner:
            nested = _fromObject(inner, depth + 1)
            if "message" in nested:
                found["message"] = nested["message"]
    for key in ("type", "code", "param", "status"):
        if key not in found and key in value and value[key] is not None:
            found[key] = value[key]
    if "type" not in found and _str(value.get("__type")):
        found["type"] = value["__type"]  # Bedrock: "ValidationException"
    metadata = value.get("metadata")
    if isinstance(metadata, Mapping):
        # OpenRouter puts the provider's own message in metadata.raw.
        raw = metadata.get("raw")
        if isinstance(raw, (str, Mapping, list)) and raw:
            found.setdefault("raw", raw if isinstance(raw, str) else json.dumps(raw)[:4000])
    details = value.get("details")
    if isinstance(details, list):
        # Google's RetryInfo: {"@type": "...RetryInfo", "retryDelay": "35s"}.
        for detail in details:
            if isinstance(detail, Mapping) and _str(detail.get("retryDelay")):
                found.setdefault("retryDelay", detail["retryDelay"])
    return found


def _ssePayload(body: bytes) -> object:
    """
    The first JSON data payload of an SSE-framed body (a server that answers a streaming
    request's error in its stream framing), or L{None}.
    """
    parser = SSEParser()
    try:
        # The body is whole: its last line is not cut even without a line end.
        payloads = parser.feed(body + b"\n") + parser.close()
    except SSELineTooLong:
        return None
    for payload in payloads[:64]:
        # Servers that frame an error this way are loose about blank lines: try each
        # data line of an event too.
        for candidate in (payload, *payload.split(b"\n")):
            try:
                return json.loads(candidate)
            except ValueError:
                continue
    return None


def extractError(body: bytes) -> dict[str, Any]:
    """
    The upstream's error fields from a body of any shape.

    Handles C{{"error": {...}}}, C{{"error": "..."}}, C{{"message": ...}},
    C{{"detail": ...}} (FastAPI), lists (Gemini), HTML pages and plain text.

    @return: a dict with C{message} (always, possibly empty) and, when the
        body had them, C{type}, C{code}, C{param}, C{status}, C{raw},
        C{retryDelay}.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    stripped = text.strip()
    try:
        parsed = json.loads(stripped) if stripped else None
    except ValueError:
        parsed = None
    if parsed is None and stripped.startswith(("data:", "event:", ":")):
        parsed = _ssePayload(body if isinstance(body, bytes) else text.encode("utf-8"))
    if parsed is not None:
        found = _fromObject(parsed)
        if "message" not in found and not isinstance(parsed, str):
            found["message"] = json.dumps(parsed, ensure_ascii=False)[: MAX_MESSAGE_LENGTH * 2]
        found["message"] = sanitiseMessage(found.get("message"))
        return found
    if stripped[:1] == "<" or "<html" in stripped[:512].lower():
        return {"message": _htmlText(stripped), "html": True}
    return {"message": sanitiseMessage(stripped)}


def retryAfterSeconds(value: str | None, now: float | None = None) -> float | None:
    """
    Seconds to wait from a C{Retry-After} header (delay-seconds or HTTP-date).

    @param now: the current Unix time for HTTP-dates; the clock when L{None}.
    @return: a delay of 0 or more, or L{None} if the header is absent or bad.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
            return None
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def _formatSeconds(seconds: float) -> str:
    """
    A delay as Codex's pattern reads it: C{"2"}, C{"1.5"}.
    """
    if seconds == int(seconds):
        return str(int(seconds))
    return (f"{seconds:.3f}").rstrip("0").rstrip(".")


def _retryHint(message: str, found: Mapping[str, Any], retryAfter: float | None) -> str:
    """
    Make sure a rate-limit message says "try again in N s" when a delay is known.
    """
    if _CODEX_RETRY_PATTERN.search(message):
        return message
    seconds = retryAfter
    if seconds is None:
        other = _OTHER_RETRY_PATTERN.search(message)
        if other is not None:
            seconds = float(other.group(1))
            if other.group(2).lower() == "ms":
                seconds /= 1000.0
    if seconds is None and isinstance(found.get("retryDelay"), str):
        delay = found["retryDelay"].strip().lower()
        if delay.endswith("s"):
            try:
                seconds = float(delay[:-1])
            except ValueError:
                seconds = None
    if seconds is None:
        return message
    hint = f"Please try again in {_formatSeconds(seconds)}s."
    return (message.rstrip() + " " + hint) if message else hint


def classifyError(status: int | None, found: Mapping[str, Any], retryKnown: bool) -> str | None:
    """
    The Codex code for an upstream error, or L{None} when none applies.

    Order: context length, then quota (unless a 429 that says when to retry:
    per-minute "quota" wordings such as Gemini's are rate limits), then
    rate limit (429), then overloaded (503, or the wording).

    @param status: the HTTP status, or the error's numeric code, if any.
    @param found: fields from L{extractError}.
    @param retryKnown: whether a retry delay is known (header or message).
    """
    texts = []
    for key in ("message", "raw", "type", "code", "status"):
        value = found.get(key)
        if isinstance(value, str):
            texts.append(value)
    haystack = " | ".join(texts)
    code = found.get("code")
    errorType = found.get("type")
    if _CONTEXT_PATTERN.search(haystack):
        return CONTEXT_LENGTH_EXCEEDED
    if code == INSUFFICIENT_QUOTA or errorType == INSUFFICIENT_QUOTA or status == 402:
        return INSUFFICIENT_QUOTA
    if _QUOTA_PATTERN.search(haystack) and not (status == 429 and retryKnown):
        return INSUFFICIENT_QUOTA
    if status == 429 or code == RATE_LIMIT_EXCEEDED or found.get("status") == "RESOURCE_EXHAUSTED":
        return RATE_LIMIT_EXCEEDED
    if status in (503, 529) or code in (SERVER_IS_OVERLOADED, "slow_down"):
        return SERVER_IS_OVERLOADED
    if _OVERLOADED_PATTERN.search(haystack):
        return SERVER_IS_OVERLOADED
    if _RATE_LIMIT_PATTERN.search(haystack):
        return RATE_LIMIT_EXCEEDED
    return None


def _statusFrom(value: object) -> int | None:
    """
    An HTTP-like status from an error's numeric C{code}, if it is one.
    """
    if type(value) is int and 400 <= value <= 599:
        return value
    if isinstance(value, str) and value.isdigit() and 400 <= int(value) <= 599:
        return int(value)
    return None


def _shortString(value: object, limit: int = 100) -> str | None:
    """
    An upstream identifier (type, code, param) if it is a short clean string.
    """
    if isinstance(value, str) and value:
        cleaned = sanitiseMessage(value, limit)
        return cleaned or None
    return None


def _detailed(
    message: str, found: Mapping[str, Any], code: str | None, delay: float | None
) -> str:
    """
    The message with the upstream's raw detail (when it says more) and, for a rate limit,
    the "try again in N s" hint Codex reads.
    """
    rawDetail = found.get("raw")
    if isinstance(rawDetail, str):
        raw = sanitiseMessage(rawDetail, 500)
        if raw and raw not in message:
            message = sanitiseMessage(message + " (" + raw + ")")
    if code == RATE_LIMIT_EXCEEDED:
        message = sanitiseMessage(_retryHint(message, found, delay), MAX_MESSAGE_LENGTH + 64)
    return message


def mapUpstreamError(
    status: int, body: bytes, retryAfter: str | None, *, now: float | None = None
) -> tuple[int, dict[str, Any]]:
    """
    Convert an upstream non-2xx reply, before streaming, to what the client gets.

    @param status: the upstream's HTTP status (kept).
    @param body: the upstream's body (any shape, possibly empty or HTML).
    @param retryAfter: the upstream's C{Retry-After} header, if any.
    @param now: the current time for HTTP-date C{Retry-After} values.
    @return: the status to send and C{{"error": {"message", "type", "code",
        "param"}}} with the code normalised for Codex.
    """
    found = extractError(body)
    message = found.get("message") or ""
    delay = retryAfterSeconds(retryAfter, now)
    retryKnown = (
        delay is not None
        or _CODEX_RETRY_PATTERN.search(message) is not None
        or _OTHER_RETRY_PATTERN.search(message) is not None
        or isinstance(found.get("retryDelay"), str)
    )
    code = classifyError(status, found, retryKnown)
    if not message:
        message = f"upstream returned HTTP {status} with an empty body"
    elif found.get("html"):
        message = f"upstream returned HTTP {status} (not JSON): {message}"
    message = _detailed(message, found, code, delay)
    upstreamCode = _shortString(found.get("code"))
    upstreamType = _shortString(found.get("type"))
    if code is None:
        code = upstreamCode
    if code == INSUFFICIENT_QUOTA:
        errorType = INSUFFICIENT_QUOTA
    elif upstreamType is not None:
        errorType = upstreamType
    elif status >= 500:
        errorType = "server_error"
    else:
        errorType = _STATUS_TYPES.get(status, "invalid_request_error")
    if code == CONTEXT_LENGTH_EXCEEDED and errorType not in ("invalid_request_error",):
        errorType = "invalid_request_error"
    param = _shortString(found.get("param"))
    return status, errorDocument(message, errorType, code, param)


def mapStreamError(error: Mapping[str, Any] | Any) -> tuple[str, str]:
    """
    Convert an C{{"error": ...}} object found inside a 2xx stream.

    @param error: the value of the chunk's C{error} key (a dict, a string or
        anything else), or the whole chunk.
    @return: C{(code, message)} for C{response.failed}: a code Codex knows,
        else C{server_error} (which Codex retries).
    """
    if isinstance(error, Mapping) and "error" in error and "message" not in error:
        inner = error.get("error")
        if inner:
            error = inner
    if isinstance(error, (bytes, bytearray)):
        found = extractError(bytes(error))
    else:
        found = _fromObject(error)
        found["message"] = sanitiseMessage(found.get("message"))
    message = found.get("message") or ""
    status = _statusFrom(found.get("code")) or _statusFrom(found.get("status"))
    retryKnown = (
        _CODEX_RETRY_PATTERN.search(message) is not None
        or _OTHER_RETRY_PATTERN.search(message) is not None
    )
    code = classifyError(status, found, retryKnown)
    upstreamCode = found.get("code")
    if code is None and isinstance(upstreamCode, str) and upstreamCode in _CODEX_STREAM_CODES:
        code = upstreamCode
    if code is None:
        code = SERVER_ERROR
    message = _detailed(message, found, code, None)
    if not message:
        message = "upstream reported an error in the stream"
    return code, message
