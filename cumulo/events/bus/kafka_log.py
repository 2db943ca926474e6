"""The Kafka bus's log half: names, publish with dedup, read, topics, retention.

:class:`~cumulo.events.bus.kafka.KafkaBus` adds the groups on top. Offsets are
Kafka offsets + 1 on a topic's single partition.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cumulo.errors import BusError, InvalidEventError
from cumulo.events import kafka_binding
from cumulo.events.bus.base import Bus, BusSettings, Message
from cumulo.events.bus.kafka_client import KafkaClient, Record
from cumulo.events.event import Event, spec_problems

T = TypeVar("T")
LEGAL = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
REGISTRY = "cumulo-groups"  # group -> topic, one record per subscribe
LOG = logging.getLogger("cumulo.bus.kafka")


class KafkaLog(Bus):
    client: KafkaClient
    reader: Any
    meta: Any

    def __init__(self, prefix: str, settings: BusSettings):
        self.prefix = prefix
        self.bus_settings = settings
        self._known: set[str] = set()
        self.reader_lock = asyncio.Lock()
        self._dedup: dict[str, dict[tuple[str, str], tuple[int, float]]] = {}

    # --- names and threads ----------------------------------------------------------

    def group_id(self, group: str) -> str:
        """The Kafka consumer group of a bus group (any text is a legal group id)."""
        return f"{self.prefix}.{group}" if self.prefix else group

    def kname(self, name: str) -> str:
        """The Kafka name of a topic."""
        full = f"{self.prefix}.{name}" if self.prefix else name
        if name and not LEGAL.match(full):
            raise BusError(f"{name!r} is not a legal Kafka name (letters, digits, '.', '_', '-')")
        return full

    def unname(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(call, *args)

    async def ensure_topic(self, topic: str) -> str:
        ktopic = self.kname(topic)
        if ktopic not in self._known:
            await self._run(self.client.ensure_topic, ktopic)
            self._known.add(ktopic)
        return ktopic

    def messages(self, topic: str, raw: Sequence[Any]) -> list[Message]:
        found = []
        for record in raw:
            try:
                event = kafka_binding.decode(record.value(), record.headers())
            except InvalidEventError as e:
                LOG.warning("skipping a record of %s at %s: %s", topic, record.offset(), e)
                continue
            stamp = record.timestamp()[1] / 1000
            found.append(Message(record.offset() + 1, topic, event, stamp))
        return found

    # --- publish and dedup ----------------------------------------------------------

    async def publish(
        self, topic: str, events: Sequence[Event], *, dedup: bool = True
    ) -> list[int]:
        problems = [p for event in events for p in spec_problems(event)]
        if problems:
            raise InvalidEventError(problems)
        if not events:
            return []
        ktopic = await self.ensure_topic(topic)
        window = self.bus_settings.dedup_window if dedup else 0.0
        seen = self._window(ktopic, window)
        plan, new = self._plan(events, seen, window > 0)
        stamp = time.time()
        records: list[Record] = [(*kafka_binding.encode(e), int(stamp * 1000)) for e in new]
        written = [o + 1 for o in await self._run(self.client.produce, ktopic, records)]
        if window > 0:
            for event, offset in zip(new, written, strict=True):
                seen[(event.source, event.id)] = (offset, stamp)
        return [written[i] if isinstance(i, int) else seen[i][0] for i in plan]

    def _window(self, ktopic: str, window: float) -> dict[tuple[str, str], tuple[int, float]]:
        if window <= 0:
            return {}
        seen = self._dedup.setdefault(ktopic, {})
        cutoff = time.time() - window
        for key in [k for k, (_, at) in seen.items() if at < cutoff]:
            del seen[key]
        return seen

    @staticmethod
    def _plan(
        events: Sequence[Event], seen: dict[tuple[str, str], tuple[int, float]], dedup: bool
    ) -> tuple[list[int | tuple[str, str]], list[Event]]:
        """Per event: an index into the new records, or the dedup key of an earlier one."""
        plan: list[int | tuple[str, str]] = []
        new: list[Event] = []
        batch: dict[tuple[str, str], int] = {}
        for event in events:
            key = (event.source, event.id)
            if key in seen:
                plan.append(key)
            elif dedup and key in batch:
                plan.append(batch[key])
            else:
                batch[key] = len(new)
                plan.append(len(new))
                new.append(event)
        return plan, new

    def forget_expired(self) -> None:
        for ktopic in list(self._dedup):
            self._window(ktopic, self.bus_settings.dedup_window)

    # --- reading --------------------------------------------------------------------

    async def read(
        self, topic: str, *, after: int = 0, limit: int = 100, since: float | None = None
    ) -> list[Message]:
        ktopic = self.kname(topic)
        if ktopic not in await self._run(self.client.topics, ktopic):
            return []
        low, high = await self._run(self.client.watermarks, self.meta, ktopic)
        start = max(low, after)
        if since is not None:
            start = max(start, await self._run(self.client.offset_at, self.meta, ktopic, since))
        end = min(high, start + limit)
        if start >= end:
            return []
        async with self.reader_lock:
            return await self._read_range(topic, ktopic, start, end)

    async def _read_range(self, topic: str, ktopic: str, start: int, end: int) -> list[Message]:
        await self._run(self.client.assign, self.reader, ktopic, start)
        found: list[Message] = []
        deadline = time.monotonic() + self.client.timeout
        while (not found or found[-1].offset < end) and time.monotonic() < deadline:
            raw = await self._run(self.client.poll, self.reader, end - start, 0.2)
            found += [m for m in self.messages(topic, raw) if m.offset <= end]
        return found

    async def last_offset(self, topic: str) -> int:
        """The high watermark: a record's offset here is its Kafka offset + 1."""
        ktopic = self.kname(topic)
        if ktopic not in await self._run(self.client.topics, ktopic):
            return 0
        _, high = await self._run(self.client.watermarks, self.meta, ktopic)
        return high

    async def topics(self) -> list[str]:
        names = await self._run(self.client.topics, self.kname("") if self.prefix else "")
        hidden = {self.kname(REGISTRY)}
        return sorted(self.unname(n) for n in names if not n.startswith("__") and n not in hidden)

    async def trim_topic(self, topic: str, floor: int | None) -> int:
        """Drop records older than the retention that no group still needs; how many."""
        ktopic = self.kname(topic)
        low, high = await self._run(self.client.watermarks, self.meta, ktopic)
        cutoff = time.time() - self.bus_settings.retention
        old = await self._run(self.client.offset_at, self.meta, ktopic, cutoff)
        target = min(old, high if floor is None else floor)
        if target <= low:
            return 0
        await self._run(self.client.delete_before, ktopic, target)
        return target - low
