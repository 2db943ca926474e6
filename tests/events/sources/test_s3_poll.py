"""The S3 poller against a real MinIO: exactly once across restarts, backfill, filters."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cumulo.errors import SecretNotSetError, SourceError
from cumulo.events.sources.s3_poll import SETTLE, Listed, S3Poller, Watermark
from cumulo.runtimes.local.checkpoints import SqliteCheckpoints
from cumulo.runtimes.local.sources import build_source
from cumulo.spec.models import EventSource

KEYS = {"name": "minio", "env": "TEST_S3_ACCESS"}, {"name": "minio", "env": "TEST_S3_SECRET"}


@pytest.fixture
def checkpoints(tmp_path: Path):
    store = SqliteCheckpoints(tmp_path / "checkpoints.db")
    yield store
    store.close()


@pytest.fixture
def poller(minio, minio_bucket, recorder, checkpoints, deliveries, monkeypatch):
    """Make a poller (again: a restart) of ``minio_bucket``, built as ``cumulo up`` builds it."""
    monkeypatch.setenv("TEST_S3_ACCESS", minio.access_key)
    monkeypatch.setenv("TEST_S3_SECRET", minio.secret_key)

    def make(**spec) -> S3Poller:
        s3 = {"bucket": minio_bucket, "endpoint": minio.endpoint, "mode": "poll",
              "accessKey": KEYS[0], "secretKey": KEYS[1], **spec}  # fmt: skip
        source = EventSource.model_validate({"metadata": {"name": "bucket"}, "spec": {"s3": s3}})
        running = build_source(source, recorder, checkpoints, deliveries)
        assert isinstance(running, S3Poller)
        return running

    return make


def upload(minio, bucket: str, *keys: str) -> None:
    client = minio.client()
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())


async def test_new_objects_are_announced_once_across_restarts(
    minio, minio_bucket, poller, recorder
):
    assert await poller().poll_once() == 0  # the (empty) baseline
    upload(minio, minio_bucket, "a.csv", "red flower.jpg", "a+b.txt")
    first = poller()
    assert await first.poll_once() == 3
    assert await first.poll_once() == 0
    assert await poller().poll_once() == 0  # restarted: nothing again
    upload(minio, minio_bucket, "while-stopped.csv")
    assert await poller().poll_once() == 1
    keys = [e.subject for e in recorder.events]
    assert sorted(keys[:3]) == ["a+b.txt", "a.csv", "red flower.jpg"]
    assert keys[3:] == ["while-stopped.csv"]

    event = next(e for e in recorder.events if e.subject == "red flower.jpg")
    head = minio.client().head_object(Bucket=minio_bucket, Key="red flower.jpg")
    etag = head["ETag"].strip('"')
    assert event.type == "dev.cumulo.object.created"
    assert event.source == f"{minio.endpoint}/{minio_bucket}"
    assert event.attributes["cumulosource"] == "bucket"
    assert event.id.startswith(f"{minio_bucket}/red flower.jpg@{etag}/")
    assert event.data == {
        "bucket": minio_bucket,
        "key": "red flower.jpg",
        "size": len(b"red flower.jpg"),
        "etag": etag,
        "versionId": None,
        "eventName": "ObjectCreated:Poll",
        "uri": f"s3://{minio_bucket}/red flower.jpg",
    }
    modified = datetime.fromisoformat(event.time)
    assert abs(modified - head["LastModified"]) < timedelta(seconds=1)


async def test_a_rewritten_object_is_announced_again(minio, minio_bucket, poller, recorder):
    await poller().poll_once()
    upload(minio, minio_bucket, "model.bin")
    assert await poller().poll_once() == 1
    minio.client().put_object(Bucket=minio_bucket, Key="model.bin", Body=b"v2")
    assert await poller().poll_once() == 1
    assert len({e.id for e in recorder.events}) == 2


async def test_objects_already_there_are_the_baseline_without_since(minio, minio_bucket, poller):
    upload(minio, minio_bucket, "old-1", "old-2")
    assert await poller().poll_once() == 0
    upload(minio, minio_bucket, "new")
    assert await poller().poll_once() == 1


async def test_since_backfills_older_objects_once(minio, minio_bucket, poller, recorder):
    upload(minio, minio_bucket, "before.csv")
    time.sleep(1.1)
    cut = datetime.now(UTC)
    upload(minio, minio_bucket, "after-1.csv", "after-2.csv")
    assert await poller(since=cut.isoformat()).poll_once() == 2
    assert await poller(since=cut.isoformat()).poll_once() == 0  # only on first start
    assert sorted(e.subject for e in recorder.events) == ["after-1.csv", "after-2.csv"]


async def test_backfill_from_long_ago_takes_everything(minio, minio_bucket, poller):
    upload(minio, minio_bucket, "x", "y", "z")
    assert await poller(since="2000-01-01T00:00:00Z").poll_once() == 3
    assert await poller(since="2000-01-01T00:00:00Z").poll_once() == 0


async def test_prefix_and_suffix_filter(minio, minio_bucket, poller, recorder):
    await poller(prefix="in/", suffix=".csv").poll_once()
    upload(minio, minio_bucket, "in/a.csv", "in/b.txt", "out/c.csv", "in/deep/d.csv")
    assert await poller(prefix="in/", suffix=".csv").poll_once() == 2
    assert sorted(e.subject for e in recorder.events) == ["in/a.csv", "in/deep/d.csv"]


async def test_boto3s_own_chain_when_the_spec_names_no_keys(
    minio, minio_bucket, recorder, checkpoints, deliveries, monkeypatch
):
    for name, value in minio.aws_env().items():
        monkeypatch.setenv(name, value)
    s3 = {"bucket": minio_bucket, "endpoint": minio.endpoint, "mode": "poll", "since": "2000-01-01"}
    source = EventSource.model_validate({"metadata": {"name": "env"}, "spec": {"s3": s3}})
    upload(minio, minio_bucket, "k")
    running = build_source(source, recorder, checkpoints, deliveries)
    assert await running.poll_once() == 1


async def test_failures_say_what_failed(
    minio, poller, recorder, checkpoints, deliveries, monkeypatch
):
    with pytest.raises(SourceError, match="no-such-bucket"):
        await poller(bucket="no-such-bucket").poll_once()
    monkeypatch.setenv("TEST_S3_SECRET", "wrong-secret")
    with pytest.raises(SourceError, match="listing s3://"):
        await poller().poll_once()
    monkeypatch.delenv("TEST_S3_SECRET")
    with pytest.raises(SecretNotSetError, match="TEST_S3_SECRET"):
        poller()
    assert recorder.events == []


def test_the_watermark_remembers_late_objects_and_keys_at_its_edge():
    t = datetime(2024, 1, 1, tzinfo=UTC)
    a, b = Listed("a", "e1", 1, t), Listed("b", "e2", 1, t)
    mark = Watermark(None, {}).advanced([a])
    assert not mark.is_new(a) and mark.is_new(b)  # same second, another key
    late = Listed("late", "e3", 1, t - SETTLE / 2)  # a multipart upload's older time
    stale = Listed("stale", "e4", 1, t - SETTLE * 2)
    assert mark.is_new(late) and not mark.is_new(stale)
    again = Watermark.load(mark.advanced([a, b, late]).dump())
    assert not any(again.is_new(o) for o in (a, b, late, stale))
    assert again.is_new(Listed("a", "e5", 1, t + timedelta(seconds=1)))
