"""Consumer groups in SQL: subscribing, settling, releasing a dead owner's leases, replay."""

from __future__ import annotations

import sqlite3
from functools import partial

import pytest

from cumulo.errors import BusError, InvalidEventError
from cumulo.events.bus.base import Ack, DeadLetter, GroupInfo, Nack
from cumulo.events.bus.sqlite import groups, log
from cumulo.events.bus.sqlite.leases import plan_and_take
from cumulo.events.event import new_event
from cumulo.testing import make_events
from tests.events.bus.sqlite.conftest import deliveries_of, run_in_txn


def publish(conn: sqlite3.Connection, topic: str, count: int) -> list[int]:
    rows = [log.encode(event) for event in make_events(count)]
    return run_in_txn(conn, partial(log.publish, topic=topic, rows=rows, window=60.0))


def subscribe(conn: sqlite3.Connection, group: str, topic: str, start: str = "earliest") -> None:
    run_in_txn(conn, partial(groups.subscribe, group=group, topic=topic, start=start))


def lease(conn: sqlite3.Connection, group: str, limit: int, seconds: float = 30.0) -> list[int]:
    taken = run_in_txn(
        conn, partial(plan_and_take, group=group, limit=limit, lease=seconds, accept=None)
    )
    return [m.offset for m in taken.messages]


def settle(
    conn: sqlite3.Connection, group: str, *settlements: Ack | Nack | DeadLetter
) -> float | None:
    prepared = [groups.prepare(settlement) for settlement in settlements]
    return run_in_txn(conn, partial(groups.settle, group=group, prepared=prepared, window=60.0))


def test_a_group_starts_at_the_end_or_the_beginning_of_its_topic(conn: sqlite3.Connection):
    offsets = publish(conn, "orders", 3)
    subscribe(conn, "late", "orders", "latest")
    subscribe(conn, "all", "orders", "earliest")
    assert groups.group_of(conn, "late") == ("orders", offsets[-1])
    assert groups.group_of(conn, "all") == ("orders", 0)
    assert groups.group_topic(conn, "late") == "orders"


def test_a_group_keeps_its_topic(conn: sqlite3.Connection):
    subscribe(conn, "g", "orders")
    with pytest.raises(BusError, match="already consumes topic 'orders'"):
        subscribe(conn, "g", "payments")
    with pytest.raises(BusError, match="subscribe it first"):
        groups.group_of(conn, "nobody")


def test_a_nack_keeps_the_delivery_with_its_error_and_retry_time(conn: sqlite3.Connection):
    subscribe(conn, "g", "orders")
    (offset,) = publish(conn, "orders", 1)
    lease(conn, "g", 1)
    due = settle(conn, "g", Nack(offset, delay=100.0, error="timed out"))
    row = conn.execute("SELECT due, leased, error FROM deliveries WHERE grp = 'g'").fetchone()
    assert row == (due, 0, "timed out")
    assert groups.next_due(conn, "g") == due


def test_an_ack_ends_the_delivery_and_publishes_what_it_carries(conn: sqlite3.Connection):
    subscribe(conn, "g", "orders")
    (offset,) = publish(conn, "orders", 1)
    lease(conn, "g", 1)
    (reply,) = make_events(1)
    assert settle(conn, "g", Ack(offset, emit=[("replies", reply)])) is None  # nothing left due
    assert deliveries_of(conn, "g") == {}
    assert [m.event for m in log.read(conn, "replies", 0, 10, None)] == [reply]


def test_dead_letters_are_not_deduplicated(conn: sqlite3.Connection):
    subscribe(conn, "g", "orders")
    first, second = publish(conn, "orders", 2)
    lease(conn, "g", 2)
    letter = new_event("t", "/s", id="same-id")
    settle(conn, "g", DeadLetter(first, "dlq", letter), DeadLetter(second, "dlq", letter))
    assert len(log.read(conn, "dlq", 0, 10, None)) == 2


def test_an_invalid_event_in_a_settlement_is_refused_before_the_writer():
    bad = new_event("t", "/s")
    bad.attributes["source"] = ""
    with pytest.raises(InvalidEventError):
        groups.prepare(Ack(1, emit=[("replies", bad)]))


def test_a_dead_owners_leases_fall_due_and_retries_keep_their_time(conn: sqlite3.Connection):
    subscribe(conn, "g", "orders")
    leased, retried = publish(conn, "orders", 2)
    lease(conn, "g", 2)
    settle(conn, "g", Nack(retried, delay=500.0))
    query = "SELECT offset, due FROM deliveries WHERE grp = 'g'"
    retry_at = dict(conn.execute(query).fetchall())[retried]
    run_in_txn(conn, groups.release_leases, now=1234.0)
    dues = dict(conn.execute(query).fetchall())
    assert dues == {leased: 1234.0, retried: retry_at}
    assert deliveries_of(conn, "g")[leased] == (1, 0)  # no longer leased, same attempt


def test_replay_of_a_topic_rewinds_each_group_and_counts_what_comes_again(
    conn: sqlite3.Connection,
):
    offsets = publish(conn, "orders", 4)
    subscribe(conn, "a", "orders")
    subscribe(conn, "b", "orders")
    lease(conn, "a", 4)
    lease(conn, "b", 2)
    again = run_in_txn(
        conn, partial(groups.replay, group=None, topic="orders", offset=offsets[1], at=None)
    )
    assert again == 3 + 1  # a: offsets[1:] ; b: offsets[1]
    assert groups.group_of(conn, "a")[1] == groups.group_of(conn, "b")[1] == offsets[0]


def test_group_infos_count_pending_and_backlog(conn: sqlite3.Connection):
    offsets = publish(conn, "orders", 5)
    subscribe(conn, "g", "orders")
    lease(conn, "g", 2)
    assert groups.infos(conn) == [GroupInfo("g", "orders", offsets[1], 2, 3)]
