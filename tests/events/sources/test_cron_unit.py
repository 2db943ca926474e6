"""The cron source: one event per tick with a deterministic id, and missed ticks by policy.

Ticks are computed, not waited for: the tests give the source a "now" and a
checkpoint (the real SQLite checkpoints) and read what it publishes. The one test
of :meth:`CronSource.run` uses a checkpoint minutes old, so its catch-up is
published at once and the test stops it while it sleeps toward the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cumulo.events.sources.cron import DEFAULT_TYPE, MAX_CATCH_UP, CronSource
from cumulo.runtimes.local.checkpoints import SqliteCheckpoints
from cumulo.spec.models import EventSource
from cumulo.testing import MemoryBus
from tests.events.sources.conftest import Recorder

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def cron_source(name: str = "nightly", **cron: Any) -> EventSource:
    spec: dict[str, Any] = {"cron": {"schedule": "*/5 * * * *", **cron}}
    if "type" in cron:
        spec["type"] = spec["cron"].pop("type")
    return EventSource.model_validate({"metadata": {"name": name}, "spec": spec})


@pytest.fixture
def checkpoints(tmp_path: Path) -> Iterator[SqliteCheckpoints]:
    store = SqliteCheckpoints(tmp_path / "checkpoints.db")
    yield store
    store.close()


# --- the event of a tick ------------------------------------------------------------------


def test_a_tick_event_is_named_by_the_source_and_the_tick(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """id ``<name>@<tick>``, subject and time the tick, source the EventSource's URI."""
    source = CronSource(cron_source(data={"model": "churn"}), recorder, checkpoints)

    event = source.event_for(NOON)

    assert event.id == "nightly@2026-03-02T12:00:00+00:00"
    assert event.type == DEFAULT_TYPE
    assert event.source == "/cumulo/sources/nightly"
    assert event.subject == "2026-03-02T12:00:00+00:00"
    assert event.attributes["time"] == "2026-03-02T12:00:00+00:00"
    assert event.data == {"model": "churn"}


