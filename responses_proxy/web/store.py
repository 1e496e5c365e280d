# -*- test-case-name: tests.test_store -*-
"""
The response store as the bridge's Twisted glue uses it: asynchronous, in memory by default,
in SQLite when the user asks for it (C{--state-file}).

Both stores hold the records of L{responses_proxy.bridge.state} and resolve through its
L{assembleConversation}, so they answer alike. The SQLite store runs every statement on one
connection in one thread of an C{adbapi} pool, so the reactor never waits for the disk, and
the single thread keeps the operations in the order they were asked for: a save made when a
response ends is always visible to the next request's load. Opening checks the file at
start-up (before the reactor runs) and reports what is wrong as a L{StartupError}: a file it
cannot open or that is damaged is never replaced, emptied or ignored.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from responses_proxy.bridge.state import (
    Entry,
    Found,
    MemoryStore,
    References,
    StoreBounds,
    StoredResponse,
    assembleConversation,
)
from responses_proxy.config import ProxyConfig, StartupError

__all__ = [
    "SCHEMA_VERSION",
    "IResponseStore",
    "InMemoryStore",
    "SQLiteStore",
    "StoreError",
    "boundsFor",
    "configureConnection",
    "openSQLiteStore",
    "openStore",
    "packEntries",
    "prepareDatabase",
    "unpackEntries",
]

SCHEMA_VERSION = 1

_log = Logger(namespace="responses_proxy")


class StoreError(Exception):
    """
    A store operation failed at run time (disk full, I/O error). The message names the
    problem, never stored content; a failed load must not be answered as "not found".
    """


class IResponseStore(Interface):
    """
    What the bridge glue calls. Operations run in the order they are called.
    """

    def load(references: References) -> Deferred[Found]:
        """
        Look up what a request refers to (call only when C{references.needsLookup()}).

        @return: a L{Found}; fails with L{StoreError}.
        """

    def save(record: StoredResponse) -> Deferred[bool]:
        """
        Keep a response (from L{responses_proxy.bridge.state.recordFor}).

        @return: whether it was stored (one larger than the byte bound is not); fails
            with L{StoreError}.
        """

    def close() -> Deferred[None]:
        """
        Finish what was asked and release the store (at shutdown).
        """


def boundsFor(config: ProxyConfig) -> StoreBounds:
    """
    The store's bounds from the configuration's L{Limits}.
    """
    limits = config.limits
    return StoreBounds(
        maxResponses=limits.storeMaxResponses,
        maxBytes=limits.storeMaxBytes,
        ttl=limits.storeTTL,
    )


def openStore(config: ProxyConfig, reactor: Any) -> IResponseStore:
    """
    The store for a configuration: SQLite at C{config.stateFile}, else in memory.

    Call at start-up, before the reactor runs (the SQLite file is checked synchronously).

    @param reactor: provides C{seconds()} (the stores' clock, wall time) and runs the
        SQLite store's thread pool.
    @raise StartupError: the state file cannot be used (the message says why and what to
        do).
    """
    bounds = boundsFor(config)
    if config.stateFile is None:
        return InMemoryStore(bounds, reactor.seconds)
    return openSQLiteStore(config.stateFile, bounds, reactor)


@implementer(IResponseStore)
class InMemoryStore:
    """
    L{MemoryStore} behind the asynchronous interface; every answer is already there.

    @ivar memory: the store itself (for tests and figures).
    """

    def __init__(self, bounds: StoreBounds, clock: Callable[[], float]) -> None:
        self.memory = MemoryStore(bounds, clock)

    def load(self, references: References) -> Deferred[Found]:
        return succeed(self.memory.load(references.previousId, references.itemIds))

    def save(self, record: StoredResponse) -> Deferred[bool]:
        return succeed(self.memory.save(record))

    def close(self) -> Deferred[None]:
        return succeed(None)

    def counts(self) -> Deferred[tuple[int, int]]:
        """
        @return: the number of stored responses and their accounted bytes.
        """
        return succeed((len(self.memory), self.memory.totalBytes))


# -- SQLite --------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    previous_id TEXT,
    input_count INTEGER NOT NULL,
    size INTEGER NOT NULL,
    used REAL NOT NULL,
    tick INTEGER NOT NULL,
    entries BLOB NOT NULL
);
CREATE INDEX responses_by_tick ON responses (tick);
CREATE TABLE items (
    id TEXT PRIMARY KEY,
    response_id TEXT NOT NULL,
    position INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX items_by_response ON items (response_id);
CREATE TABLE totals (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    responses INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    tick INTEGER NOT NULL
);
INSERT INTO totals VALUES (1, 0, 0, 0);
CREATE TRIGGER response_added AFTER INSERT ON responses BEGIN
    UPDATE totals SET responses = responses + 1, bytes = bytes + NEW.size;
END;
CREATE TRIGGER response_removed AFTER DELETE ON responses BEGIN
    UPDATE totals SET responses = responses - 1, bytes = bytes - OLD.size;
    DELETE FROM items WHERE response_id = OLD.id;
END;
"""

# responses: one row per stored response: its link, accounted size, last use (wall-clock
# seconds, for the time limit), LRU position (a counter: several responses are used in the
# same instant) and its entries as one JSON array, an item being an object and a reference
# the referenced id as a string (so a response is one row: a few pages written per save).
# items: which response holds an item id, at which position (the first to store it).
# totals: kept exact by the triggers, so the bounds are checked without a scan.


def packEntries(entries: Iterable[Entry]) -> bytes:
    """
    A stored response's entries as one JSON array (items are already JSON).
    """
    return (
        b"["
        + b",".join(
            json.dumps(entry).encode("ascii") if isinstance(entry, str) else entry
            for entry in entries
        )
        + b"]"
    )


def unpackEntries(blob: bytes) -> list[Any]:
    """
    The entries of L{packEntries}, decoded: an item is a dict, a reference a str.

    @raise StoreError: the blob is not such an array (a damaged file).
    """
    try:
        entries = json.loads(blob)
    except ValueError:
        entries = None
    if not isinstance(entries, list):
        raise StoreError("the state file holds a damaged response")
    return entries


def configureConnection(connection: sqlite3.Connection) -> None:
    """
    Per-connection settings: an exclusive lock held for the connection's life (one proxy
    per state file; WAL then needs no shared-memory file), write-ahead logging, and
    C{synchronous=NORMAL} (with WAL: no corruption on power loss, at most the last
    responses lost).
    """
    connection.execute("PRAGMA locking_mode = EXCLUSIVE")
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode is None or str(mode[0]).lower() != "wal":
        raise sqlite3.OperationalError("the database refused write-ahead logging")
    connection.execute("PRAGMA synchronous = NORMAL")


def _problem(path: str, what: str) -> StartupError:
    return StartupError(f"cannot use --state-file {path}: {what}")


def _makePrivateDirectory(path: str, directory: str) -> None:
    """
    Create the missing directories of C{directory}, each with mode 0700.
    """
    missing = []
    current = directory
    while current and not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for name in reversed(missing):
        try:
            os.mkdir(name, 0o700)
        except FileExistsError:
            if not os.path.isdir(name):
                raise _problem(path, f"{name} exists and is not a directory") from None
        except OSError as e:
            raise _problem(path, f"cannot create directory {name}: {e.strerror}") from None
        else:
            os.chmod(name, 0o700)  # whatever the umask


def _privateFile(path: str, name: str, create: bool) -> None:
    """
    Make C{name} (the database or its write-ahead log) a regular file of ours with mode
    0600: created so when missing (and C{create}), tightened when it is wider.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    if create:
        try:
            os.close(os.open(name, flags, 0o600))
            return
        except FileExistsError:
            pass
        except OSError as e:
            raise _problem(path, f"cannot create the file: {e.strerror}") from None
    try:
        info = os.lstat(name)
    except FileNotFoundError:
        return
    except OSError as e:
        raise _problem(path, f"cannot read {name}: {e.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise _problem(path, f"{name} is a symbolic link; give the real path")
    if not stat.S_ISREG(info.st_mode):
        raise _problem(path, f"{name} is not a regular file")
    if info.st_uid != os.geteuid():
        raise _problem(path, f"{name} belongs to another user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(name, 0o600)
        except OSError as e:
            raise _problem(path, f"cannot make {name} private (mode 0600): {e.strerror}") from None


def prepareDatabase(path: str, bounds: StoreBounds, now: float) -> None:
    """
    Check and set up a state file, synchronously (at start-up): its directory (created
    0700 when missing), the file (0600), SQLite's quick integrity check, the schema
    version; an empty file gets the schema. Expired responses are removed.

    @raise StartupError: the file cannot be created or opened, is locked by another
        proxy, is not a SQLite database, is damaged, or has another schema. Nothing is
        ever deleted or overwritten to get past an error.
    """
    directory = os.path.dirname(path) or "."
    _makePrivateDirectory(path, directory)
    _privateFile(path, path, create=True)
    _privateFile(path, path + "-wal", create=False)
    try:
        connection = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    except sqlite3.Error as e:
        raise _problem(path, f"cannot open it ({e})") from None
    try:
        try:
            _checkAndMigrate(path, connection, bounds, now)
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise _problem(
                    path, "it is in use by another process (one proxy per state file)"
                ) from None
            raise _problem(path, f"cannot open it ({e})") from None
        except sqlite3.DatabaseError as e:
            raise _problem(
                path,
                f"it is not a state file or it is damaged ({e}); move it away to start "
                "with an empty store",
            ) from None
    finally:
        connection.close()


def _checkAndMigrate(
    path: str, connection: sqlite3.Connection, bounds: StoreBounds, now: float
) -> None:
    connection.execute("PRAGMA locking_mode = EXCLUSIVE")
    # The first read takes the lock and reads the header: a file that is not SQLite
    # fails here, a locked one too.
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    problems = [row[0] for row in connection.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        text = "; ".join(str(p) for p in problems[:3]).replace("\n", "; ")
        raise sqlite3.DatabaseError("integrity check: " + text[:300])
    tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if version == 0 and tables == 0:
        configureConnection(connection)
        connection.executescript(
            f"BEGIN IMMEDIATE;\n{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
        )
    elif version != SCHEMA_VERSION:
        if version == 0:
            raise _problem(path, "it is a SQLite database of something else, not a state file")
        raise _problem(
            path,
            f"it has schema version {version}, this proxy reads version {SCHEMA_VERSION} "
            "(it was written by another version of the proxy)",
        )
    else:
        configureConnection(connection)
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("DELETE FROM responses WHERE used <= ?", (now - bounds.ttl,))
    connection.execute("COMMIT")


class _Cursor(Protocol):
    """
    What an interaction uses of adbapi's C{Transaction} (or a DB-API cursor).
    """

    def execute(self, sql: str, args: Sequence[Any] = ...) -> Any: ...

    def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class _Pool(Protocol):
    """
    What the store needs of C{adbapi.ConnectionPool}.
    """

    def runInteraction(self, interaction: Callable[..., Any], *args: Any) -> Deferred[Any]: ...

    def close(self) -> None: ...


def openSQLiteStore(path: str, bounds: StoreBounds, reactor: Any) -> SQLiteStore:
    """
    Check a state file (L{prepareDatabase}) and open it through an C{adbapi} pool of one
    connection in one thread.

    @raise StartupError: see L{prepareDatabase}.
    """
    from twisted.enterprise import adbapi

    path = os.path.abspath(path)
    prepareDatabase(path, bounds, reactor.seconds())
    pool = adbapi.ConnectionPool(
        "sqlite3",
        path,
        check_same_thread=False,
        cp_min=1,
        cp_max=1,
        cp_openfun=configureConnection,
        cp_reactor=reactor,
    )
    # Take the file's exclusive lock as soon as the reactor runs (a write does; a read
    # would only share it), so a second proxy started on the same file is refused at its
    # start-up rather than failing later.
    pool.runInteraction(_claim).addErrback(
        lambda failure: _log.failure("cannot lock --state-file {path}", failure, path=path)
    )
    return SQLiteStore(pool, bounds, reactor.seconds)


def _wrapFailure(failure: Failure) -> Failure:
    if failure.check(sqlite3.Error):
        return Failure(StoreError(f"the state file failed: {failure.value}"))
    return failure


@implementer(IResponseStore)
class SQLiteStore:
    """
    The persistent store: the same records, bounds and answers as L{MemoryStore}, kept in
    a SQLite file through a pool whose single thread runs the operations in order.
    """

    def __init__(self, pool: _Pool, bounds: StoreBounds, clock: Callable[[], float]) -> None:
        """
        @param pool: an C{adbapi.ConnectionPool} of one connection set up by
            L{configureConnection}, on a file set up by L{prepareDatabase}.
        @param clock: wall-clock seconds (the time limit outlives the process).
        """
        self._pool = pool
        self.bounds = bounds
        self._clock = clock
        self._closed = False

    def load(self, references: References) -> Deferred[Found]:
        if self._closed:
            return fail(StoreError("the store is closed"))
        d = self._pool.runInteraction(
            _load, references.previousId, references.itemIds, self._clock(), self.bounds
        )
        return d.addErrback(_wrapFailure)

    def save(self, record: StoredResponse) -> Deferred[bool]:
        if self._closed:
            return fail(StoreError("the store is closed"))
        d = self._pool.runInteraction(_save, record, self._clock(), self.bounds)
        return d.addErrback(_wrapFailure)

    def close(self) -> Deferred[None]:
        if self._closed:
            return succeed(None)
        self._closed = True
        d = self._pool.runInteraction(_nothing)

        def closePool(result: object) -> None:
            self._pool.close()

        return d.addBoth(closePool)

    def counts(self) -> Deferred[tuple[int, int]]:
        """
        @return: the number of stored responses and their accounted bytes.
        """
        return self._pool.runInteraction(_counts)


# Interactions: run in the pool's thread, one at a time.


def _nothing(txn: _Cursor) -> None:
    return None


def _claim(txn: _Cursor) -> None:
    txn.execute("UPDATE totals SET tick = tick")


def _counts(txn: _Cursor) -> tuple[int, int]:
    txn.execute("SELECT responses, bytes FROM totals")
    count, size = txn.fetchone()
    return int(count), int(size)


def _nextTicks(txn: _Cursor, n: int) -> int:
    """
    Reserve C{n} LRU ticks; @return: the first.
    """
    txn.execute("SELECT tick FROM totals")
    first = int(txn.fetchone()[0]) + 1
    txn.execute("UPDATE totals SET tick = ?", (first + n - 1,))
    return first


def _expire(txn: _Cursor, cutoff: float) -> None:
    """
    Remove the expired responses: the least recently used ones not used since C{cutoff}
    (as L{MemoryStore} does: the LRU order is the order of last use).
    """
    while True:
        txn.execute("SELECT id, used FROM responses ORDER BY tick LIMIT 64")
        rows = txn.fetchall()
        expired = [(responseId,) for responseId, used in rows if used <= cutoff]
        if expired:
            txn.executemany("DELETE FROM responses WHERE id = ?", expired)
        if len(expired) < len(rows) or len(rows) < 64:
            return


def _save(txn: _Cursor, record: StoredResponse, now: float, bounds: StoreBounds) -> bool:
    _expire(txn, now - bounds.ttl)
    if record.size > bounds.maxBytes or bounds.maxResponses < 1:
        return False
    txn.execute("DELETE FROM responses WHERE id = ?", (record.responseId,))
    tick = _nextTicks(txn, 1)
    txn.execute(
        "INSERT INTO responses (id, previous_id, input_count, size, used, tick, entries) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            record.responseId,
            record.previousId,
            record.inputCount,
            record.size,
            now,
            tick,
            packEntries(record.entries),
        ),
    )
    txn.executemany(
        "INSERT OR IGNORE INTO items (id, response_id, position) VALUES (?, ?, ?)",
        [(itemId, record.responseId, position) for position, itemId in record.itemIds],
    )
    _evict(txn, bounds)
    return True


def _evict(txn: _Cursor, bounds: StoreBounds) -> None:
    """
    Remove the least recently used responses until both bounds hold. The newest response
    is never reached: it fits on its own.
    """
    txn.execute("SELECT responses, bytes FROM totals")
    count, size = txn.fetchone()
    while count > bounds.maxResponses or size > bounds.maxBytes:
        txn.execute("SELECT id, size FROM responses ORDER BY tick LIMIT 64")
        victims = []
        for responseId, victimSize in txn.fetchall():
            if count <= bounds.maxResponses and size <= bounds.maxBytes:
                break
            victims.append((responseId,))
            count -= 1
            size -= victimSize
        if not victims:
            break
        txn.executemany("DELETE FROM responses WHERE id = ?", victims)


def _load(
    txn: _Cursor,
    previousId: str | None,
    itemIds: Sequence[str],
    now: float,
    bounds: StoreBounds,
) -> Found:
    cutoff = now - bounds.ttl
    used: list[str] = []
    # response id -> (previous id, decoded entries), or None: each row read once per load.
    rows: dict[str, tuple[str | None, list[Any]] | None] = {}

    def read(responseId: str) -> tuple[str | None, list[Any]] | None:
        if responseId not in rows:
            txn.execute(
                "SELECT previous_id, entries FROM responses WHERE id = ? AND used > ?",
                (responseId, cutoff),
            )
            row = txn.fetchone()
            rows[responseId] = None if row is None else (row[0], unpackEntries(row[1]))
        return rows[responseId]

    def getRecord(responseId: str) -> tuple[str | None, list[Any]] | None:
        found = read(responseId)
        if found is not None:
            used.append(responseId)
        return found

    def getItem(itemId: str) -> Any | None:
        txn.execute("SELECT response_id, position FROM items WHERE id = ?", (itemId,))
        row = txn.fetchone()
        if row is None:
            return None
        owner = read(row[0])
        if owner is None:
            return None
        entries = owner[1]
        position = row[1]
        if not 0 <= position < len(entries) or not isinstance(entries[position], dict):
            raise StoreError("the state file holds a damaged item index")
        used.append(row[0])
        return entries[position]

    previous = None
    if previousId is not None:
        previous = assembleConversation(previousId, getRecord, getItem)
        if previous is None:
            del used[:]
    items = {}
    for itemId in itemIds:
        item = getItem(itemId)
        if item is not None:
            items[itemId] = item
    if used:
        first = _nextTicks(txn, len(used))
        txn.executemany(
            "UPDATE responses SET used = ?, tick = ? WHERE id = ?",
            [(now, first + n, responseId) for n, responseId in enumerate(used)],
        )
    return Found(previous=previous, items=items)
