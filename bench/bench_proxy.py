"""
Pass-through mode end to end, side by side: straight to the fake upstream ("direct"),
through this proxy, and through the Rust original (C{codex responses-api-proxy} from the
pinned Codex npm package), over a plain-text upstream and a TLS one.

  - Added latency of a small request: sequential C{POST /v1/responses} with a 40 KB
    Codex body and a small JSON answer, on one keep-alive connection and with a new
    client connection per request (the proxies keep their upstream connection).
  - Time to first byte of a streamed reply (the upstream sends its first event at once
    and the rest 5 ms later).
  - Streaming throughput of one large SSE reply read as fast as possible: 1 KiB events
    each in its own HTTP chunk (as servers flush SSE), and the same events in 64 KiB
    chunks; the proxy's CPU seconds per GiB.
  - 16 and 64 concurrent keep-alive clients doing small requests: requests/s, latency,
    errors, the proxy's CPU per request and RSS, upstream connections opened.
  - Memory per open stream: the RSS growth of a proxy started afresh with 100 streams open
    at once (the upstream has sent each its first event; the rest comes later), the first
    time and again.

The TLS upstream is the same fake behind a certificate from a throwaway CA; both proxies
get C{SSL_CERT_FILE=<ca>}, the client talks plain HTTP to them (they listen on loopback),
and TLS to the upstream in the "direct" rows. Each proxy runs as documented (key on
stdin, C{--server-info}, C{--http-shutdown}, stopped with C{GET /shutdown}); by default
the proxy being measured is pinned to one CPU and this script and the upstream to the
other, so CPU figures do not depend on the scheduler ("proxy CPU %" near 100 means the
proxy is the bottleneck). Prints figures only; nothing is asserted; every loop is
bounded.

Run with C{.venv/bin/python bench/bench_proxy.py [--quick] [--upstream plain|tls|both]
[--no-original] [--no-pin] [--profile FILE]} (the default run takes about three minutes
here, C{--quick} under a minute). The original is found through C{CODEX_BIN} or
C{.cache/codex} (C{npm install --prefix .cache/codex @openai/codex@0.171.0}); without it
its rows are left out. C{--profile FILE} runs this proxy under cProfile (slower: use it
to see where the time goes, not for the figures) and prints its top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import re
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import _benchlib as lib
import _originals as originals

DEFAULT = {
    "sequential": 5000,
    "newConnection": 2000,
    "ttfb": 500,
    "streamBytes": 200 * lib.MiB,
    "streamRuns": 3,
    "openStreams": 100,
    "concurrent": {16: 8000, 64: 12800},
    "cap": 40.0,
}
QUICK = {
    "sequential": 300,
    "newConnection": 150,
    "ttfb": 60,
    "streamBytes": 24 * lib.MiB,
    "streamRuns": 1,
    "openStreams": 100,
    "concurrent": {16: 600, 64: 960},
    "cap": 6.0,
}
STREAMS = (
    ("1 KiB events, 1 HTTP chunk each", 1024, 1024),
    ("1 KiB events, 64 KiB HTTP chunks", 1024, 64 * 1024),
)
# How long the upstream holds the rest of each open stream (the 100 must open by then).
OPEN_STREAM_GAP_MS = 3000


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


@dataclass
class Target:
    """
    Where the client sends its requests: the upstream itself or one of the proxies.

    @ivar pid: the proxy's process (L{None} for direct).
    """

    name: str
    port: int
    pid: int | None
    connect: Callable[[int], socket.socket]
    openAsync: Callable[[int], Awaitable[lib.AsyncClient]]
    summary: dict[str, str] = field(default_factory=dict)

    @property
    def proxied(self) -> bool:
        return self.pid is not None

    def cpu(self) -> float:
        return lib.procCPU(self.pid) if self.pid else 0.0

    def memory(self) -> dict[str, int]:
        return lib.procMemory(self.pid) if self.pid else {"VmRSS": 0, "VmHWM": 0}


def sequential(target: Target, request: bytes, count: int, cap: float,
               newConnection: bool) -> Run:
    samples: list[float] = []
    errors = 0
    sock = None
    cpu0 = target.cpu()
    start = time.perf_counter()
    deadline = time.monotonic() + cap
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        try:
            if sock is None:
                sock = target.connect(target.port)
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
    return Run(samples, errors, wall, len(samples) + errors < count, target.cpu() - cpu0)


def firstByte(target: Target, request: bytes, count: int, cap: float) -> Run:
    """
    Time to the first body byte of a streamed reply; C{extra} is the mean total time.
    """
    samples: list[float] = []
    totals: list[float] = []
    errors = 0
    cpu0 = target.cpu()
    start = time.perf_counter()
    deadline = time.monotonic() + cap
    sock = target.connect(target.port)
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
                sock = target.connect(target.port)
                continue
            if parser.status == 200 and counter.completedResponse():
                samples.append(parser.firstBodyAt - t0)
                totals.append(time.perf_counter() - t0)
            else:
                errors += 1
    finally:
        sock.close()
    run = Run(samples, errors, time.perf_counter() - start, len(samples) + errors < count,
              target.cpu() - cpu0)
    run.extra = sum(totals) / len(totals) * 1e3 if totals else 0.0
    return run


def stream(target: Target, request: bytes, expected: int, cap: float) -> Run:
    """
    One large streamed reply; C{samples} holds its duration, C{extra} the HTTP chunks
    the client received.
    """
    cpu0 = target.cpu()
    t0 = time.perf_counter()
    errors = 0
    parser = lib.ResponseParser(keep=False)
    try:
        with target.connect(target.port) as sock:
            lib.exchange(sock, request, parser, time.monotonic() + cap, recvSize=1024 * 1024)
    except (OSError, lib.ProtocolError, TimeoutError):
        errors = 1
    elapsed = time.perf_counter() - t0
    if parser.status != 200 or parser.bodyBytes != expected:
        errors = 1
    run = Run([elapsed] if not errors else [], errors, elapsed, False, target.cpu() - cpu0)
    run.extra = parser.chunks
    return run


@dataclass
class OpenStreams:
    """
    RSS (KiB) before, with the streams open, and after; streams open at the upstream
    when RSS was read; streams whose client had its first event by then; errors.
    """

    before: int
    open: int
    after: int
    opened: int
    firstEvent: int
    errors: int


async def _openStreams(target: Target, request: bytes, count: int, wait: float,
                       stats: Callable[[], dict]) -> OpenStreams:
    parsers = [lib.ResponseParser(keep=False) for _ in range(count)]
    before = target.memory()["VmRSS"]
    requests0 = stats()["request_count"]
    clients: list[lib.AsyncClient] = []
    errors = 0
    for _ in range(count):
        try:
            clients.append(await target.openAsync(target.port))
        except OSError:
            errors += 1
    tasks = [asyncio.ensure_future(c.exchange(request, p, wait + 10))
             for c, p in zip(clients, parsers, strict=False)]
    # Open means the upstream has the request and sent its first event: the original
    # holds small chunks back, so its clients may not have seen a byte yet.
    deadline = time.monotonic() + wait * 0.6
    opened = 0
    while time.monotonic() < deadline and opened < len(clients):
        await asyncio.sleep(0.02)
        opened = stats()["request_count"] - requests0
    settle = min(deadline, time.monotonic() + 0.5)
    while time.monotonic() < settle and not all(p.bodyBytes for p in parsers[: len(clients)]):
        await asyncio.sleep(0.02)
    firstEvent = sum(1 for p in parsers if p.bodyBytes and not p.complete)
    during = target.memory()["VmRSS"]
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, BaseException) or result.status != 200:
            errors += 1
    for client in clients:
        client.close()
    return OpenStreams(before, during, target.memory()["VmRSS"], opened, firstEvent, errors)


def openStreams(target: Target, request: bytes, count: int, stats: Callable[[], dict]
                ) -> OpenStreams:
    return asyncio.run(_openStreams(target, request, count, OPEN_STREAM_GAP_MS / 1000, stats))


async def _concurrent(target: Target, request: bytes, clients: int, total: int, cap: float
                      ) -> tuple[list[float], int, float, bool]:
    perClient = max(1, total // clients)
    samples: list[float] = []
    errors = [0]
    connections = []
    for _ in range(clients):
        try:
            connections.append(await target.openAsync(target.port))
        except OSError:
            errors[0] += 1
    deadline = time.monotonic() + cap

    async def worker(client: lib.AsyncClient | None) -> None:
        for _ in range(perClient):
            if time.monotonic() > deadline:
                return
            try:
                if client is None or client.transport is None:
                    client = await target.openAsync(target.port)
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


def concurrent(target: Target, request: bytes, clients: int, total: int, cap: float) -> Run:
    cpu0 = target.cpu()
    samples, errors, wall, capped = asyncio.run(
        _concurrent(target, request, clients, total, cap))
    return Run(samples, errors, wall, capped, target.cpu() - cpu0)


def _mark(run: Run) -> str:
    return " (capped)" if run.capped else ""


def _added(targets: list[Target], runs: dict[str, Run], extra: bool = False) -> list[list]:
    """
    "added by" rows: each proxy's figures minus direct's.
    """
    d = runs["direct"]
    rows = []
    for target in targets:
        if not target.proxied:
            continue
        p = runs[target.name]
        row = [f"added by {target.name}", "", "", f"{p.ms(50) - d.ms(50):+.3f}",
               f"{p.ms(99) - d.ms(99):+.3f}", f"{p.mean - d.mean:+.3f}"]
        row.append(f"{p.extra - d.extra:+.3f}" if extra else "")
        rows.append(row)
    return rows


def asciiHeaders(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """
    The captured Codex headers with the capture's elision marks ("\u2026[N more characters
    elided]", not ASCII) replaced by N ASCII characters, as Codex sends them: the original
    closes the connection on a non-ASCII header value.
    """
    def restore(match: re.Match[str]) -> str:
        return "x" * int(match.group(1))

    return [(k, _ELIDED.sub(restore, v)) for k, v in headers]


_ELIDED = re.compile("\u2026\\[(\\d+) more characters elided\\]")


def runPhases(cfg: dict, targets: list[Target], upstream: lib.Child) -> None:
    cap = float(cfg["cap"])
    headers, body = lib.codexRequest()
    headers = asciiHeaders(headers)

    def requestFor(port: int, reply: str, close: bool = False) -> bytes:
        return lib.buildRequest(port, body, upstream.reply(reply), headers, close=close)

    def upstreamConnections() -> int:
        return upstream.connections()

    def openedSince(before: int) -> int:
        return upstreamConnections() - before

    print(f"request: POST /v1/responses, {len(body)} B JSON body + Codex headers; "
          f"answer {len(lib.SMALL_JSON)} B JSON")
    for target in targets:
        sequential(target, requestFor(target.port, "json"), 200, 10.0, False)

    # -- sequential latency -------------------------------------------------------------
    for title, key, count, newConnection in (
        ("keep-alive connection", "keep-alive", cfg["sequential"], False),
        ("new connection per request", "new connection", cfg["newConnection"], True),
    ):
        rows = []
        runs = {}
        opened = []
        for target in targets:
            conns0 = upstreamConnections()
            run = sequential(target, requestFor(target.port, "json", close=newConnection),
                             count, cap, newConnection)
            runs[target.name] = run
            cpu = "-"
            if target.proxied:
                opened.append(f"{target.name} {openedSince(conns0)}")
                if run.samples:
                    cpu = f"{run.cpu / len(run.samples) * 1e3:.2f}"
                    target.summary[f"CPU ms/req ({key})"] = cpu
            rows.append([target.name + _mark(run), len(run.samples), run.errors,
                         f"{run.ms(50):.3f}", f"{run.ms(99):.3f}", f"{run.mean:.3f}", cpu])
        for target in targets:
            if target.proxied:
                added = runs[target.name].ms(50) - runs["direct"].ms(50)
                target.summary[f"p50 added ms ({key})"] = f"{added:+.3f}"
        rows += [r[:-1] + [""] for r in _added(targets, runs)]
        print()
        print(lib.table(
            f"small request, sequential, {title} (upstream connections opened: "
            f"{', '.join(opened)})",
            ["", "ok", "errors", "p50 ms", "p99 ms", "mean ms", "proxy CPU ms/req"], rows))

    # -- time to first byte ---------------------------------------------------------------
    rows = []
    runs = {}
    for target in targets:
        run = firstByte(target, requestFor(target.port, "responses;gap=5"), cfg["ttfb"], cap)
        runs[target.name] = run
        rows.append([target.name + _mark(run), len(run.samples), run.errors,
                     f"{run.ms(50):.3f}", f"{run.ms(99):.3f}", f"{run.mean:.3f}",
                     f"{run.extra:.3f}"])
    for target in targets:
        if target.proxied:
            added = runs[target.name].ms(50) - runs["direct"].ms(50)
            target.summary["TTFB p50 added ms"] = f"{added:+.3f}"
    rows += _added(targets, runs, extra=True)
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
        for target in targets:
            reply = f"sse;bytes={size};event={event};chunk={chunk}"
            expected = size // chunk * chunk
            runs = [stream(target, requestFor(target.port, reply), expected, max(cap, 60.0))
                    for _ in range(repeats)]
            durations = [r.samples[0] for r in runs if r.samples]
            errors = sum(r.errors for r in runs)
            cpu = sum(r.cpu for r in runs)
            seconds = lib.percentile(durations, 50)
            rate = expected / lib.MiB / seconds if seconds else 0.0
            perGiB = None
            if target.proxied and durations:
                perGiB = cpu / (expected * len(durations) / 1024**3)
                short = "1 KiB chunks" if chunk == event else "64 KiB chunks"
                target.summary[f"MiB/s ({short})"] = f"{rate:.0f}"
                target.summary[f"CPU s/GiB ({short})"] = f"{perGiB:.2f}"
            rows.append([
                f"{label}, {target.name}", f"{expected / lib.MiB:.0f} x {repeats}", errors,
                f"{seconds:.3f}", f"{rate:.1f}", f"{runs[-1].extra:.0f}",
                f"{perGiB:.2f}" if perGiB is not None else "-",
                f"{cpu / sum(durations) * 100:.0f}" if perGiB is not None else "-",
            ])
    print()
    print(lib.table(
        "one large SSE reply read as fast as possible (median run)",
        ["", "MiB x runs", "errors", "s", "MiB/s", "HTTP chunks recv", "proxy CPU s/GiB",
         "proxy CPU %"], rows))

    # -- concurrency ----------------------------------------------------------------------
    rows = []
    for clients, total in sorted(cfg["concurrent"].items()):
        for target in targets:
            before = target.memory()
            conns0 = upstreamConnections()
            run = concurrent(target, requestFor(target.port, "json"), clients, total, cap)
            after = target.memory()
            conns = openedSince(conns0)
            proxied = target.proxied
            if proxied:
                target.summary[f"upstream conns ({clients} clients)"] = str(conns)
                if run.samples:
                    target.summary[f"CPU ms/req ({clients} clients)"] = \
                        f"{run.cpu / len(run.samples) * 1e3:.2f}"
                target.summary[f"req/s ({clients} clients)"] = \
                    f"{len(run.samples) / run.wall:.0f}"
            rows.append([
                f"{clients} clients, {target.name}{_mark(run)}", len(run.samples), run.errors,
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
    memory = ", ".join(
        f"{t.name} VmRSS {t.memory()['VmRSS'] / 1024:.1f} MiB "
        f"(peak {t.memory()['VmHWM'] / 1024:.1f})" for t in targets if t.proxied)
    print(f"\nproxy memory at the end: {memory}")
    sys.stdout.flush()


def memoryPhase(cfg: dict, targets: list[Target], upstream: lib.Child) -> None:
    """
    RSS per open stream, measured on proxies started for it (the earlier phases leave a
    heap grown enough to hold 100 streams without growing).
    """
    headers, body = lib.codexRequest()
    headers = asciiHeaders(headers)
    stats = partial(lib.getJSON, upstream.controlPort, "/connections")
    for target in targets:
        request = lib.buildRequest(target.port, body, upstream.reply("json"), headers)
        sequential(target, request, 20, 10.0, False)
    rows = []
    count = int(cfg["openStreams"])
    for target in targets:
        if not target.proxied:
            continue
        reply = upstream.reply(f"responses;gap={OPEN_STREAM_GAP_MS}")
        request = lib.buildRequest(target.port, body, reply, headers)
        for round_ in ("first", "again"):
            result = openStreams(target, request, count, stats)
            grown = (result.open - result.before) / max(1, result.opened)
            if round_ == "again":
                target.summary[f"KiB per open stream ({count})"] = f"{grown:.0f}"
            rows.append([f"{target.name}, {round_}", result.opened, result.firstEvent,
                         result.errors,
                         f"{result.before / 1024:.1f}", f"{result.open / 1024:.1f}",
                         f"{result.after / 1024:.1f}", f"{grown:.0f}"])
    print()
    print(lib.table(
        f"{count} streams at once (the upstream sends the first event, the rest "
        f"{OPEN_STREAM_GAP_MS / 1000:.0f} s later), each proxy started afresh: its RSS "
        f"while they are open (open: at the upstream; first event: reached the client)",
        ["", "open", "first event", "errors", "RSS before MiB", "RSS open MiB",
         "RSS after MiB", "KiB per open stream"], rows))
    sys.stdout.flush()


def stopAndReport(proxy: lib.Child) -> None:
    """
    Stop a proxy and print the failures its log holds.
    """
    lib.stopProxy(proxy)
    problems = lib.logProblems(proxy)
    print(f"{proxy.name} log: " + ("; ".join(problems) if problems else "no failures logged"))


def runMode(mode: str, options: argparse.Namespace, codex: Path | None,
            benchCPUs: set[int] | None, proxyCPUs: set[int] | None) -> list[Target]:
    """
    One upstream (plain or TLS) with this proxy and the original in front of it.
    """
    cfg = QUICK if options.quick else DEFAULT
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-proxy-{mode}-"))
    path = "/v1/responses"
    saved = os.environ.get("SSL_CERT_FILE")
    children: list[lib.Child] = []
    proxies: list[lib.Child] = []
    profile = f"{options.profile}.{mode}" if options.profile else None
    try:
        if mode == "tls":
            tls = originals.TLS(workdir)
            os.environ["SSL_CERT_FILE"] = str(tls.ca)
            upstream = originals.startTLSUpstream(workdir, tls, benchCPUs)
            children.append(upstream)
            url = f"https://{lib.HOST}:{upstream.port}{path}"
            direct = Target("direct", upstream.port, None, tls.connect, tls.openAsync)
        else:
            upstream = lib.startUpstream(workdir, benchCPUs)
            children.append(upstream)
            url = f"http://{lib.HOST}:{upstream.port}{path}"
            direct = Target("direct", upstream.port, None, lib.connect, lib.AsyncClient.open)
        ours = lib.startProxy(workdir, url, proxyCPUs, profile=profile)
        proxies.append(ours)
        targets = [direct, Target("this proxy", ours.port, ours.pid, lib.connect,
                                  lib.AsyncClient.open)]
        if codex is not None:
            original = originals.startOriginal(workdir, codex, url, proxyCPUs)
            proxies.append(original)
            targets.append(Target("original", original.port, original.pid, lib.connect,
                                  lib.AsyncClient.open))
        print()
        print(f"=== {mode} upstream ({url}) "
              f"{'with SSL_CERT_FILE=<throwaway CA> ' if mode == 'tls' else ''}===")
        runPhases(cfg, targets, upstream)
        fresh = [direct]
        for target in targets:
            if not target.proxied:
                continue
            proxy = proxies.pop(0)
            stopAndReport(proxy)
            (workdir / f"{proxy.name}.json").unlink(missing_ok=True)
            if proxy is ours:
                again = lib.startProxy(workdir, url, proxyCPUs)
            else:
                again = originals.startOriginal(workdir, codex, url, proxyCPUs)
            proxies.append(again)
            fresh.append(Target(target.name, again.port, again.pid, lib.connect,
                                lib.AsyncClient.open, target.summary))
        memoryPhase(cfg, fresh, upstream)
        return targets
    finally:
        for proxy in proxies:
            stopAndReport(proxy)
        for child in children:
            child.stop()
        if saved is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = saved
        originals.removeTree(workdir)
        if profile:
            print(f"\nthis proxy's profile ({profile}), top 30 by internal time:")
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)


def printSummary(results: dict[str, list[Target]]) -> None:
    """
    One table of the headline figures: a column per (upstream, proxy).
    """
    columns = [(mode, t) for mode, targets in results.items() for t in targets if t.proxied]
    keys: list[str] = []
    for _, target in columns:
        keys += [k for k in target.summary if k not in keys]
    rows = [[key] + [t.summary.get(key, "-") for _, t in columns] for key in keys]
    print()
    print(lib.table("summary (added = proxied minus direct)",
                    [""] + [f"{t.name}, {mode}" for mode, t in columns], rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--no-pin", action="store_true", help="do not pin CPUs")
    parser.add_argument("--upstream", choices=("plain", "tls", "both"), default="both")
    parser.add_argument("--no-original", action="store_true",
                        help="leave out the Rust original")
    parser.add_argument("--profile", metavar="FILE",
                        help="run this proxy under cProfile (FILE.plain, FILE.tls)")
    options = parser.parse_args()
    benchCPUs, proxyCPUs = lib.pinningPlan(not options.no_pin)
    if benchCPUs is not None:
        os.sched_setaffinity(0, benchCPUs)
    began = time.perf_counter()
    print(f"bench_proxy ({'quick' if options.quick else 'default'} run): {lib.machine()}")
    print("pinning: " + (f"the proxy measured on CPU {sorted(proxyCPUs)}, client and upstream "
                         f"on CPU {sorted(benchCPUs)}" if proxyCPUs else "none"))
    codex = None if options.no_original else originals.codexBinary()
    if codex is not None:
        print(f"original: {codex} responses-api-proxy ({originals.codexVersion(codex)})")
    elif not options.no_original:
        print("original: not found (CODEX_BIN or .cache/codex; npm install --prefix "
              f".cache/codex @openai/codex@{originals.CODEX_VERSION}); its rows are left out")
    modes = ("plain", "tls") if options.upstream == "both" else (options.upstream,)
    results = {mode: runMode(mode, options, codex, benchCPUs, proxyCPUs) for mode in modes}
    printSummary(results)
    print(f"\ntotal wall time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
