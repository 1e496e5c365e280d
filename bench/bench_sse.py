"""
Throughput of L{responses_proxy.sse.SSEParser} against Twisted's line receivers.

Prints figures only; nothing is asserted. Run with
C{PYTHONPATH=. .venv/bin/python bench/bench_sse.py}.

  - One long C{data:} line fed in 16 KiB pieces: the parser on 8 and 32 MiB,
    C{LineOnlyReceiver} on 2 and 8 MiB only (it is quadratic: 32 MiB takes
    tens of seconds).
  - One long line in tiny pieces, to show small reads stay linear.
  - 400k small C{data:} lines (about 100 bytes each, one event per line, LF and
    CRLF) fed in 16 KiB pieces: the parser, C{SSEReceiver} on top of it, and
    C{LineOnlyReceiver} for comparison.
"""

from __future__ import annotations

import time

from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineOnlyReceiver

from responses_proxy.sse import SSEParser, SSEReceiver

MiB = 1024 * 1024
PIECE = 16 * 1024
SMALL_LINES = 400_000
REPEATS = 3


class _CountingLineReceiver(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 64 * MiB

    def __init__(self) -> None:
        self.lines = 0

    def lineReceived(self, line: bytes) -> None:
        self.lines += 1


def pieces(data: bytes, size: int = PIECE) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def longLine(size: int) -> bytes:
    return b"data: " + b"x" * (size - len(b"data: ")) + b"\n\n"


def smallStream(count: int, lineEnd: bytes) -> bytes:
    lines = []
    for i in range(count):
        body = b'{"choices":[{"index":0,"delta":{"content":"token %08d"}}],"id":"c1"}' % i
        lines.append(b"data: " + body + b" " * (100 - 6 - len(body)) + lineEnd + lineEnd)
    return b"".join(lines)


def best(run, chunks: list[bytes]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run(chunks)
        times.append(time.perf_counter() - start)
    return min(times)


def runParser(chunks: list[bytes]) -> int:
    parser = SSEParser(64 * MiB)
    count = 0
    for chunk in chunks:
        count += len(parser.feed(chunk))
    return count + len(parser.close())


def runReceiver(chunks: list[bytes]) -> int:
    got: list[bytes] = []
    receiver = SSEReceiver(got.append, 64 * MiB)
    receiver.makeConnection(StringTransport())
    for chunk in chunks:
        receiver.dataReceived(chunk)
    return len(got)


def runLineOnly(chunks: list[bytes]) -> int:
    receiver = _CountingLineReceiver()
    receiver.makeConnection(StringTransport())
    for chunk in chunks:
        receiver.dataReceived(chunk)
    return receiver.lines


def main() -> None:
    print(f"one long line, {PIECE // 1024} KiB pieces (best of {REPEATS})")
    for name, run, sizes in (
        ("SSEParser", runParser, (8, 32)),
        ("LineOnlyReceiver", runLineOnly, (2, 8)),
    ):
        for mib in sizes:
            data = longLine(mib * MiB)
            chunks = pieces(data)
            seconds = best(run, chunks)
            print(
                f"  {name:<17} {mib:>3} MiB line: {seconds:8.3f} s"
                f"  {len(data) / MiB / seconds:9.1f} MB/s"
            )

    print("one long line in tiny pieces (small reads are coalesced; still linear)")
    for mib, size in ((1, 64), (4, 64), (1, 7)):
        data = longLine(mib * MiB)
        chunks = pieces(data, size)
        seconds = best(runParser, chunks)
        print(
            f"  SSEParser         {mib:>3} MiB line in {size:>2}-byte pieces: {seconds:8.3f} s"
            f"  {len(data) / MiB / seconds:9.1f} MB/s"
        )

    for label, lineEnd in (("LF", b"\n"), ("CRLF", b"\r\n")):
        data = smallStream(SMALL_LINES, lineEnd)
        chunks = pieces(data)
        print(
            f"{SMALL_LINES} data: lines of 100 bytes + blank line ({label}),"
            f" {len(data) / MiB:.1f} MiB, {PIECE // 1024} KiB pieces (best of {REPEATS})"
        )
        runs = [("SSEParser", runParser), ("SSEReceiver", runReceiver)]
        if lineEnd == b"\n":
            runs.append(("LineOnlyReceiver", runLineOnly))
        for name, run in runs:
            seconds = best(run, chunks)
            print(
                f"  {name:<17} {seconds:8.3f} s  {SMALL_LINES / seconds:12,.0f} data lines/s"
                f"  {len(data) / MiB / seconds:7.1f} MB/s"
            )


if __name__ == "__main__":
    main()
