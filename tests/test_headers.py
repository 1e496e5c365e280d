"""
Tests for L{responses_proxy.headers}: what goes upstream and what comes back.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy import headers

KEY = b"Bearer sk-TESTKEY0123456789abcdefXYZ"


class HeaderTests(SynchronousTestCase):
    """
    L{headers}: what goes up and what comes back.
    """

    def test_upstreamDropsAndInjects(self) -> None:
        """Authorization, Host, hop-by-hop, Expect and Content-Length are dropped;
        exactly one Authorization is added."""
        incoming = [
            (b"Authorization", [b"Bearer client-token"]),
            (b"Host", [b"127.0.0.1:5"]),
            (b"Connection", [b"keep-alive, X-Secret-Hop"]),
            (b"X-Secret-Hop", [b"1"]),
            (b"Keep-Alive", [b"timeout=5"]),
            (b"Proxy-Connection", [b"keep-alive"]),
            (b"Proxy-Authorization", [b"Basic x"]),
            (b"Te", [b"trailers"]),
            (b"Trailer", [b"X"]),
            (b"Transfer-Encoding", [b"chunked"]),
            (b"Upgrade", [b"websocket"]),
            (b"Expect", [b"100-continue"]),
            (b"Content-Length", [b"12"]),
            (b"Content-Type", [b"application/json"]),
            (b"Accept-Encoding", [b"gzip, br"]),
            (b"Session-Id", [b"abc"]),
            (b"X-Codex-Turn-Metadata", [b"{}"]),
        ]
        out = headers.upstreamRequestHeaders(incoming, KEY)
        names = [n.lower() for n, _ in out]
        self.assertEqual(
            names,
            [
                b"content-type",
                b"session-id",
                b"x-codex-turn-metadata",
                b"authorization",
            ],
        )
        self.assertEqual(out[-1], (b"Authorization", [KEY]))

    def test_connectionCannotRemoveInjectedAuthorization(self) -> None:
        """C{Connection: authorization} strips the client's, never the injected one."""
        out = headers.upstreamRequestHeaders(
            [(b"Connection", [b"Authorization"]), (b"Authorization", [b"Bearer c"])], KEY
        )
        self.assertEqual(out, [(b"Authorization", [KEY])])

    def test_responseDropsHopByHopAndFraming(self) -> None:
        """Hop-by-hop, Connection-listed, Content-Length and TE go; encoding stays."""
        out = headers.clientResponseHeaders(
            [
                (b"Content-Type", [b"text/event-stream"]),
                (b"Content-Length", [b"5"]),
                (b"Transfer-Encoding", [b"chunked"]),
                (b"Connection", [b"close, X-Hop"]),
                (b"X-Hop", [b"1"]),
                (b"Content-Encoding", [b"gzip"]),
                (b"X-Request-Id", [b"r1"]),
                (b"Set-Cookie", [b"a=b"]),
            ]
        )
        self.assertEqual(
            [n for n, _ in out],
            [b"Content-Type", b"Content-Encoding", b"X-Request-Id", b"Set-Cookie"],
        )

    def test_bridgeRequestHeaders(self) -> None:
        """The bridge sets its own body headers and asks for identity encoding."""
        out = dict(
            (n.lower(), v)
            for n, v in headers.bridgeRequestHeaders(
                [
                    (b"Content-Type", [b"text/plain"]),
                    (b"Accept", [b"*/*"]),
                    (b"Accept-Encoding", [b"gzip"]),
                    (b"X-Title", [b"mine"]),
                    (b"Authorization", [b"Bearer c"]),
                ],
                KEY,
                stream=True,
            )
        )
        self.assertEqual(out[b"content-type"], [b"application/json"])
        self.assertEqual(out[b"accept"], [b"text/event-stream"])
        self.assertEqual(out[b"accept-encoding"], [b"identity"])
        self.assertEqual(out[b"x-title"], [b"mine"])
        self.assertEqual(out[b"authorization"], [KEY])

    def test_bridgeResponseHeaders(self) -> None:
        """Only retry hints, request ids and rate limits; never openai-model."""
        out = headers.bridgeResponseHeaders(
            [
                (b"Retry-After", [b"3"]),
                (b"X-Request-Id", [b"r"]),
                (b"X-RateLimit-Remaining-Requests", [b"9"]),
                (b"OpenAI-Model", [b"other-model"]),
                (b"Content-Length", [b"9"]),
                (b"Content-Encoding", [b"gzip"]),
                (b"Set-Cookie", [b"x=y"]),
            ]
        )
        self.assertEqual(
            [n for n, _ in out],
            [b"Retry-After", b"X-Request-Id", b"X-RateLimit-Remaining-Requests"],
        )

    def test_redactedHeaders(self) -> None:
        """Credentials and cookies are shown as [REDACTED] in dumps."""
        out = headers.redactedHeaders(
            [
                (b"Authorization", [KEY]),
                (b"Cookie", [b"c"]),
                (b"Set-Cookie", [b"s"]),
                (b"Accept", [b"x"]),
            ]
        )
        self.assertEqual(
            out,
            [
                ["Authorization", "[REDACTED]"],
                ["Cookie", "[REDACTED]"],
                ["Set-Cookie", "[REDACTED]"],
                ["Accept", "x"],
            ],
        )
