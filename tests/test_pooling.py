"""
Upstream connections are pooled: sequential requests reuse one connection, in
pass-through and in bridge mode, and concurrent ones keep as many as they needed.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from tests.support import http
from tests.support.fake import FakeUpstream, makeCAAndLeaf
from tests.support.procs import makeTempDir
from tests.support.proxy import ProxyProcess


def chatStream(text: str) -> dict:
    chunks = [
        {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}},
        "[DONE]",
    ]
    return {"sse": chunks}


class PoolingTests(SynchronousTestCase):
    """
    One upstream connection serves sequential requests.
    """

    def test_passThroughReusesConnection(self) -> None:
        """Three sequential pass-through requests use one upstream connection."""
        fake = FakeUpstream(self).start()
        fake.setDefault({"body": "{}"})
        proxy = ProxyProcess(self, upstreamURL=fake.url()).start()
        for _ in range(3):
            self.assertEqual(http.post(proxy.port, body=b"{}").status, 200)
        self.assertEqual({r.conn for r in fake.requests()}, {fake.requests()[0].conn})
        self.assertEqual(fake.connections()["total"], 1)

    def test_bridgeReusesConnection(self) -> None:
        """Three sequential bridged streams use one upstream connection: the proxy lets
        the upstream finish its body after the terminal event instead of cutting it."""
        fake = FakeUpstream(self).start()
        proxy = ProxyProcess(
            self, upstreamURL=fake.url("/v1/chat/completions"), bridge=True
        ).start()
        for n in range(3):
            fake.enqueue(chatStream(f"answer {n}"))
            with http.openStream(
                proxy.port, body={"model": "m", "input": "hi", "stream": True}
            ) as s:
                events = [e.json() for e in s.iterEvents(10)]
            self.assertEqual(events[-1]["type"], "response.completed")
            fake.waitOutcome(n, timeout=10)
        self.assertEqual(len(fake.requests()), 3)
        self.assertEqual(fake.connections()["total"], 1, json.dumps(fake.connections()))

    def concurrentRounds(self, fake: FakeUpstream, proxy: ProxyProcess, clients: int) -> None:
        """
        Two rounds of C{clients} requests in flight at once: each round's replies are
        held at a gate until all of its requests have reached the upstream.
        """
        for round_, gate in enumerate(("first", "second"), start=1):
            fake.setDefault({"body": "{}", "then_gate": gate})
            connections = [http.RawConnection(proxy.port) for _ in range(clients)]
            try:
                for connection in connections:
                    connection.send(http.buildRequest("POST", "/v1/responses", b"{}"))
                fake.waitRequests(clients * round_, timeout=20)
                fake.release(gate)
                for connection in connections:
                    self.assertEqual(connection.readResponse(timeout=20).status, 200)
            finally:
                for connection in connections:
                    connection.close()

    def test_concurrentConnectionsAllReused(self) -> None:
        """40 requests at once need 40 upstream connections; 40 more at once reuse all
        of them (more than a pool capped at 32 idle would keep): none is opened anew."""
        fake = FakeUpstream(self).start()
        proxy = ProxyProcess(self, upstreamURL=fake.url()).start()
        self.concurrentRounds(fake, proxy, 40)
        self.assertEqual(len({r.conn for r in fake.requests()}), 40)
        self.assertEqual(fake.connections()["total"], 40)

    def test_concurrentTLSConnectionsAllReused(self) -> None:
        """The same over TLS, where every new connection is a handshake."""
        pair = makeCAAndLeaf(makeTempDir(self))
        fake = FakeUpstream(self).start(tls=pair)
        proxy = ProxyProcess(
            self, upstreamURL=fake.url(), env={"SSL_CERT_FILE": str(pair.ca)}
        ).start()
        self.concurrentRounds(fake, proxy, 40)
        self.assertEqual(fake.connections()["total"], 40)
