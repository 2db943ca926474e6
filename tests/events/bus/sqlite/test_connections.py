"""Connections and the reader: WAL and the sync mode are set; each query sees one snapshot."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from cumulo.errors import BusError, BusUnavailableError
from cumulo.events.bus.sqlite.connections import Reader, connect

SYNC_LEVELS = {"OFF": 0, "NORMAL": 1, "FULL": 2}  # what PRAGMA synchronous reports


@pytest.mark.parametrize("mode", list(SYNC_LEVELS))
def test_a_connection_is_in_wal_mode_with_the_sync_mode_asked_for(db_path: Path, mode: str):
    conn = connect(db_path, mode, 1.0)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (SYNC_LEVELS[mode],)
    assert not conn.in_transaction  # autocommit: the bus begins its transactions itself
    conn.close()


def test_a_connection_serves_another_thread(db_path: Path):
    conn = connect(db_path, "NORMAL", 1.0)
    found: list[object] = []
    worker = threading.Thread(target=lambda: found.append(conn.execute("SELECT 1").fetchone()))
    worker.start()
    worker.join()
    assert found == [(1,)]
    conn.close()


def test_a_file_that_cannot_be_opened_is_unavailable(tmp_path: Path):
    with pytest.raises(BusUnavailableError):
        connect(tmp_path / "missing-folder" / "bus.db", "FULL", 1.0)


async def test_a_query_sees_one_snapshot_while_another_connection_commits(
    db_path: Path, conn: sqlite3.Connection
):
    conn.execute("CREATE TABLE n (x)")
    reader = Reader(connect(db_path, "NORMAL", 1.0), db_path)

    def count_twice(read: sqlite3.Connection) -> tuple[int, int]:
        before = read.execute("SELECT COUNT(*) FROM n").fetchone()[0]
        conn.execute("INSERT INTO n VALUES (1)")  # committed meanwhile by the writer's side
        return before, read.execute("SELECT COUNT(*) FROM n").fetchone()[0]

    assert await reader.run(count_twice) == (0, 0)
    assert await reader.run(lambda read: read.execute("SELECT COUNT(*) FROM n").fetchone()) == (1,)
    reader.close()


async def test_a_failed_query_leaves_the_reader_usable(db_path: Path, conn: sqlite3.Connection):
    reader = Reader(connect(db_path, "NORMAL", 1.0), db_path)
    with pytest.raises(BusError, match=str(db_path)):
        await reader.run(lambda read: read.execute("SELECT * FROM no_such_table"))

    def filter_raises(read: sqlite3.Connection) -> None:
        read.execute("SELECT 1").fetchone()
        raise ZeroDivisionError("a trigger filter")

    with pytest.raises(ZeroDivisionError):
        await reader.run(filter_raises)
    # the read transactions ended: the next query begins its own and sees new commits
    conn.execute("CREATE TABLE later (x)")
    query = "SELECT name FROM sqlite_master WHERE name = 'later'"
    assert await reader.run(lambda read: read.execute(query).fetchall()) == [("later",)]
    reader.close()


async def test_closing_the_reader_waits_for_queries_already_submitted(
    db_path: Path, conn: sqlite3.Connection
):
    reader = Reader(connect(db_path, "NORMAL", 1.0), db_path)
    started, finish = threading.Event(), threading.Event()

    def slow(read: sqlite3.Connection) -> int:
        started.set()
        finish.wait(5)
        return int(read.execute("SELECT 41 + 1").fetchone()[0])

    pending = asyncio.ensure_future(reader.run(slow))
    assert await asyncio.to_thread(started.wait, 5)
    closing = asyncio.ensure_future(asyncio.to_thread(reader.close))
    finish.set()
    assert await pending == 42
    await closing


async def test_run_then_leaves_the_future_to_the_query_and_gives_it_the_querys_error(
    db_path: Path, conn: sqlite3.Connection
):
    reader = Reader(connect(db_path, "NORMAL", 1.0), db_path)
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[object] = loop.create_future()
    reader.run_then(
        lambda read: loop.call_soon_threadsafe(
            answered.set_result, read.execute("SELECT 7").fetchone()
        ),
        loop,
        answered,
    )
    assert await asyncio.wait_for(answered, 5) == (7,)
    failed: asyncio.Future[object] = loop.create_future()
    reader.run_then(lambda read: read.execute("SELECT * FROM no_such_table"), loop, failed)
    with pytest.raises(BusError, match="no_such_table"):
        await asyncio.wait_for(failed, 5)
    reader.close()
