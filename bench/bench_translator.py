"""
Throughput of L{responses_proxy.bridge.stream.ResponsesStream.feed}.

Builds a realistic chat stream as the upstream's SSE data payloads (what the
glue hands over after de-framing): a role-only chunk, reasoning deltas, many
small text deltas, two parallel tool calls with argument deltas, a custom tool
call, the finish chunk, the usage chunk and C{[DONE]}. Chunks carry the
fields real servers send (id, object, created, model, system_fingerprint,
logprobs, finish_reason), with some non-ASCII text. Each round runs the whole
stream through a fresh L{ResponsesStream} (parse + state machine + serialise)
on one core; prints chunks/s and us/chunk. Also times a whole reply read at once
(L{chunksToResponse}: the same chunks to one Responses object, no events built).
Nothing is asserted.

Run with C{PYTHONPATH=. .venv/bin/python bench/bench_translator.py [rounds] [--profile]}.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time

import attrs
from _benchlib import chatChunk

from responses_proxy.bridge.completion import chunksToResponse
from responses_proxy.bridge.context import BridgeContext, ToolTarget
from responses_proxy.bridge.stream import ResponsesStream

ROUNDS = 200
TEXT_DELTAS = 600
REASONING_DELTAS = 250
ARGUMENT_DELTAS = 60
PATCH_DELTAS = 80

WORDS = (
    "the",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " lazy",
    " dog",
    ".\n",
    " caf\u00e9",
    " \u4e16\u754c",
    " `code`",
    ' "quoted"',
    " \U0001f600",
    " def",
    "(x):",
)


def buildStream() -> list[bytes]:
    """
    The payloads of one realistic reply.
    """
    payloads = [chatChunk({"role": "assistant", "content": ""})]
    for i in range(REASONING_DELTAS):
        payloads.append(chatChunk({"content": None, "reasoning_content": WORDS[i % len(WORDS)]}))
    for i in range(TEXT_DELTAS):
        payloads.append(chatChunk({"content": WORDS[i % len(WORDS)]}))
    for index, name in ((0, "exec_command"), (1, "read_file")):
        payloads.append(
            chatChunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": f"call_{index}",
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
        )
    arguments = json.dumps({"cmd": "grep -rn 'caf\u00e9' src/ | head -50", "yield_time_ms": 1000})
    step = max(1, len(arguments) // (ARGUMENT_DELTAS // 2))
    pieces = [arguments[i : i + step] for i in range(0, len(arguments), step)]
    for piece in pieces:
        for index in (0, 1):
            payloads.append(
                chatChunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            )
    hunk = "*** Begin Patch\n*** Update File: a.py\n@@\n-old\n+new caf\u00e9\n"
    patch = json.dumps({"input": hunk * 8 + "*** End Patch\n"})
    step = max(1, len(patch) // PATCH_DELTAS)
    payloads.append(
        chatChunk(
            {
                "tool_calls": [
                    {
                        "index": 2,
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "apply_patch", "arguments": ""},
                    }
                ]
            }
        )
    )
    for i in range(0, len(patch), step):
        payloads.append(
            chatChunk(
                {"tool_calls": [{"index": 2, "function": {"arguments": patch[i : i + step]}}]}
            )
        )
    payloads.append(chatChunk({}, "tool_calls"))
    payloads.append(
        json.dumps(
            {
                "id": "chatcmpl-9f8e7d6c5b4a39281706",
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": {
                    "prompt_tokens": 21000,
                    "completion_tokens": 1200,
                    "total_tokens": 22200,
                    "prompt_tokens_details": {"cached_tokens": 20000},
                },
            }
        ).encode()
    )
    payloads.append(b"[DONE]")
    return payloads


# As a Codex request makes it: tools offered, so tool calls written as text are looked
# for in the content (bridge-spec section 6).
CONTEXT = BridgeContext(
    model="deepseek-chat",
    stream=True,
    tools={"apply_patch": ToolTarget("custom", "apply_patch")},
    echo={"tools": [], "tool_choice": "auto", "parallel_tool_calls": True},
    healTextCalls={
        "apply_patch": {"type": "object", "properties": {"input": {"type": "string"}}},
        "exec_command": {"type": "object", "properties": {"cmd": {"type": "string"}}},
    },
)
# The same without healing (no tools offered, or tool_choice none).
PLAIN_CONTEXT = attrs.evolve(CONTEXT, healTextCalls={})


def runOnce(payloads: list[bytes], context: BridgeContext = CONTEXT) -> int:
    """
    One whole reply through a fresh stream; returns the bytes produced.
    """
    stream = ResponsesStream(context)
    size = len(stream.start())
    feed = stream.feed
    for payload in payloads:
        size += len(feed(payload).events)
    assert stream.done
    return size


def measure(
    payloads: list[bytes], rounds: int, context: BridgeContext = CONTEXT
) -> tuple[float, int]:
    runOnce(payloads, context)
    best = float("inf")
    size = 0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            size = runOnce(payloads, context)
        best = min(best, time.perf_counter() - start)
    return best, size


def _hotPathOnly(rounds: int, context: BridgeContext = CONTEXT) -> float:
    """
    Text deltas alone (the common case), per chunk.
    """
    payloads = [chatChunk({"content": WORDS[i % len(WORDS)]}) for i in range(1000)]
    stream = ResponsesStream(context)
    stream.start()
    feed = stream.feed
    start = time.perf_counter()
    for _ in range(rounds):
        for payload in payloads:
            feed(payload)
    return (time.perf_counter() - start) / (rounds * len(payloads))


def main() -> None:
    numbers = [arg for arg in sys.argv[1:] if arg.isdigit()]
    rounds = int(numbers[0]) if numbers else ROUNDS
    payloads = buildStream()
    inBytes = sum(len(p) for p in payloads)
    elapsed, outBytes = measure(payloads, rounds)
    perChunk = elapsed / (rounds * len(payloads))
    print(
        f"stream: {len(payloads)} chunks, {inBytes / 1024:.1f} KiB in, "
        f"{outBytes / 1024:.1f} KiB of events out"
    )
    print(
        f"whole replies: {1 / perChunk:,.0f} chunks/s, {perChunk * 1e6:.2f} us/chunk "
        f"(best of 3 x {rounds} replies; tools offered, so text calls are looked for)"
    )
    plain, _ = measure(payloads, rounds, PLAIN_CONTEXT)
    plainPerChunk = plain / (rounds * len(payloads))
    print(
        f"whole replies without healing: {plainPerChunk * 1e6:.2f} us/chunk "
        f"(healing adds {(perChunk - plainPerChunk) * 1e6:+.2f} us/chunk)"
    )
    hot = _hotPathOnly(max(1, rounds // 4))
    hotPlain = _hotPathOnly(max(1, rounds // 4), PLAIN_CONTEXT)
    print(
        f"text deltas only: {1 / hot:,.0f} chunks/s, {hot * 1e6:.2f} us/chunk "
        f"({hotPlain * 1e6:.2f} without healing)"
    )
    whole = min(_wholeTime(payloads, max(1, rounds // 4)) for _ in range(3))
    print(f"whole reply to one object (chunksToResponse): {whole * 1e6:.2f} us/chunk")
    parseOnly = min(_parseTime(payloads) for _ in range(3))
    print(f"json.loads alone: {parseOnly * 1e6:.2f} us/chunk")
    if "--profile" in sys.argv:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(rounds):
            runOnce(payloads)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def _wholeTime(payloads: list[bytes], rounds: int) -> float:
    """
    A whole reply converted to one Responses object, per chunk.
    """
    start = time.perf_counter()
    for _ in range(rounds):
        response = chunksToResponse(CONTEXT, payloads)
    assert response["status"] == "completed"
    return (time.perf_counter() - start) / (rounds * len(payloads))


def _parseTime(payloads: list[bytes]) -> float:
    loads = json.loads
    start = time.perf_counter()
    for _ in range(20):
        for payload in payloads:
            if payload != b"[DONE]":
                loads(payload)
    return (time.perf_counter() - start) / (20 * len(payloads))


if __name__ == "__main__":
    main()
