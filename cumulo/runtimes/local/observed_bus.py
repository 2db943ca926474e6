"""A bus that tells the platform's metrics what was published through it.

``cumulo up`` wraps each bus it opens, so every way an event reaches a bus is
counted once, by topic: ``POST /events``, sources, the events functions return
(published with the ack), dead letters and job failure notices.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from cumulo.events.bus.base import (
    Accept,
    Ack,
    Bus,
    DeadLetter,
    GroupInfo,
    Message,
    Settlement,
    StartAt,
)
from cumulo.events.event import Event

CountPublished = Callable[[str, str, int], None]  # (bus, topic, count)


class ObservedBus(Bus):
    """Delegates to ``inner``; counts events published. Other attributes are ``inner``'s."""

    def __init__(self, name: str, inner: Bus, count: CountPublished):
        self.name = name
        self.inner = inner
        self.count = count
        self.url = inner.url

    def __getattr__(self, attribute: str) -> Any:
        if attribute == "inner":  # not set yet (copying): no recursion
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(
        self, topic: str, events: Sequence[Event], *, dedup: bool = True
    ) -> list[int]:
        offsets = await self.inner.publish(topic, events, dedup=dedup)
        self.count(self.name, topic, len(events))
        return offsets

    async def subscribe(self, group: str, topic: str, *, start: StartAt = "latest") -> None:
        await self.inner.subscribe(group, topic, start=start)

    async def fetch(
        self, group: str, *, limit: int, lease: float, accept: Accept | None = None
    ) -> list[Message]:
        return await self.inner.fetch(group, limit=limit, lease=lease, accept=accept)

    async def settle(self, group: str, settlements: Sequence[Settlement]) -> None:
        await self.inner.settle(group, settlements)
        for topic, count in published_by(settlements).items():
            self.count(self.name, topic, count)

    async def wait(self, group: str, timeout: float) -> None:
        await self.inner.wait(group, timeout)

    async def replay(
        self,
        *,
        group: str | None = None,
        topic: str | None = None,
        from_offset: int | None = None,
        from_time: float | None = None,
    ) -> int:
        return await self.inner.replay(
            group=group, topic=topic, from_offset=from_offset, from_time=from_time
        )

    async def read(
        self, topic: str, *, after: int = 0, limit: int = 100, since: float | None = None
    ) -> list[Message]:
        return await self.inner.read(topic, after=after, limit=limit, since=since)

    async def last_offset(self, topic: str) -> int:
        return await self.inner.last_offset(topic)

    async def topics(self) -> list[str]:
        return await self.inner.topics()

    async def groups(self) -> list[GroupInfo]:
        return await self.inner.groups()

    async def trim(self) -> int:
        return await self.inner.trim()


def published_by(settlements: Sequence[Settlement]) -> Counter[str]:
    """Events a settle step publishes, by topic (replies of acks, dead letters)."""
    topics: Counter[str] = Counter()
    for settlement in settlements:
        if isinstance(settlement, Ack):
            topics.update(topic for topic, _ in settlement.emit)
        elif isinstance(settlement, DeadLetter):
            topics[settlement.topic] += 1
    return topics
