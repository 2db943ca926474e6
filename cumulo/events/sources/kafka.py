"""The Kafka source: records of Kafka topics become CloudEvents on the bus.

A Kafka consumer group (``spec.kafka.group``, default ``cumulo-source-<name>``)
reads ``spec.kafka.topics``; a new group starts at ``start`` (earliest or
latest). Each record becomes one event:

=================  ===========================================================
``type``           ``spec.type``, else ``dev.cumulo.kafka.message``
``source``         ``kafka://<bootstrap>/<topic>``
``id``             ``<topic>-<partition>-<offset>`` (stable: redelivery dedups)
``subject``        the record key (text), when there is one
``partitionkey``   the record key, too
``data``           the value as JSON when it parses, else the bytes
=================  ===========================================================

A record that already carries a CloudEvent (the Kafka protocol binding: binary
mode with ``ce_`` headers, or structured mode ``application/cloudevents+json``)
is published unchanged. A record that claims to be one and is not (a bad
attribute, a body that is not the JSON format), or whose key cannot be an
attribute, is published as a plain record holding only its value, as bytes:
logged, counted (``invalid``), and the source carries on rather than stopping
at it. *At-least-once*: offsets are committed only after ``publish``
returned, i.e. once the events are durable on the bus; a source that dies
re-reads from the last commit (the bus's dedup drops the repeats).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cumulo.extras import from_extra

with from_extra("kafka", needed_by="a Kafka source"):
    from confluent_kafka import Consumer, KafkaException

from cumulo.errors import InvalidEventError, SourceError
from cumulo.events import kafka_binding
from cumulo.events.event import Event, new_event
from cumulo.events.sources import SOURCE_EXTENSION
from cumulo.events.sources.payloads import check_storable
from cumulo.spec.models import EventSource

log = logging.getLogger("cumulo.sources")

DEFAULT_TYPE = "dev.cumulo.kafka.message"
BATCH, POLL = 100, 0.5
Publish = Callable[[list[Event]], Awaitable[object]]


def event_for(record: Any, bootstrap: str, type_: str, name: str) -> Event:
    """The CloudEvent of one record (the record's own, when it carries one).

    Ours carry the source's ``name`` in ``cumulosource``, which a ``sink.function``
    trigger matches on. Raises :class:`InvalidEventError` (and nothing else) when
    the record claims to be a CloudEvent and is not a valid one, or its key
    cannot be an attribute.
    """
    headers = record.headers()
    if kafka_binding.is_cloudevent(headers):
        event = kafka_binding.decode(record.value(), headers)
    else:
        event = plain_event(record, bootstrap, type_, name, with_key=True)
    check_storable([event])
    return event


def plain_event(record: Any, bootstrap: str, type_: str, name: str, *, with_key: bool) -> Event:
    """A record as a new event: its value as data, its key (``with_key``) as subject."""
    topic, key = record.topic(), record.key()
    text = key.decode("utf-8", "replace") if key is not None and with_key else None
    attributes: dict[str, Any] = {SOURCE_EXTENSION: name}
    if text is not None:
        attributes["partitionkey"] = text
    return new_event(
        type_,
        f"kafka://{bootstrap}/{topic}",
        _data(record.value()) if with_key else record.value(),
        id=f"{topic}-{record.partition()}-{record.offset()}",
        subject=text,
        **attributes,
    )


def _data(value: bytes | None) -> Any:
    """The value as JSON when it parses (and can be stored as JSON), else the bytes."""
    if value is None:
        return None
    try:
        data = orjson.loads(value)
        orjson.dumps(data)  # nesting past the encoder's limit: keep the bytes
    except (orjson.JSONDecodeError, TypeError):
        return value
    return data


@dataclass
class KafkaStats:
    published: int = 0
    commits: int = 0
    invalid: int = 0


class KafkaEventSource:
    kind = "kafka"

    def __init__(
        self,
        source: EventSource,
        publish: Publish,
        *,
        batch: int = BATCH,
        config: Mapping[str, Any] | None = None,
    ):
        """``config``: extra librdkafka settings (TLS and SASL, for instance)."""
        spec = source.spec.kafka
        assert spec is not None
        self.name = source.name
        self.spec = spec
        self.bootstrap = ",".join(spec.brokers)
        self.type = source.spec.type or DEFAULT_TYPE
        self.publish = publish
        self.config = {**self._config(), **(config or {})}
        self.batch = batch
        self.stats = KafkaStats()

    def _config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.spec.group or f"cumulo-source-{self.name}",
            "auto.offset.reset": self.spec.start,
            "enable.auto.commit": False,
            "enable.auto.offset.store": True,
        }

    async def run(self) -> None:
        """Read, publish, commit, until cancelled."""
        try:
            consumer = Consumer(self.config)
        except KafkaException as e:
            raise SourceError(f"kafka source {self.name}: {e}") from e
        try:
            await asyncio.to_thread(consumer.subscribe, list(self.spec.topics))
            while True:
                await self.step(consumer)
        finally:
            await asyncio.to_thread(consumer.close)

    async def step(self, consumer: Consumer) -> None:
        records = await self._call(consumer.consume, self.batch, POLL)
        records = [r for r in records if r.error() is None]
        if not records:
            return
        events = [self.map(record) for record in records]
        await self.publish(events)
        self.stats.published += len(events)
        await self._call(lambda: consumer.commit(asynchronous=False))
        self.stats.commits += 1

    def map(self, record: Any) -> Event:
        """The record's event; one that cannot be mapped as it is keeps only its value."""
        try:
            return event_for(record, self.bootstrap, self.type, self.name)
        except InvalidEventError as e:
            self.stats.invalid += 1
            where = f"{record.topic()}-{record.partition()}-{record.offset()}"
            log.warning(
                "kafka source %s: record %s published as plain bytes: %s", self.name, where, e
            )
            return plain_event(record, self.bootstrap, self.type, self.name, with_key=False)

    async def _call(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(call, *args)
        except KafkaException as e:
            raise SourceError(f"kafka source {self.name} ({self.bootstrap}): {e}") from e
