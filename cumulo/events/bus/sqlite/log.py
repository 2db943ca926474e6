"""The event log: encoding, publishing with dedup, reading, retention."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

from cumulo.errors import InvalidEventError
from cumulo.events.bus.base import Message
from cumulo.events.bus.sqlite.writer import Txn
from cumulo.events.event import Event, from_json, spec_problems, to_json

DEDUP_CHUNK = 400  # keys per dedup lookup (two SQL parameters each)
NO_FLOOR = 2**63 - 1  # a topic no group consumes: retention alone decides


class Encoded(NamedTuple):
    """An event ready to store, encoded by the caller so the writer only runs SQL."""

    source: str
    id: str
    type: str
    body: bytes


def encode(event: Event) -> Encoded:
    """Validate and encode ``event`` (before it reaches the writer); invalid ones raise."""
    problems = spec_problems(event)
    if problems:
        raise InvalidEventError(problems)
    return Encoded(event.source, event.id, event.type, to_json(event))


def decode(offset: int, topic: str, published_at: float, body: bytes, attempt: int) -> Message:
    """A stored row as a message (``attempt`` 0 when only read)."""
    return Message(offset, topic, from_json(body), published_at, attempt)


def publish(txn: Txn, topic: str, rows: Sequence[Encoded], window: float) -> list[int]:
    """Append ``rows``; a duplicate within ``window`` seconds (0: no dedup) gets its offset."""
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


def _last_offset(conn: sqlite3.Connection) -> int:
    """The last offset ever given (AUTOINCREMENT's counter: it survives trimming)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return int(row[0]) if row else 0


def _recent_offsets(
    txn: Txn, topic: str, rows: Sequence[Encoded], window: float
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


def topic_end(conn: sqlite3.Connection, topic: str) -> int:
    """The last offset of ``topic`` (0 when it has no events)."""
    sql = "SELECT COALESCE(MAX(offset), 0) FROM events WHERE topic = ?"
    return int(conn.execute(sql, (topic,)).fetchone()[0])


def event_topics(conn: sqlite3.Connection) -> list[str]:
    """Distinct topics by skipping through the index: one lookup per topic, not per event."""
    rows = conn.execute(
        "WITH RECURSIVE t(name) AS (SELECT MIN(topic) FROM events UNION ALL"
        " SELECT (SELECT MIN(topic) FROM events WHERE topic > t.name) FROM t"
        " WHERE t.name IS NOT NULL) SELECT name FROM t WHERE name IS NOT NULL"
    )
    return [name for (name,) in rows]


def topics(conn: sqlite3.Connection) -> list[str]:
    """Topics with events or with a group, sorted."""
    subscribed = [name for (name,) in conn.execute("SELECT DISTINCT topic FROM groups")]
    return sorted({*event_topics(conn), *subscribed})


def read(
    conn: sqlite3.Connection, topic: str, after: int, limit: int, since: float | None
) -> list[Message]:
    """Up to ``limit`` messages of ``topic`` after offset ``after``, published at ``since`` or later."""
    rows = conn.execute(
        "SELECT offset, published_at, body FROM events"
        " WHERE topic = ? AND offset > ? AND published_at >= ? ORDER BY offset LIMIT ?",
        (topic, after, float("-inf") if since is None else since, limit),
    )
    return [decode(offset, topic, at, body, 0) for offset, at, body in rows]


def trim(txn: Txn, retention: float, window: float) -> int:
    """Delete events older than ``retention`` that every group is done with, and old dedup keys."""
    removed = 0
    for topic in event_topics(txn.conn):
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
