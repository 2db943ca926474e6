"""Opening the bus file (WAL, the sync mode) and the reader: one thread, one read connection."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cumulo.errors import BusError
from cumulo.events.bus.sqlite.errors import translate
from cumulo.events.bus.sqlite.wakeups import resolve

Query = Callable[[sqlite3.Connection], Any]


def connect(path: Path, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    """A connection in WAL mode, autocommit (transactions are explicit), usable from any thread."""
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except sqlite3.Error as e:
        raise translate(e, path) from e
    if mode != "wal":
        conn.close()
        raise BusError(f"sqlite bus {path}: the file system does not support WAL mode")
    return conn


class Reader:
    """A read connection used by one thread; WAL readers never block the writer.

    Each query runs in one read transaction, so all its statements see the same
    committed state. Besides ``read``, ``topics`` and ``groups``, the reader
    plans fetches: decoding and filtering happen here, not in the writer.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn, self._path = conn, path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cumulo-sqlite-reader")

    async def run(self, query: Query) -> Any:
        """``query(connection)`` on the reader thread; sqlite3 errors become Cumulo's."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, query)

    def run_then(
        self, query: Query, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
    ) -> None:
        """Start ``query`` without waiting for it: it settles ``future`` itself, or its error does.

        What a fetch uses: the plan hands the take to the writer, whose outcome
        settles ``future``, so the caller's loop wakes once, not twice.
        """

        def call() -> None:
            try:
                self._call(query)
            except BaseException as error:
                with contextlib.suppress(RuntimeError):  # the caller's loop is closed
                    loop.call_soon_threadsafe(resolve, future, None, error)

        self._executor.submit(call)

    def close(self) -> None:
        """Close the connection once the queries already submitted are done (blocking)."""
        self._executor.submit(self._conn.close).result()
        self._executor.shutdown()

    def _call(self, query: Query) -> Any:
        try:
            self._conn.execute("BEGIN")
            try:
                return query(self._conn)
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")  # it only read: ending it changes nothing
        except sqlite3.Error as e:
            raise translate(e, self._path) from e
