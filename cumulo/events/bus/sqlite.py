"""The SQLite bus: the embedded, durable default backend.

One file holds the event log, the dedup keys, the consumer groups and the
deliveries in flight. It runs in WAL mode with ``synchronous=FULL`` by default,
so a ``publish`` that has returned survives ``kill -9`` (and power loss).

Group commit: one thread owns the write connection. Every write (publish,
fetch, settle, ...) is queued to it, and everything queued while one
transaction was committing runs in the next one: one fsync for all of them.
That is what makes many small concurrent publishes fast. Reads (``read``,
``topics``, ``groups``) use a second connection and never wait for the writer.

Ownership: the process holding an ``flock`` on ``<file>.lock`` owns the
leases. The platform takes it on ``start()`` and, as owner, makes the leases a
previous (killed) owner left behind due at once. Other processes on the same
file (the CLI publishing an event) do not get the lock and leave leases alone;
they publish and read, but must not consume the platform's groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from cumulo.errors import BusError, BusUnavailableError, InvalidEventError, UnknownBackendError
from cumulo.events.bus.base import (
    Accept,
    Ack,
    Bus,
    BusSettings,
    DeadLetter,
    GroupInfo,
    Message,
    Nack,
    Settlement,
    StartAt,
    check_replay,
    check_replay_start,
)
from cumulo.events.event import Event, from_json, to_json, validate_attributes

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: every bus counts as the owner
    fcntl = None  # type: ignore[assignment]

SYNCHRONOUS_MODES = ("FULL", "NORMAL", "OFF")
URL_OPTIONS = ("synchronous", "busy_timeout")
SCHEMA_VERSION = 1
MAX_BATCH = 1024  # operations per group-committed transaction
SCAN_FACTOR = 50  # a fetch scans at most limit * SCAN_FACTOR new events ...
MAX_SCAN = 5000  # ... but no more than this (unless limit itself is larger)
DEDUP_CHUNK = 400  # keys per dedup lookup (two SQL parameters each)
NO_FLOOR = 2**63 - 1
UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
    }
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    offset INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after trim
    topic TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    published_at REAL NOT NULL, body BLOB NOT NULL  -- CloudEvents JSON format
);
CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic, offset);
CREATE TABLE IF NOT EXISTS dedup (
    topic TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL,
    offset INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (topic, source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_time ON dedup (at);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY, topic TEXT NOT NULL, cursor INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS groups_by_topic ON groups (topic);
CREATE TABLE IF NOT EXISTS deliveries (
    grp TEXT NOT NULL, offset INTEGER NOT NULL, attempts INTEGER NOT NULL,
    due REAL NOT NULL, leased INTEGER NOT NULL, error TEXT, PRIMARY KEY (grp, offset)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_due ON deliveries (grp, due)
"""


