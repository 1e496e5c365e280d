"""
Integration tests of pass-through mode: the proxy and the fake upstream as real
processes on 127.0.0.1, driven by blocking clients.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from tests.support import http, wire
from tests.support.events import completed, created, sseSpec
from tests.support.fake import FakeUpstream, makeCAAndLeaf, makeSelfSigned
from tests.support.procs import ManagedProcess, WaitTimeout, makeTempDir, pythonEnv
from tests.support.proxy import DEFAULT_KEY, ProxyProcess, failedStart


def rssKiB(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Base(SynchronousTestCase):
    def fake(self, **kw: object) -> FakeUpstream:
        return FakeUpstream(self).start(**kw)  # type: ignore[arg-type]

    def proxy(self, fake: FakeUpstream | None = None, **kw: object) -> ProxyProcess:
        if fake is not None and "upstreamURL" not in kw:
            kw["upstreamURL"] = fake.url("/v1/responses?api-version=2025-04-01-preview")
        return ProxyProcess(self, **kw).start()  # type: ignore[arg-type]


class StartupTests(Base):
    """
    Start-up: the server-info file, and errors that leave nothing behind.
    """

    def test_serverInfoFile(self) -> None:
        """One JSON line with port and pid, mode 0644 in a new 0755 directory."""
        proxy = self.proxy()
        text = proxy.serverInfo.read_text()
        self.assertEqual(text.count("\n"), 1)
        self.assertTrue(text.endswith("\n"))
        info = json.loads(text)
        self.assertEqual(set(info), {"port", "pid"})
        self.assertEqual(info["pid"], proxy.process.pid)
        self.assertTrue(http.listening(info["port"]))
        self.assertEqual(stat.S_IMODE(os.stat(proxy.serverInfo).st_mode), 0o644)
        self.assertEqual(stat.S_IMODE(os.stat(proxy.serverInfo.parent).st_mode), 0o755)
        self.assertEqual(os.listdir(proxy.serverInfo.parent), ["server-info.json"])

    def test_fixedPortAndLoopbackOnly(self) -> None:
        """--port binds that port, on 127.0.0.1 only."""
        port = http.freePort()
        proxy = self.proxy(port=port)
        self.assertEqual(proxy.port, port)
        with open("/proc/net/tcp") as f:
            rows = [line.split() for line in f.readlines()[1:]]
        local = [r[1] for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port]
        self.assertEqual(local, [f"0100007F:{port:04X}"])

    def test_processHardening(self) -> None:
        """The running proxy has its key page locked and core dumps disabled; run as an
        unprivileged user, it is non-dumpable (its /proc files belong to root)."""
        proxy = self.proxy()
        status = Path(f"/proc/{proxy.process.pid}/status").read_text()
        locked = int(status.split("VmLck:")[1].split()[0])
        self.assertGreaterEqual(locked, 4)
        limits = Path(f"/proc/{proxy.process.pid}/limits").read_text()
        self.assertRegex(limits, r"Max core file size\s+0\s+0\s")
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        if os.getuid() != 0 or not shutil.which("setpriv"):
            raise SkipTest("needs root and setpriv to run the proxy as another user")
        probe = subprocess.run(
            [*drop, sys.executable, "-c", "import responses_proxy.tap"],
            env=pythonEnv(),
            capture_output=True,
            timeout=60,
            cwd="/",
        )
        if probe.returncode != 0:
            raise SkipTest("the checkout is not readable by an unprivileged user here")
        nobody = ProxyProcess(self)
        os.chmod(nobody.dir, 0o777)
        nobody.process.argv = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            *nobody.process.argv,
        ]
        nobody.start()
        pid = nobody.process.pid
        uid = int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
        self.assertEqual(uid, 65534)
        self.assertEqual(os.stat(f"/proc/{pid}/environ").st_uid, 0)
        self.assertEqual(os.stat(f"/proc/{pid}/mem").st_uid, 0)
        self.assertEqual(nobody.shutdown(), 0)

    def test_clientGoneDuringUploadForwardsNothing(self) -> None:
        """A client that disconnects while sending its body: nothing goes upstream."""
        fake = self.fake()
        proxy = self.proxy(fake)
        with http.RawConnection(proxy.port) as conn:
            conn.send(
                http.buildRequest("POST", "/v1/responses", b"", [("Content-Length", "1000")])
                + b"x" * 500
            )
            conn.abort()
        self.assertEqual(http.post(proxy.port, body=b"{}").status, 200)
        self.assertEqual(len(fake.requests()), 1)
        self.assertEqual(fake.requests()[0].body, b"{}")


    def test_keyErrors(self) -> None:
        """Each bad key exits non-zero with the original's message and nothing listening."""
        cases = [
            (b"", "API key must be provided via stdin"),
            (b"\n", "API key must be provided via stdin"),
            (b"sk-abc!23\n", "may only contain ASCII letters"),
            (b"sk-abc\xff\n", "may only contain ASCII letters"),
            (b"sk-a\rb\n", "may only contain ASCII letters"),
            (b"sk-a\x00b\n", "may only contain ASCII letters"),
            (b"sk-" + b"a" * 1100 + b"\n", "too large to fit in the 1024-byte buffer"),
        ]
        for stdin, message in cases:
            code, line = failedStart(self, stdin, [])
            self.assertEqual(code, 1)
            self.assertIn(message, line)
            self.assertTrue(line.startswith("Error: "), line)
            self.assertNotIn("abc", line)

    def test_badURLAndOptions(self) -> None:
        """Bad URL, bridge without URL and an unusable port are one-line errors."""
        for args, message in [
            (["--upstream-url", "ftp://example.com/x"], "scheme"),
            (["--upstream-url", "https://u:p@example.com/x"], "credentials"),
            (["--bridge-to-chat"], "--upstream-url"),
        ]:
            code, line = failedStart(self, b"sk-abc\n", args)
            self.assertIn(message, line)

    def test_portInUse(self) -> None:
        """A port already taken is a start-up error; the key was read but nothing listens."""
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        self.addCleanup(holder.close)
        port = holder.getsockname()[1]
        directory = makeTempDir(self)
        info = directory / "info.json"
        from tests.support.procs import PYTHON, pythonEnv

        process = ManagedProcess(
            [PYTHON, "-m", "responses_proxy", "--port", str(port), "--server-info", str(info)],
            env=pythonEnv(),
            stdin=b"sk-abc\n",
            directory=directory,
            name="proxy",
        ).start()
        self.addCleanup(process.stop)
        self.assertEqual(process.wait(20), 1)
        self.assertIn(b"cannot listen on 127.0.0.1:%d" % port, process.stderr())
        self.assertFalse(info.exists())

    def test_unwritableServerInfo(self) -> None:
        """A server-info path that cannot be written is a start-up error before binding."""
        directory = makeTempDir(self)
        blocker = directory / "file"
        blocker.write_text("x")
        port = http.freePort()
        from tests.support.procs import PYTHON, pythonEnv

        process = ManagedProcess(
            [
                PYTHON,
                "-m",
                "responses_proxy",
                "--port",
                str(port),
                "--server-info",
                str(blocker / "info.json"),
            ],
            env=pythonEnv(),
            stdin=b"sk-abc\n",
            directory=directory,
            name="proxy2",
        ).start()
        self.addCleanup(process.stop)
        self.assertEqual(process.wait(20), 1)
        self.assertIn(b"cannot write --server-info", process.stderr())
        self.assertFalse(http.listening(port))


