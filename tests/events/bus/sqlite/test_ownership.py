"""OwnerLock: one holder per bus file, released on demand (the kernel drops it on death)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.errors import BusUnavailableError
from cumulo.events.bus.sqlite.ownership import OwnerLock


def test_the_lock_lies_beside_the_bus_file(tmp_path: Path):
    assert OwnerLock.beside(tmp_path / "bus.db").path == tmp_path / "bus.db.lock"


def test_only_one_holder_at_a_time_and_the_lock_passes_on_after_release(tmp_path: Path):
    first, second = OwnerLock.beside(tmp_path / "bus.db"), OwnerLock.beside(tmp_path / "bus.db")
    assert first.acquire() and first.held
    assert not second.acquire() and not second.held
    first.release()
    assert not first.held
    assert second.acquire()
    second.release()


def test_releasing_a_lock_not_held_changes_nothing(tmp_path: Path):
    holder, bystander = OwnerLock.beside(tmp_path / "b.db"), OwnerLock.beside(tmp_path / "b.db")
    assert holder.acquire()
    bystander.release()
    assert holder.held and not bystander.acquire()
    holder.release()


def test_a_lock_file_that_cannot_be_created_is_unavailable(tmp_path: Path):
    lock = OwnerLock.beside(tmp_path / "missing-folder" / "bus.db")
    with pytest.raises(BusUnavailableError) as caught:
        lock.acquire()
    assert caught.value.address == str(lock.path)
