"""
The key never appears in any output: a unique key, a run through every path that could
print or echo it, then a search of everything produced.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import secrets
from pathlib import Path

import zstandard
from twisted.trial.unittest import SynchronousTestCase

from tests.support import http
from tests.support.fake import FakeUpstream, makeSelfSigned
from tests.support.procs import PYTHON, ManagedProcess, makeTempDir, pythonEnv
from tests.support.proxy import ProxyProcess


def clientView(resp: http.Response) -> bytes:
    """
    The body as a client shows it: decoded, as Codex decodes what it asked for (a
    compressed echo of the key is still a leak).
    """
    body = resp.body
    coding = (resp.header("content-encoding") or "").strip().lower()
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return body


class LeakTests(SynchronousTestCase):
    """
    Zero hits for the key, or its tail, anywhere.
    """

    def setUp(self) -> None:
        self.key = ("sk-LEAKPROBE" + secrets.token_hex(16)).encode()
        self.needles = [self.key, self.key[3:], self.key[-12:], self.key[-8:]]
        self.collected: list[tuple[str, bytes]] = []

    def collect(self, what: str, data: bytes) -> None:
        self.collected.append((what, data))

    def collectProxy(self, name: str, proxy: ProxyProcess) -> None:
        pid = proxy.process.pid
        for part in ("cmdline", "environ"):
            try:
                self.collect(f"{name} /proc/{part}", Path(f"/proc/{pid}/{part}").read_bytes())
            except OSError:
                pass
        if proxy.serverInfo.exists():
            self.collect(f"{name} server-info", proxy.serverInfo.read_bytes())

    def finishProxy(self, name: str, proxy: ProxyProcess) -> None:
        self.collectProxy(name, proxy)
        proxy.shutdown()
        self.collect(f"{name} output", proxy.outputs())

    def test_noKeyAnywhere(self) -> None:
        """Start-up error, refused, reset, echo, TLS failure, disconnects, 403, 413 and
        dumps, in both modes: the key and its tail are in none of the outputs."""
        # An invalid key at start-up (the key plus a forbidden character).
        bad = ManagedProcess(
            [PYTHON, "-m", "responses_proxy", "--server-info", str(makeTempDir(self) / "i")],
            env=pythonEnv(),
            stdin=self.key + b"!\n",
            directory=makeTempDir(self),
            name="bad",
        ).start()
        self.addCleanup(bad.stop)
        self.assertNotEqual(bad.wait(20), 0)
        self.collect("invalid-key stderr", bad.stderr())
        self.collect("invalid-key stdout", bad.stdout())
        tooLong = ManagedProcess(
            [PYTHON, "-m", "responses_proxy"],
            env=pythonEnv(),
            stdin=self.key * 40 + b"\n",
            directory=makeTempDir(self),
            name="long",
        ).start()
        self.addCleanup(tooLong.stop)
        self.assertNotEqual(tooLong.wait(20), 0)
        self.collect("too-long stderr", tooLong.stderr() + tooLong.stdout())

        dumps = makeTempDir(self) / "dumps"
        fake = FakeUpstream(self).start()
        proxy = ProxyProcess(
            self,
            key=self.key,
            upstreamURL=fake.url(),
            dumpDir=str(dumps),
            tuning="maxBodyBytes=100000",
        ).start()

        def post(port: int, body: object = b'{"model":"m"}', **kw: object) -> None:
            resp = http.post(port, body=body, **kw)  # type: ignore[arg-type]
            self.collect("response", clientView(resp) + repr(resp.headers).encode())

        # An upstream error that echoes the request headers (key included), as body and
        # as a header.
        fake.enqueue({"status": 401, "echo": True})
        post(proxy.port, headers={"Authorization": "Bearer client-token"})
        fake.enqueue({"status": 200, "echo": True, "headers": [["X-Echo-Key", self.key.decode()]]})
        post(proxy.port)
        # The same echo compressed (Codex 0.171 asks for zstd,gzip): gzip is decoded and
        # scrubbed; zstd, which the proxy cannot decode, is never relayed.
        echo = b'{"error":{"message":"Incorrect API key provided: Bearer ' + self.key + b'"}}'
        fake.enqueue(
            {
                "status": 401,
                "headers": [["Content-Encoding", "gzip"]],
                "body_b64": base64.b64encode(gzip.compress(echo)).decode(),
            }
        )
        post(proxy.port, headers={"Accept-Encoding": "zstd,gzip"})
        fake.enqueue(
            {
                "status": 401,
                "headers": [["Content-Encoding", "zstd"]],
                "body_b64": base64.b64encode(
                    zstandard.ZstdCompressor(level=0).compress(echo)
                ).decode(),
            }
        )
        post(proxy.port, headers={"Accept-Encoding": "zstd,gzip"})
        # A normal stream, a stream reset mid-way, a truncated one.
        fake.enqueue(
            {
                "headers": [["Content-Type", "text/event-stream"]],
                "chunks": [{"data": "data: {}\n\n"}],
            }
        )
        post(proxy.port)
        for then in ("reset", "close"):
            fake.enqueue(
                {
                    "headers": [["Content-Type", "text/event-stream"]],
                    "chunks": [{"data": "data: " + self.key.decode() + "\n\n"}],
                    "then": then,
                }
            )
            raw = http.rawExchange(
                proxy.port, http.buildRequest("POST", "/v1/responses", b"{}"), untilClose=True
            )
            self.collect("reset stream", raw)
        # Client disconnects mid-stream and before headers.
        fake.enqueue(
            {
                "headers": [["Content-Type", "text/event-stream"]],
                "chunks": [{"data": "data: one\n\n"}],
                "then": "hang",
            }
        )
        stream = http.openStream(proxy.port, body={"stream": True})
        self.collect("stream", stream.readChunk(5) or b"")
        stream.conn.abort()
        fake.enqueue({"never_respond": True})
        seen = len(fake.waitRequests(6))
        conn = http.RawConnection(proxy.port)
        conn.send(http.buildRequest("POST", "/v1/responses", b"{}"))
        fake.waitRequests(seen + 1)
        conn.abort()
        # 403 and 413 answers.
        for method, target in [
            ("GET", "/v1/responses"),
            ("POST", "/v1/responses?x"),
            ("GET", "/shutdown?x"),
        ]:
            self.collect("403", http.rawExchange(proxy.port, http.buildRequest(method, target)))
        self.collect(
            "413",
            http.rawExchange(proxy.port, http.buildRequest("POST", "/v1/responses", b"x" * 100001)),
        )
        self.collect(
            "upstream-seen",
            json.dumps([r.data for r in fake.requests()])
            .encode()
            .replace(self.key, b"<key-seen-by-upstream>"),
        )

        # Upstream refused.
        refused = ProxyProcess(
            self,
            key=self.key,
            upstreamURL=f"http://127.0.0.1:{http.freePort()}/v1/responses",
            dumpDir=str(dumps),
        ).start()
        post(refused.port)
        # TLS verification failure.
        tlsFake = FakeUpstream(self).start(tls=makeSelfSigned(makeTempDir(self)))
        tls = ProxyProcess(self, key=self.key, upstreamURL=tlsFake.url()).start()
        post(tls.port)
        # Bridge mode: an upstream error that quotes the key, and a stream that does.
        bridgeFake = FakeUpstream(self).start()
        bridge = ProxyProcess(
            self,
            key=self.key,
            upstreamURL=bridgeFake.url("/v1/chat/completions"),
            bridge=True,
            dumpDir=str(dumps),
        ).start()
        bridgeFake.enqueue(
            {
                "status": 401,
                "body": json.dumps(
                    {"error": {"message": "Incorrect API key provided: " + self.key.decode()}}
                ),
            }
        )
        post(bridge.port, body={"model": "m", "input": "hi", "stream": True})
        chunk = {
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "echo " + self.key.decode()},
                    "finish_reason": "stop",
                }
            ]
        }
        bridgeFake.enqueue({"sse": [chunk, "[DONE]"]})
        post(bridge.port, body={"model": "m", "input": "hi", "stream": True})
        bridgeFake.enqueue({"status": 200, "echo": True})
        post(bridge.port, body={"model": "m", "input": "hi", "stream": False})
        bridgeFake.enqueue(
            {
                "status": 401,
                "headers": [["Content-Encoding", "gzip"]],
                "body_b64": base64.b64encode(gzip.compress(echo)).decode(),
            }
        )
        post(bridge.port, body={"model": "m", "input": "hi", "stream": True})

        # A daemonized twistd run with a log file.
        daemon = ProxyProcess(
            self, key=self.key, entry="twistd", daemon=True, upstreamURL=fake.url()
        ).start()
        fake.enqueue({"status": 500, "echo": True})
        post(daemon.port)

        for name, p in [
            ("main", proxy),
            ("refused", refused),
            ("tls", tls),
            ("bridge", bridge),
            ("daemon", daemon),
        ]:
            self.finishProxy(name, p)
        for path in sorted(dumps.iterdir()):
            self.collect(f"dump {path.name}", path.read_bytes())
        self.assertGreater(len(os.listdir(dumps)), 10)

        hits = [
            (what, needle.decode())
            for what, data in self.collected
            for needle in self.needles
            if needle in data
        ]
        self.assertEqual(hits, [])
        # The probe itself can see the key where it is expected: the upstream got it.
        self.assertIn(b"Bearer " + self.key, json.dumps([r.data for r in fake.requests()]).encode())