class ForwardingTests(Base):
    """
    What reaches the upstream and what comes back.
    """

    def test_headersBothWays(self) -> None:
        """Client headers go up minus hop-by-hop, Host and Authorization; exactly one key;
        upstream headers come back minus hop-by-hop and framing."""
        fake = self.fake()
        fake.enqueue(
            {
                "status": 201,
                "headers": [
                    ["Content-Type", "application/json"],
                    ["Connection", "X-Up-Hop"],
                    ["X-Up-Hop", "1"],
                    ["Keep-Alive", "timeout=5"],
                    ["X-Request-Id", "req_123"],
                    ["Set-Cookie", "a=b; Path=/"],
                    ["OpenAI-Model", "gpt-x"],
                ],
                "body": '{"ok": 1}',
            }
        )
        proxy = self.proxy(fake)
        body = json.dumps({"model": "m", "input": "héllo"}).encode()
        raw = http.rawExchange(
            proxy.port,
            http.buildRequest(
                "POST",
                "/v1/responses",
                body,
                [
                    ("Authorization", "Bearer client-own-token"),
                    ("Authorization", "Bearer second"),
                    ("Content-Type", "application/json"),
                    ("Accept", "text/event-stream"),
                    ("Connection", "keep-alive, X-Hop"),
                    ("X-Hop", "drop-me"),
                    ("Keep-Alive", "timeout=1"),
                    ("TE", "trailers"),
                    ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
                    ("Upgrade", "websocket"),
                    ("Session-Id", "sess-1"),
                    ("X-Codex-Turn-Metadata", '{"turn_id":"t"}'),
                    ("Cookie", "c=d"),
                ],
            ),
        )
        [req] = fake.requests()
        self.assertEqual(req.method, "POST")
        self.assertEqual(req.target, "/v1/responses?api-version=2025-04-01-preview")
        self.assertEqual(req.body, body)
        self.assertEqual(req.headerValues("authorization"), ["Bearer " + DEFAULT_KEY.decode()])
        self.assertEqual(req.header("host"), f"127.0.0.1:{fake.port}")
        self.assertEqual(req.header("content-length"), str(len(body)))
        for name in [
            "x-hop",
            "keep-alive",
            "te",
            "proxy-authorization",
            "upgrade",
            "transfer-encoding",
            "expect",
        ]:
            self.assertEqual(req.headerValues(name), [], name)
        self.assertNotIn(
            "keep-alive", (req.header("connection") or "").lower().replace("keep-alive", "")
        )
        for name, value in [
            ("session-id", "sess-1"),
            ("x-codex-turn-metadata", '{"turn_id":"t"}'),
            ("accept", "text/event-stream"),
            ("content-type", "application/json"),
            ("cookie", "c=d"),
        ]:
            self.assertEqual(req.headerValues(name), [value], name)
        resp = wire.parseResponse(raw)
        self.assertEqual(resp.status, 201)
        self.assertEqual(resp.body, b'{"ok": 1}')
        self.assertEqual(resp.header("x-request-id"), "req_123")
        self.assertEqual(resp.header("set-cookie"), "a=b; Path=/")
        self.assertEqual(resp.header("openai-model"), "gpt-x")
        self.assertEqual(resp.headerValues("x-up-hop"), [])
        self.assertEqual(resp.headerValues("keep-alive"), [])

    def test_forbiddenFamilyNeverContactsUpstream(self) -> None:
        """Every variant of a wrong request is 403 and the upstream sees no connection."""
        fake = self.fake()
        proxy = self.proxy(fake)
        cases = [
            ("GET", "/v1/responses"),
            ("PUT", "/v1/responses"),
            ("DELETE", "/v1/responses"),
            ("OPTIONS", "/v1/responses"),
            ("PATCH", "/v1/responses"),
            ("post", "/v1/responses"),
            ("POST", "/v1/responses?"),
            ("POST", "/v1/responses?stream=true"),
            ("POST", "/v1/responses/"),
            ("POST", "/v1/responses/extra"),
            ("POST", "/v1/%72esponses"),
            ("POST", "/v1%2Fresponses"),
            ("POST", "/v1/./responses"),
            ("POST", "/v1/../v1/responses"),
            ("POST", "//v1/responses"),
            ("POST", "/V1/RESPONSES"),
            ("POST", "/v1"),
            ("POST", "/"),
            ("POST", "http://127.0.0.1/v1/responses"),
            ("POST", "*"),
            ("OPTIONS", "*"),
            ("GET", "/v1/models"),
            ("POST", "/v1/chat/completions"),
            ("POST", "/v1/responses/compact"),
            ("GET", "/shutdown?x"),
            ("POST", "/shutdown"),
        ]
        for method, target in cases:
            raw = http.rawExchange(proxy.port, http.buildRequest(method, target, b"{}"))
            resp = wire.parseResponse(raw)
            self.assertEqual(resp.status, 403, (method, target, raw[:100]))
            self.assertEqual(resp.body, b"")
        raw = http.rawExchange(proxy.port, http.buildRequest("HEAD", "/v1/responses"), head=True)
        self.assertEqual(wire.parseResponse(raw, head=True).status, 403)
        for headers, host in [
            ([], "evil.example"),
            ([], "127.0.0.1.nip.io:80"),
            ([("Origin", "http://127.0.0.1")], "127.0.0.1"),
            ([("Sec-Fetch-Site", "cross-site")], "127.0.0.1"),
        ]:
            raw = http.rawExchange(
                proxy.port, http.buildRequest("POST", "/v1/responses", b"{}", headers, host=host)
            )
            self.assertEqual(wire.parseResponse(raw).status, 403, (headers, host))
        # A missing or repeated Host is malformed (RFC 9112 section 3.2): 400.
        noHost = http.buildRequest("POST", "/v1/responses", b"{}", [], host=None)
        twoHosts = (
            b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 2\r\n\r\n{}"
        )
        for raw in [noHost, twoHosts]:
            self.assertEqual(wire.parseResponse(http.rawExchange(proxy.port, raw)).status, 400)
        self.assertEqual(fake.connections()["total"], 0)
        self.assertEqual(fake.requests(), [])

    def test_bodyCap(self) -> None:
        """Over the cap is 413 before anything is sent upstream (default 64 MiB, and tuned)."""
        fake = self.fake()
        proxy = self.proxy(fake)
        raw = http.rawExchange(
            proxy.port,
            http.buildRequest(
                "POST", "/v1/responses", b"", [("Content-Length", str(64 * 1024 * 1024 + 1))]
            ),
        )
        resp = wire.parseResponse(raw)
        self.assertEqual(resp.status, 413)
        self.assertEqual(resp.json()["error"]["code"], "request_too_large")
        small = self.proxy(fake, tuning="maxBodyBytes=1000")
        resp = http.post(small.port, body=b"x" * 1001)
        self.assertEqual(resp.status, 413)
        with http.RawConnection(small.port) as conn:
            conn.send(
                http.buildRequest("POST", "/v1/responses", b"", [("Transfer-Encoding", "chunked")])
            )
            conn.send(b"3e8\r\n" + b"y" * 1000 + b"\r\n" + b"a\r\n" + b"z" * 10 + b"\r\n")
            self.assertEqual(conn.readResponse().status, 413)
        self.assertEqual(fake.connections()["total"], 0)
        self.assertEqual(http.post(small.port, body=b"x" * 1000).status, 200)

    def test_slowClientDeadlines(self) -> None:
        """Slow headers and a stalled body upload are cut off; nothing is forwarded."""
        fake = self.fake()
        proxy = self.proxy(fake, tuning="headerTimeout=0.5,bodyIdleTimeout=0.5")
        with http.RawConnection(proxy.port, timeout=10) as conn:
            conn.send(b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            data = conn.readUntilClosed(10)
            self.assertTrue(data.startswith(b"HTTP/1.1 408"), data)
        with http.RawConnection(proxy.port, timeout=10) as conn:
            conn.send(
                http.buildRequest("POST", "/v1/responses", b"", [("Content-Length", "100")])
                + b"partial"
            )
            data = conn.readUntilClosed(10)
            self.assertTrue(data.startswith(b"HTTP/1.1 408"), data)
        self.assertEqual(fake.connections()["total"], 0)

    def test_expectContinueAndPipelining(self) -> None:
        """100-continue for an allowed request; pipelined requests answered in order."""
        fake = self.fake()
        fake.enqueue({"body": "first"}, {"body": "second"})
        proxy = self.proxy(fake)
        with http.RawConnection(proxy.port) as conn:
            conn.send(
                http.buildRequest(
                    "POST",
                    "/v1/responses",
                    b"",
                    [("Expect", "100-continue"), ("Content-Length", "2")],
                )
            )
            interim = conn.recvSome(5)
            self.assertTrue(interim.startswith(b"HTTP/1.1 100 Continue"), interim)
            conn.send(b"{}")
            self.assertEqual(conn.readResponse().body, b"first")
        both = http.buildRequest("POST", "/v1/responses", b"{}") * 2
        data = http.rawExchange(proxy.port, both, untilClose=False)
        with http.RawConnection(proxy.port) as conn:
            conn.send(both + http.buildRequest("GET", "/nope", headers=[("Connection", "close")]))
            responses = wire.parseResponses(conn.readUntilClosed(10))
        self.assertEqual([r.status for r in responses], [200, 200, 403])
        self.assertIsNotNone(data)

    def test_redirectPassedThrough(self) -> None:
        """A 302 comes back to the client and is not followed."""
        fake = self.fake()
        fake.enqueue({"status": 302, "headers": [["Location", fake.url("/elsewhere")]]})
        proxy = self.proxy(fake)
        resp = http.post(proxy.port, body=b"{}")
        self.assertEqual(resp.status, 302)
        self.assertEqual(resp.header("location"), fake.url("/elsewhere"))
        self.assertEqual(len(fake.requests()), 1)

    def test_cookiesNotReplayed(self) -> None:
        """An upstream cookie never comes back on a later request."""
        fake = self.fake()
        fake.enqueue({"headers": [["Set-Cookie", "__cf_bm=x; Path=/"]], "body": "{}"})
        proxy = self.proxy(fake)
        http.post(proxy.port, body=b"{}")
        http.post(proxy.port, body=b"{}")
        first, second = fake.requests()
        self.assertEqual(second.headerValues("cookie"), [])

    def test_contentCodingOwnedByTheProxy(self) -> None:
        """Codex 0.171's Accept-Encoding is not forwarded; the proxy asks for gzip, and a
        gzip body comes back decoded, without Content-Encoding."""
        import base64
        import gzip

        payload = gzip.compress(b"data: compressed\n\n")
        fake = self.fake()
        fake.enqueue(
            {
                "headers": [["Content-Encoding", "gzip"]],
                "body_b64": base64.b64encode(payload).decode(),
            }
        )
        proxy = self.proxy(fake)
        raw = http.rawExchange(
            proxy.port,
            http.buildRequest("POST", "/v1/responses", b"{}", [("Accept-Encoding", "zstd,gzip")]),
        )
        resp = wire.parseResponse(raw)
        self.assertEqual(resp.body, b"data: compressed\n\n")
        self.assertIsNone(resp.header("content-encoding"))
        [req] = fake.requests()
        self.assertEqual(req.headerValues("accept-encoding"), ["gzip"])

    def test_zstdUnaskedIs502(self) -> None:
        """An upstream answering zstd unasked gets the client a 502, never its bytes."""
        import base64

        import zstandard

        frame = zstandard.ZstdCompressor().compress(b'{"echo": "Bearer sk-x"}')
        fake = self.fake()
        fake.enqueue(
            {
                "headers": [["Content-Encoding", "zstd"]],
                "body_b64": base64.b64encode(frame).decode(),
            }
        )
        proxy = self.proxy(fake)
        resp = wire.parseResponse(
            http.rawExchange(proxy.port, http.buildRequest("POST", "/v1/responses", b"{}"))
        )
        self.assertEqual(resp.status, 502)
        self.assertEqual(json.loads(resp.body)["error"]["code"], "upstream_bad_encoding")
        self.assertNotIn(frame, resp.body)

    def test_openAISDKStreamsThrough(self) -> None:
        """The OpenAI Python SDK streams a response through the proxy."""
        import openai

        fake = self.fake()
        events = [
            created(),
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                },
            },
            {
                "type": "response.content_part.added",
                "output_index": 0,
                "content_index": 0,
                "item_id": "msg_1",
                "part": {"type": "output_text", "text": "", "annotations": []},
            },
            {
                "type": "response.output_text.delta",
                "output_index": 0,
                "content_index": 0,
                "item_id": "msg_1",
                "delta": "Hello from ",
            },
            {
                "type": "response.output_text.delta",
                "output_index": 0,
                "content_index": 0,
                "item_id": "msg_1",
                "delta": "upstream",
            },
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": "Hello from upstream", "annotations": []}
                    ],
                },
            },
            completed(),
        ]
        fake.enqueue(sseSpec(events))
        proxy = self.proxy(fake)
        client = openai.OpenAI(base_url=proxy.url("/v1"), api_key="sdk-own-key", max_retries=0)
        with client.responses.stream(model="gpt-test", input="hi") as stream:
            text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
            final = stream.get_final_response()
        self.assertEqual(text, "Hello from upstream")
        self.assertEqual(final.id, "resp_1")
        [req] = fake.requests()
        self.assertEqual(req.headerValues("authorization"), ["Bearer " + DEFAULT_KEY.decode()])
        self.assertEqual(req.json()["stream"], True)


