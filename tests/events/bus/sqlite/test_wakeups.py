"""Doorbells: a ring wakes waiters on any event loop, from any thread; due times wake them too."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from cumulo.events.bus.sqlite.wakeups import Doorbell, Doorbells, resolve

BOUND = 2.0  # seconds a waiter may take to notice what woke it (a bound, not a sleep)


async def test_a_rung_bell_answers_at_once_until_cleared():
    bell = Doorbell("orders", rung=True)
    await asyncio.wait_for(bell.wait(60), BOUND)
    bell.clear()
    assert not bell.rung
    started = time.monotonic()
    await bell.wait(0.05)
    assert 0.04 <= time.monotonic() - started < BOUND


async def test_a_ring_from_another_thread_wakes_a_waiter():
    bell = Doorbell("orders", rung=False)
    waiting = asyncio.create_task(bell.wait(60))
    await asyncio.sleep(0)  # let it start waiting
    ringer = threading.Thread(target=bell.ring)
    ringer.start()
    await asyncio.wait_for(waiting, BOUND)
    ringer.join()
    assert bell.rung


async def test_one_ring_wakes_waiters_on_two_event_loops():
    bell = Doorbell("orders", rung=False)
    other_loop_woke = threading.Event()
    other_loop_waits = threading.Event()

    async def wait_elsewhere() -> None:
        task = asyncio.create_task(bell.wait(60))
        await asyncio.sleep(0)
        other_loop_waits.set()
        await task
        other_loop_woke.set()

    elsewhere = threading.Thread(target=asyncio.run, args=(wait_elsewhere(),))
    elsewhere.start()
    here = asyncio.create_task(bell.wait(60))
    await asyncio.sleep(0)
    assert await asyncio.to_thread(other_loop_waits.wait, BOUND)
    bell.ring()
    await asyncio.wait_for(here, BOUND)
    assert await asyncio.to_thread(other_loop_woke.wait, BOUND)
    elsewhere.join()


async def test_a_waiter_wakes_when_the_next_due_time_comes():
    bell = Doorbell("orders", rung=False)
    waiting = asyncio.create_task(bell.wait(60))
    await asyncio.sleep(0)
    started = time.monotonic()
    bell.set_due(time.time() + 0.05)  # a retry falls due in 50 ms
    await asyncio.wait_for(waiting, BOUND)
    assert time.monotonic() - started >= 0.04
    assert not bell.rung  # a due time is not a ring


async def test_a_due_time_already_past_returns_at_once():
    bell = Doorbell("orders", rung=False)
    bell.set_due(time.time() - 1)
    await asyncio.wait_for(bell.wait(60), BOUND)


async def test_a_cancelled_waiter_leaves_the_bell_working():
    bell = Doorbell("orders", rung=False)
    gone = asyncio.create_task(bell.wait(60))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    waiting = asyncio.create_task(bell.wait(60))
    await asyncio.sleep(0)
    bell.ring()
    await asyncio.wait_for(waiting, BOUND)


def test_bells_ring_for_their_topic_and_when_their_topic_is_unknown():
    bells = Doorbells()
    orders = bells.bell("a", "orders", rung=False)
    payments = bells.bell("b", "payments", rung=False)
    unknown = bells.bell("c", None, rung=False)
    bells.ring_topics({"orders"})
    assert (orders.rung, payments.rung, unknown.rung) == (True, False, True)
    bells.ring_topics(set())
    assert not payments.rung


def test_a_group_keeps_one_bell_and_learns_its_topic_once():
    bells = Doorbells()
    assert bells.get("a") is None
    first = bells.bell("a", None, rung=True)
    again = bells.bell("a", "orders", rung=False)
    assert again is first and first.topic == "orders"
    assert first.rung  # an existing bell keeps its state
    assert bells.bell("a", "other", rung=False).topic == "orders"
    assert bells.get("a") is first


async def test_resolve_sets_a_value_or_an_error_and_leaves_a_cancelled_future_alone():
    loop = asyncio.get_running_loop()
    value, error, cancelled = loop.create_future(), loop.create_future(), loop.create_future()
    resolve(value, 7, None)
    resolve(error, None, KeyError("k"))
    cancelled.cancel()
    resolve(cancelled, 7, None)
    assert value.result() == 7
    assert isinstance(error.exception(), KeyError)
    assert cancelled.cancelled()
