"""What a pool records of each worker: crash reasons for any exit, blame for timeouts,
and where a replica listens (complements test_faults.py)."""

from __future__ import annotations

import asyncio

import pytest

from cumulo.runtimes.local.faults import Replica, Watch, crash_failure


@pytest.mark.parametrize(
    ("code", "how"),
    [
        (0, "exited with code 0"),
        (137, "exited with code 137"),
        (-15, "was killed by signal 15 (SIGTERM)"),
        (-11, "was killed by signal 11 (SIGSEGV)"),
        (-99, "was killed by signal 99"),  # no such signal: no name
    ],
)
def test_the_crash_reason_says_how_the_worker_ended(code: int, how: str) -> None:
    failure = crash_failure(code)

    assert failure.error_type == "WorkerCrashed"
    assert failure.message == f"the worker {how} while handling this event"
    assert not failure.permanent  # retried by the trigger's policy


async def test_the_delivery_blamed_first_stays_blamed() -> None:
    watch = Watch(asyncio.get_running_loop().create_future())

    assert watch.blame(2)
    assert watch.blame(2)  # asking again for the same delivery: still to blame
    assert not watch.blame(1)
    assert watch.blamed == 2


async def test_a_recycle_for_a_deliverys_own_timeout_counts_as_its_crash() -> None:
    watch = Watch(asyncio.get_running_loop().create_future())
    watch.holding.add(4)
    watch.blame(4)

    watch.exit(-9)

    assert watch.crashed_on(4)
    assert await watch.exit_code() == -9


async def test_a_second_exit_report_keeps_the_first_code() -> None:
    watch = Watch(asyncio.get_running_loop().create_future())
    watch.exit(3)
    watch.exit(-9)

    assert await watch.exit_code() == 3


async def test_waiting_for_an_exit_code_does_not_cancel_the_watch() -> None:
    watch = Watch(asyncio.get_running_loop().create_future())

    assert await watch.exit_code(0.01) is None
    watch.exit(1)  # the future survived the timed-out wait

    assert await watch.exit_code(0.01) == 1


def test_a_replica_listens_on_the_loopback_at_its_port() -> None:
    replica = Replica(pid=10, port=8123)

    assert replica.url == "http://127.0.0.1:8123"
    assert replica.inflight == 0

