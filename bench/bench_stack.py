"""
This proxy against its own stack used bare, and against the Rust original: sequential
small requests on one keep-alive connection, p50 added latency and CPU per request.

"Bare" is C{bench/_bareproxy.py}: the plainest pass-through a C{twisted.web} resource can
be (no checks, no limits, no redaction, no log, none of this proxy's tuning), forwarding
through C{Agent} ("bare") or through treq over the same C{Agent} ("bare + treq"). It shows
what the user's stack costs by itself, before any of the proxy's work. Rounds interleave
the targets, so drift on the machine hits them all alike; the median round is reported.

    .venv/bin/python bench/bench_stack.py                # ~1 min
    .venv/bin/python bench/bench_stack.py --size 300000  # a long conversation's request

Prints figures only; nothing is asserted. The original is found as in C{bench_proxy.py}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _benchlib as lib
import _originals as originals
from bench_proxy import asciiHeaders


def measure(
    port: int, pid: int | None, request: bytes, count: int
) -> tuple[float, float, float]:
    """
    p50 latency (ms) of C{count} requests after a warm-up, and the server's user and
    system CPU ms each.
    """
    with lib.connect(port, 60) as sock:
        for _ in range(200):
            lib.exchange(sock, request, lib.ResponseParser(), time.monotonic() + 30)
        before = lib.procUserSystem(pid) if pid else (0.0, 0.0)
        latencies = []
        for _ in range(count):
            start = time.perf_counter()
            parser = lib.exchange(sock, request, lib.ResponseParser(), time.monotonic() + 30)
            latencies.append(time.perf_counter() - start)
            if parser.status != 200:
                raise RuntimeError(f"status {parser.status} on port {port}")
        after = lib.procUserSystem(pid) if pid else (0.0, 0.0)
    return (
        statistics.median(latencies) * 1000,
        (after[0] - before[0]) / count * 1000,
        (after[1] - before[1]) / count * 1000,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=40_000, help="request body bytes")
    parser.add_argument("--requests", type=int, default=2000, help="per target per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-original", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()

    mine, theirs = lib.pinningPlan(not args.no_pin)
    if mine is not None:
        os.sched_setaffinity(0, mine)
    work = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    upstream = lib.startUpstream(work, mine)
    children: list[lib.Child] = [upstream]
    try:
        url = f"http://{lib.HOST}:{upstream.port}/v1/responses"
        targets: dict[str, tuple[int, int | None]] = {"direct": (upstream.port, None)}
        bareScript = str(Path(__file__).resolve().parent / "_bareproxy.py")
        for name, extra in (("bare", []), ("bare + treq", ["--treq"])):
            info = work / f"{name.replace(' + ', '-')}.json"
            child = lib.Child(
                name.replace(" + ", "-"),
                [lib.PYTHON, bareScript, url, str(info)] + extra,
                work,
                cpus=theirs,
            )
            children.append(child)
            child.waitReady()
            targets[name] = (child.port, child.pid)
        proxy = lib.startProxy(work, url, theirs)
        children.append(proxy)
        targets["this proxy"] = (proxy.port, proxy.pid)
        binary = None if args.no_original else originals.codexBinary()
        if binary is not None:
            original = originals.startOriginal(work, binary, url, theirs)
            children.append(original)
            targets["original"] = (original.port, original.pid)

        headers, body = lib.codexRequest(args.size)
        headers = asciiHeaders(headers)
        reply = upstream.reply("json")
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in targets}
        print(lib.machine())
        print(f"request: {len(body)} B body + Codex headers, small JSON answer; "
              f"{args.rounds} rounds x {args.requests} requests per target")
        for _ in range(args.rounds):
            for name, (port, pid) in targets.items():
                request = lib.buildRequest(port, body, reply, headers)
                results[name].append(measure(port, pid, request, args.requests))
        direct = statistics.median(r[0] for r in results["direct"])
        rows = []
        for name, rounds in results.items():
            p50 = statistics.median(r[0] for r in rounds)
            user = statistics.median(r[1] for r in rounds)
            system = statistics.median(r[2] for r in rounds)
            spread = " ".join(f"{r[0] - direct:+.3f}" for r in rounds)
            cpu = [f"{user + system:.3f}", f"{user:.3f}", f"{system:.3f}"]
            rows.append([name, f"{p50:.3f}", f"{p50 - direct:+.3f}"]
                        + (cpu if name != "direct" else ["-", "-", "-"]) + [spread])
        print(lib.table("\nsequential keep-alive requests (median of rounds)",
                        ["target", "p50 ms", "added ms", "CPU ms/req", "user", "system",
                         "added per round"],
                        rows))
    finally:
        for child in reversed(children):
            child.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
