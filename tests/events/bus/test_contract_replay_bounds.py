"""Bus contract, replay bounds: a replay starts within its topic or changes nothing.

Runs on every backend. A start past a topic's end used to move cursors beyond
every offset yet to be written, and delivery stopped without a word.
"""

from __future__ import annotations

import math
import time

import pytest

from cumulo.errors import InvalidReplayError, ReplayOutOfRangeError
from cumulo.events.bus import Bus
from cumulo.testing import make_events
from tests.events.bus.test_contract_groups import consume_all


async def test_last_offset_is_the_newest_event_of_the_topic(bus: Bus):
    assert await bus.last_offset("orders") == 0
    offsets = await bus.publish("orders", make_events(3))
    await bus.publish("payments", make_events(1))
    assert await bus.last_offset("orders") == offsets[-1]


@pytest.mark.parametrize("past", [2, 10**6, 10**20])
async def test_an_offset_past_the_end_is_refused_and_delivery_goes_on(bus: Bus, past: int):
    await bus.subscribe("g", "orders")
    offsets = await bus.publish("orders", make_events(2))
    assert await consume_all(bus, "g") == offsets
    start = offsets[-1] + past
    with pytest.raises(ReplayOutOfRangeError) as refused:
        await bus.replay(group="g", from_offset=start)
    assert str(refused.value) == (
        f"fromOffset {start} is past the end of topic 'orders' (last offset {offsets[-1]})"
    )
    later = await bus.publish("orders", make_events(1))
    assert await consume_all(bus, "g") == later


async def test_a_topic_replay_past_the_end_is_refused_even_with_no_group(bus: Bus):
    offsets = await bus.publish("orders", make_events(1))
    with pytest.raises(ReplayOutOfRangeError, match="past the end of topic 'orders'"):
        await bus.replay(topic="orders", from_offset=offsets[-1] + 2)


async def test_one_past_the_last_offset_replays_nothing_and_keeps_delivering(bus: Bus):
    await bus.subscribe("g", "orders")
    offsets = await bus.publish("orders", make_events(2))
    await consume_all(bus, "g")
    assert await bus.replay(group="g", from_offset=offsets[-1] + 1) == 0
    later = await bus.publish("orders", make_events(1))
    assert await consume_all(bus, "g") == later


async def test_a_negative_offset_is_refused(bus: Bus):
    await bus.subscribe("g", "orders")
    with pytest.raises(ReplayOutOfRangeError, match="fromOffset -1 is negative"):
        await bus.replay(group="g", from_offset=-1)


@pytest.mark.parametrize("when", [time.time() + 3600, math.inf, math.nan, -1.0])
async def test_a_time_to_come_or_not_a_time_is_refused(bus: Bus, when: float):
    await bus.subscribe("g", "orders")
    offsets = await bus.publish("orders", make_events(2))
    await consume_all(bus, "g")
    with pytest.raises(ReplayOutOfRangeError, match="is not between 1970 and now"):
        await bus.replay(group="g", from_time=when)
    assert await bus.replay(group="g", from_offset=offsets[0]) == 2  # the cursor did not move


async def test_refusals_are_value_errors_of_the_replay_kind(bus: Bus):
    await bus.subscribe("g", "orders")
    with pytest.raises(InvalidReplayError) as refused:
        await bus.replay(group="g", from_offset=5)
    assert isinstance(refused.value, ValueError)
