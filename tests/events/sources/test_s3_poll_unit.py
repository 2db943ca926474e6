"""The S3 poller's bookkeeping, offline: the watermark, the events it makes, where it starts,
and how a failing listing is reported.

The real MinIO runs in ``test_s3_poll.py``; here the watermark's promises are checked
as properties over generated listings (an object announced once is never announced
again, the checkpoint text gives the same watermark back), and the poller itself runs
against an endpoint nothing listens on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cumulo.errors import SourceError
from cumulo.events.sources.s3_poll import (
    POLL_EVENT_NAME,
    SETTLE,
    Listed,
    S3Poller,
    Watermark,
    list_objects,
    s3_client,
)
from cumulo.runtimes.local.checkpoints import SqliteCheckpoints
from cumulo.spec.models import EventSource, S3Source
from tests.events.sources.conftest import Recorder

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
KEYS = ("access", "secret")


def listed(key: str, minutes: float, etag: str = "e1", size: int = 3) -> Listed:
    return Listed(key, etag, size, T0 + timedelta(minutes=minutes))


def s3_source(endpoint: str | None = "http://127.0.0.1:9", **s3: Any) -> EventSource:
    spec = {"bucket": "data", "mode": "poll", "endpoint": endpoint, **s3}
    return EventSource.model_validate({"metadata": {"name": "lake"}, "spec": {"s3": spec}})


@pytest.fixture
def checkpoints(tmp_path: Path) -> Iterator[SqliteCheckpoints]:
    store = SqliteCheckpoints(tmp_path / "checkpoints.db")
    yield store
    store.close()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt per S3 call, so a refused connection fails at once (no retry backoff)."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")


# --- the watermark ---------------------------------------------------------------------


def test_a_fresh_watermark_finds_everything_new() -> None:
    """No floor and nothing seen: every object is new."""
    assert Watermark(None, {}).is_new(listed("a.csv", 0))


def test_objects_older_than_the_floor_are_not_new() -> None:
    """Objects before the floor were announced (or were the baseline); at the floor they count."""
    mark = Watermark(T0, {})

    assert not mark.is_new(listed("old.csv", -1))
    assert mark.is_new(listed("edge.csv", 0))


def test_a_seen_object_is_new_again_only_when_rewritten() -> None:
    """The same etag and time: seen. A new etag or time: a rewrite, announced again."""
    obj = listed("a.csv", 1)
    mark = Watermark(T0, {"a.csv": obj.mark})

    assert not mark.is_new(obj)
    assert mark.is_new(listed("a.csv", 1, etag="e2"))
    assert mark.is_new(listed("a.csv", 2))


def test_advancing_sets_the_floor_a_settle_window_below_the_newest() -> None:
    """The floor is the newest LastModified less SETTLE; only objects from there on are remembered."""
    listing = [listed("a", 0), listed("b", 30), listed("c", 28)]

    advanced = Watermark(None, {}).advanced(listing)

    assert advanced.floor == T0 + timedelta(minutes=30) - SETTLE
    assert set(advanced.seen) == {"b", "c"}


def test_an_empty_listing_keeps_the_watermark() -> None:
    """An empty bucket keeps the floor and forgets nothing it needs."""
    mark = Watermark(T0, {"a": "e/1"})

    assert mark.advanced([]) == Watermark(T0, {})
    assert Watermark(None, {}).advanced([]) == Watermark(None, {})


def test_a_late_object_inside_the_settle_window_is_still_announced() -> None:
    """A multipart upload finished late carries its start time: within SETTLE it is new."""
    mark = Watermark(None, {}).advanced([listed("big.parquet", 60)])

    late = listed("late.parquet", 60 - SETTLE.total_seconds() / 60 + 1)

    assert mark.is_new(late)


def test_the_checkpoint_text_round_trips() -> None:
    """dump() then load() gives the same watermark, with and without a floor."""
    mark = Watermark(T0, {"a b.csv": "e1/2026-05-01T08:00:00+00:00"})

    assert Watermark.load(mark.dump()) == mark
    assert Watermark.load(Watermark(None, {}).dump()) == Watermark(None, {})


keys = st.text(alphabet="abcdefghij/._- ", min_size=1, max_size=12)
listings = st.dictionaries(
    keys,
    st.tuples(st.sampled_from(["e1", "e2", "e3"]), st.integers(min_value=-600, max_value=600)),
    max_size=12,
).map(lambda found: [listed(k, m, etag) for k, (etag, m) in found.items()])


@settings(max_examples=80, deadline=None)
@given(before=listings, listing=listings)
def test_nothing_listed_is_announced_twice(before: list[Listed], listing: list[Listed]) -> None:
    """After advancing over a listing, no object of that listing is new any more."""
    mark = Watermark(None, {}).advanced(before).advanced(listing)

    assert [obj for obj in listing if mark.is_new(obj)] == []


@settings(max_examples=80, deadline=None)
@given(before=listings, listing=listings)
def test_the_floor_never_goes_back(before: list[Listed], listing: list[Listed]) -> None:
    """Advancing over any listing never lowers the floor (old objects stay announced)."""
    first = Watermark(None, {}).advanced(before)
    second = first.advanced(listing)

    if first.floor is not None:
        assert second.floor is not None and second.floor >= first.floor


@settings(max_examples=80, deadline=None)
@given(listing=listings)
def test_a_new_key_after_the_newest_object_is_always_announced(listing: list[Listed]) -> None:
    """Something written after everything listed, under a key never seen, is new."""
    mark = Watermark(None, {}).advanced(listing)
    newest = max((obj.modified for obj in listing), default=T0)

    fresh = Listed("never-seen-before.csv", "e9", 1, newest + timedelta(seconds=1))

    assert mark.is_new(fresh)


@settings(max_examples=60, deadline=None)
@given(listing=listings)
def test_any_watermark_survives_its_checkpoint(listing: list[Listed]) -> None:
    """Every watermark a listing gives survives dump() and load() unchanged."""
    mark = Watermark(None, {}).advanced(listing)

    assert Watermark.load(mark.dump()) == mark


# --- the poller's events and starting point ----------------------------------------------------


def test_a_listed_object_becomes_an_object_created_event(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """Same shape as a notification's event; the id includes etag and time (a rewrite is new)."""
    poller = S3Poller(s3_source(), recorder, checkpoints, KEYS)
    obj = listed("in/red flower.jpg", 5, etag="abc", size=42)

    event = poller.event_for(obj)

    assert event.type == "dev.cumulo.object.created"
    assert event.source == "http://127.0.0.1:9/data"
    assert event.subject == "in/red flower.jpg"
    assert event.id == "data/in/red flower.jpg@abc/2026-05-01T08:05:00+00:00"
    assert event.attributes["time"] == "2026-05-01T08:05:00Z"
    assert event.attributes["cumulosource"] == "lake"
    assert event.data == {
        "bucket": "data",
        "key": "in/red flower.jpg",
        "size": 42,
        "etag": "abc",
        "versionId": None,
        "eventName": POLL_EVENT_NAME,
        "uri": "s3://data/in/red flower.jpg",
    }


