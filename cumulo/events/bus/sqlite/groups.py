"""Consumer groups: subscribing, settling leases, replay, and what ``groups()`` reports."""

from __future__ import annotations

import sqlite3
from typing import Any

from cumulo.errors import BusError
from cumulo.events.bus.base import (
    Ack,
    DeadLetter,
    GroupInfo,
    Nack,
    Settlement,
    StartAt,
    check_replay_start,
)
from cumulo.events.bus.sqlite.log import Encoded, encode, publish, topic_end
from cumulo.events.bus.sqlite.writer import Txn

Prepared = tuple[Settlement, list[tuple[str, Encoded]]]  # a settlement and what it publishes


def group_of(conn: sqlite3.Connection, group: str) -> tuple[str, int]:
    """The group's topic and cursor; an unknown group raises."""
    row = conn.execute("SELECT topic, cursor FROM groups WHERE name = ?", (group,)).fetchone()
    if row is None:
        raise BusError(f"unknown consumer group {group!r}: subscribe it first")
    return str(row[0]), int(row[1])


def group_topic(conn: sqlite3.Connection, group: str) -> str:
    """The topic ``group`` consumes."""
    return group_of(conn, group)[0]


def next_due(conn: sqlite3.Connection, group: str) -> float | None:
    """When the group's earliest retry or lease expiry falls due; None when it has none."""
    due = conn.execute("SELECT MIN(due) FROM deliveries WHERE grp = ?", (group,)).fetchone()[0]
    return None if due is None else float(due)


def subscribe(txn: Txn, group: str, topic: str, start: StartAt) -> None:
    """Create ``group`` at the topic's end or beginning; an existing one keeps its cursor."""
    row = txn.conn.execute("SELECT topic FROM groups WHERE name = ?", (group,)).fetchone()
    if row is not None:
        if row[0] != topic:
            raise BusError(f"group {group!r} already consumes topic {row[0]!r}, not {topic!r}")
        return
    cursor = topic_end(txn.conn, topic) if start == "latest" else 0
    txn.conn.execute(
        "INSERT INTO groups (name, topic, cursor) VALUES (?, ?, ?)", (group, topic, cursor)
    )


def release_leases(txn: Txn) -> None:
    """Leases of a dead owner: due now (a nacked message keeps its retry time)."""
    txn.conn.execute("UPDATE deliveries SET due = ?, leased = 0 WHERE leased = 1", (txn.now,))


def prepare(settlement: Settlement) -> Prepared:
    """Encode what a settlement publishes before it reaches the writer (invalid events raise)."""
    if isinstance(settlement, Ack):
        return settlement, [(topic, encode(event)) for topic, event in settlement.emit]
    if isinstance(settlement, DeadLetter):
        return settlement, [(settlement.topic, encode(settlement.event))]
    return settlement, []


def settle(txn: Txn, group: str, prepared: list[Prepared], window: float) -> float | None:
    """End or postpone leases, publishing what acks and dead letters carry; the next due time."""
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
            publish(txn, topic, [row], dedup_window)
    return next_due(txn.conn, group)


def replay(
    txn: Txn, group: str | None, topic: str | None, offset: int | None, at: float | None
) -> int:
    """Rewind one group, or every group on ``topic``; how many events they get again."""
    targets = _replay_targets(txn.conn, group, topic)
    replayed = targets[0][1] if targets else str(topic)
    check_replay_start(replayed, offset, at, topic_end(txn.conn, replayed))
    again = 0
    for name, group_topic_, cursor in targets:
        if offset is not None:
            new_cursor = max(offset - 1, 0)
        else:
            sql = "SELECT COALESCE(MAX(offset), 0) FROM events WHERE topic = ? AND published_at < ?"
            (new_cursor,) = txn.conn.execute(sql, (group_topic_, at)).fetchone()
        sql = "SELECT COUNT(*) FROM events WHERE topic = ? AND offset > ? AND offset <= ?"
        again += txn.conn.execute(sql, (group_topic_, new_cursor, cursor)).fetchone()[0]
        txn.conn.execute("UPDATE groups SET cursor = ? WHERE name = ?", (new_cursor, name))
        txn.touched.add(group_topic_)
    return again


def _replay_targets(
    conn: sqlite3.Connection, group: str | None, topic: str | None
) -> list[tuple[str, str, int]]:
    """(name, topic, cursor) of the group named, or of every group on ``topic``."""
    if group is not None:
        return [(group, *group_of(conn, group))]
    sql = "SELECT name, topic, cursor FROM groups WHERE topic = ?"
    rows: list[Any] = conn.execute(sql, (topic,)).fetchall()
    return [(str(name), str(topic_), int(cursor)) for name, topic_, cursor in rows]


def infos(conn: sqlite3.Connection) -> list[GroupInfo]:
    """Every group with its cursor, deliveries pending and backlog, by name."""
    rows = conn.execute(
        "SELECT name, topic, cursor,"
        " (SELECT COUNT(*) FROM deliveries WHERE grp = g.name),"
        " (SELECT COUNT(*) FROM events WHERE topic = g.topic AND offset > g.cursor)"
        " FROM groups AS g ORDER BY name"
    )
    return [GroupInfo(*row) for row in rows]
