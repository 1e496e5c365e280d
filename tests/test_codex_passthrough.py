"""
The real Codex CLI (C{codex exec} 0.171.0) through the proxy in pass-through mode, with
the fake upstream speaking the Responses API.

Codex is given a provider with its own C{env_key}, so it sends its own C{Authorization};
the proxy's C{--dump-dir} shows that it arrived (redacted), and the upstream must see the
proxy's key instead, exactly once. These tests need the Codex CLI
(C{npm install --prefix .cache/codex @openai/codex@0.171.0}) and fail, not skip, without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.support.codex import CodexCLI, findCodex
from tests.support.events import (
    completed,
    created,
    functionCallEvents,
    messageEvents,
    sseSpec,
    textReply,
)
from tests.support.fake import FakeUpstream, Recorded
from tests.support.procs import makeTempDir
from tests.support.proxy import ProxyProcess

CODEX_KEY = "sk-codex-own-key-must-not-reach-upstream"
RUN_TIMEOUT = 30.0

# Headers Codex 0.171 sends on every turn request that the proxy must pass on unchanged.
SESSION_HEADERS = ("session-id", "thread-id", "x-client-request-id", "x-codex-window-id")


def _nonMessageItems(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in body["input"] if item.get("type") != "message"]


def _dumpedRequests(directory: Path) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text()) for p in sorted(directory.glob("*-request.json"))
    ]


class CodexPassThroughTests(SynchronousTestCase):
    """
    C{codex exec} → proxy (pass-through) → fake Responses upstream.
    """

    def setUp(self) -> None:
        findCodex()  # fail early, with the install hint, if Codex is missing
        self.fake = FakeUpstream(self).start()
        self.dumpDir = makeTempDir(self, "dump-")
        self.proxy = ProxyProcess(
            self, upstreamURL=self.fake.url("/v1/responses"), dumpDir=str(self.dumpDir)
        ).start()
        self.proxyKey = self.proxy.key.decode("ascii")
        self.codex = CodexCLI(
            self,
            baseURL=self.proxy.url("/v1"),
            envKey=("CODEX_PROXY_TEST_KEY", CODEX_KEY),
            timeout=RUN_TIMEOUT,
        )

    def assertKeyReplaced(self, requests: list[Recorded]) -> None:
        """
        Codex sent its own Authorization to the proxy (seen, redacted, in the dump), and
        every upstream request carries the proxy's key exactly once and never Codex's.
        """
        dumped = _dumpedRequests(self.dumpDir)
        self.assertEqual(len(dumped), len(requests))
        for document in dumped:
            names = [name.lower() for name, _ in document["headers"]]
            self.assertEqual(names.count("authorization"), 1, "Codex sent no Authorization")
            self.assertNotIn(CODEX_KEY, json.dumps(document))
        for req in requests:
            self.assertEqual(req.headerValues("authorization"), ["Bearer " + self.proxyKey])
            everything = json.dumps(req.headers) + req.body.decode("utf-8", "replace")
            self.assertNotIn(CODEX_KEY, everything)

    def test_textAnswer(self) -> None:
        """
        A streamed text answer reaches Codex through the proxy and is what it prints; the
        upstream saw exactly one C{POST /v1/responses} with the proxy's key.
        """
        self.fake.enqueue(
            sseSpec([created("resp_P1")]
                    + messageEvents("Hello through the proxy",
                                    deltas=["Hello ", "through ", "the proxy"])
                    + [completed("resp_P1")])
        )
        result = self.codex.run("say hello", jsonEvents=False)
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual(result.stdout.strip(), "Hello through the proxy")
        requests = self.fake.requests()
        self.assertEqual([(r.method, r.target) for r in requests],
                         [("POST", "/v1/responses")])
        self.assertKeyReplaced(requests)
        [req] = requests
        # Codex 0.171 asks for zstd or gzip; the proxy owns content coding: gzip only.
        [dumped] = _dumpedRequests(self.dumpDir)
        sent = {name.lower(): value for name, value in dumped["headers"]}
        self.assertEqual(sent["accept-encoding"], "zstd,gzip")
        self.assertEqual(req.headerValues("accept-encoding"), ["gzip"])
        self.assertEqual(req.header("accept"), "text/event-stream")
        self.assertEqual(req.header("originator"), "codex_exec")
        self.assertIn("say hello", json.dumps(req.json()["input"]))

    def test_pauseLongerThanIdleLimit(self) -> None:
        """
        A turn whose command outlasts the idle keep-alive limit (tuned to 1 s here, 30 s by
        default): the proxy closes the idle connection and Codex's next request still
        goes through.
        """
        proxy = ProxyProcess(
            self, upstreamURL=self.fake.url("/v1/responses"), tuning="idleTimeout=1"
        ).start()
        codex = CodexCLI(self, baseURL=proxy.url("/v1"), timeout=RUN_TIMEOUT)
        self.fake.enqueue(
            sseSpec(
                [created("resp_W1")]
                + functionCallEvents(
                    "exec_command",
                    {"cmd": "sleep 2.5; printf 'waited\\n' > out.txt", "yield_time_ms": 10000},
                    callId="call_W1",
                )
                + [completed("resp_W1")]
            ),
            textReply("Done after the pause.", responseId="resp_W2", eventLines=False),
        )
        result = codex.run("wait, then write out.txt")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual((result.workdir / "out.txt").read_text(), "waited\n")
        self.assertEqual(result.agentMessages(), ["Done after the pause."])
        first, second = self.fake.requests()
        self.assertGreater(second.t - first.t, 2.0)

    def test_toolCallRoundTrip(self) -> None:
        """
        Codex runs the C{exec_command} call of the first reply (it writes a file in the
        work folder), sends the call and its output back through the proxy, and prints
        the second reply. Both upstream requests carry the proxy's key once, never
        Codex's, and the same session headers Codex sent.
        """
        self.fake.enqueue(
            sseSpec(
                [created("resp_P1")]
                + functionCallEvents(
                    "exec_command", {"cmd": "printf 'proxied\\n' > out.txt"},
                    callId="call_P1",
                )
                + [completed("resp_P1")]
            ),
            textReply("File written.", responseId="resp_P2", eventLines=False),
        )
        result = self.codex.run("write proxied to out.txt")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual((result.workdir / "out.txt").read_text(), "proxied\n")
        self.assertEqual(result.agentMessages(), ["File written."])
        [command] = result.items("command_execution")
        self.assertIn("out.txt", command["command"])
        self.assertEqual(command["exit_code"], 0)
        self.assertEqual(result.events[-1]["type"], "turn.completed")

        requests = self.fake.requests()
        self.assertEqual(len(requests), 2)
        self.assertKeyReplaced(requests)
        first, second = requests
        self.assertEqual(_nonMessageItems(first.json()), [])
        call, output = _nonMessageItems(second.json())
        self.assertEqual((call["type"], call["call_id"], call["name"]),
                         ("function_call", "call_P1", "exec_command"))
        self.assertEqual(json.loads(call["arguments"]),
                         {"cmd": "printf 'proxied\\n' > out.txt"})
        self.assertEqual((output["type"], output["call_id"]),
                         ("function_call_output", "call_P1"))
        self.assertIn("Process exited with code 0", output["output"])

        # The session headers, exactly as Codex sent them to the proxy (from the dump).
        dumped = _dumpedRequests(self.dumpDir)
        for req, document in zip(requests, dumped, strict=True):
            sent = {name.lower(): value for name, value in document["headers"]}
            for name in SESSION_HEADERS + ("x-codex-turn-metadata", "originator",
                                           "user-agent"):
                self.assertIn(name, sent)
                self.assertEqual(req.headerValues(name), [sent[name]], name)
        self.assertEqual(first.header("session-id"), second.header("session-id"))
        self.assertEqual(first.header("session-id"), result.events[0]["thread_id"])
        self.assertEqual(first.header("thread-id"), first.header("session-id"))

    def test_contextLengthError(self) -> None:
        """
        An upstream HTTP 400 with C{context_length_exceeded} is relayed as is: Codex
        reports that it ran out of room in the context window, after exactly one
        request (retries are allowed here, so a retried error would show), and exits
        non-zero.
        """
        codex = CodexCLI(
            self,
            baseURL=self.proxy.url("/v1"),
            envKey=("CODEX_PROXY_TEST_KEY", CODEX_KEY),
            providerOptions={"request_max_retries": 2, "stream_max_retries": 2},
            timeout=RUN_TIMEOUT,
        )
        self.fake.setDefault({
            "status": 400,
            "body": json.dumps({"error": {
                "message": "Your input exceeds the context window of this model.",
                "type": "invalid_request_error",
                "param": "input",
                "code": "context_length_exceeded",
            }}),
        })
        result = codex.run("a very long prompt")
        self.assertNotEqual(result.exitCode, 0, result.describe())
        failed = [e for e in result.events or [] if e.get("type") == "turn.failed"]
        self.assertEqual(len(failed), 1, result.describe())
        self.assertIn("ran out of room in the model's context window",
                      failed[0]["error"]["message"])
        requests = self.fake.requests()
        self.assertEqual(len(requests), 1)
        self.assertKeyReplaced(requests)