def test_the_spec_type_replaces_the_default(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """The EventSource's `type` is the type of its tick events."""
    source = CronSource(cron_source(type="dev.example.retrain"), recorder, checkpoints)

    assert source.event_for(NOON).type == "dev.example.retrain"


async def test_replicas_of_one_source_publish_each_tick_once(tmp_path: Path) -> None:
    """Two replicas firing the same tick make one event on the bus (same source and id)."""
    bus = MemoryBus()
    publish = functools.partial(bus.publish, "default")
    with contextlib.ExitStack() as stack:
        stores = [SqliteCheckpoints(tmp_path / f"replica{n}.db") for n in range(2)]
        for store in stores:
            stack.callback(store.close)

        for store in stores:
            await CronSource(cron_source(), publish, store).fire([NOON])

    stored = await bus.read("default")
    assert [m.event.id for m in stored] == ["nightly@2026-03-02T12:00:00+00:00"]


# --- ticks and missed ticks ---------------------------------------------------------------


def test_ticks_after_is_exclusive_of_the_start_and_inclusive_of_the_end(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """Ticks in (start, end]: the start tick already fired, the end tick is due."""
    source = CronSource(cron_source(), recorder, checkpoints)

    ticks = source.ticks_after(NOON, NOON + timedelta(minutes=15))

    assert ticks == [NOON + timedelta(minutes=m) for m in (5, 10, 15)]


def test_a_long_outage_keeps_only_the_latest_ticks(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """At most MAX_CATCH_UP ticks, the newest ones."""
    source = CronSource(cron_source(schedule="* * * * *"), recorder, checkpoints)
    end = NOON + timedelta(minutes=MAX_CATCH_UP + 30)

    ticks = source.ticks_after(NOON, end)

    assert len(ticks) == MAX_CATCH_UP
    assert ticks[-1] == end
    assert ticks[0] == end - timedelta(minutes=MAX_CATCH_UP - 1)


@pytest.mark.parametrize(
    ("missed", "expected"),
    [("skip", []), ("fire-once", [20]), ("fire-all", [5, 10, 15, 20])],
)
def test_missed_ticks_follow_the_policy(
    recorder: Recorder, checkpoints: SqliteCheckpoints, missed: str, expected: list[int]
) -> None:
    """Down from 12:00 to 12:22: skip fires none, fire-once the latest, fire-all each."""
    source = CronSource(cron_source(missed=missed), recorder, checkpoints)
    checkpoints.save("nightly", NOON.isoformat())

    ticks = source.missed_ticks(NOON + timedelta(minutes=22))

    assert ticks == [NOON + timedelta(minutes=m) for m in expected]


def test_a_source_that_never_ran_misses_nothing(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """Without a checkpoint there is nothing to catch up, whatever the policy."""
    source = CronSource(cron_source(missed="fire-all"), recorder, checkpoints)

    assert source.missed_ticks(NOON) == []


async def test_firing_publishes_counts_and_remembers_the_last_tick(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """fire() publishes one event per tick, counts them and checkpoints the last; none is a no-op."""
    source = CronSource(cron_source(), recorder, checkpoints)
    ticks = [NOON, NOON + timedelta(minutes=5)]

    await source.fire(ticks)
    await source.fire([])

    assert [e.subject for e in recorder.events] == [t.isoformat() for t in ticks]
    assert source.fired == 2
    assert checkpoints.load("nightly") == ticks[-1].isoformat()


def test_ticks_are_in_the_sources_time_zone(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """A 03:00 schedule in Europe/Berlin ticks at 03:00 local time (01:00 or 02:00 UTC)."""
    source = CronSource(
        cron_source(schedule="0 3 * * *", timezone="Europe/Berlin"), recorder, checkpoints
    )
    start = datetime(2026, 1, 10, tzinfo=source.zone)

    [winter] = source.ticks_after(start, start + timedelta(days=1))

    assert winter.hour == 3
    assert winter.astimezone(UTC).hour == 2
    assert source.event_for(winter).id == "nightly@2026-01-10T03:00:00+01:00"


# --- run ---------------------------------------------------------------------------------


async def wait_for(check: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout:g}s")
        await asyncio.sleep(0.01)


async def test_run_catches_up_first_then_waits_for_the_next_tick(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """A checkpoint three minutes old, fire-all, every minute: three events at once."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    checkpoints.save("nightly", (now - timedelta(minutes=3)).isoformat())
    source = CronSource(cron_source(schedule="* * * * *", missed="fire-all"), recorder, checkpoints)

    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: len(recorder.events) >= 3)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    subjects = [e.subject for e in recorder.events[:3]]
    expected = [(now - timedelta(minutes=m)).isoformat() for m in (2, 1, 0)]
    assert subjects == expected  # a fourth, if the minute rolled over meanwhile, comes after
    assert checkpoints.load("nightly") == recorder.events[-1].subject


async def test_a_first_run_remembers_when_it_started(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """Without a checkpoint nothing is fired, but "now" is saved for the next start."""
    source = CronSource(cron_source(schedule="0 0 1 1 *"), recorder, checkpoints)

    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: checkpoints.load("nightly") is not None)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    saved = datetime.fromisoformat(str(checkpoints.load("nightly")))
    assert abs((datetime.now(UTC) - saved).total_seconds()) < 60
    assert recorder.events == []


# --- properties -------------------------------------------------------------------------------

SCHEDULES = ["* * * * *", "*/7 * * * *", "0 */2 * * *", "15 3 * * 1-5", "0 0 29 2 *"]


@pytest.fixture(scope="module")
def shared_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteCheckpoints]:
    """One store for every example of a property (each example overwrites the key)."""
    store = SqliteCheckpoints(tmp_path_factory.mktemp("cron") / "c.db")
    yield store
    store.close()


@settings(max_examples=40, deadline=None)
@given(
    schedule=st.sampled_from(SCHEDULES),
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=0, max_value=60 * 30),
)
def test_ticks_are_increasing_inside_the_window_and_capped(
    shared_checkpoints: SqliteCheckpoints, schedule: str, start: datetime, minutes: int
) -> None:
    """For any schedule and window: ticks strictly increase, lie in (start, end], at most
    MAX_CATCH_UP of them, and fire-all's missed ticks are exactly these."""
    source = CronSource(
        cron_source(schedule=schedule, missed="fire-all"), Recorder(), shared_checkpoints
    )
    end = start + timedelta(minutes=minutes)

    ticks = source.ticks_after(start, end)
    shared_checkpoints.save("nightly", start.isoformat())

    assert all(start < tick <= end for tick in ticks)
    assert ticks == sorted(set(ticks))
    assert len(ticks) <= MAX_CATCH_UP
    assert source.missed_ticks(end) == ticks
    assert len({source.event_for(t).id for t in ticks}) == len(ticks)
