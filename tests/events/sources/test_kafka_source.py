"""The Kafka source against a real broker, publishing onto a real (SQLite) bus."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from cumulo.events.bus import Bus, bus_from_url
from cumulo.events.event import new_event, to_json
from cumulo.events.sources.kafka import KafkaEventSource
from cumulo.spec.models import EventSource
from tests.servers.kafka import KafkaServer


def kafka_source(server: KafkaServer, topic: str, **spec: object) -> EventSource:
    body = {
        "kafka": {"brokers": [server.bootstrap], "topics": [topic], "start": "earliest", **spec}
    }
    return EventSource.model_validate({"metadata": {"name": "orders"}, "spec": body})


def produce(server: KafkaServer, topic: str, records: list[tuple]) -> None:
    producer = Producer({"bootstrap.servers": server.bootstrap})
    for key, value, headers in records:
        producer.produce(topic, value, key, headers=headers)
    assert producer.flush(15) == 0


@pytest.fixture
async def bus(tmp_path: Path) -> Bus:
    async with bus_from_url(f"sqlite:///{tmp_path / 'bus.db'}") as started:
        yield started


async def run_until(
    source: KafkaEventSource, bus: Bus, count: int, timeout: float = 30, *, counted: int = 0
) -> None:
    """Run the source until the bus holds ``count`` events and the source has counted
    ``counted`` published (its step ends after the bus has them: stopping the moment
    they show would cut it short)."""
    task = asyncio.create_task(source.run())

    async def short() -> bool:
        on_bus = len(await bus.read("events", limit=1000))
        return on_bus < count or source.stats.published < counted

    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await short() and loop.time() < deadline:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def publisher(bus: Bus):
    async def publish(events):
        return await bus.publish("events", events)

    return publish


async def test_records_become_events_with_key_as_subject(kafka_server: KafkaServer, bus: Bus):
    topic = f"src-{uuid.uuid4().hex[:8]}"
    produce(kafka_server, topic, [(b"k1", b'{"n": 1}', None), (None, b"\x00raw", None)])
    source = KafkaEventSource(kafka_source(kafka_server, topic), publisher(bus))
    await run_until(source, bus, 2)
    first, second = [m.event for m in await bus.read("events")]
    assert first.type == "dev.cumulo.kafka.message"
    assert first.source == f"kafka://{kafka_server.bootstrap}/{topic}"
    assert first.id == f"{topic}-0-0" and first.subject == "k1"
    assert first.attributes["partitionkey"] == "k1" and first.data == {"n": 1}
    assert second.data == b"\x00raw" and second.subject is None


async def test_cloudevents_pass_through_in_both_modes(kafka_server: KafkaServer, bus: Bus):
    topic = f"src-{uuid.uuid4().hex[:8]}"
    structured = new_event("order.created", "/shop", {"id": 7}, id="s1")
    headers = [("ce_specversion", b"1.0"), ("ce_type", b"order.paid"), ("ce_source", b"/shop"),
               ("ce_id", b"b1"), ("content-type", b"application/json")]  # fmt: skip
    produce(kafka_server, topic, [
        (None, to_json(structured), [("content-type", b"application/cloudevents+json")]),
        (None, b'{"id": 8}', headers),
    ])  # fmt: skip
    source = KafkaEventSource(kafka_source(kafka_server, topic), publisher(bus))
    await run_until(source, bus, 2)
    first, second = [m.event for m in await bus.read("events")]
    assert first == structured
    assert (second.type, second.id, second.data) == ("order.paid", "b1", {"id": 8})


async def test_a_restart_mid_stream_skips_nothing(kafka_server: KafkaServer, bus: Bus):
    topic = f"src-{uuid.uuid4().hex[:8]}"
    produce(kafka_server, topic, [(str(n).encode(), b"%d" % n, None) for n in range(200)])
    spec = kafka_source(kafka_server, topic)
    publish, stalled = publisher(bus), asyncio.Event()

    async def stall_after_50(events):  # the source is stopped with a batch in flight
        if len(await bus.read("events", limit=1000)) >= 50:
            stalled.set()
            await asyncio.Event().wait()
        return await publish(events)

    first = KafkaEventSource(spec, stall_after_50, batch=10)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(stalled.wait(), 60)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert first.stats.published == 50
    second = KafkaEventSource(spec, publisher(bus))
    await run_until(second, bus, 200)
    ids = {m.event.id for m in await bus.read("events", limit=1000)}
    assert ids == {f"{topic}-0-{n}" for n in range(200)}


async def test_records_that_are_not_valid_cloudevents_do_not_stop_the_source(
    kafka_server: KafkaServer, bus: Bus
):
    topic = f"src-{uuid.uuid4().hex[:8]}"
    structured = [("content-type", b"application/cloudevents+json")]
    binary = [("ce_specversion", b"1.0"), ("ce_type", b"t"), ("ce_id", b"1")]  # no ce_source
    deep = b"[" * 300 + b"]" * 300
    produce(kafka_server, topic, [
        (None, b"{not json", structured),
        (None, b'{"specversion": "1.0", "id": "x", "type": "t", "source": 5}', structured),
        (None, b"payload", binary),
        (b"line\nbreak", b"{}", None),  # a key that cannot be the subject
        (None, deep, None),  # JSON past the encoder's depth: kept as bytes
        (b"k", b'{"n": 1}', None),
    ])  # fmt: skip
    source = KafkaEventSource(kafka_source(kafka_server, topic), publisher(bus))
    await run_until(source, bus, 6, counted=6)
    events = [m.event for m in await bus.read("events")]
    assert [e.id for e in events] == [f"{topic}-0-{n}" for n in range(6)]
    assert [e.data for e in events[:5]] == [b"{not json", events[1].data, b"payload", b"{}", deep]
    assert events[1].data.startswith(b'{"specversion"')
    assert all(e.subject is None for e in events[:5]) and events[5].subject == "k"
    assert (source.stats.invalid, source.stats.published) == (4, 6)