def test_without_an_endpoint_the_source_is_the_bucket_uri(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """On AWS itself (no endpoint) the events' source is s3://<bucket>."""
    poller = S3Poller(s3_source(None, region="eu-west-1"), recorder, checkpoints, KEYS)

    assert poller.event_for(listed("k", 0)).source == "s3://data"


def test_the_first_start_makes_what_is_there_the_baseline(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """No checkpoint, no ``since``: what is listed is not announced, and that is saved."""
    poller = S3Poller(s3_source(), recorder, checkpoints, KEYS)
    there = [listed("a", 0), listed("b", 1)]

    mark = poller.starting_point(there)

    assert not any(mark.is_new(obj) for obj in there)
    assert checkpoints.load("s3/lake") == mark.dump()


def test_since_makes_older_objects_count_from_that_moment(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """On first start with `since`, the floor is that moment and no baseline is saved."""
    poller = S3Poller(s3_source(since="2026-05-01T08:10:00Z"), recorder, checkpoints, KEYS)

    mark = poller.starting_point([listed("before", 5), listed("after", 15)])

    assert mark == Watermark(T0 + timedelta(minutes=10), {})
    assert checkpoints.load("s3/lake") is None


def test_a_saved_checkpoint_wins_over_since(
    recorder: Recorder, checkpoints: SqliteCheckpoints
) -> None:
    """After the first start, the checkpoint decides, not `since`."""
    saved = Watermark(T0, {"a": "e1/x"})
    checkpoints.save("s3/lake", saved.dump())
    poller = S3Poller(s3_source(since="2020-01-01T00:00:00Z"), recorder, checkpoints, KEYS)

    assert poller.starting_point([]) == saved


def test_a_naive_since_is_taken_as_utc(recorder: Recorder, checkpoints: SqliteCheckpoints) -> None:
    """A `since` without a zone is read as UTC."""
    poller = S3Poller(s3_source(since="2026-05-01T08:00:00"), recorder, checkpoints, KEYS)

    assert poller.starting_point([]).floor == T0


# --- failures ------------------------------------------------------------------------------


def test_a_listing_that_cannot_connect_is_a_source_error_naming_bucket_and_prefix(
    offline: None,
) -> None:
    """botocore's connection error is translated into a SourceError naming what was listed."""
    spec = S3Source(bucket="data", prefix="in/", mode="poll", endpoint="http://127.0.0.1:9")
    client = s3_client("lake", spec, KEYS)

    with pytest.raises(SourceError, match=r"listing s3://data/in/ failed"):
        list_objects(client, "data", "in/")


async def test_failed_polls_are_counted_logged_and_retried(
    offline: None,
    recorder: Recorder,
    checkpoints: SqliteCheckpoints,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """run() keeps polling after a failure; nothing is published or checkpointed."""
    poller = S3Poller(s3_source(interval=0.01), recorder, checkpoints, KEYS)
    caplog.set_level(logging.WARNING, logger="cumulo.sources")

    task = asyncio.create_task(poller.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    try:
        while poller.stats.errors < 2:
            assert loop.time() < deadline, "the poller did not retry within 10s"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert poller.stats.polls >= 2
    assert poller.stats.published == 0 and recorder.events == []
    assert checkpoints.load("s3/lake") is None
    assert any("listing s3://data/ failed" in r.getMessage() for r in caplog.records)
