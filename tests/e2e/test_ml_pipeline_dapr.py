"""examples/ml-pipeline on an embedded Dapr bus: `cumulo up` runs real daprd sidecars.

Only the EventBus URL changes: ``dapr://pubsub?broker=<redis URL>``. Dapr pushes
each trigger's events to the gateway; failures dead-letter with Cumulo's reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from cumulo.events.bus.redis import RedisBus
from cumulo.events.event import to_json
from tests.e2e.conftest import write_project
from tests.e2e.platform import cloudevent, wait_for
from tests.e2e.test_ml_pipeline import (
    TRAINING_TIMEOUT,
    chain_event,
    copy_example,
    dataset_ready,
    holdout_rows,
    predict,
)
from tests.servers.dapr import daprd_binary

FUNCTIONS = """
import functions_framework

@functions_framework.cloud_event
def flaky(event):
    print(f"attempt {event['id']}", flush=True)
    raise ValueError(f"cannot handle {event['id']}")

@functions_framework.cloud_event
def record(event):
    print(f"got {event['id']}", flush=True)
"""

SPEC = """
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: flaky}
spec:
  handler: main:flaky
  triggers:
    - filters: [{exact: {type: test.flaky}}]
      delivery: {retries: 2, backoffPolicy: linear, backoffDelay: 0.1s}
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: record}
spec:
  handler: main:record
  triggers: [{filters: [{exact: {priority: high}}]}]  # an extension: CEL cannot see it
"""


def dapr_env(redis_url: str) -> dict[str, str]:
    return {
        "CUMULO_BUS_URL": f"dapr://pubsub?broker={redis_url}",
        "CUMULO_DAPRD": str(daprd_binary()),
    }


def dead_letters(redis_url: str) -> list[dict[str, Any]]:
    """The events on the ``dead-letter`` stream, read straight from Redis."""
    import orjson

    async def read() -> list[dict[str, Any]]:
        bus = RedisBus(redis_url)
        await bus.start()
        try:
            return [orjson.loads(to_json(m.event)) for m in await bus.read("dead-letter")]
        finally:
            await bus.close()

    return asyncio.run(read())


def test_the_chain_runs_on_dapr(platform_factory, tmp_path, dapr_redis_url):
    project = copy_example(tmp_path)
    platform = platform_factory(project, env=dapr_env(dapr_redis_url))

    dataset_ready(platform, "data/small.csv", id="small")
    deployed = chain_event(platform, "dev.cumulo.model.deployed", "small")
    assert deployed["data"]["version"] == 1
    assert predict(platform, holdout_rows(project))["version"] == 1

    dataset_ready(platform, "data/broken.csv", id="broken")
    failed = chain_event(platform, "dev.cumulo.run.failed", "broken")
    assert "no column 'target'" in failed["data"]["message"]

    def dead() -> dict[str, Any] | None:
        return next((e for e in dead_letters(dapr_redis_url) if e["id"] == "broken"), None)

    letter = wait_for(dead, timeout=TRAINING_TIMEOUT, what="the dead letter of 'broken'")
    assert letter["cumuloerrortype"] == "PermanentError"  # not retried
    assert "no column 'target'" in letter["cumuloerror"]
    assert (letter["cumuloattempts"], letter["cumulodest"]) == ("1", "train")
    # what a trigger's filter skips is not dead-lettered (Dapr would, for an unmatched rule)
    assert [event["id"] for event in dead_letters(dapr_redis_url)] == ["broken"]


def test_retries_then_dead_letters_and_filters_fan_out(platform_factory, tmp_path, dapr_redis_url):
    project = write_project(tmp_path / "project", {"main.py": FUNCTIONS, "cumulo.yaml": SPEC})
    platform = platform_factory(project, env=dapr_env(dapr_redis_url))
    low = cloudevent("test.record", id="low") | {"priority": "low"}
    high = cloudevent("test.record", id="high") | {"priority": "high"}
    assert platform.publish([cloudevent("test.flaky", id="f1"), low, high]).status == 202

    def dead() -> dict[str, Any] | None:
        return next((e for e in dead_letters(dapr_redis_url) if e["id"] == "f1"), None)

    letter = wait_for(dead, timeout=60, what="the dead letter of 'f1'")
    assert (letter["cumuloerrortype"], letter["cumuloattempts"]) == ("ValueError", "3")
    assert "cannot handle f1" in letter["cumuloerror"]
    assert platform.log("flaky").count("attempt f1") == 3  # Dapr retried twice
    wait_for(lambda: "got high" in platform.log("record"), what="the high-priority event")
    assert "got low" not in platform.log("record")  # re-filtered here
    assert [event["id"] for event in dead_letters(dapr_redis_url)] == ["f1"]
    # pushed triggers are counted where pulled ones are: /api/status and /metrics
    triggers = {t["name"]: t for t in platform.status()["triggers"]}
    assert (triggers["flaky-0"]["retried"], triggers["flaky-0"]["dead_lettered"]) == (2, 1)
    assert triggers["record-0"]["delivered"] == 1
    metrics = platform.request("GET", "/metrics").body.decode()
    assert 'cumulo_events_dead_lettered_total{function="flaky",trigger="flaky-0"} 1.0' in metrics


def sidecars_of(state: Path) -> list[int]:
    """The pids of the daprd processes whose resources live under ``state``."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(state / "dapr") in cmdline.read_text():
                pids.append(int(cmdline.parent.name))
    return pids


def test_sidecars_stop_with_the_platform_even_on_kill_9(platform_factory, tmp_path, dapr_redis_url):
    project = write_project(tmp_path / "project", {"main.py": FUNCTIONS, "cumulo.yaml": SPEC})
    platform = platform_factory(project, env=dapr_env(dapr_redis_url))
    assert len(sidecars_of(platform.state)) == 3  # the publisher, one per trigger
    platform.stop()
    wait_for(lambda: not sidecars_of(platform.state), timeout=30, what="the sidecars to stop")

    platform.start()
    platform.kill()
    wait_for(lambda: not sidecars_of(platform.state), timeout=30, what="the sidecars to exit")
