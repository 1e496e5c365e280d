# -*- test-case-name: tests.test_admission -*-
"""
Which requests the proxy admits, decided on the raw request line and headers.

Pure functions, the one place for these rules: the request calls L{admit} before the
resource tree sees anything, and the channel asks the same question before it sends
C{100 Continue}. The target is compared as raw bytes (no decoding, no normalisation),
because anything a decoder would accept beyond the exact string is a way around the
allow-list.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

import attrs

RESPONSES_TARGET = b"/v1/responses"
SHUTDOWN_TARGET = b"/shutdown"


def isResponsesRequest(method: bytes, target: bytes) -> bool:
    """
    Exactly C{POST /v1/responses}: no query, no encoding, no absolute form.
    """
    return method == b"POST" and target == RESPONSES_TARGET


def isShutdownRequest(method: bytes, target: bytes) -> bool:
    """
    Exactly C{GET /shutdown}.
    """
    return method == b"GET" and target == SHUTDOWN_TARGET


@functools.lru_cache(maxsize=64)
def isLoopbackHost(value: bytes) -> bool:
    """
    Whether a C{Host} header names this machine's loopback interface.

    Accepted: C{localhost}, a dotted-quad address in 127.0.0.0/8, C{[::1]}; each with
    an optional port. Anything else (a DNS name, which could be rebound to 127.0.0.1 by
    a hostile page) is refused. A client sends the same value on every request, so the
    answers are remembered (a few).
    """
    if not value or len(value) > 255:
        return False
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return False
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return False
        host, rest = text[1:close], text[close + 1 :]
        if rest and not _validPort(rest):
            return False
        try:
            return ipaddress.IPv6Address(host).is_loopback
        except ValueError:
            return False
    host, sep, port = text.partition(":")
    if sep and not _validPort(sep + port):
        return False
    if host.lower() == "localhost":
        return True
    parts = host.split(".")
    if len(parts) != 4 or not all(_canonicalOctet(p) for p in parts):
        return False
    return parts[0] == "127"


def _validPort(text: str) -> bool:
    if not text.startswith(":"):
        return False
    digits = text[1:]
    return digits.isascii() and digits.isdigit() and 0 < len(digits) <= 5 and int(digits) < 65536


def _canonicalOctet(part: str) -> bool:
    return (
        part.isascii()
        and part.isdigit()
        and (part == "0" or not part.startswith("0"))
        and int(part) <= 255
    )


def refusalReason(hosts: Sequence[bytes] | None, hasOrigin: bool, hasFetchSite: bool) -> str | None:
    """
    Why a request's headers alone make it unacceptable, or L{None} if they are fine.

    @param hosts: every C{Host} header value received (L{None} or empty if none).
    @param hasOrigin: an C{Origin} header was sent (browsers do; Codex and curl do not).
    @param hasFetchSite: a C{Sec-Fetch-Site} header was sent (browsers mark even
        image-tag GETs with it).
    """
    if not hosts:
        return "missing Host header"
    if len(hosts) != 1:
        return "more than one Host header"
    if not isLoopbackHost(hosts[0]):
        return "Host is not a loopback name"
    if hasOrigin:
        return "Origin header present"
    if hasFetchSite:
        return "Sec-Fetch-Site header present"
    return None


@attrs.frozen
class Refusal:
    """
    Why a request is refused: the status to answer and a reason for the log line (the
    403 body stays empty, as in the original).
    """

    status: int
    reason: str


def admit(
    method: bytes,
    target: bytes,
    hosts: Sequence[bytes] | None,
    hasOrigin: bool,
    hasFetchSite: bool,
    shutdownEnabled: bool,
) -> Refusal | None:
    """
    The whole admission rule: L{None} for a request the proxy serves, else a L{Refusal}.

    @param shutdownEnabled: whether C{--http-shutdown} was given.
    """
    reason = refusalReason(hosts, hasOrigin, hasFetchSite)
    if reason is not None:
        return Refusal(403, reason)
    if isResponsesRequest(method, target):
        return None
    if isShutdownRequest(method, target):
        return None if shutdownEnabled else Refusal(403, "shutdown is disabled")
    return Refusal(403, "target not allowed")
