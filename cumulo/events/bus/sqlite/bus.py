""":class:`SqliteBus`: the parts of the package put together behind the bus contract."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar, cast

from cumulo.errors import BusError, BusUnavailableError
from cumulo.events.bus.base import (
    Accept,
    Bus,
    BusSettings,
    GroupInfo,
    Message,
    Settlement,
    StartAt,
    check_replay,
)
from cumulo.events.bus.sqlite import groups as consumer_groups
from cumulo.events.bus.sqlite import log as event_log
from cumulo.events.bus.sqlite.connections import Reader, connect
from cumulo.events.bus.sqlite.leases import (
    OPTIMISTIC_PLANS,
    Claims,
    StalePlan,
    Taken,
    Ticket,
    plan_and_take,
    take,
)
from cumulo.events.bus.sqlite.ownership import OwnerLock
from cumulo.events.bus.sqlite.schema import create_schema
from cumulo.events.bus.sqlite.settings import SqliteSettings
from cumulo.events.bus.sqlite.wakeups import Doorbells
from cumulo.events.bus.sqlite.writer import Txn, Writer
from cumulo.events.event import Event

T = TypeVar("T")
P = TypeVar("P", Reader, Writer)


class SqliteBus(Bus):
    """The bus in one SQLite file. Takes :class:`SqliteSettings` or a ``sqlite://`` URL.

    ``bus_settings`` applies when a URL is given (settings carry their own).
    """

    def __init__(self, settings: SqliteSettings | str, *, bus_settings: BusSettings | None = None):
        if isinstance(settings, str):
            settings = SqliteSettings.from_url(settings, bus_settings)
        self.settings = settings
        self.url = settings.url
        self._writer: Writer | None = None
        self._reader: Reader | None = None
        self._owner = OwnerLock.beside(settings.path)
        self._bells = Doorbells()
        self._claims = Claims()

    @property
    def transactions(self) -> int:
        """Write transactions committed: far fewer than operations, thanks to group commit."""
        return self._writer.transactions if self._writer else 0

    @property
    def owner(self) -> bool:
        """Whether this bus owns the file's leases (see the package docstring)."""
        return self._owner.held

    async def start(self) -> None:
        if self._writer is not None:
            return
        await asyncio.to_thread(self._open)
        try:
            await self._write(create_schema)
            if await asyncio.to_thread(self._owner.acquire):
                await self._write(consumer_groups.release_leases)
        except BaseException:
            await self.close()
            raise

    def _open(self) -> None:
        path, sync, wait = self.settings.path, self.settings.synchronous, self.settings.busy_timeout
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BusUnavailableError(
                f"cannot create the bus folder: {e}", address=str(path)
            ) from e
        write_conn = connect(path, sync, wait)
        try:
            read_conn = connect(path, sync, wait)
        except BaseException:
            write_conn.close()
            raise
        self._writer = Writer(write_conn, path, self._bells.ring_topics)
        self._reader = Reader(read_conn, path)
        self._writer.start()

    async def close(self) -> None:
        writer, reader, self._writer, self._reader = self._writer, self._reader, None, None
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        if reader is not None:
            await asyncio.to_thread(reader.close)
        self._owner.release()

    async def publish(
        self, topic: str, events: Sequence[Event], *, dedup: bool = True
    ) -> list[int]:
        rows = [event_log.encode(event) for event in events]
        if not rows:
            return []
        window = self.settings.bus.dedup_window if dedup else 0.0
        return await self._write(partial(event_log.publish, topic=topic, rows=rows, window=window))

    async def subscribe(self, group: str, topic: str, *, start: StartAt = "latest") -> None:
        await self._write(partial(consumer_groups.subscribe, group=group, topic=topic, start=start))

    async def fetch(
        self, group: str, *, limit: int, lease: float, accept: Accept | None = None
    ) -> list[Message]:
        bell = self._bells.bell(group, None, rung=False)  # this fetch looks at everything
        bell.clear()
        taken = await self._lease(group, limit, lease, accept)
        bell = self._bells.bell(group, taken.topic, rung=False)
        bell.set_due(taken.next_due)
        if taken.more:  # the filter rejected a whole scan: the next wait must not sleep
            bell.ring()
        return taken.messages

    async def _lease(self, group: str, limit: int, lease: float, accept: Accept | None) -> Taken:
        """Plan on the reader (decoding, filtering), take in the writer; replan a stale plan."""
        for _ in range(OPTIMISTIC_PLANS):
            ticket = self._claims.open(group)
            try:
                return await self._plan_then_take(ticket, limit, lease, accept)
            except StalePlan:
                continue
            finally:
                self._claims.close(ticket)
        last_try = partial(plan_and_take, group=group, limit=limit, lease=lease, accept=accept)
        return await self._write(last_try)

    async def _plan_then_take(
        self, ticket: Ticket, limit: int, lease: float, accept: Accept | None
    ) -> Taken:
        """The reader plans and queues the take to the writer itself; the take's outcome.

        One future serves both: the take's outcome settles it, or the plan's error.
        """
        reader, writer = self._started(self._reader), self._started(self._writer)
        loop = asyncio.get_running_loop()
        taken: asyncio.Future[Taken] = loop.create_future()

        def plan(conn: sqlite3.Connection) -> None:
            planned = self._claims.plan(conn, ticket, limit, accept)
            if planned is not None:  # None: the fetch was given up meanwhile
                writer.enqueue(partial(take, plan=planned, lease=lease), loop, taken)

        reader.run_then(plan, loop, taken)
        try:
            return await taken
        finally:
            taken.cancel()  # when the fetch was given up: its outcome has nobody to go to

    async def settle(self, group: str, settlements: Sequence[Settlement]) -> None:
        prepared = [consumer_groups.prepare(settlement) for settlement in settlements]
        if not prepared:
            return
        window = self.settings.bus.dedup_window
        settle = partial(consumer_groups.settle, group=group, prepared=prepared, window=window)
        next_due = await self._write(settle)
        bell = self._bells.get(group)
        if bell is not None:
            bell.set_due(next_due)

    async def wait(self, group: str, timeout: float) -> None:
        bell = self._bells.get(group)
        if bell is None:
            topic = await self._read(partial(consumer_groups.group_topic, group=group))
            bell = self._bells.bell(group, topic, rung=True)
        await bell.wait(timeout)

    async def replay(
        self,
        *,
        group: str | None = None,
        topic: str | None = None,
        from_offset: int | None = None,
        from_time: float | None = None,
    ) -> int:
        check_replay(group, topic, from_offset, from_time)
        replay = partial(
            consumer_groups.replay, group=group, topic=topic, offset=from_offset, at=from_time
        )
        return await self._write(replay)

    async def read(
        self, topic: str, *, after: int = 0, limit: int = 100, since: float | None = None
    ) -> list[Message]:
        read = partial(event_log.read, topic=topic, after=after, limit=limit, since=since)
        return await self._read(read)

    async def last_offset(self, topic: str) -> int:
        return await self._read(partial(event_log.topic_end, topic=topic))

    async def topics(self) -> list[str]:
        return await self._read(event_log.topics)

    async def groups(self) -> list[GroupInfo]:
        return await self._read(consumer_groups.infos)

    async def trim(self) -> int:
        retention, window = self.settings.bus.retention, self.settings.bus.dedup_window
        return await self._write(partial(event_log.trim, retention=retention, window=window))

    async def _write(self, operation: Callable[[Txn], T]) -> T:
        return cast(T, await self._started(self._writer).submit(operation))

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        return cast(T, await self._started(self._reader).run(query))

    def _started(self, part: P | None) -> P:
        """The writer or the reader; neither exists before ``start`` or after ``close``."""
        if part is None:
            raise BusError(f"sqlite bus {self.settings.path} is not started")
        return part
