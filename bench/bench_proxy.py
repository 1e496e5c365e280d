"""
Pass-through mode end to end: the proxy process against a fast fake upstream, each
figure measured through the proxy and straight to the same upstream ("direct").

  - Added latency of a small request: sequential C{POST /v1/responses} with a 40 KB
    Codex body and a small JSON answer, on one keep-alive connection and with a new
    connection per request (the proxy keeps its upstream connection either way).
  - Time to first byte of a streamed reply (the upstream sends its first event at once
    and the rest 5 ms later).
  - Streaming throughput of one large SSE reply read as fast as possible: 1 KiB events
    each in its own HTTP chunk (as servers flush SSE), and the same events in 64 KiB
    chunks; the proxy's CPU seconds per GiB and its peak RSS.
  - 16 and 64 concurrent keep-alive clients doing small requests: requests/s, latency,
    errors, the proxy's CPU per request and RSS, upstream connections opened.

The proxy runs as documented (C{python -m responses_proxy ... --http-shutdown}); by
default it is pinned to one CPU and this script and the upstream to the other, so its
CPU figures do not depend on the scheduler ("proxy CPU %" near 100 means the proxy is
the bottleneck). Prints figures only; nothing is asserted; every loop is bounded.

Run with C{.venv/bin/python bench/bench_proxy.py [--quick] [--no-pin] [--profile FILE]}
(the default run takes under a minute here, C{--quick} a few seconds). C{--profile FILE}
runs the proxy under cProfile (slower: use it to see where the time goes, not for the
figures) and prints its top functions.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

import _benchlib as lib

DEFAULT = {
    "sequential": 5000,
    "newConnection": 2000,
    "ttfb": 500,
    "streamBytes": 200 * lib.MiB,
    "streamRuns": 3,
    "concurrent": {16: 8000, 64: 12800},
    "cap": 40.0,
}
QUICK = {
    "sequential": 300,
    "newConnection": 150,
    "ttfb": 60,
    "streamBytes": 24 * lib.MiB,
    "streamRuns": 1,
    "concurrent": {16: 600, 64: 960},
    "cap": 6.0,
}
STREAMS = (
    ("1 KiB events, 1 HTTP chunk each", 1024, 1024),
    ("1 KiB events, 64 KiB HTTP chunks", 1024, 64 * 1024),
)


@dataclass
class Run:
    """
    One measured loop: per-request seconds, errors, wall time, and the proxy's CPU.
    """

    samples: list[float]
    errors: int
    wall: float
    capped: bool
    cpu: float = 0.0
    extra: float = 0.0

    def ms(self, p: float) -> float:
        return lib.percentile(self.samples, p) * 1e3

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) * 1e3 if self.samples else 0.0


class Meter:
    """
    The proxy's CPU seconds over a block (zero for direct runs).
    """

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def cpu(self) -> float:
        return lib.procCPU(self.pid) if self.pid else 0.0


def sequential(port: int, request: bytes, count: int, cap: float, newConnection: bool,
               meter: Meter) -> Run:
    samples: list[float] = []
    errors = 0
    sock = None
    cpu0 = meter.cpu()
    start = time.perf_counter()
    deadline = time.monotonic() + cap
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        try:
            if sock is None:
                sock = lib.connect(port)
            parser = lib.exchange(sock, request, lib.ResponseParser(keep=True),
                                  time.monotonic() + 30)
            elapsed = time.perf_counter() - t0
            if parser.status == 200 and parser.body == lib.SMALL_JSON:
                samples.append(elapsed)
            else:
                errors += 1
        except (OSError, lib.ProtocolError):
            errors += 1
            if sock is not None:
                sock.close()
            sock = None
        if newConnection and sock is not None:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    wall = time.perf_counter() - start
    return Run(samples, errors, wall, len(samples) + errors < count, meter.cpu() - cpu0)


def firstByte(port: int, request: bytes, count: int, cap: float, meter: Meter) -> Run:
    """
    Time to the first body byte of a streamed reply; C{extra} is the mean total time.
    """
    samples: list[float] = []
    totals: list[float] = []
    errors = 0
    cpu0 = meter.cpu()
    start = time.perf_counter()
    deadline = time.monotonic() + cap
    sock = lib.connect(port)
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            counter = lib.SSECounter()
            t0 = time.perf_counter()
            try:
                parser = lib.exchange(sock, request, lib.ResponseParser(onBody=counter.feed),
                                      time.monotonic() + 30)
            except (OSError, lib.ProtocolError):
                errors += 1
                sock.close()
                sock = lib.connect(port)
                continue
            if parser.status == 200 and counter.completedResponse():
                samples.append(parser.firstBodyAt - t0)
                totals.append(time.perf_counter() - t0)
            else:
                errors += 1
    finally:
        sock.close()
    run = Run(samples, errors, time.perf_counter() - start, len(samples) + errors < count,
              meter.cpu() - cpu0)
    run.extra = sum(totals) / len(totals) * 1e3 if totals else 0.0
    return run


def stream(port: int, request: bytes, expected: int, cap: float, meter: Meter) -> Run:
    """
    One large streamed reply; C{samples} holds its duration, C{extra} the HTTP chunks
    the client received.
    """
    cpu0 = meter.cpu()
    t0 = time.perf_counter()
    errors = 0
    parser = lib.ResponseParser(keep=False)
    try:
        with lib.connect(port) as sock:
            lib.exchange(sock, request, parser, time.monotonic() + cap, recvSize=1024 * 1024)
    except (OSError, lib.ProtocolError, TimeoutError):
        errors = 1
    elapsed = time.perf_counter() - t0
    if parser.status != 200 or parser.bodyBytes != expected:
        errors = 1
    run = Run([elapsed] if not errors else [], errors, elapsed, False, meter.cpu() - cpu0)
    run.extra = parser.chunks
    return run


async def _concurrent(port: int, request: bytes, clients: int, total: int, cap: float
                      ) -> tuple[list[float], int, float, bool]:
    perClient = max(1, total // clients)
    samples: list[float] = []
    errors = [0]
    connections = []
    for _ in range(clients):
        try:
            connections.append(await lib.AsyncClient.open(port))
        except OSError:
            errors[0] += 1
    deadline = time.monotonic() + cap

    async def worker(client: lib.AsyncClient | None) -> None:
        for _ in range(perClient):
            if time.monotonic() > deadline:
                return
            try:
                if client is None or client.transport is None:
                    client = await lib.AsyncClient.open(port)
                t0 = time.perf_counter()
                parser = await client.exchange(request, lib.ResponseParser(keep=True), 30)
                elapsed = time.perf_counter() - t0
                if parser.status == 200 and parser.body == lib.SMALL_JSON:
                    samples.append(elapsed)
                else:
                    errors[0] += 1
            except (OSError, lib.ProtocolError, asyncio.TimeoutError):
                errors[0] += 1
                if client is not None:
                    client.close()
                client = None
        if client is not None:
            client.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    wall = time.perf_counter() - start
    return samples, errors[0], wall, len(samples) + errors[0] < perClient * clients


def concurrent(port: int, request: bytes, clients: int, total: int, cap: float,
               meter: Meter) -> Run:
    cpu0 = meter.cpu()
    samples, errors, wall, capped = asyncio.run(
        _concurrent(port, request, clients, total, cap))
    return Run(samples, errors, wall, capped, meter.cpu() - cpu0)


def _mark(run: Run) -> str:
    return " (capped)" if run.capped else ""


def main() -> int:
    def run(quick: bool, upstream: lib.Child, proxy: lib.Child) -> None:
        cfg = QUICK if quick else DEFAULT
        _runAll(cfg, float(cfg["cap"]), upstream, proxy)

    return lib.runBenchmark(
        "bench_proxy", __doc__.split("\n\n")[0], "/v1/responses", run, bridge=False
    )


def _runAll(cfg: dict, cap: float, upstream: lib.Child, proxy: lib.Child) -> None:
    headers, body = lib.codexRequest()
    targets = (("direct", upstream.port, Meter(None)), ("proxied", proxy.port, Meter(proxy.pid)))

    def requestFor(port: int, reply: str, close: bool = False) -> bytes:
        return lib.buildRequest(port, body, upstream.reply(reply), headers, close=close)

    print(f"request: POST /v1/responses, {len(body)} B JSON body + Codex headers; "
          f"answer {len(lib.SMALL_JSON)} B JSON")
    mem0 = lib.procMemory(proxy.pid)
    for _, port, meter in targets:
        sequential(port, requestFor(port, "json"), 200, 10.0, False, meter)

    # -- sequential latency -------------------------------------------------------------
    for title, count, newConnection in (
        ("keep-alive connection", cfg["sequential"], False),
        ("new connection per request", cfg["newConnection"], True),
    ):
        rows = []
        runs = {}
        conns = 0
        for name, port, meter in targets:
            conns0 = upstream.connections()
            run = sequential(port, requestFor(port, "json", close=newConnection), count, cap,
                             newConnection, meter)
            if name == "proxied":
                conns = upstream.connections() - conns0
            runs[name] = run
            cpu = f"{run.cpu / len(run.samples) * 1e3:.2f}" if name == "proxied" and \
                run.samples else "-"
            rows.append([name + _mark(run), len(run.samples), run.errors, f"{run.ms(50):.3f}",
                         f"{run.ms(99):.3f}", f"{run.mean:.3f}", cpu])
        d, p = runs["direct"], runs["proxied"]
        rows.append(["added by the proxy", "", "", f"{p.ms(50) - d.ms(50):+.3f}",
                     f"{p.ms(99) - d.ms(99):+.3f}", f"{p.mean - d.mean:+.3f}", ""])
        print()
        print(lib.table(
            f"small request, sequential, {title} (upstream connections the proxy opened: "
            f"{conns})",
            ["", "ok", "errors", "p50 ms", "p99 ms", "mean ms", "proxy CPU ms/req"], rows))

    # -- time to first byte ---------------------------------------------------------------
    rows = []
    runs = {}
    for name, port, meter in targets:
        run = firstByte(port, requestFor(port, "responses;gap=5"), cfg["ttfb"], cap, meter)
        runs[name] = run
        rows.append([name + _mark(run), len(run.samples), run.errors, f"{run.ms(50):.3f}",
                     f"{run.ms(99):.3f}", f"{run.mean:.3f}", f"{run.extra:.3f}"])
    d, p = runs["direct"], runs["proxied"]
    rows.append(["added by the proxy", "", "", f"{p.ms(50) - d.ms(50):+.3f}",
                 f"{p.ms(99) - d.ms(99):+.3f}", f"{p.mean - d.mean:+.3f}",
                 f"{p.extra - d.extra:+.3f}"])
    print()
    print(lib.table("time to first byte of a streamed reply (first event at once, the rest "
                    "5 ms later; 23 events)",
                    ["", "ok", "errors", "TTFB p50 ms", "p99 ms", "mean ms", "total mean ms"],
                    rows))

    # -- streaming throughput -------------------------------------------------------------
    rows = []
    size = int(cfg["streamBytes"])
    repeats = int(cfg["streamRuns"])
    for label, event, chunk in STREAMS:
        for name, port, meter in targets:
            reply = f"sse;bytes={size};event={event};chunk={chunk}"
            expected = size // chunk * chunk
            runs = [stream(port, requestFor(port, reply), expected, max(cap, 60.0), meter)
                    for _ in range(repeats)]
            durations = [r.samples[0] for r in runs if r.samples]
            errors = sum(r.errors for r in runs)
            cpu = sum(r.cpu for r in runs)
            seconds = lib.percentile(durations, 50)
            rate = expected / lib.MiB / seconds if seconds else 0.0
            proxied = name == "proxied" and durations
            perGiB = cpu / (expected * len(durations) / 1024**3) if proxied else None
            rows.append([
                f"{label}, {name}", f"{expected / lib.MiB:.0f} x {repeats}", errors,
                f"{seconds:.3f}", f"{rate:.1f}", f"{runs[-1].extra:.0f}",
                f"{perGiB:.2f}" if perGiB is not None else "-",
                f"{cpu / sum(durations) * 100:.0f}" if perGiB is not None else "-",
            ])
    memory = lib.procMemory(proxy.pid)
    print()
    print(lib.table(
        f"one large SSE reply read as fast as possible (median run; proxy VmHWM after: "
        f"{memory['VmHWM'] / 1024:.1f} MiB, VmRSS {memory['VmRSS'] / 1024:.1f} MiB)",
        ["", "MiB x runs", "errors", "s", "MiB/s", "HTTP chunks recv", "proxy CPU s/GiB",
         "proxy CPU %"], rows))

    # -- concurrency ----------------------------------------------------------------------
    rows = []
    for clients, total in sorted(cfg["concurrent"].items()):
        for name, port, meter in targets:
            before = lib.procMemory(proxy.pid)
            conns0 = upstream.connections()
            run = concurrent(port, requestFor(port, "json"), clients, total, cap, meter)
            after = lib.procMemory(proxy.pid)
            conns = upstream.connections() - conns0
            proxied = name == "proxied"
            rows.append([
                f"{clients} clients, {name}{_mark(run)}", len(run.samples), run.errors,
                f"{len(run.samples) / run.wall:.0f}", f"{run.ms(50):.2f}", f"{run.ms(99):.2f}",
                f"{run.cpu / len(run.samples) * 1e3:.2f}" if proxied and run.samples else "-",
                f"{run.cpu / run.wall * 100:.0f}" if proxied else "-",
                f"{before['VmRSS'] / 1024:.1f} -> {after['VmRSS'] / 1024:.1f}"
                if proxied else "-",
                conns,
            ])
    print()
    print(lib.table("concurrent keep-alive clients, small requests (upstream conns: connections "
                    "the upstream accepted during the run)",
                    ["", "ok", "errors", "req/s", "p50 ms", "p99 ms", "proxy CPU ms/req",
                     "proxy CPU %", "proxy RSS MiB", "upstream conns"], rows))
    mem1 = lib.procMemory(proxy.pid)
    print(f"\nproxy memory: VmRSS {mem0['VmRSS'] / 1024:.1f} MiB at start, "
          f"{mem1['VmRSS'] / 1024:.1f} MiB at end, peak (VmHWM) {mem1['VmHWM'] / 1024:.1f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
