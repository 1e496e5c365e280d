# -*- test-case-name: tests.test_state_clients -*-
"""
The OpenAI Python SDK and the OpenAI Agents SDK as their users chain turns:
C{previous_response_id}, set by hand or by the Agents SDK itself.

C{python -m tests.clients.pyclients openai-chain|agents-chain BASE_URL MODEL} prints one
JSON object, like the Node scripts beside this file; the functions return it, for tests
that call them in-process. Both talk only to C{BASE_URL}; the Agents SDK's tracing (which
would upload to OpenAI) is turned off.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

_KEY = "placeholder-the-proxy-injects-the-key"
_TIMEOUT = 30.0


def openaiClient(baseURL: str) -> Any:
    """
    The OpenAI Python SDK's client for the proxy at C{baseURL} (C{.../v1}): no retries
    (a test must see the first answer) and a bounded wait.
    """
    import openai

    return openai.OpenAI(base_url=baseURL, api_key=_KEY, max_retries=0, timeout=_TIMEOUT)


def _describe(error: BaseException) -> dict[str, Any]:
    return {
        "name": type(error).__name__,
        "status": getattr(error, "status_code", None),
        "message": str(error)[:2000],
        "body": getattr(error, "body", None),
    }


def _summary(response: Any) -> dict[str, Any]:
    return {
        "id": response.id,
        "previousResponseId": response.previous_response_id,
        "store": response.store,
        "status": response.status,
        "text": response.output_text,
        "reasoning": "\n".join(
            part.text
            for item in response.output
            if item.type == "reasoning"
            for part in item.summary
        ),
    }


def openaiChain(baseURL: str, model: str) -> dict[str, Any]:
    """
    Three turns with C{previous_response_id} (the second streamed), then an unknown id.
    """
    import openai

    client = openaiClient(baseURL)
    turns: list[dict[str, Any]] = []
    try:
        first = client.responses.create(
            model=model, input="My name is Ada.", instructions="Be brief."
        )
        turns.append(_summary(first))
        with client.responses.stream(
            model=model, input="What is my name?", previous_response_id=first.id
        ) as stream:
            second = stream.get_final_response()
        turns.append(_summary(second))
        third = client.responses.create(
            model=model, input="Spell it.", previous_response_id=second.id
        )
        turns.append(_summary(third))
        unknown = None
        try:
            client.responses.create(
                model=model, input="Hello?", previous_response_id="resp_does_not_exist"
            )
        except openai.APIStatusError as e:
            unknown = _describe(e)
        return {"turns": turns, "unknown": unknown}
    except Exception as e:
        return {"turns": turns, "error": _describe(e)}


async def _agentsChain(baseURL: str, model: str) -> dict[str, Any]:
    import openai
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    executed: list[str] = []

    @function_tool
    def weather(city: str) -> str:
        """The weather forecast for a city."""
        executed.append(city)
        return json.dumps({"city": city, "forecast": "sunny", "celsius": 21})

    client = openai.AsyncOpenAI(
        base_url=baseURL, api_key=_KEY, max_retries=0, timeout=_TIMEOUT
    )
    agent = Agent(
        name="assistant",
        instructions="Answer briefly.",
        model=OpenAIResponsesModel(model=model, openai_client=client),
        tools=[weather],
    )
    runs: list[dict[str, Any]] = []
    try:
        # The SDK chains the steps of its tool loop with previous_response_id itself.
        first = await Runner.run(
            agent, "What is the weather in Paris?", auto_previous_response_id=True
        )
        runs.append({"output": first.final_output, "lastResponseId": first.last_response_id})
        # A streamed run continuing the first one.
        second = Runner.run_streamed(
            agent, "And what did I ask before?", previous_response_id=first.last_response_id
        )
        async for _ in second.stream_events():
            pass
        runs.append({"output": second.final_output, "lastResponseId": second.last_response_id})
        return {"runs": runs, "executed": executed}
    except Exception as e:
        return {"runs": runs, "executed": executed, "error": _describe(e)}


def agentsChain(baseURL: str, model: str) -> dict[str, Any]:
    """
    An Agents SDK run with a tool loop chained by the SDK, then a streamed run continuing
    it.
    """
    return asyncio.run(_agentsChain(baseURL, model))


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in ("openai-chain", "agents-chain"):
        print("usage: python -m tests.clients.pyclients openai-chain|agents-chain URL MODEL")
        raise SystemExit(2)
    os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
    run = openaiChain if sys.argv[1] == "openai-chain" else agentsChain
    result = run(sys.argv[2], sys.argv[3])
    print(json.dumps(result))
    raise SystemExit(1 if "error" in result else 0)


if __name__ == "__main__":
    main()
