"""Group commit: one thread owns the write connection and runs every queued write.

Every write (publish, taking a fetch's leases, settle, ...) is queued to the
writer, and everything queued while one transaction was committing runs in the
next one: one fsync for all of them. Each operation runs in its own savepoint,
so one that fails does not undo the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from cumulo.errors import BusError
from cumulo.events.bus.sqlite.errors import transaction_failed, translate
from cumulo.events.bus.sqlite.wakeups import resolve

MAX_BATCH = 1024  # operations per group-committed transaction


@dataclass(slots=True)
class Txn:
    """What a write operation gets: the connection inside an open transaction."""

    conn: sqlite3.Connection
    now: float
    touched: set[str] = field(default_factory=set)  # topics published to: ring their bells


Operation = Callable[[Txn], Any]


class _Queued(NamedTuple):
    operation: Operation
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class _Outcome(NamedTuple):
    value: Any
    error: BaseException | None
    touched: set[str]


class Writer:
    """The one thread that writes: each transaction runs every operation queued meanwhile.

    ``on_commit`` gets the topics a committed transaction published to.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, on_commit: Callable[[set[str]], None]):
        self.transactions = 0  # committed; far fewer than operations
        self._conn, self._path, self._on_commit = conn, path, on_commit
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cumulo-sqlite-writer", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    async def submit(self, operation: Operation) -> Any:
        """Run ``operation`` in the next transaction; its value once that has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.enqueue(operation, loop, future)
        return await future

    def enqueue(
        self, operation: Operation, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
    ) -> None:
        """Queue ``operation`` from any thread; once committed, its outcome settles ``future``."""
        if self._closed:
            raise BusError(f"sqlite bus {self._path} is closed")
        self._queue.put(_Queued(operation, loop, future))

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
                        resolve, queued.future, outcome.value, outcome.error
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
        txn = Txn(self._conn, time.time())
        self._conn.execute("SAVEPOINT op")
        try:
            value = operation(txn)
        except Exception as e:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK TO op")
                self._conn.execute("RELEASE op")
            return _Outcome(None, translate(e, self._path), set())
        self._conn.execute("RELEASE op")
        return _Outcome(value, None, txn.touched)

    def _crashed(self, batch: list[_Queued], error: BaseException) -> list[_Outcome]:
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
        return self._failed(batch, error)

    def _failed(self, batch: list[_Queued], error: BaseException) -> list[_Outcome]:
        """The whole transaction is lost: every caller gets its own exception (own traceback)."""
        return [_Outcome(None, transaction_failed(error, self._path), set()) for _ in batch]
