"""The supervisor and a template speak typed messages: one codec on both sides, and a real
template process answering through it."""

from __future__ import annotations

import asyncio
import os
import urllib.request
from pathlib import Path

import pytest
from pydantic import ValidationError

from cumulo.runtimes.local.forkserver_messages import (
    Exited,
    JobStarted,
    Ready,
    Spawn,
    Spawned,
    StartFailed,
    StartJob,
    encode,
    read_command,
    read_reply,
)
from cumulo.runtimes.local.template import Template, TemplateConfig

COMMANDS = [Spawn(id=1), StartJob(id=2, event="/e", result="/r", log="/l", run="run-1")]
REPLIES = [
    Ready(signature="http"),
    StartFailed(error="TargetError: nope"),
    Spawned(id=1, pid=42, port=8080),
    JobStarted(id=2, pid=43),
    Exited(pid=42, code=-9),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda m: m.kind)
def test_every_command_reads_back_as_itself(command) -> None:
    assert read_command(encode(command)) == command


@pytest.mark.parametrize("reply", REPLIES, ids=lambda m: m.kind)
def test_every_reply_reads_back_as_itself(reply) -> None:
    assert read_reply(encode(reply)) == reply


@pytest.mark.parametrize(
    "line",
    [b'{"kind": "spawn"}', b'{"kind": "spawn", "id": 1, "extra": 2}', b'{"op": "spawn", "id": 1}'],
)
def test_a_malformed_command_is_refused_not_half_read(line: bytes) -> None:
    with pytest.raises(ValidationError):
        read_command(line)


async def test_a_real_template_spawns_a_worker_and_reports_its_exit(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("def hello(request):\n    return 'hi'\n")
    exits: list[tuple[int, int]] = []
    config = TemplateConfig(
        name="hello", target="main:hello", source=tmp_path, log=tmp_path / "hello.log",
        env=tuple(os.environ.items()),
    )  # fmt: skip
    template = Template(config, on_exit=lambda pid, code: exits.append((pid, code)))
    await template.start()
    try:
        assert template.signature == "http"
        pid, port = await template.spawn_worker()
        url = f"http://127.0.0.1:{port}/"
        answer = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=30).read())
        assert answer == b"hi"
        os.kill(pid, 9)
        async with asyncio.timeout(10):
            while not exits:
                await asyncio.sleep(0.05)
        assert exits == [(pid, -9)]
    finally:
        await template.stop()
