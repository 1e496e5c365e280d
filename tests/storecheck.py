# -*- test-case-name: tests.test_store -*-
"""
A real process around the response store, for L{tests.test_store}: a real reactor and the
real C{adbapi} thread pool, opened through L{openStore} from a real configuration.

C{python -m tests.storecheck --state-file PATH turns}: reads C{{"turns": [{"request",
"completion"}...]}} on stdin and runs each turn as the bridge glue does (references, load,
resolve, convert, the chat completion converted to a response, record, save), one turn
after the other. A C{previous_response_id} of C{"$prev"} is the previous turn's response
id. Prints one JSON line per turn: C{{"response", "chat"}} (the chat body that would have
gone upstream) or C{{"error"}} (a 400's body), then C{{"counts": [responses, bytes]}}.

C{python -m tests.storecheck --state-file PATH hold}: opens the store, prints C{ready},
and keeps it open until stdin closes.

A start-up error prints C{Error: ...} on stderr and exits 1, as the proxy does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorCore

from responses_proxy.bridge.completion import completionToResponse
from responses_proxy.bridge.request import BridgeRequestError, convertRequest
from responses_proxy.bridge.state import Found, recordFor, referencesIn, resolve
from responses_proxy.config import TUNING_ENV, StartupError, buildConfig
from responses_proxy.web.store import IResponseStore, openStore


async def _turns(store: IResponseStore, script: dict[str, Any]) -> None:
    previous = None
    for turn in script["turns"]:
        request = dict(turn["request"])
        if request.get("previous_response_id") == "$prev":
            request["previous_response_id"] = previous
        try:
            references = referencesIn(request)
            found = Found()
            if references.needsLookup():
                found = await store.load(references)
            resolved = resolve(request, references, found)
            conversion = convertRequest(resolved.body, resolved=True)
        except BridgeRequestError as e:
            print(json.dumps(e.errorBody()), flush=True)
            continue
        response = completionToResponse(conversion.context, turn["completion"])
        record = recordFor(resolved, response)
        if record is not None:
            await store.save(record)
        previous = response["id"]
        print(json.dumps({"response": response, "chat": conversion.body}), flush=True)
    print(json.dumps({"counts": list(await store.counts())}), flush=True)


def _stdinClosed(reactor: Any) -> defer.Deferred[None]:
    """
    Fires when stdin reaches its end (read in a thread: the reactor stays free).
    """
    from twisted.internet import threads

    return threads.deferToThread(sys.stdin.buffer.read)


async def _run(reactor: IReactorCore, store: Any, command: str) -> None:
    try:
        if command == "turns":
            await _turns(store, json.loads(sys.stdin.buffer.read()))
        else:
            print("ready", flush=True)
            await _stdinClosed(reactor)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-file", required=True)
    parser.add_argument("command", choices=["turns", "hold"])
    arguments = parser.parse_args()

    from twisted.internet import reactor

    try:
        config = buildConfig(
            port=None,
            serverInfo=None,
            httpShutdown=False,
            upstreamURL="http://127.0.0.1:9/v1/chat/completions",
            bridge=True,
            dumpDir=None,
            tuning=os.environ.get(TUNING_ENV),
            stateFile=arguments.state_file,
        )
        # As the proxy does: the store is opened (and its file checked) before the
        # reactor runs.
        store = openStore(config, reactor)
    except StartupError as e:
        print(f"Error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    task.react(lambda r: defer.ensureDeferred(_run(r, store, arguments.command)))


if __name__ == "__main__":
    main()
