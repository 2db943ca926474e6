"""Signalling a function's process group: what user code started goes too."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cumulo.runtimes.local.signals import signal_group
from tests.runtimes.local.conftest import process_gone


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def leader(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A process leading its own group, with a child of its own; both pids."""
    child_pid = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {child_pid}; wait"
    process = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 10
    while not (child_pid.exists() and child_pid.read_text().strip()):
        assert time.monotonic() < deadline, "the group did not start"
        time.sleep(0.01)
    yield process, int(child_pid.read_text())
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_signal_reaches_the_leader_and_what_it_started(leader) -> None:
    process, child = leader

    signal_group(process.pid, signal.SIGTERM)

    assert process.wait(10) == -signal.SIGTERM
    assert wait_gone(child)


def test_a_group_that_is_gone_is_no_error(leader) -> None:
    process, child = leader
    signal_group(process.pid, signal.SIGKILL)
    process.wait(10)
    assert wait_gone(child)

    signal_group(process.pid, signal.SIGKILL)  # nothing left to signal: nothing raised
