"""Pools scale from zero and back, jobs run to completion, cron ticks, Retry(delay) holds."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from tests.e2e.conftest import write_project
from tests.e2e.platform import cloudevent, wait_for

FUNCTIONS = """
import os, time
import functions_framework
import cumulo

def append(line):
    fd = os.open(os.environ["OUT"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, (line + "\\n").encode())
    os.close(fd)

@functions_framework.http
def echo(request):
    return {"pid": os.getpid()}

@functions_framework.cloud_event
def train(event):
    print(f"training on {event.data['uri']}", flush=True)
    time.sleep(event.data.get("sleep", 0))
    append(f"{event['id']} {time.time()}")
    return {"type": "test.trained", "data": {"uri": event.data["uri"]}}

@functions_framework.cloud_event
def tick(event):
    append(event["id"])

@functions_framework.cloud_event
def picky(event):
    append(f"{time.time()}")
    if len(open(os.environ["OUT"]).read().splitlines()) < 2:
        raise cumulo.Retry("not yet", delay=0.5)
"""


def spec(out: Path, body: str) -> str:
    return body.replace("OUT_PATH", str(out))


def project(tmp_path: Path, yaml: str) -> Path:
    return write_project(
        tmp_path / "project",
        {"main.py": FUNCTIONS, "cumulo.yaml": spec(tmp_path / "out.txt", yaml)},
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_pool_scales_from_zero_and_back_to_zero(platform_factory, tmp_path):
    platform = platform_factory(
        project(
            tmp_path,
            """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: echo}
spec: {handler: "main:echo", env: {OUT: OUT_PATH}, scale: {idleTimeout: 1s}}
""",
        )
    )
    assert platform.function("echo")["replicas"] == []

    assert platform.request("GET", "/fn/echo").status == 200
    assert len(platform.function("echo")["replicas"]) == 1
    assert platform.function("echo")["cold_starts"] == 1

    wait_for(
        lambda: platform.function("echo")["replicas"] == [],
        timeout=10,
        what="scale to zero after the idle timeout",
    )
    assert platform.request("GET", "/fn/echo").status == 200  # and from zero again
    assert platform.function("echo")["cold_starts"] == 2


def test_job_runs_one_process_per_event_with_logs_and_a_limit(platform_factory, tmp_path):
    out = tmp_path / "out.txt"
    platform = platform_factory(
        project(
            tmp_path,
            """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: train}
spec:
  handler: main:train
  mode: job
  env: {OUT: OUT_PATH}
  scale: {max: 1}
  triggers: [{filters: [{exact: {type: test.dataset.ready}}]}]
""",
        )
    )
    platform.publish(
        [
            cloudevent("test.dataset.ready", {"uri": f"data/{i}.csv", "sleep": 0.3}, id=f"d{i}")
            for i in range(3)
        ]
    )

    wait_for(lambda: len(lines(out)) == 3, timeout=30, what="three runs")
    finished = sorted(float(line.split()[1]) for line in lines(out))
    assert all(b - a >= 0.25 for a, b in itertools.pairwise(finished))  # max: 1

    trained = wait_for(
        lambda: [m for m in platform.events("default") if m["event"]["type"] == "test.trained"],
        what="replies",
    )
    assert {m["event"]["data"]["uri"] for m in trained} >= {"data/0.csv"}
    runs_dir = platform.state / "runs"
    logs = [p.read_text() for p in runs_dir.glob("*/log.txt")]
    assert sorted(logs) == [f"training on data/{i}.csv\n" for i in range(3)]


def test_job_past_its_timeout_is_killed_and_recorded(platform_factory, tmp_path):
    from cumulo.runtimes.local.runs import RunStore

    platform = platform_factory(
        project(
            tmp_path,
            """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: train}
spec:
  handler: main:train
  mode: job
  timeout: 0.5s
  env: {OUT: OUT_PATH}
  triggers: [{filters: [{exact: {type: test.dataset.ready}}], delivery: {retries: 0}}]
""",
        )
    )
    platform.publish([cloudevent("test.dataset.ready", {"uri": "big.csv", "sleep": 5}, id="t1")])

    wait_for(lambda: platform.events("dead-letter"), timeout=20, what="the dead letter")
    [run] = RunStore(platform.state / "runs.db").list("train")
    assert run.status == "timed-out"
    assert run.duration is not None and run.duration < 3
    assert "longer than 0.5s" in (run.error or "")
    [announced] = [
        e["event"]
        for e in platform.events("default")
        if e["event"]["type"] == "dev.cumulo.run.failed"
    ]
    assert announced["subject"] == "train"
    assert announced["data"]["run"] == run.id
    assert announced["data"]["errorType"] == "Timeout"
    assert announced["data"]["logTail"] == "training on big.csv"
    assert announced["data"]["lineage"] == {
        "datasetUri": "big.csv",
        "runId": run.id,
        "triggerEvent": "t1",
    }


def test_cron_fires_once_per_tick(platform_factory, tmp_path):
    out = tmp_path / "out.txt"
    platform = platform_factory(
        project(
            tmp_path,
            """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: tick}
spec: {handler: "main:tick", env: {OUT: OUT_PATH}}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: every-second}
spec:
  cron: {schedule: "* * * * * *", missed: skip}
  sink: {function: tick}
""",
        )
    )
    wait_for(lambda: len(lines(out)) >= 3, timeout=15, what="three ticks")
    ticks = lines(out)
    assert len(ticks) == len(set(ticks))
    assert all(t.startswith("every-second@") for t in ticks)
    assert platform.status()["sources"][0]["fired"] >= 3


def test_retry_with_a_delay_is_honoured(platform_factory, tmp_path):
    out = tmp_path / "out.txt"
    platform_factory(
        project(
            tmp_path,
            """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: picky}
spec:
  handler: main:picky
  env: {OUT: OUT_PATH}
  triggers: [{filters: [{exact: {type: test.picky}}], delivery: {backoffDelay: 5s}}]
""",
        )
    ).publish([cloudevent("test.picky", None, id="r1")])

    wait_for(lambda: len(lines(out)) == 2, timeout=10, what="the retry")
    first, second = (float(t) for t in lines(out))
    assert 0.45 <= second - first < 2.0  # the function's 0.5 s, not the policy's 5 s
    time.sleep(0.5)
    assert len(lines(out)) == 2
