"""The bus contract's shared pieces: replay checks, the value types, ``async with``, group names."""

from __future__ import annotations

import math
import re

import pytest

from cumulo.errors import BusError, InvalidReplayError, ReplayOutOfRangeError
from cumulo.events.bus.base import (
    Ack,
    BusSettings,
    Message,
    Nack,
    check_replay,
    check_replay_start,
)
from cumulo.events.bus.names import consumer_name, group_name, trigger_group
from cumulo.events.event import new_event
from cumulo.testing import MemoryBus, make_events

NOW = 1_700_000_000.0


# --- check_replay ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "topic", "offset", "at", "message"),
    [
        (None, None, 1, None, "exactly one of group= or topic="),
        ("g", "t", 1, None, "exactly one of group= or topic="),
        ("g", None, None, None, "exactly one of from_offset= or from_time="),
        (None, "t", 1, 2.0, "exactly one of from_offset= or from_time="),
    ],
)
def test_a_replay_names_one_target_and_one_start(
    group: str | None, topic: str | None, offset: int | None, at: float | None, message: str
) -> None:
    with pytest.raises(InvalidReplayError, match=message):
        check_replay(group, topic, offset, at)


@pytest.mark.parametrize(
    ("group", "topic", "offset", "at"), [("g", None, 1, None), (None, "t", None, 5.0)]
)
def test_a_well_formed_replay_passes(
    group: str | None, topic: str | None, offset: int | None, at: float | None
) -> None:
    check_replay(group, topic, offset, at)


def test_replay_errors_are_both_bus_errors_and_value_errors() -> None:
    assert issubclass(ReplayOutOfRangeError, InvalidReplayError)
    assert issubclass(InvalidReplayError, BusError) and issubclass(InvalidReplayError, ValueError)


# --- check_replay_start -------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, 1, 5, 6])
def test_an_offset_from_zero_to_one_past_the_end_is_within_the_topic(offset: int) -> None:
    check_replay_start("orders", offset, None, last_offset=5, now=NOW)


def test_an_offset_further_on_is_refused_naming_the_end() -> None:
    with pytest.raises(ReplayOutOfRangeError) as caught:
        check_replay_start("orders", 7, None, last_offset=5, now=NOW)
    assert str(caught.value) == "fromOffset 7 is past the end of topic 'orders' (last offset 5)"


def test_an_empty_topic_allows_offsets_zero_and_one_only() -> None:
    check_replay_start("empty", 1, None, last_offset=0, now=NOW)
    with pytest.raises(ReplayOutOfRangeError, match="past the end"):
        check_replay_start("empty", 2, None, last_offset=0, now=NOW)


def test_a_negative_offset_is_refused_as_negative() -> None:
    with pytest.raises(ReplayOutOfRangeError, match=r"^fromOffset -1 is negative$"):
        check_replay_start("orders", -1, None, last_offset=5, now=NOW)


@pytest.mark.parametrize("at", [0.0, NOW - 3600, NOW])
def test_a_time_from_1970_until_now_is_within_the_topic(at: float) -> None:
    check_replay_start("orders", None, at, last_offset=5, now=NOW)


@pytest.mark.parametrize("at", [NOW + 1, -1.0, math.nan, math.inf, -math.inf])
def test_a_time_to_come_before_1970_or_not_finite_is_refused(at: float) -> None:
    with pytest.raises(ReplayOutOfRangeError, match="is not between 1970 and now"):
        check_replay_start("orders", None, at, last_offset=5, now=NOW)


def test_now_defaults_to_the_clock() -> None:
    with pytest.raises(ReplayOutOfRangeError):
        check_replay_start("orders", None, 4_000_000_000.0, last_offset=0)  # the year 2096
    check_replay_start("orders", None, NOW, last_offset=0)


async def test_a_bus_checks_the_start_against_its_own_end_of_the_topic() -> None:
    bus = MemoryBus()
    await bus.publish("orders", make_events(3))
    await bus.check_replay_start("orders", 4, None)
    with pytest.raises(ReplayOutOfRangeError, match="last offset 3"):
        await bus.check_replay_start("orders", 5, None)


# --- value types and async with --------------------------------------------------------------------


def test_value_types_have_the_documented_defaults() -> None:
    event = new_event("t", "/s")
    assert Message(1, "t", event, 0.0).attempt == 0  # read, not leased
    assert Ack(1).emit == ()
    assert Nack(1, 2.0).error == ""
    settings = BusSettings()
    assert (settings.dedup_window, settings.retention) == (600.0, 7 * 86400.0)
    BusSettings().extra["k"] = "v"
    assert BusSettings().extra == {}


class TrackedBus(MemoryBus):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    async def start(self) -> None:
        self.log.append("start")

    async def close(self) -> None:
        self.log.append("close")


async def test_async_with_starts_and_closes_the_bus_even_on_an_error() -> None:
    bus = TrackedBus()
    async with bus as entered:
        assert entered is bus and bus.log == ["start"]
    assert bus.log == ["start", "close"]
    failing = TrackedBus()
    with pytest.raises(RuntimeError):
        async with failing:
            raise RuntimeError("boom")
    assert failing.log == ["start", "close"]


# --- names ---------------------------------------------------------------------------------------------


def test_a_triggers_group_is_named_after_it() -> None:
    assert trigger_group("train-0") == "trigger/train-0"


@pytest.mark.parametrize(
    ("group", "consumer"),
    [
        ("trigger/train-0", "trigger~2Ftrain-0"),
        ("a.b", "a~2Eb"),
        ("x y*>", "x~20y~2A~3E"),
        ("tilde~", "tilde~7E"),
        ("café", "caf~C3~A9"),
        ("plain_Name-9", "plain_Name-9"),
    ],
)
def test_consumer_names_escape_every_byte_jetstream_may_refuse(group: str, consumer: str) -> None:
    assert consumer_name(group) == consumer
    assert re.fullmatch(r"[A-Za-z0-9_\-~]+", consumer_name(group))


@pytest.mark.parametrize(
    "group", ["trigger/train-0", "trigger/a~2Fb", "a.b.c", "名前/x", "~~", "trigger/UPPER_case"]
)
def test_group_name_undoes_consumer_name(group: str) -> None:
    assert group_name(consumer_name(group)) == group