class StreamingTests(Base):
    """
    Streams flow through untouched, with backpressure and cancellation.
    """

    def test_eventsArriveWhileUpstreamSends(self) -> None:
        """Each event reaches the client while the upstream is still holding the next."""
        fake = self.fake()
        fake.enqueue(
            {
                "headers": [["Content-Type", "text/event-stream"]],
                "chunks": [
                    {"data": "data: one\n\n"},
                    {"gate": "g1"},
                    {"data": "data: two\n\n"},
                    {"gate": "g2"},
                    {"data": "data: three\n\n"},
                ],
            }
        )
        proxy = self.proxy(fake)
        with http.openStream(proxy.port, body={"stream": True}) as stream:
            self.assertEqual(stream.header("content-type"), "text/event-stream")
            self.assertEqual(stream.readEvent(5).data, "one")
            fake.release("g1")
            self.assertEqual(stream.readEvent(5).data, "two")
            fake.release("g2")
            self.assertEqual(stream.readEvent(5).data, "three")
            self.assertIsNone(stream.readEvent(5))
            self.assertTrue(stream.complete)

    def test_slowReaderKeepsMemoryFlat(self) -> None:
        """200 MiB through a slow reader: the upstream is paused and proxy RSS grows < 20 MiB."""
        total = 200 * 1024 * 1024
        fake = self.fake()
        fake.enqueue(
            {
                "headers": [["Content-Type", "text/event-stream"]],
                "generate": {"bytes": total, "chunk": 65536},
            }
        )
        proxy = self.proxy(fake)
        stream = http.openStream(proxy.port, body={"stream": True}, rcvbuf=65536)
        self.addCleanup(stream.close)
        first = stream.readChunk(10)
        self.assertTrue(first)
        fake.waitPaused(0, timeout=10)
        baseline = rssKiB(proxy.process.pid)
        peak = baseline
        received = len(first)
        deadline = time.monotonic() + 120
        step = 0
        while True:
            piece = stream.readChunk(30)
            if piece is None:
                break
            received += len(piece)
            step += 1
            if step % 64 == 0:
                peak = max(peak, rssKiB(proxy.process.pid))
            self.assertLess(time.monotonic(), deadline)
        self.assertEqual(received, total)
        self.assertTrue(stream.complete)
        self.assertLess(peak - baseline, 20 * 1024, (baseline, peak))

    def test_clientDisconnectClosesUpstreamWithinOneSecond(self) -> None:
        """The client leaving mid-stream closes the upstream connection within 1 s."""
        fake = self.fake()
        fake.enqueue(
            {
                "headers": [["Content-Type", "text/event-stream"]],
                "chunks": [{"data": "data: one\n\n"}],
                "then": "hang",
            }
        )
        proxy = self.proxy(fake)
        stream = http.openStream(proxy.port, body={"stream": True})
        self.assertEqual(stream.readEvent(5).data, "one")
        [req] = fake.requests()
        stream.conn.abort()
        fake.waitClosed(req.conn, timeout=1.0)
        self.assertEqual(fake.waitOutcome(0, timeout=1.0), "lost")

    def test_clientDisconnectBeforeHeadersClosesUpstream(self) -> None:
        """The client leaving while the upstream has not answered cancels the request."""
        fake = self.fake()
        fake.enqueue({"never_respond": True})
        proxy = self.proxy(fake)
        conn = http.RawConnection(proxy.port)
        conn.send(http.buildRequest("POST", "/v1/responses", b"{}"))
        [req] = fake.waitRequests(1)
        conn.abort()
        fake.waitClosed(req.conn, timeout=1.0)

    def test_upstreamResetMidStream(self) -> None:
        """An upstream reset mid-stream ends the client's body without a clean end."""
        for then in ["reset", "close"]:
            fake = self.fake()
            fake.enqueue(
                {
                    "headers": [["Content-Type", "text/event-stream"]],
                    "chunks": [{"data": "data: partial\n\n"}],
                    "then": then,
                    "then_gate": "cut",
                }
            )
            proxy = self.proxy(fake)
            stream = http.openStream(proxy.port, body={"stream": True})
            self.assertEqual(stream.readEvent(5).data, "partial")
            fake.release("cut")
            with self.assertRaises(http.TruncatedBody):
                stream.readEvent(5)
            self.assertFalse(stream.complete)
            stream.close()

    def test_upstreamRefused(self) -> None:
        """An upstream that refuses connections gives 502 with a JSON error."""
        port = http.freePort()
        proxy = self.proxy(upstreamURL=f"http://127.0.0.1:{port}/v1/responses")
        resp = http.post(proxy.port, body=b"{}")
        self.assertEqual(resp.status, 502)
        self.assertEqual(resp.json()["error"]["code"], "upstream_unreachable")

    def test_upstreamNeverAnswers(self) -> None:
        """No response headers within the limit gives 504, and the upstream is dropped."""
        fake = self.fake()
        fake.enqueue({"never_respond": True})
        proxy = self.proxy(fake, tuning="responseTimeout=1")
        started = time.monotonic()
        resp = http.post(proxy.port, body=b"{}", timeout=20)
        self.assertEqual(resp.status, 504)
        self.assertEqual(resp.json()["error"]["code"], "upstream_timeout")
        self.assertLess(time.monotonic() - started, 15)
        [req] = fake.requests()
        fake.waitClosed(req.conn, timeout=5)

    def test_upstreamConnectTimeout(self) -> None:
        """An upstream that never completes the TCP handshake gives 504."""
        blackhole = socket.socket()
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(0)
        self.addCleanup(blackhole.close)
        port = blackhole.getsockname()[1]
        fillers = []
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(s)
        self.addCleanup(lambda: [s.close() for s in fillers])
        proxy = self.proxy(
            upstreamURL=f"http://127.0.0.1:{port}/v1/responses", tuning="connectTimeout=1"
        )
        resp = http.post(proxy.port, body=b"{}", timeout=20)
        self.assertIn(resp.status, (502, 504))
        if resp.status == 504:
            self.assertEqual(resp.json()["error"]["code"], "upstream_timeout")

    def test_tlsVerified(self) -> None:
        """A self-signed upstream is refused (502); a CA trusted via SSL_CERT_FILE works."""
        directory = makeTempDir(self)
        fake = self.fake(tls=makeSelfSigned(directory))
        proxy = self.proxy(fake)
        resp = http.post(proxy.port, body=b"{}")
        self.assertEqual(resp.status, 502)
        self.assertEqual(resp.json()["error"]["code"], "upstream_tls_error")
        self.assertEqual(fake.requests(), [])
        pair = makeCAAndLeaf(makeTempDir(self))
        trusted = self.fake(tls=pair)
        trusted.enqueue({"body": "secure"})
        proxy = self.proxy(
            trusted,
            upstreamURL=trusted.url("/v1/responses", host="localhost"),
            env={"SSL_CERT_FILE": str(pair.ca)},
        )
        resp = http.post(proxy.port, body=b"{}")
        self.assertEqual((resp.status, resp.body), (200, b"secure"))


