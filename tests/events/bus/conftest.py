"""Fixtures for the bus contract suite: one ``bus`` per backend.

A new backend joins the suite by adding its name to ``BACKENDS`` and a branch to
:func:`build_bus` (a server-backed one would also start its server, as a
session fixture, and skip when it cannot).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import count
from pathlib import Path

import pytest

from cumulo.events.bus import Bus, BusSettings, bus_from_url
from cumulo.testing import MemoryBus

BACKENDS = ["sqlite", "memory"]

MakeBus = Callable[..., Awaitable[Bus]]


def build_bus(backend: str, folder: Path, settings: BusSettings) -> Bus:
    if backend == "sqlite":
        return bus_from_url(f"sqlite:///{folder / 'bus.db'}", settings)
    if backend == "memory":
        return MemoryBus(bus_settings=settings)
    raise AssertionError(f"no such backend in the suite: {backend}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_bus(backend: str, tmp_path: Path) -> AsyncIterator[MakeBus]:
    """Start a bus with the given BusSettings fields; every bus made is closed afterwards."""
    started: list[Bus] = []
    folders = count()

    async def make(**settings: float) -> Bus:
        folder = tmp_path / f"bus{next(folders)}"
        folder.mkdir()
        bus = build_bus(backend, folder, BusSettings(**settings))  # type: ignore[arg-type]
        await bus.start()
        started.append(bus)
        return bus

    yield make
    for bus in started:
        await bus.close()


@pytest.fixture
async def bus(make_bus: MakeBus) -> Bus:
    return await make_bus()
