"""The event log: encoding before the writer, dedup across chunks, reading, retention floors."""

from __future__ import annotations

import sqlite3
import time
from functools import partial

import pytest

from cumulo.errors import InvalidEventError
from cumulo.events.bus.sqlite import groups, log
from cumulo.events.bus.sqlite.schema import SCHEMA_VERSION, create_schema
from cumulo.events.event import Event, new_event
from cumulo.testing import make_events
from tests.events.bus.sqlite.conftest import run_in_txn


def publish(
    conn: sqlite3.Connection,
    topic: str,
    events: list[Event],
    window: float = 60.0,
    now: float | None = None,
) -> list[int]:
    rows = [log.encode(event) for event in events]
    return run_in_txn(conn, partial(log.publish, topic=topic, rows=rows, window=window), now)


def test_an_invalid_event_is_refused_before_it_reaches_the_writer():
    event = new_event("t", "/s", {"n": 1})
    event.attributes["id"] = ""
    with pytest.raises(InvalidEventError):
        log.encode(event)


def test_a_stored_event_reads_back_equal_with_its_offset_and_time(conn: sqlite3.Connection):
    (event,) = make_events(1)
    (offset,) = publish(conn, "orders", [event], now=1000.0)
    (message,) = log.read(conn, "orders", 0, 10, None)
    assert (message.offset, message.topic, message.published_at) == (offset, "orders", 1000.0)
    assert message.event == event and message.attempt == 0


def test_dedup_finds_duplicates_beyond_one_lookup_chunk(conn: sqlite3.Connection):
    events = make_events(log.DEDUP_CHUNK + 50)
    first = publish(conn, "orders", events)
    assert publish(conn, "orders", events) == first  # every key found, across two lookups
    assert len(log.read(conn, "orders", 0, 10_000, None)) == len(events)


def test_dedup_keys_expire_with_the_window(conn: sqlite3.Connection):
    events = make_events(2)
    first = publish(conn, "orders", events, window=10, now=1000.0)
    assert publish(conn, "orders", events, window=10, now=1005.0) == first
    later = publish(conn, "orders", events, window=10, now=1011.0)
    assert later[0] > first[-1]


def test_offsets_are_never_reused_even_when_every_event_is_trimmed(conn: sqlite3.Connection):
    offsets = publish(conn, "orders", make_events(3), now=1000.0)
    assert run_in_txn(conn, partial(log.trim, retention=1, window=1)) == 3
    assert log.topic_end(conn, "orders") == 0
    (next_offset,) = publish(conn, "orders", make_events(1))
    assert next_offset == offsets[-1] + 1


def test_read_pages_by_offset_and_filters_by_time(conn: sqlite3.Connection):
    old = publish(conn, "orders", make_events(2), now=1000.0)
    new = publish(conn, "orders", make_events(2), now=2000.0)
    assert [m.offset for m in log.read(conn, "orders", old[0], 2, None)] == [old[1], new[0]]
    assert [m.offset for m in log.read(conn, "orders", 0, 10, 1500.0)] == new


def test_topics_are_those_with_events_or_a_group(conn: sqlite3.Connection):
    for topic in ("b", "a", "b", "c"):
        publish(conn, topic, make_events(2))
    assert log.event_topics(conn) == ["a", "b", "c"]
    run_in_txn(conn, partial(groups.subscribe, group="g", topic="quiet", start="latest"))
    assert log.topics(conn) == ["a", "b", "c", "quiet"]


def test_trim_keeps_what_a_group_has_not_passed_or_still_has_leased(conn: sqlite3.Connection):
    offsets = publish(conn, "orders", make_events(5), now=1000.0)
    run_in_txn(conn, partial(groups.subscribe, group="g", topic="orders", start="earliest"))
    conn.execute("UPDATE groups SET cursor = ? WHERE name = 'g'", (offsets[3],))
    conn.execute(
        "INSERT INTO deliveries (grp, offset, attempts, due, leased) VALUES ('g', ?, 1, 0, 1)",
        (offsets[1],),
    )
    assert run_in_txn(conn, partial(log.trim, retention=1, window=1)) == 1  # only offsets[0]
    assert [m.offset for m in log.read(conn, "orders", 0, 10, None)] == offsets[1:]


def test_trim_keeps_events_younger_than_the_retention(conn: sqlite3.Connection):
    publish(conn, "orders", make_events(2), now=time.time())
    assert run_in_txn(conn, partial(log.trim, retention=3600, window=1)) == 0


def test_the_schema_is_created_once_and_carries_its_version(conn: sqlite3.Connection):
    run_in_txn(conn, create_schema)  # again: nothing breaks, nothing is lost
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    tables = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert {"events", "dedup", "groups", "deliveries"} <= tables
