"""
Upstream connections are pooled: sequential requests reuse one connection, in
pass-through and in bridge mode.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from tests.support import http
from tests.support.fake import FakeUpstream
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