class ShutdownTests(Base):
    """
    C{GET /shutdown}.
    """

    def test_shutdownExitsZeroEvenWithOpenStream(self) -> None:
        """The reply arrives, the process exits 0, even while a stream is open."""
        fake = self.fake()
        fake.enqueue(
            {
                "headers": [["Content-Type", "text/event-stream"]],
                "chunks": [{"data": "data: one\n\n"}],
                "then": "hang",
            }
        )
        proxy = self.proxy(fake)
        stream = http.openStream(proxy.port, body={"stream": True})
        self.addCleanup(stream.close)
        stream.readEvent(5)
        self.assertEqual(proxy.shutdown(), 0)
        self.assertFalse(http.listening(proxy.port))

    def test_consoleScriptShutdown(self) -> None:
        """The installed console script serves and exits 0 on /shutdown."""
        fake = self.fake()
        proxy = self.proxy(fake, entry="script")
        self.assertEqual(http.post(proxy.port, body=b"{}").status, 200)
        self.assertEqual(proxy.shutdown(), 0)

    def test_noShutdownWithoutFlag(self) -> None:
        """Without --http-shutdown, /shutdown is 403 and the proxy keeps running."""
        proxy = self.proxy(httpShutdown=False)
        self.assertEqual(http.get(proxy.port, "/shutdown").status, 403)
        self.assertTrue(proxy.process.running())


