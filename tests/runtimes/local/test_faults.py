"""Telling the event that brought a worker down from the events that shared it."""

from __future__ import annotations

import asyncio

from cumulo.events.outcome import Failure
from cumulo.runtimes.local.faults import Watch, crash_failure


def watch() -> Watch:
    return Watch(asyncio.get_running_loop().create_future())


async def test_an_exit_while_holding_one_delivery_is_that_deliverys_crash() -> None:
    w = watch()
    w.holding |= {1}
    w.exit(3)

    assert await w.exit_code() == 3
    assert w.crashed_on(1)


async def test_an_exit_while_holding_several_blames_none_of_them() -> None:
    w = watch()
    w.holding |= {1, 2, 3}
    w.exit(3)
    w.holding.clear()  # what they hold afterwards does not matter

    assert not any(w.crashed_on(token) for token in (1, 2, 3))


async def test_the_first_timeout_is_blamed_and_the_others_are_bystanders() -> None:
    w = watch()
    w.holding |= {1, 2}

    assert w.blame(1)
    assert not w.blame(2)
    w.holding.discard(1)
    w.exit(-9)
    assert not w.crashed_on(2)  # killed for 1's timeout, while holding only 2


async def test_a_worker_that_keeps_running_has_no_exit_code() -> None:
    assert await watch().exit_code(0.01) is None


def test_the_crash_reason_names_the_exit_code_or_the_signal() -> None:
    assert crash_failure(3) == Failure(
        "WorkerCrashed", "the worker exited with code 3 while handling this event"
    )
    killed = crash_failure(-9)
    assert killed.message == "the worker was killed by signal 9 (SIGKILL) while handling this event"
    assert not killed.permanent
