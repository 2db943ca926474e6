"""Leasing messages to a group: a fetch is planned by the reader and taken by the writer.

*Planning* (the reader thread, in one read transaction) finds the group's cursor,
the deliveries that have come due, and the new events after the cursor (a
bounded scan); it decodes them and runs the trigger's filter. It writes nothing,
so JSON decoding and filters never hold up the writer's transaction, and with it
the fsync every publisher waits on.

*Taking* (one operation in the writer's group-committed transaction) is SQL only.
It checks that the plan still holds: the group's cursor is where the scan began,
the deliveries inside the scanned range are the ones the plan skipped, and each
due delivery is still due at the attempt the plan saw. Then it leases the due
deliveries again, inserts deliveries for the accepted events and moves the cursor
past everything scanned, so an event the filter rejected is skipped for good.

A plan that no longer holds raises :class:`StalePlan` and writes nothing; the
fetch plans again, and after ``OPTIMISTIC_PLANS`` tries plans inside the writer's
transaction, where nothing can change under it. So every fetch returns what one
fetch run at a single moment would have: no message twice within a lease, due
deliveries first, then new events in offset order.

Several fetches of one group in flight at once in this process (concurrent
consumers) would plan the same events and make each other stale: :class:`Claims`
makes a plan begin after the scans of those in flight and skip their due
deliveries, so they take one after the other in the same transaction. The
reader hands each take straight to the writer, without a trip through the
caller's event loop in between.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

from cumulo.events.bus.base import Accept, Message
from cumulo.events.bus.sqlite.groups import group_of, next_due
from cumulo.events.bus.sqlite.log import decode
from cumulo.events.bus.sqlite.writer import Txn

SCAN_FACTOR = 50  # a fetch scans at most limit * SCAN_FACTOR new events ...
MAX_SCAN = 5000  # ... but no more than this (unless limit itself is larger)
OPTIMISTIC_PLANS = 2  # plans made on the reader before one is made inside the writer
NO_LAST = 2**63 - 1  # the highest offset SQLite can hold


class StalePlan(Exception):
    """What a fetch plan was made from changed before the writer could take it."""


@dataclass(frozen=True, slots=True)
class Scan:
    """The new events a plan looked at: the offsets after ``start`` up to ``last``."""

    start: int  # the cursor the scan began after
    last: int  # the last offset scanned: the group's cursor once taken
    accepted: tuple[Message, ...]  # what the filter let through, in offset order
    pending: frozenset[int]  # deliveries already in the range (after a replay): skipped
    more: bool = False  # the scan ran out of budget before out of events: fetch again now


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What one fetch would lease, as the reader found it."""

    group: str
    topic: str
    due: tuple[Message, ...]  # retries and expired leases, each with the attempt it gets
    scan: Scan | None  # None when the due deliveries fill the limit

    @property
    def messages(self) -> list[Message]:
        """Due deliveries first (earliest due first), then accepted new events."""
        return [*self.due, *(self.scan.accepted if self.scan else ())]


@dataclass(frozen=True, slots=True)
class Claimed:
    """What the plans of a group in flight will take: a new plan begins after it."""

    after: int = 0  # the last offset they scanned
    due: frozenset[int] = frozenset()  # the due deliveries they lease again


NOTHING_CLAIMED = Claimed()


class Taken(NamedTuple):
    """A fetch's outcome: the group's topic (for its doorbell), the messages, the next due time."""

    topic: str
    messages: list[Message]
    next_due: float | None
    more: bool = False  # new events are left that the bounded scan did not reach


def plan_fetch(
    conn: sqlite3.Connection,
    group: str,
    limit: int,
    accept: Accept | None,
    now: float,
    claimed: Claimed = NOTHING_CLAIMED,
) -> FetchPlan:
    """What a fetch of up to ``limit`` messages would lease at ``now``; writes nothing.

    A filter that raises makes the fetch raise, and nothing changes.
    """
    topic, cursor = group_of(conn, group)
    due = _due(conn, group, limit, now, claimed.due) if limit > 0 else []
    want = limit - len(due)
    start = max(cursor, claimed.after)
    scan = _scan(conn, group, topic, start, want, accept) if want > 0 else None
    return FetchPlan(group, topic, tuple(due), scan)


def _due(
    conn: sqlite3.Connection, group: str, limit: int, now: float, skip: frozenset[int]
) -> list[Message]:
    """Expired leases and retries that have come due, earliest first; ``skip`` left out."""
    rows = conn.execute(
        "SELECT d.offset, e.topic, e.published_at, e.body, d.attempts + 1"
        " FROM deliveries AS d JOIN events AS e ON e.offset = d.offset"
        " WHERE d.grp = ? AND d.due <= ? ORDER BY d.due LIMIT ?",
        (group, now, limit + len(skip)),
    ).fetchall()
    wanted = [row for row in rows if row[0] not in skip][:limit]
    return [decode(*row) for row in wanted]


def _scan(
    conn: sqlite3.Connection,
    group: str,
    topic: str,
    start: int,
    want: int,
    accept: Accept | None,
) -> Scan:
    """New events after ``start``; a bounded scan, so a picky filter cannot stall a fetch."""
    pending = _pending(conn, group, start, None)  # deliveries after the cursor: after a replay
    budget = max(want, min(want * SCAN_FACTOR, MAX_SCAN))
    accepted: list[Message] = []
    last = start
    scanned = 0
    rows = conn.execute(
        "SELECT offset, published_at, body FROM events WHERE topic = ? AND offset > ?"
        " ORDER BY offset LIMIT ?",
        (topic, start, budget),
    )
    try:
        for offset, published_at, body in rows:
            last = offset
            scanned += 1
            if offset in pending:
                continue
            message = decode(offset, topic, published_at, body, 1)
            if accept is None or accept(message.event):
                accepted.append(message)
                if len(accepted) == want:
                    break
    finally:
        rows.close()
    skipped = frozenset(offset for offset in pending if offset <= last)
    more = scanned == budget and len(accepted) < want
    return Scan(start, last, tuple(accepted), skipped, more)


