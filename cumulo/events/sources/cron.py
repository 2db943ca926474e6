"""The cron source: one CloudEvent per tick of a schedule (scheduled retraining).

*Once per tick, everywhere.* Each tick's event has a deterministic id
(``<source>@<tick time>``), so however many replicas run the same source, the
bus's (source, id) dedup keeps exactly one event per tick.

*Ticks missed while down* follow the source's ``missed`` policy, from the last
tick it fired (kept in a checkpoint): ``skip`` fires none, ``fire-once`` (the
default, like a Kubernetes CronJob) fires the latest one, ``fire-all`` fires
each, up to :data:`MAX_CATCH_UP`. A source that never ran fires nothing until
its first tick.

Schedules are croniter's: five fields, or six with seconds last.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from cumulo.events.event import Event, new_event
from cumulo.events.sources import source_uri
from cumulo.spec.models import CronSource as CronSpec
from cumulo.spec.models import EventSource

DEFAULT_TYPE = "dev.cumulo.cron.tick"
MAX_CATCH_UP = 100


class Checkpoints(Protocol):
    """Where a source remembers how far it got."""

    def load(self, key: str) -> str | None: ...

    def save(self, key: str, value: str) -> None: ...


Publish = Callable[[list[Event]], Awaitable[object]]


class CronSource:
    def __init__(self, source: EventSource, publish: Publish, checkpoints: Checkpoints):
        assert source.spec.cron is not None
        self.name = source.name
        self.cron: CronSpec = source.spec.cron
        self.type = source.spec.type or DEFAULT_TYPE
        self.zone = ZoneInfo(self.cron.timezone)
        self.publish = publish
        self.checkpoints = checkpoints
        self.fired = 0

    def event_for(self, tick: datetime) -> Event:
        stamp = tick.isoformat()
        event = new_event(
            self.type,
            source_uri(self.name),
            self.cron.data,
            id=f"{self.name}@{stamp}",
            subject=stamp,
        )
        return event.with_attributes(time=stamp)

    def ticks_after(self, start: datetime, end: datetime) -> list[datetime]:
        """Ticks in (start, end], at most MAX_CATCH_UP of the latest."""
        ticks: list[datetime] = []
        schedule = croniter(self.cron.schedule, start)
        while (tick := schedule.get_next(datetime)) <= end:
            ticks.append(tick)
            if len(ticks) > MAX_CATCH_UP:
                ticks.pop(0)
        return ticks

    def missed_ticks(self, now: datetime) -> list[datetime]:
        last = self.checkpoints.load(self.name)
        if last is None or self.cron.missed == "skip":
            return []
        missed = self.ticks_after(datetime.fromisoformat(last), now)
        return missed[-1:] if self.cron.missed == "fire-once" else missed

    async def fire(self, ticks: list[datetime]) -> None:
        if ticks:
            await self.publish([self.event_for(tick) for tick in ticks])
            self.fired += len(ticks)
            self.checkpoints.save(self.name, ticks[-1].isoformat())

    async def run(self) -> None:
        """Catch up by policy, then fire on every tick until cancelled."""
        now = datetime.now(self.zone)
        await self.fire(self.missed_ticks(now))
        if self.checkpoints.load(self.name) is None or self.cron.missed == "skip":
            self.checkpoints.save(self.name, now.isoformat())
        schedule = croniter(self.cron.schedule, now)
        while True:
            tick = schedule.get_next(datetime)
            await asyncio.sleep(max(0.0, tick.timestamp() - time.time()))
            await self.fire([tick])
