"""Bus contract, the broker behind the bus: restarts lose nothing, outages are named.

Runs on the backends with a server (redis, nats); SQLite's ``kill -9`` test is in
``test_sqlite_processes.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from cumulo.errors import BusUnavailableError
from cumulo.events.bus import Ack, Bus
from cumulo.events.event import Event
from cumulo.testing import make_events
from tests.events.bus.conftest import SERVER_BACKENDS, MakeBus, Servers

pytestmark = pytest.mark.parametrize("backend", SERVER_BACKENDS)


async def drain(bus: Bus, group: str, want: int, lease: float = 30.0) -> set[int]:
    """Consume until ``want`` offsets were seen (leases left over from before may fall due)."""
    seen: set[int] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(seen) < want and loop.time() < deadline:
        messages = await bus.fetch(group, limit=10, lease=lease)
        seen |= {m.offset for m in messages}
        await bus.settle(group, [Ack(m.offset) for m in messages])
        if not messages:
            await bus.wait(group, 0.2)
    return seen


async def publish_when_back(bus: Bus, topic: str, events: list[Event]) -> list[int]:
    """Publish, retrying while the broker comes back (dedup makes the retries safe)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        try:
            return await bus.publish(topic, events)
        except BusUnavailableError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_nothing_published_is_lost_across_a_broker_restart(
    make_bus: MakeBus, servers: Servers, backend: str
):
    bus = await make_bus()
    await bus.subscribe("g", "orders")
    offsets = await bus.publish("orders", make_events(20))
    leased = await bus.fetch("g", limit=5, lease=0.5)  # in flight across the restart
    assert len(leased) == 5
    servers.server(backend).restart()
    more = await publish_when_back(bus, "orders", make_events(3))
    assert await drain(bus, "g", 23) == {*offsets, *more}
    assert [m.offset for m in await bus.read("orders", limit=100)] == offsets + more


async def test_a_stopped_broker_is_unavailable_then_the_bus_reconnects(
    make_bus: MakeBus, servers: Servers, backend: str
):
    bus = await make_bus()
    await bus.subscribe("g", "orders")
    server = servers.server(backend)
    server.stop()
    try:
        with pytest.raises(BusUnavailableError) as raised:
            await bus.publish("orders", make_events(1))
        assert raised.value.address.endswith(f":{server.port}")
        assert f"127.0.0.1:{server.port}" in str(raised.value)
    finally:
        server.start()
    offsets = await publish_when_back(bus, "orders", make_events(2))
    assert await drain(bus, "g", 2) == set(offsets)
