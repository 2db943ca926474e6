"""Faults stay with the event that caused them (issue 11, holes 5 and 9).

A handler that hangs gets its worker recycled, so the events after it run on a
fresh replica; a handler that crashes its worker costs the events that shared
the worker nothing: they are re-delivered alone, and only the crasher is
dead-lettered.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.e2e.conftest import write_project
from tests.e2e.platform import RunningPlatform, cloudevent, wait_for

FUNCTIONS = """
import os, subprocess, time
import functions_framework

def append(line):
    fd = os.open(os.environ["OUT"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, (line + "\\n").encode())
    os.close(fd)

@functions_framework.cloud_event
def fragile(event):
    append(f"start {event['id']} {os.getpid()}")
    if event.data.get("hang"):
        time.sleep(3600)
    if event.data.get("crash"):
        os._exit(3)
    time.sleep(event.data.get("sleep", 0))
    append(f"done {event['id']}")

@functions_framework.http
def slowpoke(request):
    if request.args.get("hang"):
        time.sleep(3600)
    return {"pid": os.getpid()}

@functions_framework.http
def spawner(request):
    child = subprocess.Popen(["sleep", "3600"])
    return {"pid": os.getpid(), "child": child.pid}
"""

TIMEOUT = 2.0
GRACE = 2.0
MARGIN = 10.0


def project(tmp_path: Path, scale: str, delivery: str) -> Path:
    spec = f"""apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: fragile}}
spec:
  handler: main:fragile
  env: {{OUT: "{tmp_path / "out.txt"}"}}
  timeout: {TIMEOUT:g}s
  scale: {scale}
  triggers:
    - filters: [{{exact: {{type: test.fault}}}}]
      delivery: {delivery}
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: slowpoke}}
spec:
  handler: main:slowpoke
  timeout: {TIMEOUT:g}s
  scale: {scale}
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: spawner}}
spec:
  handler: main:spawner
  scale: {{max: 1, idleTimeout: 1s}}
"""
    return write_project(tmp_path / "project", {"main.py": FUNCTIONS, "cumulo.yaml": spec})


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def done(out: Path) -> set[str]:
    return {line.split()[1] for line in lines(out) if line.startswith("done ")}


def pids_of(out: Path, event_id: str) -> list[int]:
    return [int(ln.split()[2]) for ln in lines(out) if ln.startswith(f"start {event_id} ")]


def dead_letters(platform: RunningPlatform) -> list[dict]:
    return [m["event"] for m in platform.events("dlq")]


def is_running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for init to reap does not)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def test_a_hung_handler_is_recycled_and_the_events_after_it_run(platform_factory, tmp_path):
    out = tmp_path / "out.txt"
    scale, delivery = (
        "{max: 1, concurrency: 4}",
        "{retries: 3, backoffDelay: 0.2s, deadLetterTopic: dlq}",
    )
    env = {"CUMULO_WORKER_GRACE_SECONDS": f"{GRACE:g}"}
    platform = platform_factory(project(tmp_path, scale, delivery), env=env)
    platform.publish([cloudevent("test.fault", {"hang": True}, id="hung")])

    # Four attempts, each past its timeout: as many as the worker has threads.
    [dead] = wait_for(lambda: dead_letters(platform), timeout=60, what="the hung event's letter")
    assert dead["id"] == "hung"
    assert dead["cumuloerrortype"] == "Timeout"
    assert dead["cumuloattempts"] == "4"

    published = time.monotonic()
    normal = [f"n{i}" for i in range(10)]
    platform.publish([cloudevent("test.fault", {"n": i}, id=name) for i, name in enumerate(normal)])
    wait_for(lambda: done(out) >= set(normal), TIMEOUT + GRACE + MARGIN, "the 10 normal events")
    assert time.monotonic() - published <= TIMEOUT + GRACE + MARGIN

    hung_pids = pids_of(out, "hung")
    assert len(hung_pids) == 4
    wait_for(
        lambda: not any(map(is_running, hung_pids)), GRACE + MARGIN, "the wedged workers to go"
    )
    assert [e["id"] for e in dead_letters(platform)] == ["hung"]
    assert platform.function("fragile")["crashes"] == 0  # recycled, not crashed


def test_a_timed_out_http_request_recycles_its_worker(platform_factory, tmp_path):
    scale, delivery = "{max: 1, concurrency: 4}", "{retries: 0}"
    env = {"CUMULO_WORKER_GRACE_SECONDS": f"{GRACE:g}"}
    platform = platform_factory(project(tmp_path, scale, delivery), env=env)
    first = platform.request("GET", "/fn/slowpoke").json()["pid"]

    answer = platform.request("GET", "/fn/slowpoke?hang=1")

    assert answer.status == 504
    assert answer.json()["type"].endswith("/function-timeout")
    wait_for(lambda: not is_running(first), GRACE + MARGIN, "the wedged worker to go")
    assert platform.request("GET", "/fn/slowpoke").json()["pid"] != first


def test_a_crash_among_healthy_events_costs_them_nothing(platform_factory, tmp_path):
    out = tmp_path / "out.txt"
    scale, delivery = (
        "{max: 1, concurrency: 8}",
        "{retries: 1, backoffDelay: 0.1s, deadLetterTopic: dlq}",
    )
    platform = platform_factory(project(tmp_path, scale, delivery))
    healthy = [f"ok{i}" for i in range(30)]
    events = [cloudevent("test.fault", {"sleep": 0.3}, id=name) for name in healthy[:15]]
    events.append(cloudevent("test.fault", {"crash": True}, id="crasher"))
    events += [cloudevent("test.fault", {"sleep": 0.3}, id=name) for name in healthy[15:]]
    platform.publish(events)

    [dead] = wait_for(lambda: dead_letters(platform), timeout=60, what="the crasher's letter")
    wait_for(lambda: done(out) >= set(healthy), timeout=60, what="the 30 healthy events")

    assert dead["id"] == "crasher"
    assert dead["cumuloerrortype"] == "WorkerCrashed"
    assert "exited with code 3 while handling this event" in dead["cumuloerror"]
    assert dead["cumuloattempts"] == "2"
    time.sleep(1.0)  # nothing else is on its way to the dead-letter topic
    assert [e["id"] for e in dead_letters(platform)] == ["crasher"]
    fragile = platform.function("fragile")
    assert fragile["crashes"] >= 2  # at least once among others, then once alone, per attempt


def test_what_a_handler_started_goes_with_its_worker(platform_factory, tmp_path):
    env = {"CUMULO_WORKER_GRACE_SECONDS": f"{GRACE:g}"}
    platform = platform_factory(project(tmp_path, "{max: 1}", "{retries: 0}"), env=env)
    first = platform.request("GET", "/fn/spawner").json()

    # Scaled down after a second idle: the worker and the process it started are gone.
    wait_for(lambda: not platform.function("spawner")["replicas"], MARGIN, "the scale-down")
    wait_for(lambda: not is_running(first["pid"]) and not is_running(first["child"]), MARGIN,
             "the worker and its subprocess to go")  # fmt: skip

    # Stopping `cumulo up` leaves nothing behind either.
    second = platform.request("GET", "/fn/spawner").json()
    assert platform.stop() == 0
    assert not is_running(second["pid"]) and not is_running(second["child"])
