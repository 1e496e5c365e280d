# -*- test-case-name: tests.test_headers -*-
"""
Header rules, both directions, as pure functions over C{(name, values)} pairs.

Incoming hop-by-hop headers are stripped before anything is injected, so a client's
C{Connection: authorization} cannot remove the key, and exactly one C{Authorization}
goes upstream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

RawHeaders = Iterable[tuple[bytes, Sequence[bytes]]]
HeaderList = list[tuple[bytes, list[bytes]]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Accept-Encoding: the proxy owns content coding (it must scrub plain bytes), so the
# client's is never forwarded.
_REQUEST_DROP = HOP_BY_HOP | {
    b"authorization",
    b"host",
    b"expect",
    b"content-length",
    b"accept-encoding",
}
_RESPONSE_DROP = HOP_BY_HOP | {b"content-length"}
_BRIDGE_REQUEST_DROP = _REQUEST_DROP | {b"content-type", b"accept"}

# Bridge replies: what is worth keeping from the upstream's response headers.
_BRIDGE_KEEP_EXACT = frozenset(
    {
        b"retry-after",
        b"retry-after-ms",
        b"x-request-id",
        b"request-id",
        b"x-oai-request-id",
        b"openai-processing-ms",
        b"cf-ray",
    }
)
_BRIDGE_KEEP_PREFIX = (b"x-ratelimit-", b"ratelimit-", b"anthropic-ratelimit-")

SENSITIVE = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})


def connectionTokens(headers: RawHeaders) -> frozenset[bytes]:
    """
    The lower-cased field names listed in every C{Connection} header (RFC 9110 §7.6.1).
    """
    tokens: set[bytes] = set()
    for name, values in headers:
        if name.lower() == b"connection":
            for value in values:
                for token in value.split(b","):
                    token = token.strip().lower()
                    if token:
                        tokens.add(token)
    return frozenset(tokens)


def _filtered(
    headers: RawHeaders, drop: frozenset[bytes], extra: frozenset[bytes] = frozenset()
) -> HeaderList:
    pairs = [(name, list(values)) for name, values in headers]
    listed = connectionTokens(pairs) | extra
    out: HeaderList = []
    for name, values in pairs:
        lower = name.lower()
        if lower in drop or lower in listed:
            continue
        out.append((name, values))
    return out


def upstreamRequestHeaders(headers: RawHeaders, authorization: bytes) -> HeaderList:
    """
    The client's headers as they go upstream in pass-through mode.

    Dropped: C{Authorization} (replaced), C{Host} (the agent sets the upstream's),
    hop-by-hop headers and any named in C{Connection}, C{Expect}, C{Content-Length}
    (recomputed) and C{Accept-Encoding} (the proxy asks for gzip itself and decodes it).
    Then exactly one C{Authorization} is added.
    """
    out = _filtered(headers, _REQUEST_DROP)
    out.append((b"Authorization", [authorization]))
    return out


def bridgeRequestHeaders(headers: RawHeaders, authorization: bytes, stream: bool) -> HeaderList:
    """
    The client's headers as they go to a Chat Completions upstream.

    As L{upstreamRequestHeaders}, and the body's own headers are set for the new
    body: JSON, the right C{Accept}, and identity encoding so the stream can be parsed
    as it arrives.
    """
    out = _filtered(headers, _BRIDGE_REQUEST_DROP)
    out.append((b"Content-Type", [b"application/json"]))
    out.append((b"Accept", [b"text/event-stream" if stream else b"application/json"]))
    out.append((b"Accept-Encoding", [b"identity"]))
    out.append((b"Authorization", [authorization]))
    return out


def clientResponseHeaders(
    headers: RawHeaders, listed: frozenset[bytes] = frozenset()
) -> HeaderList:
    """
    The upstream's response headers as the client sees them in pass-through mode.

    Hop-by-hop headers and framing are dropped: twisted.web frames the body itself. The
    body arrives decoded, so there is no C{Content-Encoding} left to relay.

    @param listed: names the upstream's C{Connection} header listed (Twisted's parser
        keeps C{Connection} itself out of the response headers).
    """
    return _filtered(headers, _RESPONSE_DROP, listed)


def bridgeResponseHeaders(headers: RawHeaders) -> HeaderList:
    """
    The upstream headers worth passing to a bridge client: retry hints, request ids and
    rate-limit information. C{openai-model} is never passed (Codex would report the
    model as rerouted), nor framing or encoding (the body is a new one).
    """
    out: HeaderList = []
    for name, values in headers:
        lower = name.lower()
        if lower in _BRIDGE_KEEP_EXACT or lower.startswith(_BRIDGE_KEEP_PREFIX):
            out.append((name, list(values)))
    return out


def redactedHeaders(headers: RawHeaders) -> list[list[str]]:
    """
    Headers for a dump file: credentials and cookies shown as C{[REDACTED]}.
    """
    out: list[list[str]] = []
    for name, values in headers:
        text = name.decode("latin-1")
        for value in values:
            if name.lower() in SENSITIVE:
                out.append([text, "[REDACTED]"])
            else:
                out.append([text, value.decode("latin-1")])
    return out
