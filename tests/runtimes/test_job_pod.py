"""`cumulo job`: what a KEDA ScaledJob's pod runs, against a real Redis bus."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from cumulo.events.bus import bus_from_url
from cumulo.events.event import new_event
from tests.e2e.conftest import write_project
from tests.events.bus.conftest import flush_redis
from tests.servers.redis import redis_url

FUNCTIONS = """
import os
import functions_framework
import cumulo
from cumulo.context import current_run_id

@functions_framework.cloud_event
def train(event):
    if event.data.get("broken"):
        raise cumulo.PermanentError("no such column")
    with open(os.environ["OUT"], "a") as out:
        out.write(f"{event['id']} {current_run_id()}\\n")
    return {"type": "test.trained", "data": {"uri": event.data["uri"]}}
"""

SPEC = """
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: train}
spec:
  handler: main:train
  mode: job
  triggers: [{filters: [{exact: {type: test.dataset.ready}}], delivery: {retries: 0}}]
"""


def cumulo_job(project: Path, env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "cumulo", "job", "--target", "main:train", "--name", "train"]
    command += ["--source", str(project), "--dir", str(project)]
    return subprocess.run(command, env={**os.environ, **env}, timeout=120).returncode


def test_each_pod_delivers_one_event_and_settles_it(tmp_path, redis_server):
    url = redis_url(redis_server, db=38)
    flush_redis(url)
    project = write_project(tmp_path / "project", {"main.py": FUNCTIONS, "cumulo.yaml": SPEC})
    out = tmp_path / "out.txt"
    env = {"CUMULO_BUS_URL": url, "OUT": str(out), "CUMULO_STATE_DIR": str(tmp_path / "state")}

    async def publish(*events):
        async with bus_from_url(url) as bus:
            await bus.publish("default", list(events))

    def ready(id: str, **data):
        return new_event("test.dataset.ready", "/tests", {"uri": f"{id}.csv", **data}, id=id)

    asyncio.run(publish(ready("a"), ready("b"), ready("bad", broken=True)))

    assert [cumulo_job(project, env) for _ in range(4)] == [0, 0, 1, 0]  # the last: nothing left
    lines = out.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["a", "b"]
    assert all(line.split()[1].startswith("train-") for line in lines)  # each its own run id

    async def read(topic):
        async with bus_from_url(url) as bus:
            return [m.event for m in await bus.read(topic)]

    assert [e.data["uri"] for e in asyncio.run(read("default")) if e.type == "test.trained"] == [
        "a.csv",
        "b.csv",
    ]
    [dead] = asyncio.run(read("dead-letter"))
    assert dead.id == "bad"
    assert dead.attributes["cumuloerrortype"] == "PermanentError"
