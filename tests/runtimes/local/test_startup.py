"""`cumulo up` is ready only when every trigger has joined its bus.

A trigger's group joins at the topic's end, so an event published between "up"
and the join would pass it by. Joining can take seconds on a slow broker (Kafka
after a restart does): the test makes it slow on purpose and publishes at once.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from cumulo.config import Settings
from cumulo.events.dispatcher import TriggerDispatcher
from cumulo.events.event import new_event
from cumulo.runtimes.local.platform import Platform
from cumulo.spec import load_project

FUNCTION = """
import functions_framework

@functions_framework.cloud_event
def record(event):
    print(f"got {event['id']}", flush=True)
"""

SPEC = """
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: record}
spec:
  handler: main:record
  triggers: [{filters: [{exact: {type: test.happened}}]}]
"""


async def wait_for_file_text(path: Path, text: str, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.timeout(90)
async def test_an_event_published_the_moment_up_is_ready_reaches_its_trigger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "main.py").write_text(FUNCTION)
    (tmp_path / "p" / "cumulo.yaml").write_text(SPEC)
    joining = TriggerDispatcher._subscribe

    async def slow_join(self: TriggerDispatcher, start: str = "latest") -> None:
        await asyncio.sleep(1.5)  # a broker slow to answer
        await joining(self, start)  # type: ignore[arg-type]

    monkeypatch.setattr(TriggerDispatcher, "_subscribe", slow_join)
    platform = Platform(
        load_project(tmp_path / "p"), Settings(state_dir=tmp_path / "state", port=0)
    )
    ready = asyncio.Event()
    running = asyncio.create_task(platform.run(on_ready=lambda _: ready.set()))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        event = new_event("test.happened", "/tests", {"n": 1}, id="first")
        await platform.buses["default"].publish("default", [event])
        log = tmp_path / "state" / "logs" / "record.log"
        assert await wait_for_file_text(log, "got first", 30), "the event passed the trigger by"
    finally:
        signal.raise_signal(signal.SIGINT)  # as Ctrl-C: `up` stops everything in order
        await asyncio.wait_for(running, 30)
