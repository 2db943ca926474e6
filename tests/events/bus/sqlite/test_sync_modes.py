"""Which bus writes wait for an fsync: events and cursors moved back do, leases and acks do not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cumulo.events.bus.base import Ack, DeadLetter, Nack
from cumulo.events.bus.sqlite import SqliteBus, SqliteSettings
from cumulo.testing import make_events

LEASE = 30.0


@pytest.fixture
async def durable_bus(db_path: Path) -> AsyncIterator[SqliteBus]:
    async with SqliteBus(SqliteSettings(db_path, synchronous="FULL")) as bus:
        await bus.subscribe("g", "orders")
        yield bus


class Counted:
    """How many transactions, and of those fsynced ones, a step cost."""

    def __init__(self, bus: SqliteBus):
        self.bus = bus
        self.start = (bus.transactions, bus.synced_transactions)

    @property
    def cost(self) -> tuple[int, int]:
        return (
            self.bus.transactions - self.start[0],
            self.bus.synced_transactions - self.start[1],
        )


async def test_a_publish_waits_for_its_fsync(durable_bus: SqliteBus):
    counted = Counted(durable_bus)
    await durable_bus.publish("orders", make_events(2))
    assert counted.cost == (1, 1)


async def test_taking_leases_and_plain_settlements_do_not(durable_bus: SqliteBus):
    await durable_bus.publish("orders", make_events(2))
    counted = Counted(durable_bus)
    first, second = await durable_bus.fetch("g", limit=10, lease=LEASE)
    await durable_bus.settle("g", [Ack(first.offset)])
    await durable_bus.settle("g", [Nack(second.offset, delay=0.0, error="again")])
    transactions, synced = counted.cost
    assert transactions >= 3 and synced == 0


async def test_a_settlement_that_publishes_waits_for_its_fsync(durable_bus: SqliteBus):
    await durable_bus.publish("orders", make_events(2))
    first, second = await durable_bus.fetch("g", limit=10, lease=LEASE)
    counted = Counted(durable_bus)
    await durable_bus.settle("g", [Ack(first.offset, emit=[("replies", second.event)])])
    dead = DeadLetter(second.offset, "orders.dlq", second.event)
    await durable_bus.settle("g", [dead])
    assert counted.cost == (2, 2)
    assert [m.event.id for m in await durable_bus.read("replies")] == [second.event.id]


async def test_a_replay_waits_for_its_fsync(durable_bus: SqliteBus):
    await durable_bus.publish("orders", make_events(2))
    await durable_bus.fetch("g", limit=10, lease=LEASE)
    counted = Counted(durable_bus)
    assert await durable_bus.replay(group="g", from_offset=1) == 2
    assert counted.cost == (1, 1)


async def test_what_a_light_commit_wrote_is_there_after_reopening(db_path: Path):
    """No fsync is not no write: the acks are in the file for the next owner."""
    async with SqliteBus(SqliteSettings(db_path, synchronous="FULL")) as bus:
        await bus.subscribe("g", "orders")
        await bus.publish("orders", make_events(3))
        messages = await bus.fetch("g", limit=10, lease=LEASE)
        await bus.settle("g", [Ack(m.offset) for m in messages[:2]])
    async with SqliteBus(SqliteSettings(db_path, synchronous="FULL")) as bus:
        again = await bus.fetch("g", limit=10, lease=LEASE)  # the leases of the closed owner
        assert [m.offset for m in again] == [messages[2].offset]
