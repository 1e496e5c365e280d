"""
Tests for the pure rule modules: admission policy, header filtering, key redaction,
configuration, hardening helpers and dumps.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy import admission as policy
from responses_proxy import dump, hardening, headers
from responses_proxy.config import DEFAULT_UPSTREAM, Limits, StartupError, buildConfig
from responses_proxy.redact import REDACTED, StreamRedactor

KEY = b"Bearer sk-TESTKEY0123456789abcdefXYZ"


class PolicyTests(SynchronousTestCase):
    """
    L{policy}: the exact request line and the Host/Origin rules.
    """

    def test_onlyExactResponsesTarget(self) -> None:
        """Only the raw bytes C{POST /v1/responses} are a responses request."""
        self.assertTrue(policy.isResponsesRequest(b"POST", b"/v1/responses"))
        for method, target in [
            (b"GET", b"/v1/responses"),
            (b"post", b"/v1/responses"),
            (b"POST", b"/v1/responses/"),
            (b"POST", b"/v1/responses?x=1"),
            (b"POST", b"/v1/responses?"),
            (b"POST", b"/v1/%72esponses"),
            (b"POST", b"/v1/./responses"),
            (b"POST", b"/v1//responses"),
            (b"POST", b"//v1/responses"),
            (b"POST", b"/V1/responses"),
            (b"POST", b"http://127.0.0.1/v1/responses"),
            (b"POST", b"*"),
            (b"POST", b"/v1/responses#x"),
        ]:
            self.assertFalse(policy.isResponsesRequest(method, target), (method, target))

    def test_shutdownTarget(self) -> None:
        """Only C{GET /shutdown} exactly."""
        self.assertTrue(policy.isShutdownRequest(b"GET", b"/shutdown"))
        self.assertFalse(policy.isShutdownRequest(b"POST", b"/shutdown"))
        self.assertFalse(policy.isShutdownRequest(b"GET", b"/shutdown?now"))
        self.assertFalse(policy.isShutdownRequest(b"HEAD", b"/shutdown"))

    def test_loopbackHosts(self) -> None:
        """localhost, 127/8 and [::1], with any port, are loopback names."""
        for host in [
            b"localhost",
            b"LOCALHOST:8080",
            b"127.0.0.1",
            b"127.0.0.1:1",
            b"127.1.2.3:65535",
            b"[::1]",
            b"[::1]:9000",
        ]:
            self.assertTrue(policy.isLoopbackHost(host), host)

    def test_nonLoopbackHosts(self) -> None:
        """DNS names (rebinding), other addresses and malformed values are refused."""
        for host in [
            b"",
            b"example.com",
            b"localhost.example.com",
            b"127.0.0.1.nip.io",
            b"10.0.0.1",
            b"0.0.0.0",
            b"127.1",
            b"0177.0.0.1",
            b"127.0.0.01",
            b"127.0.0.256",
            b"[::2]",
            b"[::1",
            b"127.0.0.1:",
            b"127.0.0.1:99999",
            b"127.0.0.1:80x",
            b"127.0.0.1 ",
            b"localhost:0x50",
            "l\u00f6calhost".encode(),
        ]:
            self.assertFalse(policy.isLoopbackHost(host), host)

    def test_refusalReasons(self) -> None:
        """Missing or duplicate Host, Origin and Sec-Fetch-Site are refused."""
        self.assertIsNone(policy.refusalReason([b"127.0.0.1:1"], False, False))
        self.assertIsNotNone(policy.refusalReason(None, False, False))
        self.assertIsNotNone(policy.refusalReason([], False, False))
        self.assertIsNotNone(policy.refusalReason([b"127.0.0.1", b"127.0.0.1"], False, False))
        self.assertIsNotNone(policy.refusalReason([b"evil.test"], False, False))
        self.assertIsNotNone(policy.refusalReason([b"localhost"], True, False))
        self.assertIsNotNone(policy.refusalReason([b"localhost"], False, True))


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
                b"accept-encoding",
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


class RedactorTests(SynchronousTestCase):
    """
    L{StreamRedactor}: the key never passes, even split across chunks.
    """

    def setUp(self) -> None:
        self.key = memoryview(KEY)[7:]
        self.raw = bytes(self.key)

    def feedAll(self, data: bytes, step: int) -> bytes:
        r = StreamRedactor(self.key)
        out = b"".join(r.feed(data[i : i + step]) for i in range(0, len(data), step))
        return out + r.flush()

    def test_wholeAndSplitOccurrences(self) -> None:
        """At every chunk size the key and its tail are redacted and nothing else changes."""
        data = b'{"headers": {"authorization": "Bearer ' + self.raw + b'"}}, tail ' + self.raw[-8:]
        expected = data.replace(self.raw, REDACTED).replace(self.raw[-8:], REDACTED)
        for step in range(1, len(data) + 1):
            out = self.feedAll(data, step)
            self.assertEqual(out, expected, step)
            self.assertNotIn(self.raw[-8:], out)

    def test_eventsAreNotHeldBack(self) -> None:
        """Data that cannot start the key is released at once."""
        r = StreamRedactor(self.key)
        self.assertEqual(r.feed(b"data: {}\n\n"), b"data: {}\n\n")
        self.assertEqual(r.feed(b"abc s"), b"abc ")
        self.assertEqual(r.feed(b"k-T"), b"")
        self.assertEqual(r.flush(), b"sk-T")


class ConfigTests(SynchronousTestCase):
    """
    L{buildConfig}: every unusable command line is one clear error.
    """

    def build(self, **kw: object):
        args = dict(
            port=None,
            serverInfo=None,
            httpShutdown=False,
            upstreamURL=None,
            bridge=False,
            dumpDir=None,
        )
        args.update(kw)
        return buildConfig(**args)  # type: ignore[arg-type]

    def test_defaults(self) -> None:
        """Ephemeral port and the OpenAI Responses URL."""
        config = self.build()
        self.assertEqual((config.port, config.upstreamURL), (0, DEFAULT_UPSTREAM))

    def test_badPorts(self) -> None:
        """Ports outside 0..65535 or not numbers are refused."""
        for port in ["-1", "65536", "abc", "", "1e3", "٣"]:
            self.assertRaises(StartupError, self.build, port=port)

    def test_badURLs(self) -> None:
        """Non-http schemes, no host, credentials, fragments are refused."""
        for url in [
            "ftp://x/v1",
            "file:///etc/passwd",
            "http://",
            "api.openai.com/v1/responses",
            "https://user:pw@host/v1",
            "https://host/v1#frag",
            "https://host:99999/x",
            "https://ho st/x",
            "",
        ]:
            self.assertRaises(StartupError, self.build, upstreamURL=url)

    def test_queryKept(self) -> None:
        """Azure's api-version query survives."""
        url = "https://x.openai.azure.com/openai/deployments/d/responses?api-version=2025-04-01-preview"
        self.assertEqual(self.build(upstreamURL=url).upstreamURL, url)

    def test_bridgeNeedsURL(self) -> None:
        """Bridge mode without --upstream-url is a start-up error; an odd path warns."""
        e = self.assertRaises(StartupError, self.build, bridge=True)
        self.assertIn("--upstream-url", str(e))
        config = self.build(bridge=True, upstreamURL="http://127.0.0.1:1/v1/chat")
        self.assertEqual(len(config.warnings), 1)
        config = self.build(bridge=True, upstreamURL="http://127.0.0.1:1/v1/chat/completions")
        self.assertEqual(config.warnings, ())

    def test_tuning(self) -> None:
        """The tuning variable overrides limits and rejects unknown names."""
        limits = Limits.fromTuning("headerTimeout=0.5, maxBodyBytes=1024")
        self.assertEqual((limits.headerTimeout, limits.maxBodyBytes), (0.5, 1024))
        self.assertRaises(StartupError, Limits.fromTuning, "nope=1")
        self.assertRaises(StartupError, Limits.fromTuning, "headerTimeout=-1")
        self.assertRaises(StartupError, Limits.fromTuning, "headerTimeout=x")


