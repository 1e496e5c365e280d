"""
Tests for L{responses_proxy.web.store}: the in-memory and SQLite stores behind the glue's
asynchronous interface, the state file's checks at start-up, persistence across a
restart, and the C{--state-file} option.

The SQLite store runs here on a real file through L{SyncPool}, which honours adbapi's
C{runInteraction} contract in the calling thread, so these tests are deterministic
C{SynchronousTestCase}s. The real C{adbapi} pool and reactor run in child processes
(L{tests.storecheck}): the restart and lock tests.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.state import MemoryStore, References, StoreBounds, StoredResponse
from responses_proxy.config import Limits, StartupError, buildConfig
from responses_proxy.web.store import (
    InMemoryStore,
    SQLiteStore,
    StoreError,
    boundsFor,
    configureConnection,
    prepareDatabase,
)
from tests.test_bridge_state import _Clock, _message, _record, _user

REPO = Path(__file__).resolve().parents[1]


def _tempDir(testCase: SynchronousTestCase) -> str:
    path = tempfile.mkdtemp(prefix="store-test-")
    testCase.addCleanup(shutil.rmtree, path, True)
    return path


class SyncPool:
    """
    adbapi's C{runInteraction} contract (one transaction per interaction, committed, or
    rolled back on an exception), run at once in this thread on a real connection.
    """

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path)
        configureConnection(self.connection)
        self.closed = False

    def runInteraction(self, interaction: Any, *args: Any) -> Deferred[Any]:
        cursor = self.connection.cursor()
        try:
            result = interaction(cursor, *args)
            self.connection.commit()
        except BaseException:
            self.connection.rollback()
            return fail()
        finally:
            cursor.close()
        return succeed(result)

    def close(self) -> None:
        self.closed = True
        self.connection.close()


def _refs(previousId: str | None = None, *itemIds: str) -> References:
    return References(previousId=previousId, items=tuple(enumerate(itemIds)))


class StoreContract:
    """
    What both stores must do alike, through the asynchronous interface.
    """

    def setUp(self) -> None:
        self.clock = _Clock()

    def makeStore(self, bounds: StoreBounds) -> Any:
        raise NotImplementedError()

    def store(self, **bounds: Any) -> Any:
        return self.makeStore(StoreBounds(**bounds))

    def save(self, store: Any, record: StoredResponse) -> bool:
        return self.successResultOf(store.save(record))

    def load(self, store: Any, previousId: str | None = None, *itemIds: str) -> Any:
        return self.successResultOf(store.load(_refs(previousId, *itemIds)))

    def stored(self, store: Any, *names: str) -> list[str]:
        """
        Which of the responses C{resp_NAME} (each made with an output item C{msg_NAME})
        are still stored. Probing is a use: call it last.
        """
        items = self.load(store, None, *(f"msg_{name}" for name in names)).items
        return [name for name in names if f"msg_{name}" in items]

    def record(self, name: str, previousId: str | None = None) -> StoredResponse:
        return _record(f"resp_{name}", previousId, output=[_message(name, f"msg_{name}")])

    def counts(self, store: Any) -> tuple[int, int]:
        return self.successResultOf(store.counts())

    def test_roundTrip(self):
        """
        A response's conversation is its input then output; its items (and input items
        with ids) are found by id; unknown ids are simply absent.
        """
        store = self.store()
        withId = dict(_user("a"), id="msg_in")
        reply = _message("b", "msg_1")
        self.assertTrue(self.save(store, _record("resp_1", newInput=(withId,), output=[reply])))
        found = self.load(store, "resp_1", "msg_1", "msg_in", "msg_none")
        self.assertEqual(found.previous, [withId, reply])
        self.assertEqual(found.items, {"msg_1": reply, "msg_in": withId})
        self.assertIsNone(self.load(store, "resp_2").previous)

    def test_chain(self):
        """
        Sixty linked responses resolve oldest first, references included.
        """
        store = self.store()
        expected: list[dict[str, Any]] = []
        previous = None
        for n in range(60):
            reply = _message(f"answer {n}", f"msg_{n}")
            newInput: tuple[Any, ...] = (_user(f"question {n}"),)
            expected.append(_user(f"question {n}"))
            if n:
                newInput += (f"msg_{n - 1}",)
                expected.append(_message(f"answer {n - 1}", f"msg_{n - 1}"))
            expected.append(reply)
            self.save(store, _record(f"resp_{n}", previous, newInput, [reply]))
            previous = f"resp_{n}"
        self.assertEqual(self.load(store, "resp_59").previous, expected)

    def test_chainThroughEvicted(self):
        """
        A chain through an evicted response is not found.
        """
        store = self.store(maxResponses=3)
        self.save(store, _record("resp_a"))
        self.save(store, _record("resp_b", "resp_a"))
        self.save(store, _record("resp_c", "resp_b"))
        self.save(store, _record("resp_d"))
        self.assertIsNone(self.load(store, "resp_c").previous)
        self.assertEqual(self.counts(store)[0], 3)

    def test_lruByUse(self):
        """
        Eviction takes the least recently used: a lookup through a response (as the
        previous one, or for one of its items) is a use.
        """
        store = self.store(maxResponses=3)
        for name in "abc":
            self.save(store, self.record(name))
        self.load(store, "resp_a")
        self.load(store, None, "msg_b")
        self.save(store, self.record("d"))
        self.assertEqual(self.stored(store, *"abcd"), ["a", "b", "d"])

    def test_failedChainUsesNothing(self):
        """
        A chain that is not found is no use of the responses on it.
        """
        store = self.store(maxResponses=3)
        self.save(store, self.record("y", "resp_gone"))
        self.save(store, self.record("x", "resp_y"))
        self.save(store, self.record("a"))
        self.assertIsNone(self.load(store, "resp_x").previous)
        self.save(store, self.record("b"))
        self.assertEqual(self.stored(store, *"yxab"), ["x", "a", "b"])

    def test_byteBound(self):
        """
        The byte bound holds after every save; a response larger than it is refused and
        evicts nothing.
        """
        size = _record(output=[_message("x" * 1000)]).size
        store = self.store(maxBytes=size * 3)
        ids = []
        for _ in range(5):
            record = _record(output=[_message("x" * 1000)])
            ids.append(record.responseId)
            self.assertTrue(self.save(store, record))
            self.assertLessEqual(self.counts(store)[1], size * 3)
        self.assertFalse(self.save(store, _record(output=[_message("x" * 10_000)])))
        self.assertEqual(self.counts(store), (3, size * 3))
        found = [i for i in ids if self.load(store, i).previous is not None]
        self.assertEqual(found, ids[2:])

    def test_ttl(self):
        """
        A response expires C{ttl} seconds after its last use; a use renews it; its items
        expire with it.
        """
        store = self.store(ttl=100)
        self.save(store, _record("resp_a", output=[_message("a", "msg_a")]))
        self.save(store, _record("resp_b"))
        self.clock.now += 60
        self.assertIsNotNone(self.load(store, "resp_a").previous)
        self.clock.now += 60
        self.assertIsNone(self.load(store, "resp_b").previous)
        self.assertEqual(list(self.load(store, None, "msg_a").items), ["msg_a"])
        self.clock.now += 100
        self.assertEqual(self.load(store, None, "msg_a").items, {})
        self.save(store, _record("resp_c"))
        self.assertEqual(self.counts(store)[0], 1)

    def test_firstOwnerKeepsId(self):
        """
        An item id stays with the first response that stored it, and survives the
        eviction of a later copy.
        """
        store = self.store(maxResponses=2)
        self.save(store, _record("resp_1", output=[_message("first", "msg_1")]))
        self.save(store, _record("resp_2", newInput=(_message("copy", "msg_1"),)))
        item = self.load(store, None, "msg_1").items["msg_1"]
        self.assertEqual(item["content"][0]["text"], "first")
        self.save(store, _record("resp_3"))  # evicts resp_2
        self.assertIn("msg_1", self.load(store, None, "msg_1").items)

    def test_resave(self):
        """
        Saving an id again replaces the response and its bytes.
        """
        store = self.store()
        self.save(store, _record("resp_1", output=[_message("a" * 100)]))
        second = _record("resp_1", output=[_message("b")])
        self.save(store, second)
        self.assertEqual(self.counts(store), (1, second.size))


class InMemoryStoreTests(StoreContract, SynchronousTestCase):
    """
    The contract on L{InMemoryStore}.
    """

    def makeStore(self, bounds: StoreBounds) -> InMemoryStore:
        return InMemoryStore(bounds, self.clock)

    def test_close(self):
        """
        Closing has nothing to wait for.
        """
        self.assertIsNone(self.successResultOf(self.store().close()))


class SQLiteStoreTests(StoreContract, SynchronousTestCase):
    """
    The contract on L{SQLiteStore}, and what only a file has.
    """

    def setUp(self) -> None:
        super().setUp()
        self.path = os.path.join(_tempDir(self), "state", "responses.db")

    def makeStore(self, bounds: StoreBounds) -> SQLiteStore:
        self.bounds = bounds
        prepareDatabase(self.path, bounds, self.clock())
        self.pool = SyncPool(self.path)
        store = SQLiteStore(self.pool, bounds, self.clock)
        self.addCleanup(store.close)
        return store

    def reopen(self, store: SQLiteStore) -> SQLiteStore:
        self.successResultOf(store.close())
        return self.makeStore(self.bounds)

    def test_restart(self):
        """
        Closed and reopened, the store has the same responses, bytes and LRU order.
        """
        store = self.store(maxResponses=3)
        self.save(store, self.record("a"))
        self.save(store, _record("resp_b", "resp_a", ("msg_a",), [_message("b", "msg_b")]))
        self.save(store, self.record("c"))
        self.load(store, "resp_b")  # uses resp_b and resp_a: resp_c is now the oldest
        before = self.counts(store)
        store = self.reopen(store)
        self.assertEqual(self.counts(store), before)
        self.save(store, self.record("d"))
        self.assertEqual(
            self.load(store, "resp_b").previous,
            [_message("a", "msg_a"), _message("a", "msg_a"), _message("b", "msg_b")],
        )
        self.assertEqual(self.stored(store, *"abcd"), ["a", "b", "d"])

    def test_closeClosesPool(self):
        """
        Closing finishes with the pool, and later operations fail with L{StoreError}.
        """
        store = self.store()
        self.successResultOf(store.close())
        self.assertTrue(self.pool.closed)
        self.failureResultOf(store.load(_refs("resp_1")), StoreError)
        self.failureResultOf(store.save(_record()), StoreError)

    def test_runtimeErrorWrapped(self):
        """
        A database error at run time is a L{StoreError} (never an empty answer), and the
        failed save changes nothing.
        """
        store = self.store()
        self.save(store, _record("resp_1"))
        self.pool.connection.execute("DROP TABLE items")
        self.failureResultOf(store.save(_record(output=[_message("x", "msg_x")])), StoreError)
        self.failureResultOf(store.load(_refs(None, "msg_x")), StoreError)
        self.assertEqual(self.counts(store)[0], 1)

    def test_damagedRowIsAnError(self):
        """
        A stored response whose entries are damaged is a L{StoreError}, not "not found".
        """
        store = self.store()
        self.save(store, self.record("a"))
        self.pool.connection.execute("UPDATE responses SET entries = ?", (b"{damaged",))
        self.pool.connection.commit()
        self.failureResultOf(store.load(_refs("resp_a")), StoreError)
        self.failureResultOf(store.load(_refs(None, "msg_a")), StoreError)

    def test_expiredAtStartUp(self):
        """
        Responses that expired while the proxy was down are removed when it starts.
        """
        store = self.store(ttl=100)
        self.save(store, _record("resp_1"))
        self.successResultOf(store.close())
        self.clock.now += 101
        store = self.makeStore(self.bounds)
        self.assertEqual(self.counts(store), (0, 0))

    def test_modes(self):
        """
        Missing directories are created 0700, the file 0600; the write-ahead log too;
        there is no shared-memory file (the lock is exclusive).
        """
        store = self.store()
        self.save(store, _record("resp_1"))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(self.path)).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.path + "-wal").st_mode), 0o600)
        self.assertFalse(os.path.exists(self.path + "-shm"))
        mode = self.pool.connection.execute("PRAGMA journal_mode").fetchone()[0]
        self.assertEqual(mode, "wal")


class StateFileTests(SynchronousTestCase):
    """
    L{prepareDatabase}: every unusable state file is one clear start-up error, and the
    file is left as it was.
    """

    def setUp(self):
        self.dir = _tempDir(self)
        self.path = os.path.join(self.dir, "state.db")
        self.bounds = StoreBounds()

    def refused(self, *needles: str, path: str | None = None) -> StartupError:
        path = path or self.path
        before = Path(path).read_bytes() if os.path.isfile(path) else None
        e = self.assertRaises(StartupError, prepareDatabase, path, self.bounds, 1000.0)
        message = str(e)
        self.assertTrue(message.startswith(f"cannot use --state-file {path}: "), message)
        for needle in needles:
            self.assertIn(needle, message)
        self.assertNotIn("\n", message)
        if before is not None:
            self.assertEqual(Path(path).read_bytes(), before)
        return e

    def makeValid(self) -> None:
        prepareDatabase(self.path, self.bounds, 1000.0)
        pool = SyncPool(self.path)
        store = SQLiteStore(pool, self.bounds, lambda: 1000.0)
        for _ in range(200):
            self.successResultOf(store.save(_record(output=[_message("x" * 500)] * 3)))
        self.successResultOf(store.close())

    def test_existingPermissionsTightened(self):
        """
        An existing file (and write-ahead log) readable by others is made 0600; an
        existing directory is left as it is.
        """
        Path(self.path).write_bytes(b"")
        os.chmod(self.path, 0o644)
        os.chmod(self.dir, 0o755)
        prepareDatabase(self.path, self.bounds, 1000.0)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.dir).st_mode), 0o755)

    def test_notADatabase(self):
        """
        A file that is not SQLite is refused, untouched.
        """
        Path(self.path).write_bytes(b"these are my notes, not a database\n" * 200)
        self.refused("not a state file or it is damaged", "move it away")

    def test_damaged(self):
        """
        A state file with a damaged page is refused, untouched (never emptied).
        """
        self.makeValid()
        data = bytearray(Path(self.path).read_bytes())
        pageSize = int.from_bytes(data[16:18], "big")
        self.assertGreater(len(data), pageSize * 4)
        data[pageSize * 2 : pageSize * 3] = b"\xa5" * pageSize
        Path(self.path).write_bytes(bytes(data))
        self.refused("damaged")

    def test_foreignDatabase(self):
        """
        Another program's SQLite database is refused, untouched.
        """
        connection = sqlite3.connect(self.path)
        connection.execute("CREATE TABLE notes (text TEXT)")
        connection.commit()
        connection.close()
        self.refused("database of something else")

    def test_otherSchemaVersion(self):
        """
        A state file of another schema version is refused, naming both versions.
        """
        self.makeValid()
        connection = sqlite3.connect(self.path)
        connection.execute("PRAGMA user_version = 7")
        connection.commit()
        connection.close()
        self.refused("schema version 7", "reads version 1")

    def test_directoryInTheWay(self):
        """
        A path that is a directory, or under a file, is refused.
        """
        os.mkdir(self.path)
        self.refused("not a regular file")
        blocker = os.path.join(self.dir, "file")
        Path(blocker).write_bytes(b"")
        self.refused("not a directory", path=os.path.join(blocker, "state.db"))

    def test_symlinkRefused(self):
        """
        A symbolic link is refused (the real path must be given).
        """
        target = os.path.join(self.dir, "real.db")
        Path(target).write_bytes(b"")
        os.symlink(target, self.path)
        self.refused("symbolic link")

    def test_inUse(self):
        """
        A file locked by another proxy is refused, naming the cause.
        """
        self.makeValid()
        holder = sqlite3.connect(self.path)
        self.addCleanup(holder.close)
        configureConnection(holder)
        holder.execute("UPDATE totals SET tick = tick")
        holder.commit()
        self.refused("in use by another process")


def _storecheck(
    statePath: str, command: str, stdin: bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tests.storecheck", "--state-file", statePath, command],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )


def _completion(content: str, reasoning: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}


class RealPoolTests(SynchronousTestCase):
    """
    The SQLite store through the real C{adbapi} pool and reactor, in child processes.
    """

    def setUp(self):
        self.path = os.path.join(_tempDir(self), "sub", "state.db")

    def turns(self, *turns: dict[str, Any]) -> list[dict[str, Any]]:
        result = _storecheck(self.path, "turns", json.dumps({"turns": list(turns)}).encode())
        self.assertEqual(result.returncode, 0, result.stderr.decode(errors="replace"))
        return [json.loads(line) for line in result.stdout.splitlines()]

    def test_restartPersistence(self):
        """
        A conversation chained with C{previous_response_id} in one process continues in
        the next: the upstream of the third turn gets the whole history, with reasoning.
        """
        first = self.turns(
            {"request": {"model": "m", "input": "one"}, "completion": _completion("1", "r1")},
            {
                "request": {"model": "m", "input": "two", "previous_response_id": "$prev"},
                "completion": _completion("2", "r2"),
            },
        )
        self.assertEqual(first[-1]["counts"][0], 2)
        secondId = first[1]["response"]["id"]
        self.assertEqual(first[1]["response"]["previous_response_id"], first[0]["response"]["id"])
        messageId = first[1]["response"]["output"][1]["id"]
        second = self.turns(
            {
                "request": {"model": "m", "input": "three", "previous_response_id": secondId},
                "completion": _completion("3"),
            },
            {
                "request": {
                    "model": "m",
                    "input": [_user("four"), {"type": "item_reference", "id": messageId}],
                },
                "completion": _completion("4"),
            },
            {
                "request": {"model": "m", "input": "x", "previous_response_id": "resp_unknown"},
                "completion": _completion("never"),
            },
        )
        self.assertEqual(
            second[0]["chat"]["messages"],
            [
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": "1", "reasoning_content": "r1"},
                {"role": "user", "content": "two"},
                {"role": "assistant", "content": "2", "reasoning_content": "r2"},
                {"role": "user", "content": "three"},
            ],
        )
        self.assertEqual(second[1]["chat"]["messages"][1], {"role": "assistant", "content": "2"})
        self.assertEqual(second[2]["error"]["code"], "previous_response_not_found")
        self.assertEqual(second[-1]["counts"][0], 4)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(self.path)).st_mode), 0o700)

    def test_secondProxyRefused(self):
        """
        While one process holds the state file, a second one fails at start-up with a
        clear message; once the first is gone, it starts.
        """
        holder = subprocess.Popen(
            [sys.executable, "-m", "tests.storecheck", "--state-file", self.path, "hold"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        self.addCleanup(holder.kill)
        assert holder.stdout is not None and holder.stdin is not None
        self.assertEqual(holder.stdout.readline(), b"ready\n")
        # "ready" is printed once the reactor runs; the lock is taken by the first
        # interaction queued before it. Retry briefly until the lock is seen.
        result = None
        for _ in range(100):
            result = _storecheck(self.path, "hold", b"")
            if result.returncode != 0:
                break
        assert result is not None
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.decode().strip(),
            f"Error: cannot use --state-file {self.path}: it is in use by another process "
            "(one proxy per state file)",
        )
        holder.stdin.close()
        self.assertEqual(holder.wait(timeout=30), 0)
        self.assertEqual(_storecheck(self.path, "hold", b"").returncode, 0)

    def test_corruptFileAtStartUp(self):
        """
        The real start-up path reports a file that is not a database, and exits 1.
        """
        os.makedirs(os.path.dirname(self.path))
        Path(self.path).write_bytes(b"not a database" * 100)
        result = _storecheck(self.path, "hold", b"")
        self.assertEqual(result.returncode, 1)
        self.assertIn(b"not a state file or it is damaged", result.stderr)
        self.assertEqual(Path(self.path).read_bytes(), b"not a database" * 100)


class ConfigTests(SynchronousTestCase):
    """
    C{--state-file} and the store's tuning.
    """

    def build(self, **args: Any) -> Any:
        base: dict[str, Any] = {
            "port": None,
            "serverInfo": None,
            "httpShutdown": False,
            "upstreamURL": "http://127.0.0.1:1/v1/chat/completions",
            "bridge": True,
            "dumpDir": None,
        }
        base.update(args)
        return buildConfig(**base)

    def test_stateFile(self):
        """
        The path is made absolute; absent means in memory.
        """
        self.assertIsNone(self.build().stateFile)
        self.assertEqual(
            self.build(stateFile="rel/state.db").stateFile, os.path.abspath("rel/state.db")
        )

    def test_stateFileErrors(self):
        """
        An empty path, or the option without the bridge, is a start-up error.
        """
        e = self.assertRaises(StartupError, self.build, stateFile=" ")
        self.assertIn("--state-file", str(e))
        e = self.assertRaises(
            StartupError, self.build, stateFile="x.db", bridge=False, upstreamURL=None
        )
        self.assertIn("needs --bridge-to-chat", str(e))

    def test_bounds(self):
        """
        The bounds default to the documented values and are tunable.
        """
        self.assertEqual(boundsFor(self.build()), StoreBounds(10_000, 256 * 1024 * 1024, 2592000))
        config = self.build(tuning="storeMaxResponses=50,storeMaxBytes=1e6,storeTTL=60")
        self.assertEqual(boundsFor(config), StoreBounds(50, 1_000_000, 60.0))
        self.assertIsInstance(config.limits.storeMaxResponses, int)
        self.assertRaises(StartupError, Limits.fromTuning, "storeMaxResponses=0")
        self.assertIsInstance(MemoryStore(boundsFor(config)).bounds, StoreBounds)
