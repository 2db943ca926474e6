"""SQLite bus across processes: kill -9 durability, lease recovery, a second process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from cumulo.events.bus import Ack
from cumulo.events.bus.sqlite import SqliteBus, SqliteSettings
from cumulo.testing import make_events

ROOT = Path(__file__).resolve().parents[3]

PUBLISHER = """
import asyncio, sys
from cumulo.events.bus.sqlite import SqliteBus
from cumulo.testing import make_events

async def publisher(bus, size):
    while True:
        offsets = await bus.publish("orders", make_events(size))
        print(*offsets, flush=True)  # only once publish has returned

async def main(url, publishers, size):
    async with SqliteBus(url) as bus:
        await asyncio.gather(*(publisher(bus, size) for _ in range(publishers)))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

LEASE_HOLDER = """
import asyncio, sys
from cumulo.events.bus.sqlite import SqliteBus

async def main(url):
    async with SqliteBus(url) as bus:
        messages = await bus.fetch("g", limit=10, lease=600)
        print(len(messages), flush=True)
        await asyncio.sleep(600)

asyncio.run(main(sys.argv[1]))
"""


async def start_child(code: str, *args: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def kill(child: asyncio.subprocess.Process) -> bytes:
    """SIGKILL the child; whatever it had printed before dying."""
    child.send_signal(signal.SIGKILL)
    assert child.stdout is not None
    rest = await child.stdout.read()
    await child.wait()
    return rest


async def test_published_events_survive_kill_9(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/bus.db"
    child = await start_child(PUBLISHER, url, 4, 3)
    assert child.stdout is not None
    printed = [await asyncio.wait_for(child.stdout.readline(), 20) for _ in range(60)]
    printed.append(await kill(child))
    lines = b"".join(printed).decode().splitlines(keepends=True)
    acknowledged = {int(o) for line in lines if line.endswith("\n") for o in line.split()}
    assert len(acknowledged) >= 180
    async with SqliteBus(url) as bus:
        stored = {m.offset for m in await bus.read("orders", limit=1_000_000)}
    assert acknowledged <= stored


async def test_leases_of_a_killed_owner_are_released_on_restart(tmp_path: Path):
    settings = SqliteSettings(tmp_path / "bus.db")
    async with SqliteBus(settings) as bus:
        await bus.subscribe("g", "orders")
        offsets = await bus.publish("orders", make_events(3))
    child = await start_child(LEASE_HOLDER, settings.url)
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), 20) == b"3\n"
    await kill(child)
    bus = SqliteBus(settings)
    async with bus:
        assert bus.owner
        again = await bus.fetch("g", limit=10, lease=30)
    assert [(m.offset, m.attempt) for m in again] == [(o, 2) for o in offsets]


async def test_a_second_bus_on_the_file_leaves_the_owners_leases_alone(tmp_path: Path):
    settings = SqliteSettings(tmp_path / "bus.db")
    owner, visitor = SqliteBus(settings), SqliteBus(settings)
    async with owner:
        await owner.subscribe("g", "orders")
        await owner.publish("orders", make_events(2))
        assert len(await owner.fetch("g", limit=10, lease=30)) == 2
        async with visitor:
            assert owner.owner and not visitor.owner
            await visitor.publish("orders", make_events(1))
            assert len(await visitor.fetch("g", limit=10, lease=30)) == 1


async def test_events_published_by_another_process_reach_this_ones_groups(tmp_path: Path):
    settings = SqliteSettings(tmp_path / "bus.db")
    async with SqliteBus(settings) as bus:
        await bus.subscribe("g", "orders")
        child = await start_child(PUBLISHER, settings.url, 1, 1)
        received: list[int] = []
        while len(received) < 20:
            messages = await bus.fetch("g", limit=10, lease=30)
            await bus.settle("g", [Ack(m.offset) for m in messages])
            received += [m.offset for m in messages]
            if not messages:
                await bus.wait("g", 0.02)  # another process's publish: noticed on the timeout
        await kill(child)
    assert received == sorted(received)
