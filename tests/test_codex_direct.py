"""
The real Codex CLI against the fake upstream directly (no proxy), on the Responses wire.

These prove the harness (L{tests.support.codex}, L{tests.support.fake}); the proxy and
bridge tests reuse the same scenarios through the proxy. They need the Codex CLI
(C{npm install --prefix .cache/codex @openai/codex@0.171.0}) and fail, not skip, without it.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from tests.support.codex import CODEX_VERSION, CodexCLI, codexVersion, findCodex
from tests.support.events import completed, created, functionCallEvents, replyScript, sseSpec
from tests.support.fake import FakeUpstream

KEY = "sk-codex-direct-test"


def _inputItems(body: dict) -> list[dict]:
    return [item for item in body["input"] if item.get("type") != "message"]


class CodexDirectTests(SynchronousTestCase):
    """
    C{codex exec} with a custom provider pointed at the fake upstream.
    """

    def setUp(self) -> None:
        findCodex()  # fail early, with the install hint, if Codex is missing
        self.fake = FakeUpstream(self).start()
        self.codex = CodexCLI(self, port=self.fake.port, envKey=("CRAP_TEST_KEY", KEY))

    def test_textAnswer(self) -> None:
        """
        A streamed text answer (captured scenario A) is what Codex prints; Codex sent one
        Responses request with its key, SSE accept header and the prompt.
        """
        self.fake.enqueue(*replyScript("A/reply-script.json"))
        result = self.codex.run("say hello", jsonEvents=False)
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual(result.stdout.strip(), "Hello world")
        [req] = self.fake.requests()
        self.assertEqual((req.method, req.target), ("POST", "/v1/responses"))
        self.assertEqual(req.headerValues("authorization"), ["Bearer " + KEY])
        self.assertEqual(req.header("accept"), "text/event-stream")
        self.assertEqual(req.header("originator"), "codex_exec")
        body = req.json()
        self.assertEqual(body["model"], "test-model")
        self.assertIs(body["stream"], True)
        self.assertIn("say hello", json.dumps(body["input"]))
        self.assertIn("web_search", [t.get("type") for t in body["tools"]])

    def test_toolCallRoundTrip(self) -> None:
        """
        Codex runs the C{exec_command} call of the first reply in its work folder, sends
        the call and its output back in a second request, and prints the second reply.
        """
        self.fake.enqueue(
            sseSpec(
                [created("resp_T1")]
                + functionCallEvents(
                    "exec_command", {"cmd": "echo hi > out.txt"}, callId="call_T1"
                )
                + [completed("resp_T1")]
            ),
            sseSpec(replyScript("B/reply-script.json")[1]["sse"], eventLines=False),
        )
        result = self.codex.run("write hi to out.txt")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual((result.workdir / "out.txt").read_text(), "hi\n")
        self.assertEqual(result.agentMessages(), ["Done."])
        [command] = result.items("command_execution")
        self.assertIn("echo hi > out.txt", command["command"])
        self.assertEqual(command["exit_code"], 0)
        self.assertEqual(result.events[-1]["type"], "turn.completed")

        first, second = self.fake.requests()
        self.assertEqual(_inputItems(first.json()), [])
        followUp = _inputItems(second.json())
        self.assertEqual([i["type"] for i in followUp], ["function_call", "function_call_output"])
        call, output = followUp
        self.assertEqual((call["call_id"], call["name"]), ("call_T1", "exec_command"))
        self.assertEqual(json.loads(call["arguments"]), {"cmd": "echo hi > out.txt"})
        self.assertEqual(output["call_id"], "call_T1")
        self.assertIn("Process exited with code 0", output["output"])
        self.assertEqual(second.headerValues("authorization"), ["Bearer " + KEY])

    def test_failureIsFast(self) -> None:
        """
        With the default C{request_max_retries=0} and C{stream_max_retries=0}, an upstream
        error ends the run after one request, with exit status 1.
        """
        self.fake.setDefault({"status": 500, "body": '{"error": {"message": "boom"}}'})
        result = self.codex.run("fail please", timeout=60)
        self.assertEqual(result.exitCode, 1, result.describe())
        self.assertEqual(len(self.fake.requests()), 1)

    def test_version(self) -> None:
        """
        The installed Codex CLI is the version the fixtures were captured with.
        """
        self.assertEqual(codexVersion(), "codex-cli " + CODEX_VERSION)
