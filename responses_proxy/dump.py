# -*- test-case-name: tests.test_dump -*-
"""
C{--dump-dir}: one request file and one response file per exchange, for debugging.

Files are numbered, JSON, mode 0600; credentials and cookies in headers are shown as
C{[REDACTED]}, and bodies pass through the key redactor in case an upstream echoed it.
The response file is written when the exchange ends, whatever the outcome.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from typing import Any

from responses_proxy.headers import RawHeaders, redactedHeaders

MAX_DUMP_BODY = 32 * 1024 * 1024
_NAME = re.compile(r"^(\d{6})-")


def _bodyValue(data: bytes, truncated: bool) -> Any:
    """
    JSON bodies are kept as JSON, anything else as text.
    """
    text = data.decode("utf-8", errors="replace")
    if not truncated:
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


class _Capped:
    """
    A byte accumulator that stops growing at L{MAX_DUMP_BODY}.
    """

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, data: bytes) -> None:
        room = MAX_DUMP_BODY - self.size
        if room <= 0:
            self.truncated = self.truncated or bool(data)
            return
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self.parts.append(data)
        self.size += len(data)

    def value(self) -> bytes:
        return b"".join(self.parts)


class Dumper:
    """
    Creates numbered L{Exchange} records in a directory.
    """

    def __init__(self, directory: str, redact: Callable[[bytes], bytes]) -> None:
        self._directory = directory
        self._redact = redact
        os.makedirs(directory, mode=0o700, exist_ok=True)
        highest = 0
        for name in os.listdir(directory):
            match = _NAME.match(name)
            if match:
                highest = max(highest, int(match.group(1)))
        self._next = highest + 1

    def begin(self) -> Exchange:
        """
        Start a new exchange with the next free number.
        """
        number = self._next
        self._next += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        prefix = os.path.join(self._directory, f"{number:06d}-{stamp}")
        return Exchange(prefix, self._redact)

    def _write(self, path: str, document: dict[str, Any]) -> None:  # pragma: no cover
        _writeJSON(path, document)


def _writeJSON(path: str, document: dict[str, Any]) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, ensure_ascii=False)
        f.write("\n")


class Exchange:
    """
    One client request and its response, as seen by the proxy.
    """

    def __init__(self, prefix: str, redact: Callable[[bytes], bytes]) -> None:
        self._prefix = prefix
        self._redact = redact
        self._status: int | None = None
        self._headers: list[list[str]] = []
        self._upstream = _Capped()
        self._client = _Capped()
        self._bridged = False
        self._written = False

    def writeRequest(
        self,
        method: bytes,
        target: bytes,
        headers: RawHeaders,
        body: bytes,
        upstreamURL: str,
        upstreamBody: bytes | None = None,
        upstreamHeaders: RawHeaders | None = None,
    ) -> None:
        """
        Write the request file (and, in bridge mode, the converted upstream request).
        """
        document: dict[str, Any] = {
            "method": method.decode("latin-1"),
            "target": target.decode("latin-1"),
            "headers": redactedHeaders(headers),
            "body": _bodyValue(self._redact(body), False),
            "upstream_url": upstreamURL,
        }
        if upstreamBody is not None:
            self._bridged = True
            document["upstream_request"] = {
                "headers": redactedHeaders(upstreamHeaders or []),
                "body": _bodyValue(self._redact(upstreamBody), False),
            }
        _writeJSON(self._prefix + "-request.json", document)

    def responseStarted(self, status: int, headers: RawHeaders) -> None:
        self._status = status
        self._headers = redactedHeaders(headers)

    def upstreamData(self, data: bytes) -> None:
        """
        Bytes as the upstream sent them.
        """
        self._upstream.add(data)

    def clientData(self, data: bytes) -> None:
        """
        Bytes as the client received them (bridge mode, where they differ).
        """
        self._bridged = True
        self._client.add(data)

    def finish(self, outcome: str) -> None:
        """
        Write the response file once.

        @param outcome: C{"complete"}, or why the exchange ended early.
        """
        if self._written:
            return
        self._written = True
        document: dict[str, Any] = {
            "status": self._status,
            "headers": self._headers,
            "outcome": outcome,
            "body": _bodyValue(self._redact(self._upstream.value()), self._upstream.truncated),
            "body_truncated": self._upstream.truncated,
        }
        if self._bridged:
            document["client_body"] = _bodyValue(
                self._redact(self._client.value()), self._client.truncated
            )
        _writeJSON(self._prefix + "-response.json", document)