def _pending(conn: sqlite3.Connection, group: str, after: int, last: int | None) -> set[int]:
    """Offsets of the group's deliveries after ``after`` (up to ``last``, when given)."""
    sql = "SELECT offset FROM deliveries WHERE grp = ? AND offset > ? AND offset <= ?"
    bound = NO_LAST if last is None else last
    return {offset for (offset,) in conn.execute(sql, (group, after, bound))}


def take(txn: Txn, plan: FetchPlan, lease: float) -> Taken:
    """Lease what ``plan`` found for ``lease`` seconds; :class:`StalePlan` if it no longer holds."""
    _check(txn.conn, plan)
    _lease_due_again(txn, plan, lease)
    if plan.scan is not None:
        _lease_new(txn, plan.group, plan.scan, lease)
    more = plan.scan is not None and plan.scan.more
    return Taken(plan.topic, plan.messages, next_due(txn.conn, plan.group), more)


def plan_and_take(txn: Txn, group: str, limit: int, lease: float, accept: Accept | None) -> Taken:
    """Plan and take in one writer operation: nothing changes in between (the writer decodes)."""
    return take(txn, plan_fetch(txn.conn, group, limit, accept, txn.now), lease)


def _check(conn: sqlite3.Connection, plan: FetchPlan) -> None:
    """Raise :class:`StalePlan` unless the cursor and the scanned range are as planned."""
    if plan.scan is None:
        return
    if group_of(conn, plan.group) != (plan.topic, plan.scan.start):
        raise StalePlan(f"group {plan.group!r} moved since its fetch was planned")
    if _pending(conn, plan.group, plan.scan.start, plan.scan.last) != plan.scan.pending:
        raise StalePlan(f"deliveries of group {plan.group!r} changed since the fetch was planned")


def _lease_due_again(txn: Txn, plan: FetchPlan, lease: float) -> None:
    """Lease the due deliveries again, each only if still due at the attempt planned."""
    if not plan.due:
        return
    leased = txn.conn.executemany(
        "UPDATE deliveries SET attempts = attempts + 1, due = ?, leased = 1"
        " WHERE grp = ? AND offset = ? AND attempts = ? AND due <= ?",
        [
            (txn.now + lease, plan.group, message.offset, message.attempt - 1, txn.now)
            for message in plan.due
        ],
    ).rowcount
    if leased != len(plan.due):
        raise StalePlan(f"a due delivery of group {plan.group!r} was leased or settled meanwhile")


def _lease_new(txn: Txn, group: str, scan: Scan, lease: float) -> None:
    """Deliveries for the accepted events; the cursor moves past everything scanned."""
    txn.conn.executemany(
        "INSERT INTO deliveries (grp, offset, attempts, due, leased) VALUES (?, ?, 1, ?, 1)",
        [(group, message.offset, txn.now + lease) for message in scan.accepted],
    )
    txn.conn.execute("UPDATE groups SET cursor = ? WHERE name = ?", (scan.last, group))


class Ticket:
    """One fetch's place among the claims: its plan, from when it is made until the fetch ends."""

    __slots__ = ("group", "over", "plan")

    def __init__(self, group: str):
        self.group = group
        self.plan: FetchPlan | None = None
        self.over = False  # the fetch ended (taken, failed or cancelled): claims nothing


class Claims:
    """The fetches of this process in flight, per group, and what their plans will take.

    A fetch opens a ticket, the reader plans on it, and the fetch closes it once
    its take is over, whatever happened: so a fetch cancelled while its plan was
    being made leaves no claim behind.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets: dict[str, list[Ticket]] = {}

    def open(self, group: str) -> Ticket:
        """A ticket for one fetch of ``group``."""
        ticket = Ticket(group)
        with self._lock:
            self._tickets.setdefault(group, []).append(ticket)
        return ticket

    def plan(
        self, conn: sqlite3.Connection, ticket: Ticket, limit: int, accept: Accept | None
    ) -> FetchPlan | None:
        """Plan the ticket's fetch after the plans in flight and claim it; None if it ended.

        Plans are made on the one reader thread, so no two are made at once.
        """
        claimed = self.claimed(ticket.group)
        plan = plan_fetch(conn, ticket.group, limit, accept, time.time(), claimed)
        with self._lock:
            if ticket.over:
                return None
            ticket.plan = plan
        return plan

    def close(self, ticket: Ticket) -> None:
        """The ticket's fetch is over: its plan claims nothing any more."""
        with self._lock:
            ticket.over = True
            tickets = [
                other for other in self._tickets.get(ticket.group, []) if other is not ticket
            ]
            if tickets:
                self._tickets[ticket.group] = tickets
            else:
                self._tickets.pop(ticket.group, None)

    def claimed(self, group: str) -> Claimed:
        """What the plans of ``group`` in flight will take."""
        with self._lock:
            plans = [t.plan for t in self._tickets.get(group, ()) if t.plan is not None]
        if not plans:
            return NOTHING_CLAIMED
        after = max((plan.scan.last for plan in plans if plan.scan is not None), default=0)
        due = frozenset(message.offset for plan in plans for message in plan.due)
        return Claimed(after, due)
