"""The writer thread: group commit, one savepoint per operation, answers after the commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from cumulo.errors import BusError, BusUnavailableError
from cumulo.events.bus.sqlite.connections import connect
from cumulo.events.bus.sqlite.writer import Txn, Writer

BOUND = 5.0  # seconds


class Commits:
    """What the writer reports after each commit: the topics it published to."""

    def __init__(self) -> None:
        self.touched: list[set[str]] = []

    def __call__(self, topics: set[str]) -> None:
        self.touched.append(topics)


@pytest.fixture
def commits() -> Commits:
    return Commits()


@pytest.fixture
async def writer(
    db_path: Path, conn: sqlite3.Connection, commits: Commits
) -> AsyncIterator[Writer]:
    conn.execute("CREATE TABLE IF NOT EXISTS t (x PRIMARY KEY)")
    writer = Writer(connect(db_path, "NORMAL", 0.05), db_path, commits)
    writer.start()
    yield writer
    await asyncio.to_thread(writer.stop)


def insert(value: int, topic: str | None = None) -> Callable[[Txn], int]:
    """An operation that stores ``value`` (and says it published to ``topic``)."""

    def operation(txn: Txn) -> int:
        txn.conn.execute("INSERT INTO t VALUES (?)", (value,))
        if topic:
            txn.touched.add(topic)
        return value

    return operation


def values(conn: sqlite3.Connection) -> list[int]:
    """What the writer has committed, as another connection sees it."""
    return [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")]


async def blocked(writer: Writer) -> tuple[asyncio.Future[object], threading.Event]:
    """Occupy the writer with an operation that waits for the returned event."""
    inside, release = threading.Event(), threading.Event()

    def hold(txn: Txn) -> None:
        inside.set()
        release.wait(BOUND)

    held = asyncio.ensure_future(writer.submit(hold))
    assert await asyncio.to_thread(inside.wait, BOUND)
    return held, release


async def test_operations_queued_during_a_transaction_share_the_next_one(writer: Writer):
    held, release = await blocked(writer)
    queued = [asyncio.ensure_future(writer.submit(insert(n))) for n in range(50)]
    await asyncio.sleep(0)  # all 50 are in the queue before the writer is free
    release.set()
    assert await asyncio.gather(*queued) == list(range(50))
    await held
    assert writer.transactions == 2


async def test_a_caller_is_answered_once_its_write_is_committed(
    writer: Writer, conn: sqlite3.Connection
):
    await writer.submit(insert(1))
    assert values(conn) == [1]  # another connection sees it: committed, not just written


async def test_a_failing_operation_undoes_only_its_own_writes(
    writer: Writer, conn: sqlite3.Connection, commits: Commits
):
    def insert_then_fail(txn: Txn) -> None:
        txn.conn.execute("INSERT INTO t VALUES (2)")
        txn.touched.add("lost")
        raise KeyError("the operation's own error")

    held, release = await blocked(writer)
    results = [
        asyncio.ensure_future(writer.submit(op))
        for op in (insert(1, "a"), insert_then_fail, insert(3, "b"))
    ]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*results, return_exceptions=True)
    await held
    assert outcomes[0] == 1 and outcomes[2] == 3 and isinstance(outcomes[1], KeyError)
    assert values(conn) == [1, 3]
    assert writer.transactions == 2
    assert commits.touched[-1] == {"a", "b"}  # the failed operation's topic is not rung


class Escape(BaseException):
    """Not an Exception: nothing between the operation and the writer's loop catches it."""


async def test_a_lost_transaction_fails_every_caller_in_it_and_the_writer_goes_on(
    writer: Writer, conn: sqlite3.Connection
):
    def escape(txn: Txn) -> None:
        raise Escape()

    held, release = await blocked(writer)
    results = [asyncio.ensure_future(writer.submit(op)) for op in (insert(1), escape, insert(3))]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*results, return_exceptions=True)
    await held
    assert all(isinstance(outcome, BusError) for outcome in outcomes)
    assert len({id(outcome) for outcome in outcomes}) == 3  # each caller gets its own
    assert isinstance(outcomes[1].__cause__, Escape)  # type: ignore[union-attr]
    assert values(conn) == []  # the whole transaction was rolled back
    assert await writer.submit(insert(4)) == 4


async def test_sqlite_errors_reach_the_caller_as_bus_errors(writer: Writer, db_path: Path):
    await writer.submit(insert(1))
    with pytest.raises(BusError, match=str(db_path)) as caught:
        await writer.submit(insert(1))  # the primary key is taken
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)


async def test_a_write_lock_held_elsewhere_makes_the_write_unavailable_then_it_recovers(
    writer: Writer, db_path: Path, conn: sqlite3.Connection
):
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # longer than the writer's busy timeout (50 ms)
    with pytest.raises(BusUnavailableError):
        await asyncio.wait_for(writer.submit(insert(1)), BOUND)
    other.execute("ROLLBACK")
    other.close()
    assert await writer.submit(insert(2)) == 2
    assert values(conn) == [2]


async def test_stop_finishes_what_is_queued_then_refuses_new_writes(
    db_path: Path, conn: sqlite3.Connection
):
    conn.execute("CREATE TABLE t (x PRIMARY KEY)")
    writer = Writer(connect(db_path, "NORMAL", 1.0), db_path, lambda topics: None)
    writer.start()
    held, release = await blocked(writer)
    queued = asyncio.ensure_future(writer.submit(insert(1)))
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(asyncio.to_thread(writer.stop))
    release.set()
    await stopping
    assert await queued == 1 and values(conn) == [1]
    await held
    with pytest.raises(BusError, match="closed"):
        await writer.submit(insert(2))
