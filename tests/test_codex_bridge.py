"""
The real Codex CLI (C{codex exec} 0.171.0) through the proxy in bridge mode
(C{--bridge-to-chat}), with the fake upstream speaking Chat Completions SSE.

Each scenario checks both ends: what Codex did and printed, and the chat requests the
upstream received (the conversion of Codex's real Responses requests, follow-ups
included). The chat replies have the shapes real providers send: a role-only first
chunk, content / reasoning / tool-call deltas, a chunk with C{finish_reason}, a
usage-only chunk with empty C{choices}, then C{data: [DONE]}. These tests need the Codex
CLI (C{npm install --prefix .cache/codex @openai/codex@0.171.0}) and fail, not skip,
without it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.support.chat import chatChunk
from tests.support.codex import CodexCLI, CodexResult, findCodex
from tests.support.fake import FakeUpstream, Recorded
from tests.support.procs import makeTempDir
from tests.support.proxy import ProxyProcess

RUN_TIMEOUT = 30.0
CODEX_KEY = "sk-codex-own-key-must-not-reach-upstream"
CHAT_MODEL = "deepseek-chat"
CONTEXT_WINDOW_MESSAGE = "ran out of room in the model's context window"


# -- chat.completion.chunk builders --------------------------------------------------------


# OpenAI-shaped chunks, as DeepSeek sends them (a fingerprint, null logprobs).
_chunk = functools.partial(chatChunk, model=CHAT_MODEL, fingerprint="fp_test", logprobs=True)


def _usageChunk(prompt: int = 1200, completion: int = 30,
                model: str = CHAT_MODEL) -> dict[str, Any]:
    return _chunk(model=model, usage={
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": 0}})


def chatTextReply(pieces: list[str], model: str = CHAT_MODEL) -> dict[str, Any]:
    """
    A reply spec: a streamed chat answer made of C{pieces}.
    """
    return {"sse": (
        [_chunk({"role": "assistant", "content": ""}, model=model)]
        + [_chunk({"content": p}, model=model) for p in pieces]
        + [_chunk({}, "stop", model=model), _usageChunk(model=model), "[DONE]"]
    )}


def chatToolCallReply(name: str, arguments: str, callId: str,
                      reasoning: list[str] | None = None,
                      model: str = CHAT_MODEL) -> dict[str, Any]:
    """
    A reply spec: one streamed tool call, its arguments split in three deltas, after
    optional C{reasoning_content} deltas (DeepSeek style).
    """
    chunks: list[Any] = []
    if reasoning is not None:
        chunks.append(_chunk({"role": "assistant", "content": None,
                              "reasoning_content": ""}, model=model))
        chunks += [_chunk({"reasoning_content": r}, model=model) for r in reasoning]
    else:
        chunks.append(_chunk({"role": "assistant", "content": None}, model=model))
    third = max(1, len(arguments) // 3)
    pieces = [arguments[:third], arguments[third:2 * third], arguments[2 * third:]]
    chunks.append(_chunk({"tool_calls": [{
        "index": 0, "id": callId, "type": "function",
        "function": {"name": name, "arguments": ""}}]}, model=model))
    chunks += [_chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]},
                      model=model) for p in pieces]
    chunks += [_chunk({}, "tool_calls", model=model), _usageChunk(model=model), "[DONE]"]
    return {"sse": chunks}


# -- reading the chat requests ----------------------------------------------------------------


def _afterLastUser(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return messages[last + 1:]


def _toolNames(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", [])]


def _dumped(directory: Path) -> list[dict[str, Any]]:
    """
    The proxy's C{--dump-dir} request files: what Codex sent (C{body}, C{headers}) and
    the chat request made of it (C{upstream_request}).
    """
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*-request.json"))]


def _failedMessage(result: CodexResult) -> str:
    failed = [e for e in result.events or [] if e.get("type") == "turn.failed"]
    return failed[-1]["error"]["message"] if failed else ""


class CodexBridgeTests(SynchronousTestCase):
    """
    C{codex exec} → proxy (C{--bridge-to-chat}) → fake Chat Completions upstream.
    """

    def setUp(self) -> None:
        findCodex()  # fail early, with the install hint, if Codex is missing
        self.fake = FakeUpstream(self).start()
        self.dumpDir = makeTempDir(self, "dump-")
        self.proxy = ProxyProcess(
            self, upstreamURL=self.fake.url("/v1/chat/completions"), bridge=True,
            dumpDir=str(self.dumpDir),
        ).start()
        self.proxyKey = self.proxy.key.decode("ascii")

    def codex(self, model: str = CHAT_MODEL, **kw: Any) -> CodexCLI:
        """
        A Codex runner through the proxy; Codex has its own key (which the proxy must
        replace).
        """
        return CodexCLI(self, baseURL=self.proxy.url("/v1"), model=model,
                        envKey=("CODEX_BRIDGE_TEST_KEY", CODEX_KEY),
                        timeout=RUN_TIMEOUT, **kw)

    def chatRequests(self, count: int) -> list[Recorded]:
        """
        The upstream's requests: exactly C{count}, each a streaming chat request with
        the proxy's key.
        """
        requests = self.fake.requests()
        self.assertEqual(len(requests), count, [r.target for r in requests])
        for req in requests:
            self.assertEqual((req.method, req.target), ("POST", "/v1/chat/completions"))
            self.assertEqual(req.headerValues("authorization"), ["Bearer " + self.proxyKey])
            self.assertNotIn(CODEX_KEY, json.dumps(req.headers))
            self.assertEqual(req.header("accept"), "text/event-stream")
            body = req.json()
            self.assertIs(body["stream"], True)
            self.assertEqual(body["stream_options"], {"include_usage": True})
            self.assertIn("messages", body)
            self.assertNotIn("input", body)
        return requests

    def assertToolRoundTrip(self, followUp: dict[str, Any], callId: str, name: str,
                            arguments: str) -> dict[str, Any]:
        """
        The follow-up chat request ends with the assistant message holding the call
        (id, function name, arguments), immediately followed by its C{tool} message.

        @return: the tool message.
        """
        turn = _afterLastUser(followUp["messages"])
        self.assertEqual([m["role"] for m in turn], ["assistant", "tool"], turn)
        assistant, tool = turn
        self.assertEqual(assistant["tool_calls"], [{
            "id": callId, "type": "function",
            "function": {"name": name, "arguments": arguments}}])
        self.assertEqual(tool["tool_call_id"], callId)
        self.assertIsInstance(tool["content"], str)
        return tool

    # -- (a) ---------------------------------------------------------------------------

    def test_textAnswer(self) -> None:
        """
        A streamed chat answer becomes what Codex prints. The one chat request carries
        Codex's prompt as the last user message, its base prompt as a leading system
        message, Codex's function tools (not the hosted C{web_search}) and the model.
        """
        self.fake.enqueue(chatTextReply(["Hello", " from", " the bridge"]))
        result = self.codex().run("say hello", jsonEvents=False)
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual(result.stdout.strip(), "Hello from the bridge")
        [req] = self.chatRequests(1)
        body = req.json()
        self.assertEqual(body["model"], CHAT_MODEL)
        self.assertEqual(body["messages"][0]["role"], "system")
        self.assertEqual(body["messages"][-1], {"role": "user", "content": "say hello"})
        self.assertIn("exec_command", _toolNames(body))
        self.assertNotIn("web_search", json.dumps(body["tools"]))
        # Codex sent its own Authorization (redacted in the dump) and its session
        # headers: the key was replaced, the session headers went up unchanged.
        [dumped] = _dumped(self.dumpDir)
        sent = {name.lower(): value for name, value in dumped["headers"]}
        self.assertEqual(sent["authorization"], "[REDACTED]")
        for name in ("session-id", "thread-id", "x-client-request-id",
                     "x-codex-window-id", "x-codex-turn-metadata", "originator"):
            self.assertEqual(req.headerValues(name), [sent[name]], name)

    # -- (b) ---------------------------------------------------------------------------

    def test_execCommandRoundTrip(self) -> None:
        """
        An C{exec_command} tool call streamed as chat C{tool_calls} deltas is run by
        Codex (the file appears); the follow-up chat request carries the assistant
        message with the call, then the C{tool} message with Codex's output.
        """
        arguments = json.dumps({"cmd": "printf 'bridged\\n' > out.txt"})
        self.fake.enqueue(
            chatToolCallReply("exec_command", arguments, "call_B1"),
            chatTextReply(["Wrote ", "out.txt."]),
        )
        result = self.codex().run("write bridged to out.txt")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual((result.workdir / "out.txt").read_text(), "bridged\n")
        self.assertEqual(result.agentMessages(), ["Wrote out.txt."])
        [command] = result.items("command_execution")
        self.assertIn("out.txt", command["command"])
        self.assertEqual(command["exit_code"], 0)

        # Both replies' usage chunks (1200 prompt + 30 completion tokens each).
        self.assertEqual(result.events[-1]["type"], "turn.completed")
        self.assertEqual(
            (result.events[-1]["usage"]["input_tokens"],
             result.events[-1]["usage"]["output_tokens"]), (2400, 60))

        first, second = self.chatRequests(2)
        self.assertEqual(first.json()["messages"][-1]["role"], "user")
        tool = self.assertToolRoundTrip(second.json(), "call_B1", "exec_command", arguments)
        # The tool message holds exactly the output Codex sent back for the call.
        [output] = [i for i in _dumped(self.dumpDir)[1]["body"]["input"]
                    if i.get("type") == "function_call_output"]
        self.assertEqual(output["call_id"], "call_B1")
        self.assertEqual(tool["content"], output["output"])
        self.assertIn("Process exited with code 0", tool["content"])
        self.assertEqual(first.header("session-id"), second.header("session-id"))

    def test_toolCallWrittenAsText(self) -> None:
        """
        An open model served without a tool parser writes its call as Qwen3-Coder XML in
        C{content}, split across chunks, and says C{finish_reason: stop}: Codex gets a real
        C{exec_command} call and runs it, with the text before it kept as its message.
        """
        markup = (
            "I will write the file.\n<tool_call>\n<function=exec_command>\n"
            "<parameter=cmd>\nprintf 'healed\\n' > out.txt\n</parameter>\n"
            "</function>\n</tool_call>"
        )
        pieces = [markup[i : i + 7] for i in range(0, len(markup), 7)]
        self.fake.enqueue(chatTextReply(pieces), chatTextReply(["Healed."]))
        result = self.codex().run("write healed to out.txt")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual((result.workdir / "out.txt").read_text(), "healed\n")
        self.assertEqual(result.agentMessages()[-1], "Healed.")
        self.assertNotIn("<tool_call>", json.dumps(result.events))
        first, second = self.chatRequests(2)
        assistant = [m for m in second.json()["messages"] if m["role"] == "assistant"][-1]
        self.assertEqual(assistant["content"].strip(), "I will write the file.")
        [call] = assistant["tool_calls"]
        self.assertEqual(call["function"]["name"], "exec_command")
        self.assertEqual(
            json.loads(call["function"]["arguments"]), {"cmd": "printf 'healed\\n' > out.txt"}
        )
        self.assertEqual(second.json()["messages"][-1]["role"], "tool")

    # -- (c) ---------------------------------------------------------------------------

    def test_applyPatchCustomTool(self) -> None:
        """
        With C{gpt-5.5} Codex offers C{apply_patch} as a freeform (custom) tool: the chat
        request offers it as a function with one string parameter C{input}. A chat tool
        call with C{{"input": <patch>}} comes back to Codex as a custom tool call: the
        file is created, and the follow-up carries the call and its result.
        """
        patch = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch\n"
        arguments = json.dumps({"input": patch})
        self.fake.enqueue(
            chatToolCallReply("apply_patch", arguments, "call_AP1", model="gpt-5.5"),
            chatTextReply(["Added hello.txt."], model="gpt-5.5"),
        )
        result = self.codex(model="gpt-5.5").run("add hello.txt")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual((result.workdir / "hello.txt").read_text(), "hi\n")
        self.assertEqual(result.agentMessages()[-1], "Added hello.txt.")

        first, second = self.chatRequests(2)
        [tool] = [t for t in first.json()["tools"] if t["function"]["name"] == "apply_patch"]
        self.assertEqual(tool["type"], "function")
        parameters = tool["function"]["parameters"]
        self.assertEqual(parameters["type"], "object")
        self.assertEqual(list(parameters["properties"]), ["input"])
        self.assertEqual(parameters["properties"]["input"]["type"], "string")
        self.assertEqual(parameters["required"], ["input"])

        toolMessage = self.assertToolRoundTrip(
            second.json(), "call_AP1", "apply_patch", arguments
        )
        self.assertIn("hello.txt", toolMessage["content"])
        self.assertIn("Success", toolMessage["content"])

    # -- (d) ---------------------------------------------------------------------------

    def test_reasoningRoundTrip(self) -> None:
        """
        DeepSeek-style C{reasoning_content} deltas before a tool call show up as a
        reasoning item in Codex's output, and the next chat request (the tool follow-up)
        carries that exact text as C{reasoning_content} on the assistant message of the
        turn (bridge-spec §3: the bridge's token in C{encrypted_content}, echoed by Codex).
        """
        reasoning = ["Okay, the user wants a file.", "\n\nI will use `exec_command` ",
                     "to write it.\n"]
        thought = "".join(reasoning)
        arguments = json.dumps({"cmd": "printf 'thought\\n' > r.txt"})
        self.fake.enqueue(
            chatToolCallReply("exec_command", arguments, "call_R1", reasoning=reasoning),
            chatTextReply(["Done thinking."]),
        )
        result = self.codex().run("think, then write r.txt")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual((result.workdir / "r.txt").read_text(), "thought\n")
        self.assertEqual([i.get("text") for i in result.items("reasoning")], [thought])
        self.assertEqual(result.agentMessages(), ["Done thinking."])

        first, second = self.chatRequests(2)
        self.assertToolRoundTrip(second.json(), "call_R1", "exec_command", arguments)
        assistant = _afterLastUser(second.json()["messages"])[0]
        self.assertEqual(assistant["reasoning_content"], thought)
        self.assertNotIn("reasoning_content", json.dumps(first.json()["messages"]))
        # The way back: Codex echoed the bridge's token in the reasoning item.
        [item] = [i for i in _dumped(self.dumpDir)[1]["body"]["input"]
                  if i.get("type") == "reasoning"]
        self.assertTrue(item["encrypted_content"].startswith("rpxr1."), item)

    # -- (e) ---------------------------------------------------------------------------

    def test_contextLengthError(self) -> None:
        """
        DeepSeek's HTTP 400 for a too-long prompt (its own wording, code
        C{invalid_request_error}) is normalised to C{context_length_exceeded}: Codex says
        it ran out of room in the context window, after ONE upstream request although
        retries are allowed, and exits non-zero.
        """
        self.fake.setDefault({"status": 400, "body": json.dumps({"error": {
            "message": "This model's maximum context length is 65536 tokens. However, you "
                       "requested 70123 tokens (70123 in the messages, 0 in the "
                       "completion). Please reduce the length of the messages or "
                       "completion.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request_error",
        }})})
        codex = self.codex(providerOptions={"request_max_retries": 2,
                                            "stream_max_retries": 2})
        result = codex.run("a very long prompt")
        self.assertNotEqual(result.exitCode, 0, result.describe())
        self.assertIn(CONTEXT_WINDOW_MESSAGE, _failedMessage(result), result.describe())
        self.chatRequests(1)

    # -- (f) ---------------------------------------------------------------------------

    def test_rateLimitRetryAfter(self) -> None:
        """
        A 429 with C{Retry-After: 2}, then a normal reply: Codex retries the turn no
        sooner than two seconds later and prints the answer.
        """
        self.fake.enqueue(
            {"status": 429, "headers": [["retry-after", "2"]],
             "body": json.dumps({"error": {
                 "message": "Rate limit reached for requests",
                 "type": "requests", "param": None, "code": "rate_limit_exceeded"}})},
            chatTextReply(["Answer after ", "the wait."]),
        )
        codex = self.codex(providerOptions={"request_max_retries": 1,
                                            "stream_max_retries": 2})
        result = codex.run("answer eventually", jsonEvents=False)
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual(result.stdout.strip(), "Answer after the wait.")
        first, second = self.chatRequests(2)
        self.assertGreaterEqual(second.t - first.t, 2.0)

    # -- beyond the brief's list: shapes real models produce --------------------------------

    def test_parallelCallsWithCommentary(self) -> None:
        """
        Text followed by two tool calls in one reply: Codex prints the text, runs both
        calls, and the follow-up has ONE assistant message (text and both calls, in
        order) followed by both C{tool} messages in call order.
        """
        first = json.dumps({"cmd": "echo one > 1.txt"})
        second = json.dumps({"cmd": "echo two > 2.txt"})
        sse: list[Any] = [_chunk({"role": "assistant", "content": ""}),
                          _chunk({"content": "Running two commands."})]
        for index, (callId, arguments) in enumerate([("call_P1", first),
                                                     ("call_P2", second)]):
            sse += [
                _chunk({"tool_calls": [{"index": index, "id": callId, "type": "function",
                                        "function": {"name": "exec_command",
                                                     "arguments": ""}}]}),
                _chunk({"tool_calls": [{"index": index,
                                        "function": {"arguments": arguments}}]}),
            ]
        sse += [_chunk({}, "tool_calls"), _usageChunk(), "[DONE]"]
        self.fake.enqueue({"sse": sse}, chatTextReply(["Both done."]))
        result = self.codex().run("write two files")
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual((result.workdir / "1.txt").read_text(), "one\n")
        self.assertEqual((result.workdir / "2.txt").read_text(), "two\n")
        self.assertEqual(result.agentMessages(), ["Running two commands.", "Both done."])

        _, followUp = self.chatRequests(2)
        turn = _afterLastUser(followUp.json()["messages"])
        self.assertEqual([m["role"] for m in turn], ["assistant", "tool", "tool"])
        self.assertEqual(turn[0]["content"], "Running two commands.")
        self.assertEqual(
            [(c["id"], c["function"]["arguments"]) for c in turn[0]["tool_calls"]],
            [("call_P1", first), ("call_P2", second)])
        self.assertEqual([m["tool_call_id"] for m in turn[1:]], ["call_P1", "call_P2"])

    def test_namespacedToolCall(self) -> None:
        """
        Codex's C{multi_agent_v1} namespace tools are offered flattened
        (C{multi_agent_v1__close_agent}); a chat call to that name reaches Codex with its
        namespace restored, so Codex dispatches it to the tool (its own error about the
        agent id) instead of answering "unsupported call".
        """
        self.fake.enqueue(
            chatToolCallReply("multi_agent_v1__close_agent",
                              json.dumps({"target": "nobody"}), "call_NS1"),
            chatTextReply(["No such agent."]),
        )
        result = self.codex().run("close the agent")
        self.assertEqual(result.exitCode, 0, result.describe())
        first, second = self.chatRequests(2)
        self.assertIn("multi_agent_v1__close_agent", _toolNames(first.json()))
        [call] = [i for i in _dumped(self.dumpDir)[1]["body"]["input"]
                  if i.get("type") == "function_call"]
        self.assertEqual((call["namespace"], call["name"]), ("multi_agent_v1", "close_agent"))
        tool = self.assertToolRoundTrip(second.json(), "call_NS1",
                                        "multi_agent_v1__close_agent",
                                        json.dumps({"target": "nobody"}))
        self.assertNotIn("unsupported call", tool["content"])
        self.assertIn("nobody", tool["content"])

    def test_cutOffDuringToolCall(self) -> None:
        """
        An upstream that closes the stream in the middle of a tool call (no
        C{finish_reason}): Codex never runs the half-received call, retries the turn,
        and prints the retry's answer.
        """
        self.fake.enqueue(
            {"sse": [
                _chunk({"role": "assistant", "content": None}),
                _chunk({"tool_calls": [{"index": 0, "id": "call_CUT", "type": "function",
                                        "function": {"name": "exec_command",
                                                     "arguments": ""}}]}),
                _chunk({"tool_calls": [{"index": 0, "function": {
                    "arguments": json.dumps({"cmd": "touch half.txt"})}}]}),
            ], "then": "close"},
            chatTextReply(["Recovered."]),
        )
        result = self.codex(providerOptions={"stream_max_retries": 1}).run(
            "something", jsonEvents=False
        )
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual(result.stdout.strip(), "Recovered.")
        self.assertEqual(list(result.workdir.iterdir()), [])
        first, second = self.chatRequests(2)
        self.assertEqual(first.json()["messages"], second.json()["messages"])
