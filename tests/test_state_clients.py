"""
Real Responses API clients that rely on the bridge's conversation state (bridge-spec
section 5), against the proxy in bridge mode in front of the fake Chat Completions upstream.

The clients are the pinned ones of C{tests/clients/}: the Vercel AI SDK (C{ai} +
C{@ai-sdk/openai}, whose default C{store: true} sends earlier assistant items back as
C{item_reference}s), the OpenAI Node SDK, the OpenAI Python SDK and the OpenAI Agents SDK
(which chain turns with C{previous_response_id}). Each test checks both ends: what the
client sent (from the proxy's C{--dump-dir}, so a client that stopped relying on the
state would be noticed) and, above all, the chat requests the upstream received: the whole
conversation, in order, with the reasoning on the assistant turns that had it.

The Node clients need C{npm ci} in C{tests/clients} (C{scripts/test} does it); without
them these tests fail, with that hint, rather than skip.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.clients import pyclients
from tests.support.fake import FakeUpstream, Recorded
from tests.support.procs import PYTHON, REPO, ManagedProcess, makeTempDir, pythonEnv
from tests.support.proxy import ProxyProcess

CLIENTS = REPO / "tests" / "clients"
RUN_TIMEOUT = 60.0
MODEL = "deepseek-chat"
NOT_FOUND = "previous_response_not_found"
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


# -- chat replies -------------------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1760000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [text[:middle], text[middle:]]


def chatStream(
    content: str | None = None,
    reasoning: str | None = None,
    calls: tuple[tuple[str, str, str], ...] = (),
) -> dict[str, Any]:
    """
    A reply spec: a streamed chat answer (DeepSeek style): C{reasoning_content} deltas,
    then content deltas, then tool calls (C{(id, name, arguments)}, the arguments in two
    deltas), the finish reason, a usage-only chunk and C{[DONE]}.
    """
    chunks: list[Any] = [_chunk({"role": "assistant", "content": None})]
    if reasoning is not None:
        chunks += [_chunk({"reasoning_content": part}) for part in _halves(reasoning)]
    if content is not None:
        chunks += [_chunk({"content": part}) for part in _halves(content)]
    for index, (callId, name, arguments) in enumerate(calls):
        chunks.append(_chunk({"tool_calls": [{
            "index": index, "id": callId, "type": "function",
            "function": {"name": name, "arguments": ""}}]}))
        chunks += [_chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                   for part in _halves(arguments)]
    chunks.append(_chunk({}, "tool_calls" if calls else "stop"))
    usage = _chunk({})
    usage["choices"] = []
    usage["usage"] = _usage()
    chunks += [usage, "[DONE]"]
    return {"sse": chunks}


def chatCompletion(
    content: str | None = None,
    reasoning: str | None = None,
    calls: tuple[tuple[str, str, str], ...] = (),
) -> dict[str, Any]:
    """
    A reply spec: one JSON chat completion, the answer to a C{stream: false} request.
    """
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [
            {"id": callId, "type": "function", "function": {"name": name, "arguments": args}}
            for callId, name, args in calls
        ]
    return {"body": json.dumps({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1760000000,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": _usage(),
    })}


# -- chat messages the upstream must receive ----------------------------------------------------


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def system(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


def assistant(
    content: str | None,
    reasoning: str | None = None,
    calls: tuple[tuple[str, str, str], ...] = (),
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [
            {"id": callId, "type": "function", "function": {"name": name, "arguments": args}}
            for callId, name, args in calls
        ]
    return message


def toolResult(callId: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": callId, "content": content}


# -- the fixture --------------------------------------------------------------------------------


def _childEnvironment(base: dict[str, str], home: Path) -> dict[str, str]:
    """
    A client's environment: no HTTP proxy settings (the clients talk to 127.0.0.1
    only), no OpenAI settings of the user's, its own home.
    """
    env = {k: v for k, v in base.items()
           if k.lower() not in _PROXY_VARIABLES and not k.startswith("OPENAI_")}
    env["HOME"] = str(home)
    env["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
    return env


class _ClientCase(SynchronousTestCase):
    """
    The fake chat upstream and the proxy in bridge mode (with a dump directory), and ways
    to run the clients against it.
    """

    def setUp(self) -> None:
        self.fake = FakeUpstream(self).start()
        self.proxy = self.startProxy()

    def startProxy(self, stateFile: Path | None = None) -> ProxyProcess:
        """
        A bridge in front of the fake upstream, dumping the exchanges into a new directory
        (C{self.dumpDir}).
        """
        self.dumpDir = makeTempDir(self, "dump-")
        extra = ["--state-file", str(stateFile)] if stateFile is not None else []
        return ProxyProcess(
            self, upstreamURL=self.fake.url("/v1/chat/completions"), bridge=True,
            dumpDir=str(self.dumpDir), extraArgs=extra,
        ).start()

    def _runClient(self, argv: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
        """
        Run a client to its end (bounded); its JSON output, which must not be an error.
        """
        home = makeTempDir(self, "client-home-")
        process = ManagedProcess(argv, env=_childEnvironment(env, home), cwd=REPO,
                                 directory=home, name=what)
        process.start()
        self.addCleanup(process.stop)
        process.wait(RUN_TIMEOUT)
        out = process.stdout().decode("utf-8", "replace").strip()
        self.assertTrue(out, process.describeExit())
        result = json.loads(out.splitlines()[-1])
        self.assertNotIn("error", result, f"{result.get('error')}\n{process.describeExit()}")
        self.assertEqual(process.returncode, 0, process.describeExit())
        return result

    def node(self, script: str) -> dict[str, Any]:
        """
        Run one of the Node client scripts against the proxy; its JSON output.
        """
        if not (CLIENTS / "node_modules" / "ai").is_dir():
            self.fail("the Node clients are not installed: run `npm ci` in tests/clients "
                      "(scripts/test does)")
        argv = ["node", str(CLIENTS / script), self.proxy.url("/v1"), MODEL]
        return self._runClient(argv, dict(os.environ), script)

    def python(self, scenario: str) -> dict[str, Any]:
        """
        Run one of the Python clients' scenarios (C{tests.clients.pyclients}) in a child.
        """
        argv = [PYTHON, "-m", "tests.clients.pyclients", scenario, self.proxy.url("/v1"), MODEL]
        return self._runClient(argv, pythonEnv(), scenario)

    def chatBodies(self, count: int) -> list[dict[str, Any]]:
        """
        The chat request bodies the upstream received: exactly C{count}.
        """
        requests: list[Recorded] = self.fake.requests()
        self.assertEqual(len(requests), count, [r.json() for r in requests])
        for request in requests:
            self.assertEqual((request.method, request.target),
                             ("POST", "/v1/chat/completions"))
        return [request.json() for request in requests]

    def clientBodies(self) -> list[dict[str, Any]]:
        """
        The Responses request bodies the client sent, in order (from the dump).
        """
        files = sorted(self.dumpDir.glob("*-request.json"))
        return [json.loads(path.read_text())["body"] for path in files]

    def assertReferences(self, body: dict[str, Any], prefixes: list[str]) -> None:
        """
        The client's request referred to earlier items by id (as C{item_reference}s)
        instead of sending them: the premise of the test.
        """
        references = [item["id"] for item in body["input"]
                      if item.get("type") == "item_reference"]
        self.assertEqual([ref.split("_")[0] + "_" for ref in references], prefixes, body)


# -- (a), (b): the Vercel AI SDK ----------------------------------------------------------------


class VercelAISDKTests(_ClientCase):
    """
    The Vercel AI SDK with its defaults: C{store: true}, earlier items by reference.
    """

    def test_multiTurnChat(self) -> None:
        """
        A three-turn chat (the second turn streamed): each turn's chat request holds the
        whole history in order, the earlier assistant turns with their text and reasoning,
        although the client sent them only as C{item_reference}s.
        """
        first = ("I am a test model.", "The user wants to know who I am.")
        second = ("You asked who I am.", "They ask about their first message.")
        self.fake.enqueue(
            chatCompletion(first[0], reasoning=first[1]),
            chatStream(second[0], reasoning=second[1]),
            chatCompletion("Goodbye."),
        )
        result = self.node("vercel-chat.mjs")
        self.assertEqual([t["text"] for t in result["turns"]],
                         [first[0], second[0], "Goodbye."])
        self.assertEqual([t["reasoning"] or None for t in result["turns"]],
                         [first[1], second[1], None])

        sent = self.clientBodies()
        self.assertEqual([body.get("stream", False) for body in sent], [False, True, False])
        self.assertReferences(sent[0], [])
        self.assertReferences(sent[1], ["rs_", "msg_"])
        self.assertReferences(sent[2], ["rs_", "msg_", "rs_", "msg_"])

        bodies = self.chatBodies(3)
        self.assertEqual([b["stream"] for b in bodies], [False, True, False])
        prompts = [t["prompt"] for t in result["turns"]]
        self.assertEqual(bodies[0]["messages"], [user(prompts[0])])
        self.assertEqual(bodies[1]["messages"], [
            user(prompts[0]), assistant(*first), user(prompts[1]),
        ])
        self.assertEqual(bodies[2]["messages"], [
            user(prompts[0]), assistant(*first), user(prompts[1]), assistant(*second),
            user(prompts[2]),
        ])

    def test_toolLoopWithReasoning(self) -> None:
        """
        A multi-step tool loop, with C{generateText} then C{streamText}: the model reasons
        and writes text before calling the tool; the follow-up chat request holds the
        assistant turn with C{reasoning_content}, the text and the C{tool_calls}, then the
        C{tool} message with the tool's result.
        """
        reasoning = "I need the weather tool for Paris."
        text = "Let me check the forecast."
        answer = "It is sunny in Paris, 21 degrees."
        arguments = '{"city":"Paris"}'
        callIds = ["call_gen_1", "call_stream_1"]
        self.fake.enqueue(
            chatCompletion(text, reasoning=reasoning, calls=((callIds[0], "weather", arguments),)),
            chatCompletion(answer),
            chatStream(text, reasoning=reasoning, calls=((callIds[1], "weather", arguments),)),
            chatStream(answer),
        )
        result = self.node("vercel-tools.mjs")
        self.assertEqual(result["executed"], ["Paris", "Paris"])
        self.assertEqual([run["text"] for run in result["runs"]], [answer, answer])
        for run in result["runs"]:
            self.assertEqual([step["toolCalls"] for step in run["steps"]],
                             [[{"name": "weather", "input": {"city": "Paris"}}], []])
            self.assertEqual(run["steps"][0]["reasoning"], reasoning)

        sent = self.clientBodies()
        self.assertEqual(len(sent), 4)
        for followUp in (sent[1], sent[3]):
            self.assertReferences(followUp, ["rs_", "msg_"])

        bodies = self.chatBodies(4)
        self.assertEqual([b["stream"] for b in bodies], [False, False, True, True])
        for callId, (call, followUp) in zip(callIds, (bodies[:2], bodies[2:]), strict=True):
            self.assertEqual(call["messages"], [user("What is the weather in Paris?")])
            self.assertEqual([t["function"]["name"] for t in followUp["tools"]], ["weather"])
            self.assertEqual(followUp["messages"], [
                user("What is the weather in Paris?"),
                assistant(text, reasoning, ((callId, "weather", arguments),)),
                toolResult(callId, json.dumps(
                    {"city": "Paris", "forecast": "sunny", "celsius": 21},
                    separators=(",", ":"))),
            ])


# -- (c), (e): previous_response_id with the OpenAI SDKs ----------------------------------------


class _ChainScenario(_ClientCase):
    """
    The OpenAI SDKs' scenario (C{tests/clients/openai-chain.mjs}, C{pyclients.openaiChain}):
    three turns chained with C{previous_response_id}, the second streamed, then an unknown
    id.
    """

    def checkChain(self, result: dict[str, Any]) -> None:
        """
        The client saw the chain, and each chat request held the whole conversation
        (without the first turn's C{instructions}, as on OpenAI); the unknown id got
        OpenAI's 400 and sent nothing upstream.
        """
        turns = result["turns"]
        self.assertEqual([t["text"] for t in turns],
                         ["Hello Ada.", "Your name is Ada.", "A-D-A."])
        self.assertEqual([t["previousResponseId"] for t in turns],
                         [None, turns[0]["id"], turns[1]["id"]])
        self.assertEqual([t["store"] for t in turns], [True, True, True])
        self.assertEqual(turns[1]["reasoning"], "They told me their name.")
        unknown = result["unknown"]
        self.assertEqual(unknown["status"], 400, unknown)
        body = unknown["body"]  # both SDKs give the "error" object of the reply
        self.assertEqual((body["code"], body["param"]), (NOT_FOUND, "previous_response_id"))

        sent = self.clientBodies()
        self.assertEqual([b.get("previous_response_id") for b in sent],
                         [None, turns[0]["id"], turns[1]["id"], "resp_does_not_exist"])
        self.assertEqual([b.get("stream", False) for b in sent], [False, True, False, False])

        bodies = self.chatBodies(3)
        self.assertEqual([b["stream"] for b in bodies], [False, True, False])
        firstTurn = [user("My name is Ada."), assistant("Hello Ada.", "A name: Ada.")]
        secondTurn = [user("What is my name?"),
                      assistant("Your name is Ada.", "They told me their name.")]
        self.assertEqual(bodies[0]["messages"],
                         [system("Be brief."), user("My name is Ada.")])
        self.assertEqual(bodies[1]["messages"], firstTurn + [user("What is my name?")])
        self.assertEqual(bodies[2]["messages"], firstTurn + secondTurn + [user("Spell it.")])

    def enqueueChain(self) -> None:
        """
        The upstream's three answers, with reasoning on the first two.
        """
        self.fake.enqueue(
            chatCompletion("Hello Ada.", reasoning="A name: Ada."),
            chatStream("Your name is Ada.", reasoning="They told me their name."),
            chatCompletion("A-D-A."),
        )


class OpenAINodeSDKTests(_ChainScenario):
    """
    The OpenAI Node SDK (C{openai}).
    """

    def test_previousResponseIdChain(self) -> None:
        """
        C{responses.create} and C{responses.stream} chained with C{previous_response_id}
        send the whole conversation upstream; an unknown id is a 400 sending nothing.
        """
        self.enqueueChain()
        self.checkChain(self.node("openai-chain.mjs"))


class OpenAIPythonSDKTests(_ChainScenario):
    """
    The OpenAI Python SDK (C{openai}).
    """

    def test_previousResponseIdChain(self) -> None:
        """
        C{responses.create} and C{responses.stream} chained with C{previous_response_id}
        send the whole conversation upstream; an unknown id is a 400 sending nothing.
        """
        self.enqueueChain()
        self.checkChain(self.python("openai-chain"))

    def test_storeFalse(self) -> None:
        """
        A C{store: false} request may continue a stored response, but is not kept itself:
        continuing from it is a 400 C{previous_response_not_found} that sends nothing
        upstream.
        """
        import openai

        self.fake.enqueue(chatCompletion("Noted."), chatStream("Forty-two."))
        client = pyclients.openaiClient(self.proxy.url("/v1"))
        kept = client.responses.create(model=MODEL, input="Remember 42.")
        with client.responses.stream(model=MODEL, input="What number?", store=False,
                                     previous_response_id=kept.id) as stream:
            notKept = stream.get_final_response()
        self.assertEqual((kept.store, notKept.store), (True, False))
        self.assertEqual(notKept.output_text, "Forty-two.")
        with self.assertRaises(openai.BadRequestError) as caught:
            client.responses.create(model=MODEL, input="And now?",
                                    previous_response_id=notKept.id)
        self.assertEqual(caught.exception.status_code, 400)
        self.assertEqual(caught.exception.body["code"], NOT_FOUND)
        self.assertIn(notKept.id, caught.exception.body["message"])

        bodies = self.chatBodies(2)
        self.assertEqual(bodies[1]["messages"], [
            user("Remember 42."), assistant("Noted."), user("What number?"),
        ])


# -- (d): the Agents SDK ------------------------------------------------------------------------


class AgentsSDKTests(_ClientCase):
    """
    The OpenAI Agents SDK (C{openai-agents}) with C{OpenAIResponsesModel}.
    """

    def test_runsChainedWithPreviousResponseId(self) -> None:
        """
        A run whose tool loop the SDK chains with C{previous_response_id} (sending only the
        tool's output), then a streamed run continuing from it: each chat request holds the
        whole conversation, the tool-call turn with its C{reasoning_content}.
        """
        reasoning = "The weather tool knows."
        call = ("call_agents_1", "weather", '{"city":"Paris"}')
        self.fake.enqueue(
            chatCompletion(None, reasoning=reasoning, calls=(call,)),
            chatCompletion("It is sunny."),
            chatStream("You asked about the weather in Paris."),
        )
        result = self.python("agents-chain")
        self.assertEqual(result["executed"], ["Paris"])
        self.assertEqual([run["output"] for run in result["runs"]],
                         ["It is sunny.", "You asked about the weather in Paris."])

        sent = self.clientBodies()
        self.assertEqual(len(sent), 3)
        self.assertIsNone(sent[0].get("previous_response_id"))
        self.assertEqual(sent[2]["previous_response_id"], result["runs"][0]["lastResponseId"])
        self.assertEqual([item.get("type") for item in sent[1]["input"]],
                         ["function_call_output"])
        self.assertTrue(sent[1]["previous_response_id"].startswith("resp_"))

        bodies = self.chatBodies(3)
        self.assertEqual([b["stream"] for b in bodies], [False, False, True])
        output = json.dumps({"city": "Paris", "forecast": "sunny", "celsius": 21})
        loop = [
            system("Answer briefly."),
            user("What is the weather in Paris?"),
            assistant(None, reasoning, (call,)),
            toolResult(call[0], output),
        ]
        self.assertEqual(bodies[0]["messages"], loop[:2])
        self.assertEqual(bodies[1]["messages"], loop)
        self.assertEqual(bodies[2]["messages"], loop + [
            assistant("It is sunny."), user("And what did I ask before?"),
        ])


# -- (f): persistence across a restart ----------------------------------------------------------


class PersistenceTests(_ClientCase):
    """
    C{--state-file}: conversations survive a restart of the proxy.
    """

    def setUp(self) -> None:
        self.fake = FakeUpstream(self).start()

    def test_restart(self) -> None:
        """
        One turn, a clean stop (C{GET /shutdown}), a new proxy on the same file: a turn
        chained to the first (and one referencing its items) reaches the upstream with the
        whole history. The file is the user's alone (0600, its new directory 0700).
        """
        directory = makeTempDir(self, "state-") / "new" / "dir"
        stateFile = directory / "state.sqlite"
        self.fake.enqueue(chatCompletion("Hello Ada.", reasoning="A name."))
        self.proxy = self.startProxy(stateFile)
        client = pyclients.openaiClient(self.proxy.url("/v1"))
        first = client.responses.create(model=MODEL, input="My name is Ada.")
        self.assertEqual(self.proxy.shutdown(), 0)

        self.assertEqual(stat.S_IMODE(directory.stat().st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(directory.parent.stat().st_mode), 0o700)
        self.assertIn(stateFile, list(directory.iterdir()))
        for path in directory.iterdir():
            self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600, path)

        self.fake.enqueue(chatStream("Your name is Ada."), chatCompletion("Yes."))
        self.proxy = self.startProxy(stateFile)
        client = pyclients.openaiClient(self.proxy.url("/v1"))
        with client.responses.stream(model=MODEL, input="What is my name?",
                                     previous_response_id=first.id) as stream:
            second = stream.get_final_response()
        self.assertEqual(second.output_text, "Your name is Ada.")
        client.responses.create(model=MODEL, input=[
            {"role": "user", "content": "My name is Ada."},
            *({"type": "item_reference", "id": item.id} for item in first.output),
            {"role": "user", "content": "Right?"},
        ])

        bodies = self.chatBodies(3)
        firstTurn = [user("My name is Ada."), assistant("Hello Ada.", "A name.")]
        self.assertEqual(bodies[0]["messages"], firstTurn[:1])
        self.assertEqual(bodies[1]["messages"], firstTurn + [user("What is my name?")])
        self.assertEqual(bodies[2]["messages"], firstTurn + [user("Right?")])
