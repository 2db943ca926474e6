"""The Kafka bus: one Kafka topic per event topic, Kafka consumer groups for groups.

URL: ``kafka://host:port[,host:port][?prefix=NAME&timeout=SECONDS]``. With a
prefix, topic ``t`` is Kafka topic ``NAME.t`` and group ``g`` Kafka group
``NAME.g``; without one the names are the same (as Dapr's Kafka pub/sub uses them).

- **Records** follow the CloudEvents Kafka protocol binding in structured mode
  (:mod:`cumulo.events.kafka_binding`); the key is the event's ``partitionkey``,
  else its ``subject``. Records in binary mode (``ce_`` headers), written by
  others, are read too.
- **Offsets**: each topic has *one partition*, so the contract's single
  integer offset is the Kafka offset + 1 (offsets start at 1 and are never
  reused, as the contract needs). One partition keeps a topic's order and the
  mapping trivial; a bus does not need Kafka's partition parallelism, since
  leases let many workers share one group.
- **Groups**: a Kafka consumer group per bus group, assigned the topic's
  partition by hand; its committed offset is the first message not yet settled
  (:mod:`.kafka_groups`), so a bus process that dies loses nothing. Leases and
  retries live above it in this bus process: a nacked message does not block
  the partition (later ones keep flowing) and comes back when due. One bus
  process per group at a time: two would each deliver every message.
- **Dead letters** are published to the dead-letter topic (with the reason
  extensions the dispatcher sets) and the original is settled.
- **Dedup**: Kafka has none on the server (the idempotent producer only drops
  its own retries). This bus remembers (source, id) -> offset of what it
  published within the window, per topic: duplicates from the same bus process
  are caught, not those from another process or from before a restart.
- **Durability**: ``publish`` returns when every in-sync replica has the records
  (``acks=all``, idempotent producer).
- **Errors**: a broker that cannot be reached within ``timeout`` (default 5 s)
  is :class:`~cumulo.errors.BusUnavailableError`; what was queued then is
  dropped, never written later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from cumulo.errors import BusError, InvalidEventError, UnknownBackendError
from cumulo.events.bus.base import (
    Accept,
    Ack,
    BusSettings,
    DeadLetter,
    GroupInfo,
    Message,
    Nack,
    Settlement,
    StartAt,
    check_replay,
)
from cumulo.events.bus.kafka_client import KafkaClient, Record, now_ms
from cumulo.events.bus.kafka_groups import GroupState
from cumulo.events.bus.kafka_log import REGISTRY, KafkaLog
from cumulo.events.event import Event, spec_problems

FILL = 500  # at most this many messages read ahead per group


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap: str
    prefix: str = ""
    timeout: float = 5.0
    bus: BusSettings = field(default_factory=BusSettings)

    @classmethod
    def from_url(cls, url: str, settings: BusSettings | None = None) -> KafkaSettings:
        parts = urlsplit(url)
        if parts.scheme != "kafka" or not parts.netloc:
            raise UnknownBackendError(f"not a kafka URL: {url!r} (kafka://host:port[,host:port])")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        timeout = float(query.get("timeout", 5.0))
        return cls(parts.netloc, query.get("prefix", ""), timeout, settings or BusSettings())


class KafkaBus(KafkaLog):
    """The bus contract on Kafka; see the module docstring for the mapping."""

    def __init__(self, url: str, *, bus_settings: BusSettings | None = None):
        settings = KafkaSettings.from_url(url, bus_settings)
        super().__init__(settings.prefix, settings.bus)
        self.url = url
        self.settings = settings
        self._states: dict[str, GroupState] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        self.client = await asyncio.to_thread(
            KafkaClient, self.settings.bootstrap, self.settings.timeout
        )
        self.reader = await asyncio.to_thread(self.client.consumer, self.group_id("cumulo-reader"))
        # never assigned, so no long-polling fetch delays its offset look-ups
        self.meta = await asyncio.to_thread(self.client.consumer, self.group_id("cumulo-meta"))

    async def close(self) -> None:
        for state in self._states.values():
            await asyncio.to_thread(state.consumer.close)
        self._states.clear()
        if hasattr(self, "reader"):
            await asyncio.to_thread(self.reader.close)
            await asyncio.to_thread(self.meta.close)
            await asyncio.to_thread(self.client.producer.flush, 1)

    # --- groups ---------------------------------------------------------------------

    def _lock(self, group: str) -> asyncio.Lock:
        return self._locks.setdefault(group, asyncio.Lock())

    async def _registry(self) -> dict[str, str]:
        """group -> topic, from the registry topic (Kafka keeps no such list for us)."""
        ktopic = await self.ensure_topic(REGISTRY)
        async with self.reader_lock:
            records = await self._run(self.client.read_all, self.reader, self.meta, ktopic)
        return {r.key().decode(): r.value().decode() for r in records if r.key() and r.value()}

    async def _load(self, group: str) -> GroupState | None:
        if group in self._states:
            return self._states[group]
        topic = (await self._registry()).get(group)
        return None if topic is None else await self._attach(group, topic, None)

    async def _attach(self, group: str, topic: str, offset: int | None) -> GroupState:
        ktopic = self.kname(topic)
        consumer = await self._run(self.client.consumer, self.group_id(group))
        if offset is None:
            offset = await self._run(self.client.committed, consumer, ktopic) or 0
        await self._run(self.client.assign, consumer, ktopic, offset)
        state = GroupState(group, topic, consumer, next=offset + 1, committed=offset)
        state.position = offset
        self._states[group] = state
        return state

    async def _group(self, group: str) -> GroupState:
        state = await self._load(group)
        if state is None:
            raise BusError(f"no such group: {group!r} (subscribe it first)")
        return state

    async def subscribe(self, group: str, topic: str, *, start: StartAt = "latest") -> None:
        self.kname(topic)  # a legal topic name, or a clear error before anything changes
        async with self._lock(group):
            state = await self._load(group)
            if state is not None:
                if state.topic != topic:
                    raise BusError(f"group {group!r} reads {state.topic!r}, not {topic!r}")
                return
            await self.ensure_topic(topic)
            low, high = await self._run(self.client.watermarks, self.meta, self.kname(topic))
            record: Record = (group.encode(), topic.encode(), [], now_ms())
            await self._run(self.client.produce, await self.ensure_topic(REGISTRY), [record])
            state = await self._attach(group, topic, low if start == "earliest" else high)
            await self._run(self.client.commit, state.consumer, self.kname(topic), state.committed)

    async def _commit(self, state: GroupState) -> None:
        low = state.low_water()
        if low != state.committed:
            await self._run(self.client.commit, state.consumer, self.kname(state.topic), low)
            state.committed = low

    async def _fill(self, state: GroupState) -> None:
        """Read ahead what the topic has beyond the consumer's position."""
        ktopic = self.kname(state.topic)
        _, high = await self._run(self.client.watermarks, self.meta, ktopic)
        deadline = time.monotonic() + self.settings.timeout
        while state.position < high and len(state.buffer) < FILL:
            if time.monotonic() > deadline:
                raise self.client.unavailable(f"reading {ktopic} timed out")
            await self._poll(state, min(high - state.position, FILL), 0.5)

    async def _poll(self, state: GroupState, count: int, timeout: float) -> None:
        raw = await self._run(self.client.poll, state.consumer, count, timeout)
        state.take(self.messages(state.topic, raw))

    async def fetch(
        self, group: str, *, limit: int, lease: float, accept: Accept | None = None
    ) -> list[Message]:
        state = await self._group(group)
        async with self._lock(group):
            if len(state.buffer) < limit:
                await self._fill(state)
            chosen = state.lease(limit, lease, time.time(), accept)
            await self._commit(state)
            return chosen

    async def settle(self, group: str, settlements: Sequence[Settlement]) -> None:
        state = await self._group(group)
        _check(settlements)
        for settlement in settlements:
            if isinstance(settlement, Ack):
                for topic, event in settlement.emit:
                    await self.publish(topic, [event])
            elif isinstance(settlement, DeadLetter):
                await self.publish(settlement.topic, [settlement.event], dedup=False)
        async with self._lock(group):
            for settlement in settlements:
                pending = state.pending.get(settlement.offset)
                if isinstance(settlement, Nack) and pending is not None:
                    pending.due = time.time() + settlement.delay
                elif not isinstance(settlement, Nack):
                    state.pending.pop(settlement.offset, None)
            await self._commit(state)

    async def wait(self, group: str, timeout: float) -> None:
        state = await self._group(group)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if state.buffer or state.due(time.time()):
                return
            due = state.next_due()
            step = min(left, 0.25, max(due - time.time(), 0.0) if due is not None else left)
            async with self._lock(group):
                await self._poll(state, 100, step)

    async def replay(
        self,
        *,
        group: str | None = None,
        topic: str | None = None,
        from_offset: int | None = None,
        from_time: float | None = None,
    ) -> int:
        check_replay(group, topic, from_offset, from_time)
        targets = [await self._group(group)] if group else await self._on_topic(str(topic))
        replayed = targets[0].topic if group else str(topic)
        await self.check_replay_start(replayed, from_offset, from_time)
        total = 0
        for state in targets:
            total += await self._rewind(state, from_offset, from_time)
        return total

    async def _rewind(self, state: GroupState, offset: int | None, at: float | None) -> int:
        ktopic = self.kname(state.topic)
        low, high = await self._run(self.client.watermarks, self.meta, ktopic)
        if at is not None:
            start = await self._run(self.client.offset_at, self.meta, ktopic, at)
        else:
            start = max(int(offset or 1) - 1, low)
        async with self._lock(state.name):
            state.rewind(start + 1)
            await self._run(self.client.assign, state.consumer, ktopic, start)
            await self._commit(state)
        return max(high - start, 0)

    async def _all_groups(self) -> list[GroupState]:
        for name, topic in (await self._registry()).items():
            if name not in self._states:
                await self._attach(name, topic, None)
        return list(self._states.values())

    async def _on_topic(self, topic: str) -> list[GroupState]:
        return [s for s in await self._all_groups() if s.topic == topic]

    async def groups(self) -> list[GroupInfo]:
        found = []
        for state in sorted(await self._all_groups(), key=lambda s: s.name):
            _, high = await self._run(self.client.watermarks, self.meta, self.kname(state.topic))
            backlog = max(high - state.cursor, 0)
            found.append(
                GroupInfo(state.name, state.topic, state.cursor, len(state.pending), backlog)
            )
        return found

    async def trim(self) -> int:
        self.forget_expired()
        floors: dict[str, int] = {}
        for state in await self._all_groups():
            floor = floors.get(state.topic, state.low_water())
            floors[state.topic] = min(floor, state.low_water())
        removed = 0
        for topic in await self.topics():
            removed += await self.trim_topic(topic, floors.get(topic))
        return removed


def _check(settlements: Sequence[Settlement]) -> None:
    """Every event a settlement publishes is valid, before anything is done (atomicity)."""
    problems: list[str] = []
    for settlement in settlements:
        events: list[Event] = []
        if isinstance(settlement, Ack):
            events = [event for _, event in settlement.emit]
        elif isinstance(settlement, DeadLetter):
            events = [settlement.event]
        for event in events:
            problems += spec_problems(event)
    if problems:
        raise InvalidEventError(problems)
