"""Fetch plans and takes: the plan reads and filters without writing; a take checks it still holds.

Times are explicit (``now``), so leases expire without anyone sleeping.
"""

from __future__ import annotations

import sqlite3
from functools import partial

import pytest

from cumulo.events.bus.base import Accept, Ack, Nack
from cumulo.events.bus.sqlite import groups, log
from cumulo.events.bus.sqlite.leases import (
    MAX_SCAN,
    SCAN_FACTOR,
    Claimed,
    Claims,
    FetchPlan,
    StalePlan,
    Taken,
    plan_and_take,
    plan_fetch,
    take,
)
from cumulo.events.event import Event
from cumulo.testing import make_events
from tests.events.bus.sqlite.conftest import cursor_of, deliveries_of, run_in_txn

T0 = 1_000_000.0  # the tests' clock: leases taken at T0 for LEASE seconds
LEASE = 30.0
LATER = T0 + LEASE + 1  # every lease taken at T0 has expired


def even(event: Event) -> bool:
    return bool(event.data["n"] % 2 == 0)


def publish(conn: sqlite3.Connection, count: int, topic: str = "orders") -> list[int]:
    rows = [log.encode(event) for event in make_events(count)]
    return run_in_txn(conn, partial(log.publish, topic=topic, rows=rows, window=0.0), T0)


def subscribe(conn: sqlite3.Connection, group: str = "g") -> None:
    run_in_txn(conn, partial(groups.subscribe, group=group, topic="orders", start="earliest"))


def plan(
    conn: sqlite3.Connection, limit: int, accept: Accept | None = None, now: float = T0
) -> FetchPlan:
    return plan_fetch(conn, "g", limit, accept, now)


def take_at(conn: sqlite3.Connection, planned: FetchPlan, now: float = T0) -> Taken:
    """Take ``planned`` as the writer would: in a transaction, undone if it raises."""
    return run_in_txn(conn, partial(take, plan=planned, lease=LEASE), now)


def offsets(taken: Taken | FetchPlan) -> list[int]:
    return [message.offset for message in taken.messages]


def settle(conn: sqlite3.Connection, *settlements: Ack | Nack) -> None:
    prepared = [groups.prepare(settlement) for settlement in settlements]
    run_in_txn(conn, partial(groups.settle, group="g", prepared=prepared, window=0.0), T0)


def test_planning_reads_and_filters_but_writes_nothing(conn: sqlite3.Connection):
    subscribe(conn)
    published = publish(conn, 6)
    planned = plan(conn, 10, even)
    assert offsets(planned) == published[0::2]
    assert [m.attempt for m in planned.messages] == [1, 1, 1]
    assert cursor_of(conn, "g") == 0 and deliveries_of(conn, "g") == {}


def test_a_take_leases_what_was_planned_and_moves_past_what_the_filter_rejected(
    conn: sqlite3.Connection,
):
    subscribe(conn)
    published = publish(conn, 6)
    taken = take_at(conn, plan(conn, 10, even))
    assert offsets(taken) == published[0::2]
    assert cursor_of(conn, "g") == published[-1]  # the rejected ones are skipped for good
    assert deliveries_of(conn, "g") == {offset: (1, 1) for offset in published[0::2]}
    assert taken.next_due == T0 + LEASE


def test_a_full_fetch_stops_its_cursor_at_the_last_event_it_took(conn: sqlite3.Connection):
    subscribe(conn)
    published = publish(conn, 6)
    assert offsets(take_at(conn, plan(conn, 2, even))) == [published[0], published[2]]
    assert cursor_of(conn, "g") == published[2]  # not past events nobody looked at


def test_due_deliveries_come_first_with_their_next_attempt(conn: sqlite3.Connection):
    subscribe(conn)
    first = publish(conn, 2)
    take_at(conn, plan(conn, 2))
    later = publish(conn, 2)
    taken = take_at(conn, plan(conn, 10, now=LATER), now=LATER)
    assert offsets(taken) == first + later
    assert [m.attempt for m in taken.messages] == [2, 2, 1, 1]


def test_when_due_deliveries_fill_the_limit_no_new_event_is_looked_at(conn: sqlite3.Connection):
    subscribe(conn)
    first = publish(conn, 2)
    take_at(conn, plan(conn, 2))
    publish(conn, 3)
    planned = plan(conn, 2, now=LATER)
    assert planned.scan is None and offsets(planned) == first
    take_at(conn, planned, now=LATER)
    assert cursor_of(conn, "g") == first[-1]


