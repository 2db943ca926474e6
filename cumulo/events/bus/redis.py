"""The Redis bus: Redis Streams, in the layout of Dapr's ``pubsub.redis`` component.

Layout (a Dapr sidecar and Cumulo read and write the same topics):

- one stream per topic, the key is the topic name; each entry has a ``data``
  field with the CloudEvent in the JSON format, as Dapr writes it, and a
  ``published_at`` field (server time, seconds with microseconds) that Dapr
  ignores. Entries without it (written by Dapr) use their id's milliseconds.
- a Cumulo group is a Redis consumer group of the same name on the topic's
  stream (Dapr's is named after its ``consumerID``); ``start="latest"`` creates
  it at ``$``, ``"earliest"`` at ``0``. ``cumulo:groups`` maps group -> topic.
- leases and retries: ``cumulo:due:<group>`` (a sorted set, id -> due time in
  ms) and ``cumulo:attempts:<group>`` (a hash, id -> attempts). A message stays
  in the group's pending entries list until it is acked or dead-lettered.
- dedup: ``cumulo:dedup:<topic> <source> <id>`` -> the original entry id, set
  with ``PX`` = the dedup window.

Offsets: entry ``<ms>-<seq>`` is offset ``ms << 20 | seq``; the publishing
script allocates ids from one clock for the whole database, so offsets are
unique across topics and increase (see :mod:`.redis_scripts`).

Durability: ``publish`` returns once Redis has applied the write. Whether that
survives a crash of Redis depends on its persistence settings: with
``appendonly yes`` and ``appendfsync always`` nothing acknowledged is lost;
with the default ``appendfsync everysec`` up to a second may be. Every
operation that changes state is one Lua script (atomic). Cluster mode is not
supported: the scripts touch keys of several topics.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cumulo.extras import from_extra

with from_extra("redis", needed_by="redis://"):
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError

from cumulo.errors import BusError, BusUnavailableError, InvalidEventError, UnknownBackendError
from cumulo.events.bus import redis_scripts as scripts
from cumulo.events.bus.base import (
    Accept,
    Ack,
    Bus,
    BusSettings,
    DeadLetter,
    GroupInfo,
    Message,
    Nack,
    Settlement,
    StartAt,
    check_replay,
)
from cumulo.events.event import Event, from_json, spec_problems, to_json

SEQ_BITS = 20
SEQ_MASK = (1 << SEQ_BITS) - 1
SCAN_FACTOR, MAX_SCAN = 50, 5000  # as the SQLite bus: a bounded scan per fetch
GROUPS = "cumulo:groups"
CONSUMER = "cumulo"
FETCH_TRIES = 5


# --- settings and ids ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where Redis is; the URL is redis-py's (``redis://[:password@]host:port/db``)."""

    url: str
    bus: BusSettings = field(default_factory=BusSettings)

    @classmethod
    def from_url(cls, url: str, settings: BusSettings | None = None) -> RedisSettings:
        if urlsplit(url).scheme not in ("redis", "rediss"):
            raise UnknownBackendError(f"not a redis URL: {url!r}")
        return cls(url, settings or BusSettings())

    @property
    def address(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def to_offset(entry_id: bytes | str) -> int:
    """``<ms>-<seq>`` as an integer offset: ``ms << 20 | seq``."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, seq = (int(part) for part in text.split("-"))
    if seq > SEQ_MASK:
        raise BusError(f"redis entry id {text} has a sequence too large to map to an offset")
    return ms << SEQ_BITS | seq


def to_id(offset: int) -> str:
    """The entry id of an offset (0 is ``0-0``, before every entry)."""
    offset = max(offset, 0)
    return f"{offset >> SEQ_BITS}-{offset & SEQ_MASK}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _published_at(entry_id: bytes | str, at: bytes | str | None) -> float:
    return float(at) if at else (to_offset(entry_id) >> SEQ_BITS) / 1000


def _message(topic: str, entry: Any, attempt: int = 0) -> Message:
    entry_id, values = entry
    return Message(
        to_offset(entry_id),
        topic,
        from_json(values[b"data"]),
        _published_at(entry_id, values.get(b"published_at")),
        attempt,
    )


def _encode(event: Event) -> bytes:
    problems = spec_problems(event)
    if problems:
        raise InvalidEventError(problems)
    return to_json(event)


def _dedup_key(topic: str, event: Event) -> str:
    return "cumulo:dedup:" + json.dumps([topic, event.source, event.id], separators=(",", ":"))


def _keys(group: str) -> tuple[str, str]:
    return f"cumulo:due:{group}", f"cumulo:attempts:{group}"


def _ms(seconds: float) -> int:
    return math.ceil(seconds * 1000)


# --- the bus ------------------------------------------------------------------------


class RedisBus(Bus):
    """The bus on Redis Streams. Takes :class:`RedisSettings`, a URL, or a ready client."""

    def __init__(
        self,
        settings: RedisSettings | str,
        *,
        bus_settings: BusSettings | None = None,
        client: aioredis.Redis | None = None,
    ):
        if isinstance(settings, str):
            settings = RedisSettings.from_url(settings, bus_settings)
        self.settings = settings
        self.url = settings.url
        self._client = client
        self._own_client = client is None
        self._scripts: dict[str, Any] = {}

    # lifecycle

    async def start(self) -> None:
        if self._client is None:
            retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), 2)
            self._client = aioredis.Redis.from_url(
                self.url, retry=retry, retry_on_error=[RedisConnectionError, RedisTimeoutError]
            )
        names = {"publish": scripts.PUBLISH, "fetch": scripts.FETCH, "settle": scripts.SETTLE}
        self._scripts = {name: self._client.register_script(lua) for name, lua in names.items()}
        self._scripts["count"] = self._client.register_script(scripts.COUNT)
        async with self._errors():
            await self._client.ping()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._own_client:
            await client.aclose()

    @contextlib.asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        """Redis errors as Cumulo's: unreachable -> BusUnavailableError (the gateway's 503)."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            raise BusUnavailableError(f"redis bus: {e}", address=self.settings.address) from e
        except RedisError as e:
            raise BusError(f"redis bus {self.settings.address}: {e}") from e

    @property
    def redis(self) -> Any:
        """The client. Typed ``Any``: redis-py's stubs make every reply optional and every
        value ``bytes | str``, where this bus's replies (decode off, streams it wrote) are not."""
        if self._client is None:
            raise BusError(f"redis bus {self.settings.address} is not started")
        return self._client

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        self.redis  # noqa: B018 - raises when not started
        async with self._errors():
            return await self._scripts[script](keys=keys, args=args)

    # the log

    async def publish(
        self, topic: str, events: Sequence[Event], *, dedup: bool = True
    ) -> list[int]:
        bodies = [(event, _encode(event)) for event in events]
        if not bodies:
            return []
        window = self.settings.bus.dedup_window if dedup else 0.0
        args: list[Any] = [max(_ms(window), 1)]
        for event, body in bodies:
            args += [_dedup_key(topic, event) if window > 0 else "", body]
        ids = await self._run("publish", [topic], args)
        return [to_offset(entry_id) for entry_id in ids]

    async def read(
        self, topic: str, *, after: int = 0, limit: int = 100, since: float | None = None
    ) -> list[Message]:
        start = after + 1 if since is None else max(after + 1, math.floor(since * 1000) << SEQ_BITS)
        found: list[Message] = []
        while len(found) < limit:
            async with self._errors():
                page = await self.redis.xrange(topic, to_id(start), "+", count=limit)
            messages = [_message(topic, entry) for entry in page]
            found += [m for m in messages if since is None or m.published_at >= since]
            if len(page) < limit:
                break
            start = to_offset(page[-1][0]) + 1
        return found[:limit]

    async def last_offset(self, topic: str) -> int:
        async with self._errors():
            newest = await self.redis.xrevrange(topic, "+", "-", count=1)
        return to_offset(newest[0][0]) if newest else 0

    async def topics(self) -> list[str]:
        async with self._errors():
            streams = [_text(key) async for key in self.redis.scan_iter(_type="stream")]
            lengths = [await self.redis.xlen(stream) for stream in streams]
            subscribed = {_text(topic) for topic in await self.redis.hvals(GROUPS)}
        return sorted({s for s, n in zip(streams, lengths, strict=True) if n} | subscribed)

    # groups

    async def subscribe(self, group: str, topic: str, *, start: StartAt = "latest") -> None:
        async with self._errors():
            await self.redis.hsetnx(GROUPS, group, topic)
            known = _text(await self.redis.hget(GROUPS, group))
        if known != topic:
            raise BusError(f"group {group!r} already consumes topic {known!r}, not {topic!r}")
        await self._ensure_group(group, topic, "$" if start == "latest" else "0")

    async def _ensure_group(self, group: str, topic: str, start: str) -> None:
        try:
            async with self._errors():
                await self.redis.xgroup_create(topic, group, id=start, mkstream=True)
        except BusError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def _topic(self, group: str) -> str:
        async with self._errors():
            topic = await self.redis.hget(GROUPS, group)
        if topic is None:
            raise BusError(f"unknown consumer group {group!r}: subscribe it first")
        return _text(topic)

    async def _cursor(self, group: str, topic: str) -> str:
        """The group's last-delivered id; a group Redis lost is created again at ``0`` (as Dapr does)."""
        async with self._errors():
            with contextlib.suppress(RedisError):
                for info in await self.redis.xinfo_groups(topic):
                    if _text(info["name"]) == group:
                        return _text(info["last-delivered-id"])
        await self._ensure_group(group, topic, "0")
        return await self._cursor(group, topic)

    async def fetch(
        self, group: str, *, limit: int, lease: float, accept: Accept | None = None
    ) -> list[Message]:
        topic = await self._topic(group)
        for _ in range(FETCH_TRIES):
            cursor = await self._cursor(group, topic)
            decisions = await self._decide(group, topic, cursor, limit, accept)
            now = _ms(time.time())
            args = [group, CONSUMER, now, _ms(lease), max(limit, 0), cursor, *decisions]
            found = await self._run("fetch", [topic, *_keys(group)], args)
            if found != [b"retry"]:
                return [_fetched(topic, *row) for row in found]
        raise BusError(f"redis bus: group {group!r} keeps moving under this fetch")

    async def _decide(
        self, group: str, topic: str, cursor: str, limit: int, accept: Accept | None
    ) -> list[Any]:
        """Run the filter over the new entries first: a filter that raises changes nothing."""
        if limit <= 0:
            return []
        budget = max(limit, min(limit * SCAN_FACTOR, MAX_SCAN))
        decisions: list[Any] = []
        taken, chunk = 0, limit
        while taken < limit and budget > 0:  # read little when most entries match
            entries = await self._entries(group, topic, cursor, min(chunk, budget))
            for entry, leased in entries:
                if leased:
                    decisions += [entry[0], 2]
                    continue
                ok = accept is None or accept(_message(topic, entry).event)
                decisions += [entry[0], 1 if ok else 0]
                taken += ok
                if taken == limit:
                    break
            if len(entries) < min(chunk, budget):
                break  # the end of the stream
            cursor, budget, chunk = entries[-1][0][0], budget - len(entries), chunk * 4
        return decisions

    async def _entries(
        self, group: str, topic: str, cursor: Any, count: int
    ) -> list[tuple[Any, bool]]:
        """Up to ``count`` entries after ``cursor``, each with whether it is leased already."""
        async with self._errors():
            entries = await self.redis.xrange(topic, f"({_text(cursor)}", "+", count=count)
            if not entries:
                return []
            scores = await self.redis.zmscore(_keys(group)[0], [e[0] for e in entries])
        return [(entry, score is not None) for entry, score in zip(entries, scores, strict=True)]

    async def settle(self, group: str, settlements: Sequence[Settlement]) -> None:
        if not settlements:
            return
        topic = await self._topic(group)
        window = self.settings.bus.dedup_window
        args: list[Any] = [group, _ms(time.time()), max(_ms(window), 1)]
        for settlement in settlements:
            args += self._settlement_args(settlement, window)
        await self._run("settle", [topic, *_keys(group)], args)

    def _settlement_args(self, settlement: Settlement, window: float) -> list[Any]:
        if isinstance(settlement, Nack):
            return ["nack", to_id(settlement.offset), _ms(settlement.delay), settlement.error, 0]
        if isinstance(settlement, Ack):
            bodies = [(topic, event, _encode(event)) for topic, event in settlement.emit]
            emits = [
                [topic, _dedup_key(topic, event) if window > 0 else "", body]
                for topic, event, body in bodies
            ]
            kind = "ack"
        else:
            assert isinstance(settlement, DeadLetter)
            emits = [[settlement.topic, "", _encode(settlement.event)]]  # no dedup there
            kind = "dead"
        flat = [part for emit in emits for part in emit]
        return [kind, to_id(settlement.offset), 0, "", len(emits), *flat]

    async def wait(self, group: str, timeout: float) -> None:
        """Block on the topic's stream after the group's cursor, until the next retry is due."""
        topic = await self._topic(group)
        cursor = await self._cursor(group, topic)
        async with self._errors():
            first = await self.redis.zrange(_keys(group)[0], 0, 0, withscores=True)
        pause = timeout if not first else min(timeout, first[0][1] / 1000 - time.time())
        if pause <= 0:
            return
        async with self._errors():
            await self.redis.xread({topic: cursor}, count=1, block=max(_ms(pause), 1))

    async def replay(
        self,
        *,
        group: str | None = None,
        topic: str | None = None,
        from_offset: int | None = None,
        from_time: float | None = None,
    ) -> int:
        check_replay(group, topic, from_offset, from_time)
        if group is not None:
            targets = [(group, await self._topic(group))]
        else:
            async with self._errors():
                rows = await self.redis.hgetall(GROUPS)
            targets = sorted((_text(g), _text(t)) for g, t in rows.items() if _text(t) == topic)
        replayed = targets[0][1] if group else str(topic)
        await self.check_replay_start(replayed, from_offset, from_time)
        again = 0
        for name, group_topic in targets:
            again += await self._rewind(name, group_topic, from_offset, from_time)
        return again

    async def _rewind(self, group: str, topic: str, offset: int | None, at: float | None) -> int:
        cursor = await self._cursor(group, topic)
        new = to_id(offset - 1) if offset is not None else await self._before(topic, at or 0.0)
        count = await self._run("count", [topic], [new, cursor]) if _later(cursor, new) else 0
        async with self._errors():
            await self.redis.xgroup_setid(topic, group, new)
        return int(count)

    async def _before(self, topic: str, at: float) -> str:
        """The id of the last entry published before ``at`` (or just before its millisecond)."""
        ms = math.floor(at * 1000)
        async with self._errors():
            same_ms = await self.redis.xrange(topic, f"{ms}-0", f"{ms}-{SEQ_MASK}")
        earlier = [e[0] for e in same_ms if _message(topic, e).published_at < at]
        return _text(earlier[-1]) if earlier else to_id((ms << SEQ_BITS) - 1)

    async def groups(self) -> list[GroupInfo]:
        async with self._errors():
            rows = await self.redis.hgetall(GROUPS)
        infos = []
        for name, topic in sorted((_text(g), _text(t)) for g, t in rows.items()):
            cursor = await self._cursor(name, topic)
            async with self._errors():
                pending = await self.redis.zcard(_keys(name)[0])
            backlog = await self._run("count", [topic], [cursor, "+"])
            infos.append(GroupInfo(name, topic, to_offset(cursor), pending, int(backlog)))
        return infos

    async def trim(self) -> int:
        """XTRIM MINID per stream: entries older than the retention that every group is done with."""
        cut = math.floor((time.time() - self.settings.bus.retention) * 1000) << SEQ_BITS
        removed = 0
        async with self._errors():
            streams = [key async for key in self.redis.scan_iter(_type="stream")]
            for stream in streams:
                floor = min([cut, *(await self._floors(stream))])
                if floor > 0:
                    removed += await self.redis.xtrim(stream, minid=to_id(floor), approximate=False)
        return removed

    async def _floors(self, stream: bytes) -> list[int]:
        """Per group on the stream (Dapr's too): the first offset it still needs."""
        floors = []
        for info in await self.redis.xinfo_groups(stream):
            floors.append(to_offset(info["last-delivered-id"]) + 1)
            summary = await self.redis.xpending(stream, info["name"])
            if summary["pending"]:
                floors.append(to_offset(summary["min"]))
        return floors


def _fetched(topic: str, entry_id: bytes, data: bytes, at: bytes, attempt: int) -> Message:
    return Message(
        to_offset(entry_id), topic, from_json(data), _published_at(entry_id, at), attempt
    )


def _later(a: str, b: str) -> bool:
    return to_offset(a) > to_offset(b)