class HardeningTests(SynchronousTestCase):
    """
    L{hardening}: pure helpers here; the process effects are checked in a child.
    """

    def test_envKeysWithPrefixHandlesNonUTF8(self) -> None:
        """Names that are not UTF-8 are still matched as bytes."""
        keys = [b"LD_\xf0", b"R\xd6DBURK", b"PATH", b"LD_TEST", b"DYLD_FOO"]
        self.assertEqual(hardening.envKeysWithPrefix(keys, b"LD_"), [b"LD_\xf0", b"LD_TEST"])

    def test_appliedInAChildProcess(self) -> None:
        """After hardenProcess: not dumpable, core limit 0/0, no LD_* left."""
        code = (
            "import os, resource\n"
            "from responses_proxy import hardening\n"
            "hardening.hardenProcess()\n"
            "print(hardening.isDumpable(), resource.getrlimit(resource.RLIMIT_CORE),"
            " sorted(k for k in os.environ if k.startswith('LD_')))\n"
        )
        env = dict(os.environ, LD_SOMETHING="1", LD_OTHER="2")
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        self.assertEqual(out, "False (0, 0) []")


class DumpTests(SynchronousTestCase):
    """
    L{dump}: numbered 0600 JSON files, redacted.
    """

    def test_exchangeFiles(self) -> None:
        """Request and response files, credentials redacted, key scrubbed from bodies."""
        from tests.support.procs import makeTempDir

        directory = str(makeTempDir(self) / "dumps")
        redactor = StreamRedactor(memoryview(KEY)[7:])
        dumper = dump.Dumper(directory, redactor.redact)
        exchange = dumper.begin()
        exchange.writeRequest(
            b"POST",
            b"/v1/responses",
            [(b"Authorization", [b"Bearer client"]), (b"Cookie", [b"c=1"])],
            b'{"model": "m"}',
            "http://up/v1/responses",
        )
        exchange.responseStarted(401, [(b"Set-Cookie", [b"s=1"]), (b"Content-Type", [b"x"])])
        exchange.upstreamData(b'{"echo": "' + KEY + b'"}')
        exchange.finish("complete")
        names = sorted(os.listdir(directory))
        self.assertEqual(len(names), 2)
        self.assertTrue(names[0].startswith("000001-") and names[0].endswith("-request.json"))
        for name in names:
            path = os.path.join(directory, name)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            text = open(path, encoding="utf-8").read()
            self.assertNotIn(KEY[7:].decode(), text)
        request = json.load(open(os.path.join(directory, names[0])))
        self.assertEqual(request["body"], {"model": "m"})
        self.assertIn(["Authorization", "[REDACTED]"], request["headers"])
        self.assertIn(["Cookie", "[REDACTED]"], request["headers"])
        response = json.load(open(os.path.join(directory, names[1])))
        self.assertEqual(response["status"], 401)
        self.assertIn(["Set-Cookie", "[REDACTED]"], response["headers"])
        self.assertEqual(response["body"], {"echo": "Bearer [REDACTED]"})
        self.assertEqual(
            dump.Dumper(directory, redactor.redact).begin()._prefix.split(os.sep)[-1][:6], "000002"
        )


class FileLimitTests(SynchronousTestCase):
    """
    The open-files limit is raised to the hard limit at start-up.
    """

    def test_raisedToHardLimit(self) -> None:
        """A low soft limit is raised to the hard one (checked in a child process)."""
        code = (
            "import resource\n"
            "from responses_proxy.hardening import raiseFileLimit\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
            "print(raiseFileLimit() == resource.getrlimit(resource.RLIMIT_NOFILE)[1])\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        self.assertEqual(out, "True")