def test_a_picky_filter_scans_a_bounded_number_of_events(conn: sqlite3.Connection):
    subscribe(conn)
    published = publish(conn, MAX_SCAN + 100)
    nothing = lambda event: False  # noqa: E731
    small = plan(conn, 2, nothing).scan
    assert small is not None and small.last == published[2 * SCAN_FACTOR - 1]
    capped = plan(conn, MAX_SCAN // SCAN_FACTOR + 1, nothing).scan
    assert capped is not None and capped.last == published[MAX_SCAN - 1]
    huge = plan(conn, MAX_SCAN + 50, nothing).scan  # a limit above the cap is scanned in full
    assert huge is not None and huge.last == published[MAX_SCAN + 49]
    assert small.accepted == capped.accepted == huge.accepted == ()


def test_a_filter_that_raises_fails_the_plan_and_claims_nothing(conn: sqlite3.Connection):
    subscribe(conn)
    publish(conn, 2)
    claims = Claims()
    ticket = claims.open("g")
    with pytest.raises(ZeroDivisionError):
        claims.plan(conn, ticket, 5, lambda event: 1 / 0 > 0)
    assert claims.claimed("g") == Claimed() and cursor_of(conn, "g") == 0


def test_a_take_after_the_cursor_moved_is_stale_and_writes_nothing(conn: sqlite3.Connection):
    subscribe(conn)
    publish(conn, 4)
    first, second = plan(conn, 2), plan(conn, 2)  # both planned from the same cursor
    take_at(conn, first)
    before = (cursor_of(conn, "g"), deliveries_of(conn, "g"))
    with pytest.raises(StalePlan):
        take_at(conn, second)
    assert (cursor_of(conn, "g"), deliveries_of(conn, "g")) == before


def test_a_due_delivery_leased_meanwhile_makes_the_take_stale(conn: sqlite3.Connection):
    subscribe(conn)
    publish(conn, 2)
    take_at(conn, plan(conn, 2))
    first, second = plan(conn, 2, now=LATER), plan(conn, 2, now=LATER)
    take_at(conn, first, now=LATER)
    leased = deliveries_of(conn, "g")
    with pytest.raises(StalePlan):
        take_at(conn, second, now=LATER)
    assert deliveries_of(conn, "g") == leased == {o: (2, 1) for o in offsets(first)}


def test_a_due_delivery_settled_meanwhile_makes_the_take_stale(conn: sqlite3.Connection):
    subscribe(conn)
    (offset,) = publish(conn, 1)
    take_at(conn, plan(conn, 1))
    planned = plan(conn, 1, now=LATER)  # the lease expired: due again ...
    settle(conn, Ack(offset))  # ... but its consumer acks late
    with pytest.raises(StalePlan):
        take_at(conn, planned, now=LATER)
    assert deliveries_of(conn, "g") == {}


def test_a_due_delivery_postponed_meanwhile_makes_the_take_stale(conn: sqlite3.Connection):
    subscribe(conn)
    (offset,) = publish(conn, 1)
    take_at(conn, plan(conn, 1))
    planned = plan(conn, 1, now=LATER)
    settle(conn, Nack(offset, delay=10 * LEASE))  # at T0: due long after LATER
    with pytest.raises(StalePlan):
        take_at(conn, planned, now=LATER)
    assert deliveries_of(conn, "g") == {offset: (1, 0)}


def test_a_replay_back_to_the_planned_cursor_is_noticed_by_the_deliveries_it_left(
    conn: sqlite3.Connection,
):
    subscribe(conn)
    published = publish(conn, 3)
    stale = plan(conn, 3)  # planned at cursor 0
    take_at(conn, plan(conn, 2))  # another fetch leases two ...
    replay = partial(groups.replay, group="g", topic=None, offset=published[0], at=None)
    run_in_txn(conn, replay)  # ... and a replay puts the cursor back to 0
    assert cursor_of(conn, "g") == 0
    with pytest.raises(StalePlan):  # the cursor matches, the leases in the range do not
        take_at(conn, stale)
    fresh = take_at(conn, plan(conn, 3))
    assert offsets(fresh) == [published[2]]  # the two still leased are not leased twice


def test_plan_and_take_in_one_transaction_cannot_go_stale(conn: sqlite3.Connection):
    subscribe(conn)
    published = publish(conn, 4)
    fetch = partial(plan_and_take, group="g", limit=10, lease=LEASE, accept=even)
    taken = run_in_txn(conn, fetch, T0)
    assert offsets(taken) == published[0::2] and cursor_of(conn, "g") == published[-1]


def test_a_second_plan_in_flight_begins_after_the_first_and_skips_its_due_deliveries(
    conn: sqlite3.Connection,
):
    subscribe(conn)
    due = publish(conn, 2)
    take_at(conn, plan(conn, 2))
    new = publish(conn, 4)
    claims = Claims()
    # clock: the real one, long after T0, so the first two are due
    first = claims.plan(conn, claims.open("g"), 3, None)
    second = claims.plan(conn, claims.open("g"), 3, None)
    assert first is not None and second is not None
    assert offsets(first) == [*due, new[0]]
    assert offsets(second) == new[1:]
    take_at(conn, first, now=LATER)
    take_at(conn, second, now=LATER)  # not stale: it began where the first ended
    assert cursor_of(conn, "g") == new[-1]
    assert sorted(deliveries_of(conn, "g")) == sorted(due + new)


def test_a_closed_ticket_claims_nothing_and_the_next_plan_begins_at_the_cursor(
    conn: sqlite3.Connection,
):
    subscribe(conn)
    published = publish(conn, 2)
    claims = Claims()
    ticket = claims.open("g")
    claims.plan(conn, ticket, 1, None)
    assert claims.claimed("g").after == published[0]
    claims.close(ticket)  # say its take failed
    assert claims.claimed("g") == Claimed()
    again = claims.plan(conn, claims.open("g"), 1, None)
    assert again is not None and offsets(again) == [published[0]]
    assert claims.claimed("other") == Claimed()


def test_a_fetch_given_up_while_it_was_being_planned_leaves_no_claim(conn: sqlite3.Connection):
    subscribe(conn)
    publish(conn, 2)
    claims = Claims()
    ticket = claims.open("g")
    claims.close(ticket)  # the caller was cancelled before the reader got to its plan
    assert claims.plan(conn, ticket, 2, None) is None
    assert claims.claimed("g") == Claimed()
