"""
What the response store costs per request (bridge-spec section 5): a save and a lookup, in
memory and in SQLite, with 1 000 and 100 000 stored responses; memory per stored response;
and the per-turn overhead of a 50-turn C{previous_response_id} chain.

Prints figures only; nothing is asserted. Run with
C{PYTHONPATH=. .venv/bin/python bench/bench_store.py} (about a minute; C{--quick} skips
the 100 000 case).

A stored response here is a Vercel-AI-SDK-like chat turn: the new user message (300 B) and
two references in the input; a reasoning item (500 B, with the bridge's token) and a
message (1 KB) in the output; 2.5 KB of JSON. "SQLite" is the statements in the store's
thread (what the disk costs); "adbapi" adds the hop to the pool's thread and back through
a running reactor (what a request waits), measured one operation at a time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from typing import Any

from responses_proxy.bridge.reasoning import encodeReasoning
from responses_proxy.bridge.state import (
    Found,
    MemoryStore,
    References,
    ResolvedRequest,
    StoreBounds,
    StoredResponse,
    recordFor,
    referencesIn,
    resolve,
)
from responses_proxy.web.store import InMemoryStore, SQLiteStore, _load, _save, prepareDatabase
from tests.test_store import SyncPool

BOUNDS = StoreBounds(maxResponses=1_000_000, maxBytes=1 << 40, ttl=30 * 24 * 3600.0)
TEXT = "The quick brown fox jumps over the lazy dog. " * 30


def _id(kind: str) -> str:
    return kind + "_" + secrets.token_hex(16)


def _turn(previousItems: list[str]) -> StoredResponse:
    """
    One chat turn as the Vercel AI SDK stores it (see the module docstring).
    """
    reasoning = TEXT[:500]
    newInput: tuple[Any, ...] = (
        {"role": "user", "content": [{"type": "input_text", "text": TEXT[:300]}]},
        *previousItems[-2:],
    )
    output = [
        {
            "id": _id("rs"),
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": reasoning}],
            "encrypted_content": encodeReasoning(reasoning),
        },
        {
            "id": _id("msg"),
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": TEXT[:1000], "annotations": [], "logprobs": []}
            ],
        },
    ]
    resolved = ResolvedRequest({}, None, True, newInput)
    record = recordFor(resolved, {"id": _id("resp"), "status": "completed", "output": output})
    assert record is not None
    return record


def recordCost(probes: int) -> None:
    """
    Building the record once a response ends (its items encoded as JSON), the part of a
    save that runs on the reactor's thread whatever the store.
    """
    pairs = []
    for _ in range(probes):
        record = _turn(["msg_a", "rs_b"])
        resolved = ResolvedRequest({}, None, True, (json.loads(record.entries[0]), "msg_a", "rs_b"))
        output = [json.loads(e) for e in record.entries[3:]]
        pairs.append((resolved, {"id": record.responseId, "status": "completed", "output": output}))
    start = time.perf_counter()
    for resolved, response in pairs:
        recordFor(resolved, response)
    cost = _per(time.perf_counter() - start, probes)
    print(f"recordFor, a {record.size} B (accounted) response: {cost}")


def _records(n: int) -> list[StoredResponse]:
    out: list[StoredResponse] = []
    items: list[str] = []
    for _ in range(n):
        record = _turn(items)
        items = [itemId for _, itemId in record.itemIds]
        out.append(record)
    return out


def _per(seconds: float, n: int) -> str:
    return f"{seconds / n * 1e6:8.1f} us"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def memoryFigures(n: int, probes: int) -> None:
    records = _records(n + probes)
    store = MemoryStore(BOUNDS, Clock())
    for record in records[:n]:
        store.save(record)
    start = time.perf_counter()
    for record in records[n:]:
        store.save(record)
    save = time.perf_counter() - start
    ids = [r.responseId for r in records[:n]]
    itemIds = [[i for _, i in r.itemIds] for r in records[:n]]
    picks = [secrets.randbelow(n) for _ in range(probes)]
    start = time.perf_counter()
    for k in picks:
        store.load(ids[k], ())
    byPrevious = time.perf_counter() - start
    start = time.perf_counter()
    for k in picks:
        store.load(None, itemIds[k])
    byItems = time.perf_counter() - start
    print(
        f"memory  {n:>7} stored: save {_per(save, probes)}   load previous "
        f"{_per(byPrevious, probes)}   load 2 items {_per(byItems, probes)}"
    )


def memoryPerResponse(n: int) -> None:
    gc.collect()
    tracemalloc.start()
    try:
        store = MemoryStore(BOUNDS, Clock())
        itemBytes = 0
        for record in _records(n):
            itemBytes += sum(len(e) for e in record.entries if isinstance(e, bytes))
            store.save(record)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    print(
        f"memory per stored response ({n} stored): {held / n:7.0f} B measured (tracemalloc), "
        f"{store.totalBytes / n:7.0f} B accounted, {itemBytes / n:7.0f} B of item JSON"
    )


def sqliteFigures(directory: str, n: int, probes: int) -> str:
    path = os.path.join(directory, f"state-{n}.db")
    prepareDatabase(path, BOUNDS, 1_000_000.0)
    pool = SyncPool(path)
    clock = Clock()
    records = _records(n + probes)
    start = time.perf_counter()
    for record in records[:n]:
        pool.runInteraction(_save, record, clock(), BOUNDS)
    fill = time.perf_counter() - start
    start = time.perf_counter()
    for record in records[n:]:
        pool.runInteraction(_save, record, clock(), BOUNDS)
    save = time.perf_counter() - start
    picks = [secrets.randbelow(n) for _ in range(probes)]
    start = time.perf_counter()
    for k in picks:
        pool.runInteraction(_load, records[k].responseId, (), clock(), BOUNDS)
    byPrevious = time.perf_counter() - start
    start = time.perf_counter()
    for k in picks:
        itemIds = tuple(i for _, i in records[k].itemIds)
        pool.runInteraction(_load, None, itemIds, clock(), BOUNDS)
    byItems = time.perf_counter() - start
    pool.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = os.path.getsize(path) / len(records)
    pool.close()
    print(
        f"SQLite  {n:>7} stored: save {_per(save, probes)}   load previous "
        f"{_per(byPrevious, probes)}   load 2 items {_per(byItems, probes)}   "
        f"file {size:6.0f} B/response (filled at {_per(fill, n)}/save)"
    )
    return path


def adbapiFigures(path: str, n: int, probes: int) -> None:
    from twisted.internet import defer, reactor, task

    from responses_proxy.web.store import openSQLiteStore

    store = openSQLiteStore(path, BOUNDS, reactor)
    records = _records(probes)

    async def run(_: Any) -> None:
        found = await store.load(References(previousId="resp_none"))
        assert found.previous is None
        start = time.perf_counter()
        for record in records:
            await store.save(record)
        save = time.perf_counter() - start
        start = time.perf_counter()
        for record in records:
            await store.load(References(previousId=record.responseId))
        load = time.perf_counter() - start
        await store.close()
        print(
            f"adbapi  {n:>7} stored: save {_per(save, probes)}   load previous "
            f"{_per(load, probes)}   (round trip through the pool's thread)"
        )

    task.react(lambda r: defer.ensureDeferred(run(r)))


def chainFigures(turns: int, directory: str, repeats: int = 5) -> None:
    """
    A C{previous_response_id} chain as the OpenAI SDKs make it: per turn, the bridge's
    state work (references, load, resolve, record, save, through the stores' Deferred
    interface), not the conversion or the model. Each turn's figure is the median of
    C{repeats} chains.
    """
    for label in ("memory", "SQLite"):
        costs: list[list[float]] = [[] for _ in range(turns)]
        for repeat in range(repeats):
            clock = Clock()
            store: Any
            if label == "memory":
                store = InMemoryStore(BOUNDS, clock)
            else:
                path = os.path.join(directory, f"chain-{repeat}.db")
                prepareDatabase(path, BOUNDS, clock())
                store = SQLiteStore(SyncPool(path), BOUNDS, clock)
            previous = None
            for turn in range(turns):
                request: dict[str, Any] = {"model": "m", "input": TEXT[:300]}
                if previous is not None:
                    request["previous_response_id"] = previous
                output = [json.loads(e) for e in _turn([]).entries[-2:]]
                responseId = _id("resp")
                start = time.perf_counter()
                references = referencesIn(request)
                found = _result(store.load(references)) if references.needsLookup() else Found()
                resolved = resolve(request, references, found)
                response = {"id": responseId, "status": "completed", "output": output}
                record = recordFor(resolved, response)
                assert record is not None
                _result(store.save(record))
                costs[turn].append(time.perf_counter() - start)
                assert len(resolved.body["input"]) == 3 * turn + 1
                previous = responseId
            _result(store.close())
        medians = [statistics.median(c) for c in costs]
        shown = "  ".join(f"turn {k}: {medians[k - 1] * 1e6:6.0f} us" for k in (1, 10, 25, 50))
        print(
            f"{label:<7} {turns}-turn chain, state work per turn: {shown}  "
            f"mean {statistics.mean(medians) * 1e6:6.0f} us"
        )


def _result(d: Any) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    value = box[0]
    if hasattr(value, "raiseException"):
        value.raiseException()
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 100 000 case")
    arguments = parser.parse_args()
    sizes = (1_000,) if arguments.quick else (1_000, 100_000)
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
    directory = tempfile.mkdtemp(prefix="bench-store-")
    try:
        recordCost(2000)
        for n in sizes:
            memoryFigures(n, 2000)
        memoryPerResponse(10_000)
        paths = {n: sqliteFigures(directory, n, 1000) for n in sizes}
        chainFigures(50, directory)
        # Last: it runs the global reactor, which cannot be restarted.
        adbapiFigures(paths[sizes[-1]], sizes[-1], 1000)
    finally:
        shutil.rmtree(directory, True)


if __name__ == "__main__":
    main()
