# -*- test-case-name: tests.test_replies -*-
"""
The proxy's one JSON error shape, and the raw bytes of a reply the channel writes itself.

Every error a client gets from the proxy (a refused bridge request, a 502/504, a 413, a
converted upstream error) is C{{"error": {"message", "type", "code", "param"}}}, the
Responses API's own shape, so OpenAI's SDKs and Codex read it as they read OpenAI's.
"""

from __future__ import annotations

import json
from typing import Any


def errorDocument(
    message: str, type: str | None, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """
    @return: C{{"error": {"message", "type", "code", "param"}}}.
    """
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


def encodeJSON(document: object) -> bytes:
    """
    Compact UTF-8 JSON, non-ASCII kept as is (upstream messages may be in any language).
    """
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def errorBody(message: str, type: str | None, code: str | None, param: str | None = None) -> bytes:
    """
    L{errorDocument} as bytes.
    """
    return encodeJSON(errorDocument(message, type, code, param))


def rawResponse(status: int, phrase: bytes, body: bytes = b"") -> bytes:
    """
    A whole HTTP/1.1 response that closes the connection, for refusals the channel sends
    before a request object exists (a bad request line, a body too large or too slow).

    @param body: a JSON error body, or empty.
    """
    head = b"HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: %d\r\n" % (
        status,
        phrase,
        len(body),
    )
    if body:
        head += b"Content-Type: application/json\r\n"
    return head + b"\r\n" + body