# --- settings ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SqliteSettings:
    """Where the bus file lives and how hard it syncs."""

    path: Path
    synchronous: str = "FULL"  # NORMAL may lose the last commits on power loss, not on kill -9
    busy_timeout: float = 10.0  # seconds to wait for another process's write lock
    bus: BusSettings = field(default_factory=BusSettings)

    def __post_init__(self) -> None:
        if self.synchronous not in SYNCHRONOUS_MODES:
            raise BusError(f"sqlite synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        if self.busy_timeout < 0:
            raise BusError("sqlite busy_timeout must not be negative")

    @classmethod
    def from_url(cls, url: str, settings: BusSettings | None = None) -> SqliteSettings:
        """``sqlite:///relative.db`` or ``sqlite:////abs.db``; options from ``settings.extra``,
        then from the query (``?synchronous=NORMAL&busy_timeout=5``)."""
        settings = settings or BusSettings()
        parts = urlsplit(url)
        if parts.scheme != "sqlite":
            raise UnknownBackendError(f"not a sqlite URL: {url!r}")
        if parts.netloc or len(parts.path) < 2:
            raise BusError(
                f"bad sqlite URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db"
            )
        options = {**settings.extra, **dict(parse_qsl(parts.query, keep_blank_values=True))}
        return cls(Path(unquote(parts.path[1:])), bus=settings, **_parse_options(options, url))

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


def _parse_options(options: dict[str, str], url: str) -> dict[str, Any]:
    unknown = sorted(set(options) - set(URL_OPTIONS))
    if unknown:
        raise BusError(f"unknown sqlite option(s) {unknown} in {url!r}; known: {URL_OPTIONS}")
    parsed: dict[str, Any] = {}
    if "synchronous" in options:
        parsed["synchronous"] = options["synchronous"].upper()
    if "busy_timeout" in options:
        try:
            parsed["busy_timeout"] = float(options["busy_timeout"])
        except ValueError as e:
            raise BusError(f"sqlite busy_timeout must be a number of seconds: {url!r}") from e
    return parsed


# --- connections, errors, ownership --------------------------------------------


def _translate(error: BaseException, path: Path) -> BaseException:
    """sqlite3 errors become Cumulo's; anything else (a filter raising) passes through."""
    if not isinstance(error, sqlite3.Error):
        return error
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code in UNAVAILABLE_CODES:
        translated: BusError = BusUnavailableError(f"sqlite bus: {error}", address=str(path))
    else:
        translated = BusError(f"sqlite bus {path}: {error}")
    translated.__cause__ = error
    return translated


def _connect(path: Path, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except sqlite3.Error as e:
        raise _translate(e, path) from e
    if mode != "wal":
        conn.close()
        raise BusError(f"sqlite bus {path}: the file system does not support WAL mode")
    return conn


class _OwnerLock:
    """An ``flock`` on ``<bus file>.lock``: the holder owns the file's leases.

    The kernel drops the lock when its process dies, even by ``kill -9``.
    """

    def __init__(self, path: Path):
        self.path = path
        self.held = False
        self._fd: int | None = None

    def acquire(self) -> bool:
        if fcntl is None:  # pragma: no cover - no flock (Windows): assume one process per file
            self.held = True
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise BusUnavailableError(
                f"cannot open the owner lock: {e}", address=str(self.path)
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd, self.held = fd, True
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
        self._fd, self.held = None, False


# --- waking waiters ---------------------------------------------------------------


class _Doorbell:
    """Tells coroutines, on any event loop, that one group may have work.

    The writer thread rings it after a commit that published to the group's topic.
    It stays rung until the group's next fetch, so a publish landing between a
    fetch and the following ``wait`` is not missed. A bell whose topic is not
    known yet rings for every topic. ``next_due`` is the group's earliest retry
    or lease expiry as of its last fetch or settle.
    """

    def __init__(self, topic: str | None, *, rung: bool):
        self.topic = topic
        self._lock = threading.Lock()
        self._rung = rung
        self._next_due: float | None = None
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def ring(self) -> None:
        with self._lock:
            self._rung = True
            self._wake_all()

    def clear(self) -> None:
        with self._lock:
            self._rung = False

    def set_due(self, due: float | None) -> None:
        with self._lock:
            self._next_due = due
            self._wake_all()  # they recompute how long to sleep

    async def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            woken: asyncio.Future[None] = loop.create_future()
            with self._lock:
                if self._rung:
                    return
                pause = min(deadline - time.monotonic(), self._until_due())
                if pause <= 0:
                    return
                self._waiters.add((loop, woken))
            try:
                await asyncio.wait_for(woken, pause)
            except TimeoutError:
                return
            finally:
                with self._lock:
                    self._waiters.discard((loop, woken))

    def _until_due(self) -> float:
        return float("inf") if self._next_due is None else self._next_due - time.time()

    def _wake_all(self) -> None:
        for loop, woken in self._waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_resolve, woken, None, None)


class _Doorbells:
    """The doorbells of the groups this process consumes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bells: dict[str, _Doorbell] = {}

    def get(self, group: str) -> _Doorbell | None:
        with self._lock:
            return self._bells.get(group)

    def bell(self, group: str, topic: str | None, *, rung: bool) -> _Doorbell:
        """The group's bell; a new one is rung when nobody knows what the group has."""
        with self._lock:
            bell = self._bells.setdefault(group, _Doorbell(topic, rung=rung))
            bell.topic = bell.topic or topic
            return bell

    def ring_topics(self, topics: set[str]) -> None:
        if not topics:
            return
        with self._lock:
            bells = [
                bell for bell in self._bells.values() if bell.topic in topics or not bell.topic
            ]
        for bell in bells:
            bell.ring()


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


# --- the writer thread (group commit) and the reader ---------------------------------


@dataclass(slots=True)
class _Txn:
    """What a write operation gets: the connection inside an open transaction."""

    conn: sqlite3.Connection
    now: float
    touched: set[str] = field(default_factory=set)  # topics published to: ring their bells


T = TypeVar("T")
Operation = Callable[[_Txn], Any]
Query = Callable[[sqlite3.Connection], Any]


class _Queued(NamedTuple):
    operation: Operation
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class _Outcome(NamedTuple):
    value: Any
    error: BaseException | None
    touched: set[str]


class _Writer:
    """The one thread that writes: each transaction runs every operation queued meanwhile."""

    def __init__(self, conn: sqlite3.Connection, path: Path, on_commit: Callable[[set[str]], None]):
        self.transactions = 0
        self._conn, self._path, self._on_commit = conn, path, on_commit
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cumulo-sqlite-writer", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    async def submit(self, operation: Operation) -> Any:
        if self._closed:
            raise BusError(f"sqlite bus {self._path} is closed")
        loop = asyncio.get_running_loop()
        queued = _Queued(operation, loop, loop.create_future())
        self._queue.put(queued)
        return await queued.future

    def stop(self) -> None:
        """Finish what is queued, then close the connection (blocking)."""
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                outcomes = self._commit(batch)
            except BaseException as e:  # never let the writer die silently
                outcomes = self._crashed(batch, e)
            for queued, outcome in zip(batch, outcomes, strict=True):
                with contextlib.suppress(RuntimeError):  # the caller's loop is closed
                    queued.loop.call_soon_threadsafe(
                        _resolve, queued.future, outcome.value, outcome.error
                    )

    def _next_batch(self) -> list[_Queued] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                queued = self._queue.get_nowait()
            except queue.Empty:
                break
            if queued is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(queued)
        return batch

    def _commit(self, batch: list[_Queued]) -> list[_Outcome]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            return self._failed(batch, e)
        outcomes = []
        for queued in batch:
            outcomes.append(self._apply(queued.operation))
            if not self._conn.in_transaction:  # SQLite rolled back everything (I/O error, ...)
                return self._failed(batch, outcomes[-1].error or BusError("transaction lost"))
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            return self._failed(batch, e)
        self.transactions += 1
        self._on_commit(set().union(*(outcome.touched for outcome in outcomes)))
        return outcomes

    def _apply(self, operation: Operation) -> _Outcome:
        """Run one operation in a savepoint, so that its failure does not undo the others."""
        txn = _Txn(self._conn, time.time())
        self._conn.execute("SAVEPOINT op")
        try:
            value = operation(txn)
        except Exception as e:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK TO op")
                self._conn.execute("RELEASE op")
            return _Outcome(None, _translate(e, self._path), set())
        self._conn.execute("RELEASE op")
        return _Outcome(value, None, txn.touched)

    def _crashed(self, batch: list[_Queued], error: BaseException) -> list[_Outcome]:
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
        return self._failed(batch, error)

    def _failed(self, batch: list[_Queued], error: BaseException) -> list[_Outcome]:
        """The whole transaction is lost: every caller gets its own exception (own traceback)."""
        return [_Outcome(None, self._batch_error(error), set()) for _ in batch]

    def _batch_error(self, error: BaseException) -> BaseException:
        translated = _translate(error, self._path)
        if translated is error:
            translated = BusError(f"sqlite bus {self._path}: transaction failed: {error!r}")
            translated.__cause__ = error
        return translated


class _Reader:
    """A read connection used by one thread; WAL readers never block the writer."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn, self._path = conn, path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cumulo-sqlite-reader")

    async def run(self, query: Query) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, query)

    def close(self) -> None:
        self._executor.submit(self._conn.close).result()
        self._executor.shutdown()

    def _call(self, query: Query) -> Any:
        try:
            return query(self._conn)
        except sqlite3.Error as e:
            raise _translate(e, self._path) from e


# --- operations (run by the writer, inside a transaction) ------------------------------


class _Encoded(NamedTuple):
    """An event ready to store, encoded by the caller so the writer only runs SQL."""

    source: str
    id: str
    type: str
    body: bytes


def _encode(event: Event) -> _Encoded:
    problems = validate_attributes(event.attributes)
    if problems:
        raise InvalidEventError(problems)
    return _Encoded(event.source, event.id, event.type, to_json(event))


def _message(offset: int, topic: str, published_at: float, body: bytes, attempt: int) -> Message:
    return Message(offset, topic, from_json(body), published_at, attempt)


def _last_offset(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return row[0] if row else 0


def _create_schema(txn: _Txn) -> None:
    (version,) = txn.conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise BusError(f"bus schema version {version} is newer than this Cumulo understands")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            txn.conn.execute(statement)
    txn.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _release_leases(txn: _Txn) -> None:
    """Leases of a dead owner: due now (a nacked message keeps its retry time)."""
    txn.conn.execute("UPDATE deliveries SET due = ?, leased = 0 WHERE leased = 1", (txn.now,))


def _publish(txn: _Txn, topic: str, rows: Sequence[_Encoded], window: float) -> list[int]:
    known = _recent_offsets(txn, topic, rows, window) if window > 0 else {}
    last = _last_offset(txn.conn)
    offsets, fresh = [], []
    for row in rows:
        key = (row.source, row.id)
        if key in known:
            offsets.append(known[key])
            continue
        last += 1
        offsets.append(last)
        fresh.append((last, topic, row.source, row.id, row.type, txn.now, row.body))
        if window > 0:
            known[key] = last
    txn.conn.executemany(
        "INSERT INTO events (offset, topic, source, id, type, published_at, body)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        fresh,
    )
    if window > 0:
        txn.conn.executemany(
            "INSERT OR REPLACE INTO dedup (topic, source, id, offset, at) VALUES (?, ?, ?, ?, ?)",
            [(topic, source, id_, offset, txn.now) for offset, _, source, id_, *_ in fresh],
        )
    if fresh:
        txn.touched.add(topic)
    return offsets


def _recent_offsets(
    txn: _Txn, topic: str, rows: Sequence[_Encoded], window: float
) -> dict[tuple[str, str], int]:
    """Offsets of the events among ``rows`` already published to ``topic`` within the window."""
    keys = list({(row.source, row.id) for row in rows})
    found: dict[tuple[str, str], int] = {}
    for start in range(0, len(keys), DEDUP_CHUNK):
        chunk = keys[start : start + DEDUP_CHUNK]
        values = ", ".join(["(?, ?)"] * len(chunk))
        sql = (
            f"SELECT k.column1, k.column2, d.offset FROM (VALUES {values}) AS k"
            " JOIN dedup AS d ON d.topic = ? AND d.source = k.column1 AND d.id = k.column2"
            " WHERE d.at > ?"
        )
        params = [part for key in chunk for part in key] + [topic, txn.now - window]
        found.update(
            ((source, id_), offset) for source, id_, offset in txn.conn.execute(sql, params)
        )
    return found


def _subscribe(txn: _Txn, group: str, topic: str, start: StartAt) -> None:
    row = txn.conn.execute("SELECT topic FROM groups WHERE name = ?", (group,)).fetchone()
    if row is not None:
        if row[0] != topic:
            raise BusError(f"group {group!r} already consumes topic {row[0]!r}, not {topic!r}")
        return
    cursor = 0
    if start == "latest":
        sql = "SELECT COALESCE(MAX(offset), 0) FROM events WHERE topic = ?"
        (cursor,) = txn.conn.execute(sql, (topic,)).fetchone()
    txn.conn.execute(
        "INSERT INTO groups (name, topic, cursor) VALUES (?, ?, ?)", (group, topic, cursor)
    )


def _topic_end(conn: sqlite3.Connection, topic: str) -> int:
    """The last offset of ``topic`` (0 when it has no events)."""
    sql = "SELECT COALESCE(MAX(offset), 0) FROM events WHERE topic = ?"
    return int(conn.execute(sql, (topic,)).fetchone()[0])


def _group(conn: sqlite3.Connection, group: str) -> tuple[str, int]:
    row = conn.execute("SELECT topic, cursor FROM groups WHERE name = ?", (group,)).fetchone()
    if row is None:
        raise BusError(f"unknown consumer group {group!r}: subscribe it first")
    return str(row[0]), int(row[1])


def _next_due(conn: sqlite3.Connection, group: str) -> float | None:
    due = conn.execute("SELECT MIN(due) FROM deliveries WHERE grp = ?", (group,)).fetchone()[0]
    return None if due is None else float(due)


class _Fetched(NamedTuple):
    topic: str
    messages: list[Message]
    next_due: float | None


def _fetch(txn: _Txn, group: str, limit: int, lease: float, accept: Accept | None) -> _Fetched:
    topic, cursor = _group(txn.conn, group)
    messages = _take_due(txn, group, limit, lease) if limit > 0 else []
    if len(messages) < limit:
        messages += _take_new(txn, group, topic, cursor, limit - len(messages), lease, accept)
    return _Fetched(topic, messages, _next_due(txn.conn, group))


def _take_due(txn: _Txn, group: str, limit: int, lease: float) -> list[Message]:
    """Expired leases and retries that have come due, leased again."""
    rows = txn.conn.execute(
        "SELECT d.offset, e.topic, e.published_at, e.body, d.attempts + 1"
        " FROM deliveries AS d JOIN events AS e ON e.offset = d.offset"
        " WHERE d.grp = ? AND d.due <= ? ORDER BY d.due LIMIT ?",
        (group, txn.now, limit),
    ).fetchall()
    txn.conn.executemany(
        "UPDATE deliveries SET attempts = attempts + 1, due = ?, leased = 1"
        " WHERE grp = ? AND offset = ?",
        [(txn.now + lease, group, row[0]) for row in rows],
    )
    return [_message(*row) for row in rows]


def _take_new(
    txn: _Txn, group: str, topic: str, cursor: int, want: int, lease: float, accept: Accept | None
) -> list[Message]:
    """New events after the cursor; a bounded scan, so a picky filter cannot stall the writer."""
    sql = "SELECT offset FROM deliveries WHERE grp = ? AND offset > ?"
    pending = {offset for (offset,) in txn.conn.execute(sql, (group, cursor))}  # after a replay
    scan = max(want, min(want * SCAN_FACTOR, MAX_SCAN))
    taken, last = [], cursor
    for offset, published_at, body in txn.conn.execute(
        "SELECT offset, published_at, body FROM events WHERE topic = ? AND offset > ?"
        " ORDER BY offset LIMIT ?",
        (topic, cursor, scan),
    ):
        last = offset
        if offset in pending:
            continue
        message = _message(offset, topic, published_at, body, 1)
        if accept is None or accept(message.event):
            taken.append(message)
            if len(taken) == want:
                break
    txn.conn.executemany(
        "INSERT INTO deliveries (grp, offset, attempts, due, leased) VALUES (?, ?, 1, ?, 1)",
        [(group, message.offset, txn.now + lease) for message in taken],
    )
    txn.conn.execute("UPDATE groups SET cursor = ? WHERE name = ?", (last, group))
    return taken


Prepared = tuple[Settlement, list[tuple[str, _Encoded]]]  # a settlement and what it publishes


def _prepare(settlement: Settlement) -> Prepared:
    if isinstance(settlement, Ack):
        return settlement, [(topic, _encode(event)) for topic, event in settlement.emit]
    if isinstance(settlement, DeadLetter):
        return settlement, [(settlement.topic, _encode(settlement.event))]
    return settlement, []


def _settle(txn: _Txn, group: str, prepared: list[Prepared], window: float) -> float | None:
    for settlement, outgoing in prepared:
        key = (group, settlement.offset)
        if isinstance(settlement, Nack):
            txn.conn.execute(
                "UPDATE deliveries SET due = ?, leased = 0, error = ? WHERE grp = ? AND offset = ?",
                (txn.now + settlement.delay, settlement.error, *key),
            )
            continue
        txn.conn.execute("DELETE FROM deliveries WHERE grp = ? AND offset = ?", key)
        dedup_window = window if isinstance(settlement, Ack) else 0.0  # dead letters: no dedup
        for topic, row in outgoing:
            _publish(txn, topic, [row], dedup_window)
    return _next_due(txn.conn, group)


def _replay(
    txn: _Txn, group: str | None, topic: str | None, offset: int | None, at: float | None
) -> int:
    if group is not None:
        targets = [(group, *_group(txn.conn, group))]
    else:
        sql = "SELECT name, topic, cursor FROM groups WHERE topic = ?"
        targets = txn.conn.execute(sql, (topic,)).fetchall()
    replayed = targets[0][1] if targets else str(topic)
    check_replay_start(replayed, offset, at, _topic_end(txn.conn, replayed))
    again = 0
    for name, group_topic, cursor in targets:
        if offset is not None:
            new_cursor = max(offset - 1, 0)
        else:
            sql = "SELECT COALESCE(MAX(offset), 0) FROM events WHERE topic = ? AND published_at < ?"
            (new_cursor,) = txn.conn.execute(sql, (group_topic, at)).fetchone()
        sql = "SELECT COUNT(*) FROM events WHERE topic = ? AND offset > ? AND offset <= ?"
        again += txn.conn.execute(sql, (group_topic, new_cursor, cursor)).fetchone()[0]
        txn.conn.execute("UPDATE groups SET cursor = ? WHERE name = ?", (new_cursor, name))
        txn.touched.add(group_topic)
    return again


def _trim(txn: _Txn, retention: float, window: float) -> int:
    removed = 0
    for topic in _event_topics(txn.conn):
        removed += txn.conn.execute(
            "DELETE FROM events WHERE topic = ? AND offset <= ? AND published_at < ?",
            (topic, _trim_floor(txn.conn, topic), txn.now - retention),
        ).rowcount
    txn.conn.execute("DELETE FROM dedup WHERE at <= ?", (txn.now - window,))
    return removed


def _trim_floor(conn: sqlite3.Connection, topic: str) -> int:
    """The highest offset of ``topic`` every group is done with (no cursor before, no delivery)."""
    lowest_cursor, first_pending = conn.execute(
        "SELECT MIN(cursor), MIN((SELECT MIN(offset) FROM deliveries WHERE grp = name))"
        " FROM groups WHERE topic = ?",
        (topic,),
    ).fetchone()
    floor = NO_FLOOR if lowest_cursor is None else lowest_cursor
    return floor if first_pending is None else min(floor, first_pending - 1)


# --- queries (run by the reader) ------------------------------------------------------


def _event_topics(conn: sqlite3.Connection) -> list[str]:
    """Distinct topics by skipping through the index: one lookup per topic, not per event."""
    rows = conn.execute(
        "WITH RECURSIVE t(name) AS (SELECT MIN(topic) FROM events UNION ALL"
        " SELECT (SELECT MIN(topic) FROM events WHERE topic > t.name) FROM t"
        " WHERE t.name IS NOT NULL) SELECT name FROM t WHERE name IS NOT NULL"
    )
    return [name for (name,) in rows]


def _topics(conn: sqlite3.Connection) -> list[str]:
    subscribed = [name for (name,) in conn.execute("SELECT DISTINCT topic FROM groups")]
    return sorted({*_event_topics(conn), *subscribed})


def _read(
    conn: sqlite3.Connection, topic: str, after: int, limit: int, since: float | None
) -> list[Message]:
    rows = conn.execute(
        "SELECT offset, published_at, body FROM events"
        " WHERE topic = ? AND offset > ? AND published_at >= ? ORDER BY offset LIMIT ?",
        (topic, after, float("-inf") if since is None else since, limit),
    )
    return [_message(offset, topic, at, body, 0) for offset, at, body in rows]


def _groups(conn: sqlite3.Connection) -> list[GroupInfo]:
    rows = conn.execute(
        "SELECT name, topic, cursor,"
        " (SELECT COUNT(*) FROM deliveries WHERE grp = g.name),"
        " (SELECT COUNT(*) FROM events WHERE topic = g.topic AND offset > g.cursor)"
        " FROM groups AS g ORDER BY name"
    )
    return [GroupInfo(*row) for row in rows]


def _group_topic(conn: sqlite3.Connection, group: str) -> str:
    return _group(conn, group)[0]


# --- the bus ------------------------------------------------------------------


class SqliteBus(Bus):
    """The bus in one SQLite file. Takes :class:`SqliteSettings` or a ``sqlite://`` URL.

    ``bus_settings`` applies when a URL is given (settings carry their own).
    """

    def __init__(self, settings: SqliteSettings | str, *, bus_settings: BusSettings | None = None):
        if isinstance(settings, str):
            settings = SqliteSettings.from_url(settings, bus_settings)
        self.settings = settings
        self.url = settings.url
        self._writer: _Writer | None = None
        self._reader: _Reader | None = None
        self._owner = _OwnerLock(settings.path.with_name(settings.path.name + ".lock"))
        self._bells = _Doorbells()

    @property
    def transactions(self) -> int:
        """Write transactions committed: far fewer than operations, thanks to group commit."""
        return self._writer.transactions if self._writer else 0

    @property
    def owner(self) -> bool:
        """Whether this bus owns the file's leases (see the module docstring)."""
        return self._owner.held

    async def start(self) -> None:
        if self._writer is not None:
            return
        await asyncio.to_thread(self._open)
        try:
            await self._write(_create_schema)
            if await asyncio.to_thread(self._owner.acquire):
                await self._write(_release_leases)
        except BaseException:
            await self.close()
            raise

    def _open(self) -> None:
        path, sync, wait = self.settings.path, self.settings.synchronous, self.settings.busy_timeout
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BusUnavailableError(
                f"cannot create the bus folder: {e}", address=str(path)
            ) from e
        write_conn = _connect(path, sync, wait)
        try:
            read_conn = _connect(path, sync, wait)
        except BaseException:
            write_conn.close()
            raise
        self._writer = _Writer(write_conn, path, self._bells.ring_topics)
        self._reader = _Reader(read_conn, path)
        self._writer.start()

    async def close(self) -> None:
        writer, reader, self._writer, self._reader = self._writer, self._reader, None, None
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        if reader is not None:
            await asyncio.to_thread(reader.close)
        self._owner.release()

    async def publish(
        self, topic: str, events: Sequence[Event], *, dedup: bool = True
    ) -> list[int]:
        rows = [_encode(event) for event in events]
        if not rows:
            return []
        window = self.settings.bus.dedup_window if dedup else 0.0
        return await self._write(partial(_publish, topic=topic, rows=rows, window=window))

    async def subscribe(self, group: str, topic: str, *, start: StartAt = "latest") -> None:
        await self._write(partial(_subscribe, group=group, topic=topic, start=start))

    async def fetch(
        self, group: str, *, limit: int, lease: float, accept: Accept | None = None
    ) -> list[Message]:
        bell = self._bells.bell(group, None, rung=False)  # this fetch looks at everything
        bell.clear()
        fetch = partial(_fetch, group=group, limit=limit, lease=lease, accept=accept)
        fetched: _Fetched = await self._write(fetch)
        self._bells.bell(group, fetched.topic, rung=False).set_due(fetched.next_due)
        return fetched.messages

    async def settle(self, group: str, settlements: Sequence[Settlement]) -> None:
        prepared = [_prepare(settlement) for settlement in settlements]
        if not prepared:
            return
        window = self.settings.bus.dedup_window
        settle = partial(_settle, group=group, prepared=prepared, window=window)
        next_due = await self._write(settle)
        bell = self._bells.get(group)
        if bell is not None:
            bell.set_due(next_due)

    async def wait(self, group: str, timeout: float) -> None:
        bell = self._bells.get(group)
        if bell is None:
            topic = await self._read(partial(_group_topic, group=group))
            bell = self._bells.bell(group, topic, rung=True)
        await bell.wait(timeout)

    async def replay(
        self,
        *,
        group: str | None = None,
        topic: str | None = None,
        from_offset: int | None = None,
        from_time: float | None = None,
    ) -> int:
        check_replay(group, topic, from_offset, from_time)
        replay = partial(_replay, group=group, topic=topic, offset=from_offset, at=from_time)
        return await self._write(replay)

    async def read(
        self, topic: str, *, after: int = 0, limit: int = 100, since: float | None = None
    ) -> list[Message]:
        return await self._read(partial(_read, topic=topic, after=after, limit=limit, since=since))

    async def last_offset(self, topic: str) -> int:
        return int(await self._read(partial(_topic_end, topic=topic)))

    async def topics(self) -> list[str]:
        return await self._read(_topics)

    async def groups(self) -> list[GroupInfo]:
        return await self._read(_groups)

    async def trim(self) -> int:
        retention, window = self.settings.bus.retention, self.settings.bus.dedup_window
        return await self._write(partial(_trim, retention=retention, window=window))

    async def _write(self, operation: Callable[[_Txn], T]) -> T:
        if self._writer is None:
            raise BusError(f"sqlite bus {self.settings.path} is not started")
        return cast(T, await self._writer.submit(operation))

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            raise BusError(f"sqlite bus {self.settings.path} is not started")
        return cast(T, await self._reader.run(query))
