"""The NATS bus: JetStream, one stream for every topic, one subject per topic.

Layout: stream ``<PREFIX>`` (``?prefix=`` in the URL, default ``cumulo``, upper-cased
for the stream name) with subjects ``<prefix>.>``; topic ``orders`` is subject
``<prefix>.orders``; the payload is the CloudEvent in the JSON format. Offsets
are stream sequence numbers, so they are unique across topics and never reused.
A group is a durable pull consumer named after it, filtered on its topic's
subject (``start="latest"``: deliver policy ``new``; ``"earliest"``: ``all``).

Delivery: a fetched message is ``nak``-ed at once with ``delay=lease``, which is
its lease (JetStream redelivers it then unless it is acked); ``Nack`` is a ``nak``
with the retry delay; the attempt is JetStream's delivery count. Dedup sends
``Nats-Msg-Id: <topic>/<source>/<id>``; the stream's duplicate window is the
bus' dedup window (at least 100 ms: JetStream's minimum) and a duplicate's PubAck carries the original sequence.
``publish`` returns on the PubAck: JetStream has stored the message (it syncs
file storage to disk on its own schedule, ``sync_interval``).

What JetStream cannot do faithfully (the contract tests say so with xfail):

- ``settle`` is not atomic: emitted events are published, then the message is
  acked (a crash in between publishes them again: at-least-once).
- a ``fetch`` whose filter raises has already taken delivery of the messages:
  they are handed back (``nak``) but their delivery count went up.
- ``replay`` recreates the consumer at the new start: leases and retries in
  flight are forgotten, so a message still leased may be delivered twice.
- after a broker restart, leases and retry delays in flight become the
  consumer's ack wait (``ACK_WAIT``, 5 s): the server does not persist nak delays.
- the dedup window is at least 100 ms (JetStream's minimum duplicate window).
- acks need the delivery's reply subject: only the process that fetched a
  message can settle it (another process' settle publishes but cannot ack).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from cumulo.extras import from_extra

with from_extra("nats", needed_by="nats://"):
    import nats
    import nats.errors
    import nats.js.errors
    from nats.js import api

from cumulo.errors import BusError, BusUnavailableError, InvalidEventError, UnknownBackendError
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
from cumulo.events.bus.names import consumer_name, group_name
from cumulo.events.event import Event, from_json, spec_problems, to_json

TOPIC = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
EMPTY_FETCH_WAIT = 0.05  # seconds a fetch waits when nothing is there
MIN_DEDUP_WINDOW = 0.1  # JetStream refuses shorter duplicate windows
POLL = 0.05
# Leases are naks with a delay; the ack wait only applies to deliveries whose nak
# was lost and to leases in flight across a broker restart (the server does not
# persist nak delays).
ACK_WAIT = 5.0  # how often ``wait`` asks the consumer for news
SCAN_FACTOR, MAX_SCAN = 50, 5000
UNAVAILABLE = (
    nats.errors.ConnectionClosedError,
    nats.errors.NoServersError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class NatsSettings:
    url: str  # without the query
    prefix: str = "cumulo"
    bus: BusSettings = field(default_factory=BusSettings)

    @classmethod
    def from_url(cls, url: str, settings: BusSettings | None = None) -> NatsSettings:
        parts = urlsplit(url)
        if parts.scheme != "nats":
            raise UnknownBackendError(f"not a nats URL: {url!r}")
        options = dict(parse_qsl(parts.query))
        prefix = options.pop("prefix", "cumulo")
        if options or not TOPIC.match(prefix) or "." in prefix:
            raise BusError(f"bad nats URL {url!r}: the only option is ?prefix=<name>")
        plain = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return cls(plain, prefix, settings or BusSettings())

    @property
    def stream(self) -> str:
        return self.prefix.upper()

    @property
    def address(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 4222}"


def _encode(event: Event) -> bytes:
    problems = spec_problems(event)
    if problems:
        raise InvalidEventError(problems)
    return to_json(event)


def _seconds(when: Any) -> float:
    if isinstance(when, datetime):
        return when.timestamp()
    text = str(when).replace("Z", "+00:00")
    if "." in text:  # Go gives nanoseconds; Python parses microseconds
        head, tail = text.split(".", 1)
        digits = re.match(r"\d*", tail)
        assert digits is not None
        text = f"{head}.{digits.group()[:6]}{tail[len(digits.group()) :]}"
    return datetime.fromisoformat(text).timestamp()


class NatsBus(Bus):
    """The bus on NATS JetStream. Takes :class:`NatsSettings` or a ``nats://`` URL."""

    def __init__(self, settings: NatsSettings | str, *, bus_settings: BusSettings | None = None):
        if isinstance(settings, str):
            settings = NatsSettings.from_url(settings, bus_settings)
        self.settings = settings
        self.url = settings.url
        self._nc: Any = None
        self._js: Any = None
        self._subs: dict[str, Any] = {}
        self._inflight: dict[tuple[str, int], Any] = {}
        self._due: dict[str, dict[int, float]] = {}

    # lifecycle and errors

    async def start(self) -> None:
        async with self._errors():
            self._nc = await nats.connect(
                self.url,
                connect_timeout=2,
                reconnect_time_wait=0.2,
                max_reconnect_attempts=-1,
                allow_reconnect=True,
                error_cb=_quiet,
                disconnected_cb=_quiet_event,
            )
            self._js = self._nc.jetstream(timeout=2)
            await self._ensure_stream()

    async def _ensure_stream(self) -> None:
        window = self.settings.bus.dedup_window
        config = api.StreamConfig(
            name=self.settings.stream,
            subjects=[f"{self.settings.prefix}.>"],
            storage=api.StorageType.FILE,
        )
        if window > 0:  # else the server's default window
            config.duplicate_window = max(window, MIN_DEDUP_WINDOW)
        try:
            await self._js.stream_info(self.settings.stream)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(config)

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        self._subs.clear()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    @contextlib.asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        try:
            yield
        except UNAVAILABLE as e:
            raise BusUnavailableError(
                f"nats bus: {type(e).__name__} {e}".strip(), address=self.settings.address
            ) from e
        except (nats.errors.Error, nats.js.errors.Error) as e:
            raise BusError(f"nats bus {self.settings.address}: {e}") from e

    @property
    def js(self) -> Any:
        if self._js is None:
            raise BusError(f"nats bus {self.settings.address} is not started")
        return self._js

    def _subject(self, topic: str) -> str:
        if not TOPIC.match(topic):
            raise BusError(
                f"nats bus: topic {topic!r} is not a valid subject (letters, digits, -_.)"
            )
        return f"{self.settings.prefix}.{topic}"

    def _topic_of(self, subject: str) -> str:
        return subject[len(self.settings.prefix) + 1 :]

    # the log

    async def publish(
        self, topic: str, events: Sequence[Event], *, dedup: bool = True
    ) -> list[int]:
        bodies = [(event, _encode(event)) for event in events]
        dedup = dedup and self.settings.bus.dedup_window > 0
        return [await self._publish(topic, event, body, dedup) for event, body in bodies]

    async def _publish(self, topic: str, event: Event, body: bytes, dedup: bool) -> int:
        subject = self._subject(topic)
        headers = {"Nats-Msg-Id": f"{topic}/{event.source}/{event.id}"} if dedup else None
        async with self._errors():
            ack = await self.js.publish(subject, body, headers=headers)
        return int(ack.seq)

    async def read(
        self, topic: str, *, after: int = 0, limit: int = 100, since: float | None = None
    ) -> list[Message]:
        subject, seq = self._subject(topic), after + 1
        found: list[Message] = []
        while len(found) < limit:
            try:
                async with self._errors():
                    raw = await self.js.get_msg(
                        self.settings.stream, seq=seq, subject=subject, next=True
                    )
            except BusError as e:
                if isinstance(e.__cause__, nats.js.errors.NotFoundError):
                    break
                raise
            message = Message(raw.seq, topic, from_json(raw.data), _seconds(raw.time), 0)
            if since is None or message.published_at >= since:
                found.append(message)
            seq = raw.seq + 1
        return found

    async def last_offset(self, topic: str) -> int:
        try:
            async with self._errors():
                raw = await self.js.get_last_msg(self.settings.stream, self._subject(topic))
        except BusError as e:
            if isinstance(e.__cause__, nats.js.errors.NotFoundError):
                return 0
            raise
        return int(raw.seq)

    async def topics(self) -> list[str]:
        async with self._errors():
            info = await self.js.stream_info(self.settings.stream, subjects_filter=">")
            consumers = await self.js.consumers_info(self.settings.stream)
        subjects = set((info.state.subjects or {}).keys())
        subjects |= {c.config.filter_subject for c in consumers if c.config.filter_subject}
        return sorted(self._topic_of(subject) for subject in subjects)

    # groups

    async def subscribe(self, group: str, topic: str, *, start: StartAt = "latest") -> None:
        subject = self._subject(topic)
        existing = await self._consumer(group)
        if existing is not None:
            if existing.config.filter_subject != subject:
                known = self._topic_of(existing.config.filter_subject or "")
                raise BusError(f"group {group!r} already consumes topic {known!r}, not {topic!r}")
            return
        policy = api.DeliverPolicy.NEW if start == "latest" else api.DeliverPolicy.ALL
        await self._add_consumer(group, subject, deliver_policy=policy)

    async def _add_consumer(self, group: str, subject: str, **start: Any) -> None:
        config = api.ConsumerConfig(
            durable_name=consumer_name(group),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT,
            max_deliver=-1,
            max_ack_pending=-1,
            filter_subject=subject,
            **start,
        )
        async with self._errors():
            await self.js.add_consumer(self.settings.stream, config)

    async def _consumer(self, group: str) -> Any:
        try:
            async with self._errors():
                return await self.js.consumer_info(self.settings.stream, consumer_name(group))
        except BusError as e:
            if isinstance(e.__cause__, nats.js.errors.NotFoundError):
                return None
            raise

    async def _info(self, group: str) -> Any:
        info = await self._consumer(group)
        if info is None:
            raise BusError(f"unknown consumer group {group!r}: subscribe it first")
        return info

    async def _pull(self, group: str) -> Any:
        if group not in self._subs:
            await self._info(group)
            async with self._errors():
                self._subs[group] = await self.js.pull_subscribe_bind(
                    consumer_name(group), stream=self.settings.stream
                )
        return self._subs[group]

    async def fetch(
        self, group: str, *, limit: int, lease: float, accept: Accept | None = None
    ) -> list[Message]:
        sub = await self._pull(group)
        taken: list[Message] = []
        budget = max(limit, min(limit * SCAN_FACTOR, MAX_SCAN))
        while len(taken) < limit and budget > 0:
            asked = min(limit - len(taken), budget)
            batch = await self._take(sub, asked)
            if not batch:
                break
            budget = budget - len(batch) if len(batch) == asked else 0  # short: nothing more now
            try:
                taken += await self._lease(group, batch, lease, accept)
            except Exception:
                for msg in batch:  # hand them back (their delivery count went up)
                    with contextlib.suppress(Exception):
                        await self._nak(msg, 0.0)
                raise
        return taken

    async def _take(self, sub: Any, count: int) -> list[Any]:
        try:
            async with self._errors():
                return list(await sub.fetch(count, timeout=EMPTY_FETCH_WAIT))
        except BusUnavailableError as e:
            if isinstance(e.__cause__, nats.errors.TimeoutError | TimeoutError):
                return []  # nothing there (nats-py raises either)
            raise

    async def _lease(
        self, group: str, batch: list[Any], lease: float, accept: Accept | None
    ) -> list[Message]:
        messages = []
        for msg in batch:
            meta = msg.metadata
            topic = self._topic_of(msg.subject)
            event = from_json(msg.data)
            message = Message(
                meta.sequence.stream, topic, event, _seconds(meta.timestamp), meta.num_delivered
            )
            rejected = meta.num_delivered == 1 and accept is not None and not accept(event)
            messages.append((msg, None if rejected else message))
        leased = []
        async with self._errors():
            for msg, leasable in messages:
                if leasable is None:
                    await self._ack(msg)
                    continue
                await self._nak(msg, lease)
                self._inflight[(group, leasable.offset)] = msg
                self._due.setdefault(group, {})[leasable.offset] = time.time() + lease
                leased.append(leasable)
        return leased

    async def _nak(self, msg: Any, delay: float) -> None:
        """A ``-NAK`` with a delay, sent by hand: nats-py's Msg allows one ack or nak only."""
        payload = b"-NAK" if delay <= 0 else b'-NAK {"delay": %d}' % int(delay * 1e9)
        await self._nc.publish(msg.reply, payload)

    async def _ack(self, msg: Any) -> None:
        """A ``+ACK`` the server confirms (double ack)."""
        await self._nc.request(msg.reply, b"+ACK", timeout=2)

    async def settle(self, group: str, settlements: Sequence[Settlement]) -> None:
        plans = [(s, self._outgoing(s)) for s in settlements]  # validate all first
        for settlement, outgoing in plans:
            for topic, event, body, dedup in outgoing:
                await self._publish(topic, event, body, dedup)
            await self._finish(group, settlement)

    def _outgoing(self, settlement: Settlement) -> list[tuple[str, Event, bytes, bool]]:
        if isinstance(settlement, Ack):
            dedup = self.settings.bus.dedup_window > 0
            return [(t, e, _encode(e), dedup) for t, e in settlement.emit]
        if isinstance(settlement, DeadLetter):
            return [(settlement.topic, settlement.event, _encode(settlement.event), False)]
        return []

    async def _finish(self, group: str, settlement: Settlement) -> None:
        key = (group, settlement.offset)
        msg = self._inflight.get(key)
        if msg is None:
            return
        async with self._errors():
            if isinstance(settlement, Nack):
                await self._nak(msg, settlement.delay)
                self._due.setdefault(group, {})[settlement.offset] = time.time() + settlement.delay
                return
            await self._ack(msg)
        del self._inflight[key]
        self._due.get(group, {}).pop(settlement.offset, None)

    async def wait(self, group: str, timeout: float) -> None:
        """Poll the consumer for new messages until one of this process' retries falls due."""
        deadline = time.time() + timeout
        dues = self._due.get(group, {}).values()
        deadline = min([deadline, *dues])
        while True:
            info = await self._info(group)
            if info.num_pending or time.time() >= deadline:
                return
            await asyncio.sleep(min(POLL, max(deadline - time.time(), 0)))

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
            targets = [await self._info(group)]
        else:
            subject = self._subject(topic or "")
            async with self._errors():
                consumers = await self.js.consumers_info(self.settings.stream)
            targets = [c for c in consumers if c.config.filter_subject == subject]
        replayed = self._topic_of(targets[0].config.filter_subject) if group else str(topic)
        await self.check_replay_start(replayed, from_offset, from_time)
        again = 0
        for info in targets:
            again += await self._recreate(info, from_offset, from_time)
        return again

    async def _recreate(self, info: Any, offset: int | None, at: float | None) -> int:
        name, group, subject = info.name, group_name(info.name), info.config.filter_subject
        if offset is not None:
            start = {"deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE}
            start["opt_start_seq"] = max(offset, 1)  # type: ignore[assignment]
        else:
            start = {"deliver_policy": api.DeliverPolicy.BY_START_TIME}
            start["opt_start_time"] = datetime.fromtimestamp(at or 0.0, UTC)  # type: ignore[assignment]
        self._subs.pop(group, None)
        self._due.pop(group, None)
        async with self._errors():
            await self.js.delete_consumer(self.settings.stream, name)
        await self._add_consumer(group, subject, **start)
        fresh = await self._info(group)
        return max(int(fresh.num_pending) - int(info.num_pending), 0)

    async def groups(self) -> list[GroupInfo]:
        async with self._errors():
            consumers = await self.js.consumers_info(self.settings.stream)
        infos = [
            GroupInfo(
                group_name(c.name),
                self._topic_of(c.config.filter_subject or ""),
                int(c.delivered.stream_seq),
                int(c.num_ack_pending),
                int(c.num_pending),
            )
            for c in consumers
        ]
        return sorted(infos, key=lambda info: info.name)

    async def trim(self) -> int:
        """Purge, per topic, what is older than the retention and every group has acked."""
        cut = time.time() - self.settings.bus.retention
        async with self._errors():
            info = await self.js.stream_info(self.settings.stream, subjects_filter=">")
            consumers = await self.js.consumers_info(self.settings.stream)
        removed = 0
        for subject in info.state.subjects or {}:
            floors = [
                int(c.ack_floor.stream_seq) + 1
                for c in consumers
                if c.config.filter_subject == subject
            ]
            removed += await self._trim_subject(subject, cut, min(floors, default=2**63))
        return removed

    async def _trim_subject(self, subject: str, cut: float, floor: int) -> int:
        old, stop = 0, None
        for message in await self.read(self._topic_of(subject), limit=10_000):
            if message.offset >= floor or message.published_at >= cut:
                stop = message.offset
                break
            old += 1
        if old:
            async with self._errors():
                if stop is None:
                    await self.js.purge_stream(self.settings.stream, subject=subject)
                else:
                    await self.js.purge_stream(self.settings.stream, subject=subject, seq=stop)
        return old


async def _quiet(error: Exception) -> None:
    """The client reconnects by itself; errors reach callers as BusUnavailableError."""


async def _quiet_event() -> None:
    """Disconnections are reported where an operation fails."""
