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

from twisted.logger import Logger

from responses_proxy.headers import RawHeaders, redactedHeaders

_log = Logger(namespace="responses_proxy")

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
    Creates numbered L{DumpRecord} records in a directory.
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

    def begin(self) -> DumpRecord:
        """
        Start a new exchange with the next free number.

        The name is claimed by creating the request file exclusively, so several
        proxies sharing one directory never overwrite each other's exchanges.
        """
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for _ in range(10000):
            number = self._next
            self._next += 1
            prefix = os.path.join(self._directory, f"{number:06d}-{stamp}")
            try:
                fd = os.open(prefix + "-request.json", _FLAGS, 0o600)
            except FileExistsError:
                continue
            except OSError as e:
                _log.warn("cannot write dumps: {error}", error=e.strerror or str(e))
                return DumpRecord(None, self._redact)
            os.close(fd)
            return DumpRecord(prefix, self._redact)
        return DumpRecord(None, self._redact)


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def _writeJSON(path: str, document: dict[str, Any], claimed: bool = False) -> None:
    """
    Write a dump file (0600, never through a symlink). A failure is logged, never
    raised: debugging output must not break the exchange it describes.
    """
    flags = (os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)) if claimed else _FLAGS
    try:
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2, ensure_ascii=False)
            f.write("\n")
    except (OSError, ValueError, TypeError) as e:
        _log.warn("cannot write dump file: {error}", error=getattr(e, "strerror", None) or str(e))


class DumpRecord:
    """
    One client request and its response, as seen by the proxy.
    """

    def __init__(self, prefix: str | None, redact: Callable[[bytes], bytes]) -> None:
        self._prefix = prefix
        self._redact = redact
        self._status: int | None = None
        self._responseHeaders: list[list[str]] = []
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
            "headers": self._headers(headers),
            "body": _bodyValue(self._redact(body), False),
            "upstream_url": upstreamURL,
        }
        if upstreamBody is not None:
            self._bridged = True
            document["upstream_request"] = {
                "headers": self._headers(upstreamHeaders or []),
                "body": _bodyValue(self._redact(upstreamBody), False),
            }
        if self._prefix is not None:
            _writeJSON(self._prefix + "-request.json", document, claimed=True)

    def responseStarted(self, status: int, headers: RawHeaders) -> None:
        self._status = status
        self._responseHeaders = self._headers(headers)

    def _headers(self, headers: RawHeaders) -> list[list[str]]:
        """
        Credentials and cookies by name, and the key wherever an upstream echoed it.
        """
        return redactedHeaders(
            (name, [self._redact(value) for value in values]) for name, values in headers
        )

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
            "headers": self._responseHeaders,
            "outcome": outcome,
            "body": _bodyValue(self._redact(self._upstream.value()), self._upstream.truncated),
            "body_truncated": self._upstream.truncated,
        }
        if self._bridged:
            document["client_body"] = _bodyValue(
                self._redact(self._client.value()), self._client.truncated
            )
        if self._prefix is not None:
            _writeJSON(self._prefix + "-response.json", document)