class DumpTests(Base):
    """
    C{--dump-dir}.
    """

    def test_dumpFiles(self) -> None:
        """One request and one response file per exchange, 0600, redacted."""
        fake = self.fake()
        fake.enqueue({"status": 401, "echo": True})
        dumps = makeTempDir(self) / "dumps"
        proxy = self.proxy(fake, dumpDir=str(dumps))
        resp = http.post(
            proxy.port,
            body={"model": "m"},
            headers={"Authorization": "Bearer client", "Cookie": "a=b"},
        )
        self.assertEqual(resp.status, 401)
        self.assertNotIn(DEFAULT_KEY, resp.body)
        names = sorted(os.listdir(dumps))
        self.assertEqual(len(names), 2, names)
        for name in names:
            path = dumps / name
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            self.assertNotIn(DEFAULT_KEY, path.read_bytes())
        request = json.loads((dumps / names[0]).read_text())
        self.assertEqual(request["body"], {"model": "m"})
        self.assertIn(["Authorization", "[REDACTED]"], request["headers"])
        response = json.loads((dumps / names[1]).read_text())
        self.assertEqual((response["status"], response["outcome"]), (401, "complete"))

    def test_gzipReplyDumpedReadable(self) -> None:
        """A gzip reply is dumped as the decoded JSON it was, not as compressed bytes."""
        import base64
        import gzip

        fake = self.fake()
        fake.enqueue(
            {
                "status": 400,
                "headers": [["Content-Encoding", "gzip"]],
                "body_b64": base64.b64encode(gzip.compress(b'{"error":{"code":"x"}}')).decode(),
            }
        )
        dumps = makeTempDir(self) / "dumps"
        proxy = self.proxy(fake, dumpDir=str(dumps))
        http.post(proxy.port, body={"model": "m"}, headers={"Accept-Encoding": "gzip"})
        [_, responseFile] = sorted(os.listdir(dumps))
        response = json.loads((dumps / responseFile).read_text())
        self.assertEqual(response["body"], {"error": {"code": "x"}})


__all__ = ["WaitTimeout"]


class LoadTests(Base):
    """
    Idle connections do not starve real requests.
    """

    def test_manyIdleConnections(self) -> None:
        """With 1000 idle client connections open, a real request still succeeds."""
        fake = self.fake()
        proxy = self.proxy(fake)
        idle = []
        self.addCleanup(lambda: [s.close() for s in idle])
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
            idle.append(s)
        idle[-1].sendall(b"POST /v1/responses HTTP/1.1\r\n")  # and one half-sent request
        resp = http.post(proxy.port, body=b"{}", timeout=20)
        self.assertEqual(resp.status, 200)
        self.assertEqual(len(fake.requests()), 1)
