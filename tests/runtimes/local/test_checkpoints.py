"""Sources' durable checkpoints (the last cron tick fired, ...) in ``checkpoints.db``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cumulo.runtimes.local.checkpoints import SqliteCheckpoints


@pytest.fixture
def checkpoints(tmp_path: Path) -> Iterator[SqliteCheckpoints]:
    store = SqliteCheckpoints(tmp_path / "checkpoints.db")
    yield store
    store.close()


def test_a_key_never_saved_has_no_value(checkpoints: SqliteCheckpoints) -> None:
    assert checkpoints.load("cron/nightly") is None


def test_a_saved_value_is_loaded_and_a_second_save_replaces_it(
    checkpoints: SqliteCheckpoints,
) -> None:
    checkpoints.save("cron/nightly", "2026-01-01T03:00:00Z")
    checkpoints.save("cron/hourly", "2026-01-01T05:00:00Z")
    checkpoints.save("cron/nightly", "2026-01-02T03:00:00Z")

    assert checkpoints.load("cron/nightly") == "2026-01-02T03:00:00Z"
    assert checkpoints.load("cron/hourly") == "2026-01-01T05:00:00Z"


def test_checkpoints_outlive_the_process_that_saved_them(tmp_path: Path) -> None:
    first = SqliteCheckpoints(tmp_path / "checkpoints.db")
    first.save("cron/nightly", "tick-1")
    first.close()  # as a platform that stopped

    again = SqliteCheckpoints(tmp_path / "checkpoints.db")
    try:
        assert again.load("cron/nightly") == "tick-1"
    finally:
        again.close()


def test_a_checkpoint_can_be_saved_from_another_thread(checkpoints: SqliteCheckpoints) -> None:
    saving = threading.Thread(target=checkpoints.save, args=("cron/nightly", "from a thread"))
    saving.start()
    saving.join(10)

    assert checkpoints.load("cron/nightly") == "from a thread"


def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SqliteCheckpoints(tmp_path / "checkpoints.db")
    store.close()

    with pytest.raises(Exception, match="closed"):
        store.load("cron/nightly")
