"""Fixtures for the SQLite bus's parts: a bus file with the schema, transactions, a started bus.

The parts are tested on real SQLite files in ``tmp_path``; nothing here is faked.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from cumulo.events.bus.sqlite import SqliteBus, SqliteSettings
from cumulo.events.bus.sqlite.connections import connect
from cumulo.events.bus.sqlite.schema import create_schema
from cumulo.events.bus.sqlite.writer import Txn

T = TypeVar("T")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bus.db"


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A WAL connection on a bus file that has the schema."""
    conn = connect(db_path, "NORMAL", 1.0)
    run_in_txn(conn, create_schema)
    yield conn
    conn.close()


def run_in_txn(
    conn: sqlite3.Connection, operation: Callable[[Txn], T], now: float | None = None
) -> T:
    """``operation`` in its own committed transaction (rolled back if it raises), as the writer runs it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        value = operation(Txn(conn, time.time() if now is None else now))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return value


@pytest.fixture
async def sqlite_bus(db_path: Path) -> AsyncIterator[SqliteBus]:
    """A started bus on ``db_path`` (``synchronous=NORMAL``: these tests are not about fsync)."""
    async with SqliteBus(SqliteSettings(db_path, synchronous="NORMAL")) as bus:
        yield bus


def cursor_of(conn: sqlite3.Connection, group: str) -> int:
    """The group's cursor as stored."""
    (cursor,) = conn.execute("SELECT cursor FROM groups WHERE name = ?", (group,)).fetchone()
    return int(cursor)


def deliveries_of(conn: sqlite3.Connection, group: str) -> dict[int, tuple[int, int]]:
    """The group's deliveries as stored: offset -> (attempts, leased)."""
    rows = conn.execute(
        "SELECT offset, attempts, leased FROM deliveries WHERE grp = ? ORDER BY offset", (group,)
    )
    return {offset: (attempts, leased) for offset, attempts, leased in rows}
