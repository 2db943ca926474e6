"""The dapr bus publishing through a real daprd over a real Redis (``pubsub.redis``).

Interop: what Cumulo publishes through the sidecar lands in the Redis stream named
by the topic, in the layout Cumulo's own redis bus reads, with its id, source,
type and data as published (Dapr does not re-wrap a CloudEvent).
"""

from __future__ import annotations

import pytest

from cumulo.errors import BusError, BusUnavailableError
from cumulo.events.bus.dapr import DaprBus
from cumulo.events.bus.redis import RedisBus
from cumulo.events.event import new_event
from cumulo.runtimes.dapr import component
from tests.servers.broker import free_port


@pytest.fixture
def sidecar(start_dapr, dapr_redis_url):
    return start_dapr([component("pubsub", dapr_redis_url)])


async def test_publish_lands_in_the_redis_stream_of_the_topic(sidecar, dapr_redis_url) -> None:
    events = [new_event("ml.trained", "/train", {"n": n}, subject=f"m{n}") for n in range(3)]
    async with DaprBus(sidecar.bus_url("pubsub")) as bus:
        assert await bus.publish("models", events) == [0, 0, 0]
    async with RedisBus(dapr_redis_url) as redis_bus:
        messages = await redis_bus.read("models")
    assert [m.event.id for m in messages] == [e.id for e in events]
    for message, event in zip(messages, events, strict=True):
        got = message.event
        assert (got.source, got.type, got.subject, got.data) == (
            "/train",
            "ml.trained",
            event.subject,
            event.data,
        )
        # Dapr's own extensions ride along; Cumulo's attributes are kept as published.
        assert got.attributes["topic"] == "models" and got.attributes["pubsubname"] == "pubsub"
        assert got.attributes["time"] == event.attributes["time"]


async def test_binary_data_survives(sidecar, dapr_redis_url) -> None:
    event = new_event("blob", "/b", b"\x00\xffbytes")
    async with DaprBus(sidecar.bus_url()) as bus:
        await bus.publish("blobs", [event])
    async with RedisBus(dapr_redis_url) as redis_bus:
        [message] = await redis_bus.read("blobs")
    assert message.event.data == b"\x00\xffbytes"


async def test_an_unknown_component_fails_at_start(sidecar) -> None:
    with pytest.raises(BusError, match="no pub/sub component 'nope' \\(it has: pubsub\\)"):
        await DaprBus(sidecar.bus_url("nope")).start()


async def test_no_sidecar_is_unavailable() -> None:
    bus = DaprBus(f"dapr://127.0.0.1:{free_port()}/pubsub")
    with pytest.raises(BusUnavailableError, match="UNAVAILABLE"):
        await bus.start()
    await bus.close()
