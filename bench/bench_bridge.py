"""
Bridge mode end to end: the proxy process with C{--bridge-to-chat} against a fast fake
Chat Completions upstream, compared with the pure translator on the same chunks.

The upstream streams a realistic C{chat.completion.chunk} reply (role, reasoning_content
deltas, small text deltas, two parallel function calls and a custom C{apply_patch} call
with argument deltas, the finish chunk, a usage chunk, C{[DONE]}), one HTTP chunk per
SSE event, as fast as the proxy reads it. Clients send the 40 KB Codex request and parse
the Responses SSE they get back: a stream counts only if it has exactly the events the
pure translator produces for those chunks and ends with C{response.completed}.

  - One long stream (about 40k chunks), and realistic replies (about 1020 chunks each)
    one after another: chunks/s, the proxy's CPU seconds per 10k chunks.
  - 100 concurrent streams of realistic replies: total chunks/s, CPU per 10k chunks,
    stream duration p50/p99, errors, the proxy's RSS.
  - "direct": the same client reading the chat stream straight from the upstream (shows
    the client and upstream are not the bottleneck).
  - The pure translator (L{ResponsesStream}) alone on one core, and with the SSE parser
    in front of it, on the same payloads: the rest of the proxy's CPU per chunk is
    Twisted, HTTP and the glue.

The proxy is pinned to one CPU, this script and the upstream to the other (see
C{bench_proxy.py}). Prints figures only; nothing is asserted; every loop is bounded.

Run with C{.venv/bin/python bench/bench_bridge.py [--quick] [--no-pin] [--profile FILE]}
(the default run takes under a minute here, C{--quick} a few seconds).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field

import _benchlib as lib

from responses_proxy.bridge.request import convertRequest, parseRequestBody
from responses_proxy.bridge.stream import ResponsesStream
from responses_proxy.sse import SSEParser

DEFAULT = {
    "longScale": 40,
    "longRuns": 5,
    "sequential": 200,
    "concurrent": 100,
    "perClient": 3,
    "pureRounds": 3,
    "cap": 60.0,
}
QUICK = {
    "longScale": 10,
    "longRuns": 1,
    "sequential": 20,
    "concurrent": 100,
    "perClient": 1,
    "pureRounds": 1,
    "cap": 10.0,
}


@dataclass
class Streams:
    """
    What a batch of streams did.
    """

    durations: list[float] = field(default_factory=list)
    errors: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    capped: bool = False
    problems: list[str] = field(default_factory=list)

    def ms(self, p: float) -> float:
        return lib.percentile(self.durations, p) * 1e3


def _check(parser: lib.ResponseParser, counter: lib.SSECounter, direct: bool, events: int,
           chunks: int) -> str | None:
    if parser.status != 200:
        return f"status {parser.status}"
    if direct:
        if counter.events != chunks or counter.lastType != b"[DONE]":
            return f"direct: {counter.events} events, last {counter.lastType!r}"
        return None
    if not counter.completedResponse():
        return f"no response.completed at the end (last {counter.lastType!r})"
    if counter.events != events:
        return f"{counter.events} events, expected {events}"
    return None


async def _streams(port: int, request: bytes, clients: int, perClient: int, cap: float,
                   direct: bool, events: int, chunks: int) -> Streams:
    result = Streams()
    connections = []
    for _ in range(clients):
        try:
            connections.append(await lib.AsyncClient.open(port))
        except OSError as e:
            result.errors += 1
            result.problems.append(repr(e))
    deadline = time.monotonic() + cap

    async def worker(client: lib.AsyncClient | None) -> None:
        for _ in range(perClient):
            if time.monotonic() > deadline:
                result.capped = True
                break
            counter = lib.SSECounter()
            try:
                if client is None or client.transport is None:
                    client = await lib.AsyncClient.open(port)
                t0 = time.perf_counter()
                parser = await client.exchange(request, lib.ResponseParser(onBody=counter.feed),
                                               cap + 30)
                elapsed = time.perf_counter() - t0
                problem = _check(parser, counter, direct, events, chunks)
            except (OSError, lib.ProtocolError, asyncio.TimeoutError, ValueError) as e:
                problem = repr(e)
                if client is not None:
                    client.close()
                client = None
            if problem is None:
                result.durations.append(elapsed)
            else:
                result.errors += 1
                result.problems.append(problem)
        if client is not None:
            client.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    result.wall = time.perf_counter() - start
    return result


def streams(port: int, request: bytes, clients: int, perClient: int, cap: float, direct: bool,
            events: int, chunks: int, pid: int | None) -> Streams:
    cpu0 = lib.procCPU(pid) if pid else 0.0
    result = asyncio.run(_streams(port, request, clients, perClient, cap, direct, events,
                                  chunks))
    result.cpu = lib.procCPU(pid) - cpu0 if pid else 0.0
    return result


def expectedEvents(context: object, payloads: list[bytes]) -> int:
    stream = ResponsesStream(context)  # type: ignore[arg-type]
    counter = lib.SSECounter()
    counter.feed(stream.start())
    for payload in payloads:
        counter.feed(stream.feed(payload).events)
    assert stream.done and counter.completedResponse()
    return counter.events


def pureTranslator(context: object, payloads: list[bytes], rounds: int) -> tuple[float, float]:
    """
    CPU seconds per chunk of the translator alone, and of SSE parsing plus translator
    (the framed bytes fed in 64 KiB pieces, as the reactor reads them); best of rounds.
    """
    raw = b"".join(lib.sseBytes(payloads))
    pieces = [raw[i:i + 65536] for i in range(0, len(raw), 65536)]
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        t0 = time.process_time()
        stream = ResponsesStream(context)  # type: ignore[arg-type]
        stream.start()
        feed = stream.feed
        for payload in payloads:
            feed(payload)
        best[0] = min(best[0], time.process_time() - t0)
        t0 = time.process_time()
        stream = ResponsesStream(context)  # type: ignore[arg-type]
        stream.start()
        feed = stream.feed
        parser = SSEParser()
        for piece in pieces:
            for payload in parser.feed(piece):
                feed(payload)
        for payload in parser.close():
            feed(payload)
        best[1] = min(best[1], time.process_time() - t0)
    return best[0] / len(payloads), best[1] / len(payloads)


def main() -> int:
    def run(quick: bool, upstream: lib.Child, proxy: lib.Child) -> None:
        _runAll(QUICK if quick else DEFAULT, upstream, proxy)

    return lib.runBenchmark(
        "bench_bridge", __doc__.split("\n\n")[0], "/v1/chat/completions", run, bridge=True
    )


def _runAll(cfg: dict, upstream: lib.Child, proxy: lib.Child) -> None:
    cap = float(cfg["cap"])
    headers, body = lib.codexRequest()
    context = convertRequest(parseRequestBody(body)).context
    t0 = time.process_time()
    for _ in range(20):
        convertRequest(parseRequestBody(body))
    convertMs = (time.process_time() - t0) / 20 * 1e3
    scales = {"long": int(cfg["longScale"]), "reply": 1}
    payloads = {name: lib.chatPayloads(scale) for name, scale in scales.items()}
    chunks = {name: len(p) for name, p in payloads.items()}
    events = {name: expectedEvents(context, p) for name, p in payloads.items()}
    print(f"request: POST /v1/responses, {len(body)} B Codex body (stream: true); "
          f"conversion to a chat request {convertMs:.2f} ms CPU")
    print(f"realistic reply: {chunks['reply']} chat chunks "
          f"({sum(map(len, payloads['reply'])) / 1024:.0f} KiB of payloads) -> "
          f"{events['reply']} Responses events; long stream: {chunks['long']} chunks -> "
          f"{events['long']} events")

    def requestFor(port: int, scale: int) -> bytes:
        return lib.buildRequest(port, body, upstream.reply(f"chat;scale={scale}"), headers)

    targets = (("direct (chat SSE)", upstream.port, True, None),
               ("through the bridge", proxy.port, False, proxy.pid))
    for _, port, direct, pid in targets:
        streams(port, requestFor(port, 1), 1, 5, cap, direct, events["reply"],
                chunks["reply"], pid)
        # Warm-up: the first run of each stream is not measured.
        streams(port, requestFor(port, scales["long"]), 1, 1, cap, direct, events["long"],
                chunks["long"], pid)

    rows = []
    perChunk: dict[str, float] = {}
    mem0 = lib.procMemory(proxy.pid)
    plan = (
        ("one long stream", "long", 1, int(cfg["longRuns"])),
        ("realistic replies, sequential", "reply", 1, int(cfg["sequential"])),
        (f"{cfg['concurrent']} concurrent streams", "reply", int(cfg["concurrent"]),
         int(cfg["perClient"])),
    )
    for label, kind, clients, perClient in plan:
        for name, port, direct, pid in targets:
            before = lib.procMemory(proxy.pid)
            run = streams(port, requestFor(port, scales[kind]), clients, perClient, cap, direct,
                          events[kind], chunks[kind], pid)
            after = lib.procMemory(proxy.pid)
            done = len(run.durations)
            total = done * chunks[kind]
            rate = total / run.wall if run.wall else 0.0
            if kind == "long" and run.durations:
                rate = chunks[kind] / lib.percentile(run.durations, 50)
            cpu10k = run.cpu / total * 1e4 if total and pid else None
            if cpu10k is not None:
                perChunk[label] = run.cpu / total
            rows.append([
                f"{label}, {name}" + (" (capped)" if run.capped else ""),
                done, run.errors, f"{rate:,.0f}",
                f"{cpu10k:.3f}" if cpu10k is not None else "-",
                f"{run.cpu / run.wall * 100:.0f}" if pid and run.wall else "-",
                f"{run.ms(50):.1f}", f"{run.ms(99):.1f}",
                f"{before['VmRSS'] / 1024:.1f} -> {after['VmRSS'] / 1024:.1f}" if pid else "-",
            ])
            for problem in run.problems[:3]:
                print(f"  problem ({label}, {name}): {problem}")
    mem1 = lib.procMemory(proxy.pid)
    print()
    print(lib.table(
        "bridge streams (chunks/s: chat chunks in per second of wall time; long stream: "
        "median run)",
        ["", "streams", "errors", "chunks/s", "proxy CPU s/10k chunks", "proxy CPU %",
         "p50 ms", "p99 ms", "proxy RSS MiB"], rows))
    print(f"\nproxy memory: VmRSS {mem0['VmRSS'] / 1024:.1f} MiB before the streams, "
          f"{mem1['VmRSS'] / 1024:.1f} MiB after, peak (VmHWM) {mem1['VmHWM'] / 1024:.1f} MiB")

    rows = []
    for name in ("long", "reply"):
        alone, withParser = pureTranslator(context, payloads[name], int(cfg["pureRounds"]))
        rows.append([f"ResponsesStream.feed alone ({name})", f"{1 / alone:,.0f}",
                     f"{alone * 1e4:.3f}", f"{alone * 1e6:.2f}"])
        rows.append([f"SSEParser + ResponsesStream ({name})", f"{1 / withParser:,.0f}",
                     f"{withParser * 1e4:.3f}", f"{withParser * 1e6:.2f}"])
        if name == "long":
            pure = withParser
    for label, cost in perChunk.items():
        rows.append([f"proxy process, {label}", f"{1 / cost:,.0f}", f"{cost * 1e4:.3f}",
                     f"{cost * 1e6:.2f}"])
    print()
    print(lib.table("CPU per chat chunk: pure translator (this process, one core) vs the whole "
                    "proxy (chunks/s = 1 / CPU per chunk)",
                    ["", "chunks/s per core", "CPU s/10k chunks", "us/chunk"], rows))
    if "one long stream" in perChunk:
        share = pure / perChunk["one long stream"] * 100
        print(f"\nparse + translate (measured alone, above) is {share:.0f}% of the proxy's CPU "
              f"per chunk on the long stream; the rest "
              f"({(perChunk['one long stream'] - pure) * 1e6:.2f} us/chunk) is Twisted, HTTP "
              f"framing, redaction and the glue")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
