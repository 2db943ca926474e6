"""The S3 source's ``poll`` mode: list a bucket every ``interval``, announce what is new.

Works with any S3 API (AWS, MinIO, Ceph, R2, ...): ``endpoint`` picks it,
``region`` and ``accessKey``/``secretKey`` (secret references) say how to sign,
else boto3's own credential chain (``AWS_*`` variables, profiles, roles) does.

Each object under ``prefix`` (and ending in ``suffix``) not announced before
becomes the same ``dev.cumulo.object.created`` event as a notification (see
:mod:`cumulo.events.sources.s3`), with ``eventName`` ``ObjectCreated:Poll``,
``time`` its ``LastModified``, ``versionId`` null and ``id``
``<bucket>/<key>@<etag>/<LastModified>`` (a rewrite is a new object).

*Exactly once across restarts.* A checkpoint keeps a watermark (the newest
``LastModified`` listed, less :data:`SETTLE`) and the key → etag/time of every
object listed since it; an object older than the watermark, or listed there
with the same etag and time, is not announced again. The settle window catches
objects that show up late with an older ``LastModified`` (a long multipart
upload carries its start time). The checkpoint is saved only once the events
are on the bus.

*First start* (no checkpoint): the objects already there are the baseline and
are not announced, unless ``since`` is set: then every object modified at or
after ``since`` is announced, once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from cumulo.errors import BusError, SourceError
from cumulo.events.event import Event
from cumulo.events.sources.cron import Checkpoints, Publish
from cumulo.events.sources.git_poll import PollStats
from cumulo.events.sources.s3 import DEFAULT_TYPE, S3Object, event_source, keeps, object_event
from cumulo.extras import from_extra
from cumulo.spec.models import EventSource, S3Source

log = logging.getLogger("cumulo.sources")

SETTLE = timedelta(minutes=5)
POLL_EVENT_NAME = "ObjectCreated:Poll"


@dataclass(frozen=True)
class Listed:
    key: str
    etag: str
    size: int
    modified: datetime

    @property
    def mark(self) -> str:
        return f"{self.etag}/{self.modified.isoformat()}"


@dataclass
class Watermark:
    """How far the poller got: objects before ``floor`` or in ``seen`` are announced."""

    floor: datetime | None
    seen: dict[str, str]

    def is_new(self, obj: Listed) -> bool:
        if self.floor is not None and obj.modified < self.floor:
            return False
        return self.seen.get(obj.key) != obj.mark

    def advanced(self, listing: list[Listed]) -> Watermark:
        """The watermark once everything in ``listing`` is announced."""
        floor = self.floor
        if listing:
            top = max(obj.modified for obj in listing) - SETTLE
            floor = top if floor is None else max(floor, top)
        seen = {obj.key: obj.mark for obj in listing if floor is None or obj.modified >= floor}
        return Watermark(floor, seen)

    def dump(self) -> str:
        floor = self.floor.isoformat() if self.floor else None
        return orjson.dumps({"floor": floor, "seen": self.seen}).decode()

    @classmethod
    def load(cls, text: str) -> Watermark:
        value = orjson.loads(text)
        floor = datetime.fromisoformat(value["floor"]) if value["floor"] else None
        return cls(floor, dict(value["seen"]))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def s3_client(source: str, spec: S3Source, keys: tuple[str, str] | None) -> Any:
    """A boto3 S3 client for the spec's endpoint (path-style when one is named)."""
    with from_extra("s3", needed_by=f"source '{source}' (S3 poll mode)"):
        import boto3
        from botocore.config import Config
    options: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 60}
    if spec.endpoint:
        options["s3"] = {"addressing_style": "path"}
    credentials = {}
    if keys is not None:
        credentials = {"aws_access_key_id": keys[0], "aws_secret_access_key": keys[1]}
    return boto3.client(
        "s3",
        endpoint_url=spec.endpoint,
        region_name=spec.region,
        config=Config(**options),
        **credentials,
    )


def list_objects(client: Any, bucket: str, prefix: str) -> list[Listed]:
    """Every object under ``prefix``; :class:`SourceError` when S3 says no."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [
            Listed(
                o["Key"], o.get("ETag", "").strip('"'), o.get("Size", 0), _aware(o["LastModified"])
            )
            for page in pages
            for o in page.get("Contents", [])
        ]
    except (BotoCoreError, ClientError) as e:
        raise SourceError(f"listing s3://{bucket}/{prefix} failed: {e}") from e


class S3Poller:
    kind = "s3"

    def __init__(
        self,
        source: EventSource,
        publish: Publish,
        checkpoints: Checkpoints,
        keys: tuple[str, str] | None = None,
    ):
        spec = source.spec.s3
        assert spec is not None
        self.name = source.name
        self.spec = spec
        self.type = source.spec.type or DEFAULT_TYPE
        self.source = event_source(spec)
        self.client = s3_client(source.name, spec, keys)
        self.publish = publish
        self.checkpoints = checkpoints
        self.stats = PollStats()

    @property
    def _key(self) -> str:
        return f"s3/{self.name}"

    def event_for(self, obj: Listed) -> Event:
        found = S3Object(
            bucket=self.spec.bucket,
            key=obj.key,
            size=obj.size,
            etag=obj.etag,
            version_id=None,
            event_name=POLL_EVENT_NAME,
            time=obj.modified.isoformat().replace("+00:00", "Z"),
            sequencer=None,
        )
        event = object_event(self.name, self.type, self.source, found)
        return event.with_attributes(id=f"{self.spec.bucket}/{obj.key}@{obj.mark}")

    def starting_point(self, listing: list[Listed]) -> Watermark:
        """The checkpoint's watermark; on first start, ``since`` or the baseline."""
        saved = self.checkpoints.load(self._key)
        if saved is not None:
            return Watermark.load(saved)
        if self.spec.since is not None:
            return Watermark(_aware(self.spec.since), {})
        baseline = Watermark(None, {}).advanced(listing)
        self.checkpoints.save(self._key, baseline.dump())
        log.info("source %s: %d object(s) already there, not announced", self.name, len(listing))
        return baseline

    async def poll_once(self) -> int:
        """List once; publish what is new; return how many events were published."""
        self.stats.polls += 1
        listing = await asyncio.to_thread(
            list_objects, self.client, self.spec.bucket, self.spec.prefix
        )
        mark = self.starting_point(listing)
        new = [o for o in listing if mark.is_new(o) and keeps(self.spec, o.key)]
        new.sort(key=lambda o: (o.modified, o.key))
        if new:
            await self.publish([self.event_for(o) for o in new])
            self.stats.published += len(new)
            log.info("source %s: %d new object(s)", self.name, len(new))
        self.checkpoints.save(self._key, mark.advanced(listing).dump())
        return len(new)

    async def run(self) -> None:
        """Poll every ``interval`` until cancelled; a failed poll is logged and retried."""
        while True:
            try:
                await self.poll_once()
            except (SourceError, BusError) as e:
                self.stats.errors += 1
                log.warning("source %s: %s", self.name, e)
            await asyncio.sleep(self.spec.interval)
