"""SQLite bus specifics: URLs, the backend table, errors, bounded scans, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cumulo.errors import BusError, BusUnavailableError, MissingExtraError, UnknownBackendError
from cumulo.events.bus import Ack, Backend, BusSettings, bus_from_url
from cumulo.events.bus.sqlite import SqliteBus, SqliteSettings
from cumulo.testing import make_events


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteBus]:
    bus = SqliteBus(SqliteSettings(tmp_path / "bus.db"))
    async with bus:
        yield bus


def test_urls_name_relative_and_absolute_files_and_take_options():
    relative = SqliteSettings.from_url("sqlite:///state/bus.db", BusSettings())
    assert relative.path == Path("state/bus.db") and relative.synchronous == "FULL"
    absolute = SqliteSettings.from_url(
        "sqlite:////var/lib/bus.db?synchronous=normal&busy_timeout=2"
    )
    assert absolute.path == Path("/var/lib/bus.db")
    assert (absolute.synchronous, absolute.busy_timeout) == ("NORMAL", 2.0)
    extra = SqliteSettings.from_url("sqlite:///b.db", BusSettings(extra={"synchronous": "NORMAL"}))
    assert extra.synchronous == "NORMAL"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/bus.db",
        "sqlite:///",
        "sqlite:///b.db?colour=blue",
        "sqlite:///b.db?synchronous=SOMETIMES",
        "sqlite:///b.db?busy_timeout=soon",
    ],
)
def test_bad_urls_say_what_is_wrong(url: str):
    with pytest.raises(BusError):
        SqliteSettings.from_url(url)


def test_bus_from_url_picks_the_backend_by_scheme(tmp_path: Path):
    bus = bus_from_url(f"sqlite:///{tmp_path}/bus.db", BusSettings(dedup_window=5))
    assert isinstance(bus, SqliteBus) and bus.settings.bus.dedup_window == 5
    with pytest.raises(UnknownBackendError, match="known schemes"):
        bus_from_url("carrier-pigeon://loft")
    assert type(bus_from_url("redis://localhost:6379")).__name__ == "RedisBus"
    assert type(bus_from_url("nats://localhost:4222")).__name__ == "NatsBus"
    with pytest.raises(UnknownBackendError, match="not available yet"):
        Backend(("later",), "cumulo.events.bus.not_written_yet", "Bus").load()


def test_a_missing_client_library_names_the_extra_to_install():
    backend = Backend(("x",), "cumulo_missing_client_lib.bus", "Bus", extra="x")
    with pytest.raises(MissingExtraError, match=r"pip install 'cumulo\[x\]'"):
        backend.load()


async def test_using_a_bus_that_is_not_started_fails(tmp_path: Path):
    with pytest.raises(BusError, match="not started"):
        await SqliteBus(SqliteSettings(tmp_path / "bus.db")).publish("t", make_events(1))


async def test_a_file_that_cannot_be_opened_is_unavailable(tmp_path: Path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(BusUnavailableError) as caught:
        await SqliteBus(SqliteSettings(tmp_path / "file" / "bus.db")).start()
    assert str(tmp_path) in caught.value.address


async def test_a_file_from_a_newer_cumulo_is_refused(tmp_path: Path):
    with sqlite3.connect(tmp_path / "bus.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    bus = SqliteBus(SqliteSettings(tmp_path / "bus.db"))
    with pytest.raises(BusError, match="newer"):
        await bus.start()
    assert not bus.owner  # the failed start cleaned up after itself
    with pytest.raises(BusError, match="not started"):
        await bus.read("orders")


async def test_events_and_cursors_survive_reopening(tmp_path: Path):
    settings = SqliteSettings(tmp_path / "bus.db")
    async with SqliteBus(settings) as bus:
        await bus.subscribe("g", "orders")
        first = await bus.publish("orders", make_events(3))
        await bus.settle("g", [Ack(m.offset) for m in await bus.fetch("g", limit=2, lease=30)])
    async with SqliteBus(settings) as bus:
        (info,) = await bus.groups()
        assert (info.cursor, info.backlog) == (first[1], 1)
        (later,) = await bus.publish("orders", make_events(1))
        assert later > first[-1]


async def test_a_picky_filter_scans_a_bounded_number_of_events_per_fetch(bus: SqliteBus):
    await bus.subscribe("g", "orders")
    offsets = await bus.publish("orders", make_events(200))
    assert await bus.fetch("g", limit=2, lease=30, accept=lambda event: False) == []
    (info,) = await bus.groups()
    assert info.cursor == offsets[99]  # limit 2 * 50


async def test_concurrent_publishes_share_transactions(bus: SqliteBus):
    before = bus.transactions
    batches = [make_events(1) for _ in range(200)]
    offsets = await asyncio.gather(*(bus.publish("orders", batch) for batch in batches))
    assert len({offset for (offset,) in offsets}) == 200
    assert bus.transactions - before < 50


async def test_one_failing_operation_does_not_fail_the_others_in_its_transaction(bus: SqliteBus):
    await bus.subscribe("g", "orders")
    results = await asyncio.gather(
        bus.publish("orders", make_events(1)),
        bus.fetch("unknown-group", limit=1, lease=30),
        bus.publish("orders", make_events(1)),
        return_exceptions=True,
    )
    assert isinstance(results[1], BusError)
    assert len(await bus.read("orders")) == 2


async def test_a_write_lock_held_too_long_elsewhere_is_unavailable_then_recovers(tmp_path: Path):
    bus = SqliteBus(SqliteSettings(tmp_path / "bus.db", busy_timeout=0.05))
    async with bus:
        other = sqlite3.connect(tmp_path / "bus.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(BusUnavailableError) as caught:
            await bus.publish("orders", make_events(1))
        assert caught.value.address == str(tmp_path / "bus.db")
        other.execute("ROLLBACK")
        other.close()
        assert len(await bus.publish("orders", make_events(1))) == 1
