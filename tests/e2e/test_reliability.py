"""Things get killed; accepted events still get processed."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import urllib.error
from pathlib import Path

import pytest

from tests.e2e.conftest import write_project
from tests.e2e.platform import cloudevent, wait_for

FUNCTIONS = """
import os, time
import functions_framework

def append(line):
    fd = os.open(os.environ["OUT"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, (line + "\\n").encode())
    os.close(fd)

@functions_framework.cloud_event
def slow(event):
    append(f"start {event['id']} {os.getpid()}")
    time.sleep(event.data["sleep"])
    append(f"done {event['id']}")

@functions_framework.cloud_event
def record(event):
    append(event["id"])

@functions_framework.cloud_event
def poison(event):
    append(f"{time.time()}")
    raise ValueError("cannot digest this event")
"""


def project(tmp_path: Path, function: str, trigger_type: str, delivery: str) -> Path:
    out = tmp_path / "out.txt"
    spec = f"""apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: {function}}}
spec:
  handler: main:{function}
  env: {{OUT: "{out}"}}
  scale: {{max: 2, concurrency: 32}}
  triggers:
    - filters: [{{exact: {{type: {trigger_type}}}}}]
      delivery: {delivery}
"""
    return write_project(tmp_path / "project", {"main.py": FUNCTIONS, "cumulo.yaml": spec})


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_worker_killed_mid_event_the_event_is_redelivered(platform_factory, tmp_path):
    out = tmp_path / "out.txt"
    platform = platform_factory(
        project(tmp_path, "slow", "test.slow", "{retries: 5, backoffDelay: 0.1s}")
    )
    platform.publish([cloudevent("test.slow", {"sleep": 1.5}, id="e1")])
    started = wait_for(
        lambda: [ln for ln in lines(out) if ln.startswith("start e1")], what="the function to start"
    )
    pid = int(started[0].split()[2])

    os.kill(pid, signal.SIGKILL)

    wait_for(lambda: "done e1" in lines(out), timeout=30, what="the redelivered event")
    starts = [ln for ln in lines(out) if ln.startswith("start e1")]
    assert len(starts) == 2 and starts[1].split()[2] != str(pid)  # a new worker took it
    assert platform.function("slow")["crashes"] == 1


@pytest.mark.slow
def test_platform_killed_during_a_burst_loses_no_accepted_event(platform_factory, tmp_path):
    out = tmp_path / "out.txt"
    folder = project(tmp_path, "record", "test.burst", "{retries: 10, backoffDelay: 0.1s}")
    platform = platform_factory(folder)
    accepted: list[str] = []
    kill_now = threading.Event()

    def burst() -> None:
        for batch in range(100):
            events = [cloudevent("test.burst", None, id=f"b{batch}-{i}") for i in range(100)]
            try:
                answer = platform.publish(events)
            except (urllib.error.URLError, ConnectionError, OSError):
                return  # the platform is gone
            if answer.status == 202:
                accepted.extend(e["id"] for e in events)
            if len(accepted) >= 3000:
                kill_now.set()

    publisher = threading.Thread(target=burst)
    publisher.start()
    assert kill_now.wait(60), "3000 events were not accepted in time"
    platform.kill()
    publisher.join(30)
    assert 3000 <= len(accepted) < 10_000, "the kill landed mid-burst"

    platform.start()  # the same project and state: `cumulo up` again
    wait_for(
        lambda: set(accepted) <= set(lines(out)),
        timeout=90,
        what="every accepted event to be processed",
    )


def test_poison_event_is_dead_lettered_after_its_retries_with_backoff(platform_factory, tmp_path):
    out = tmp_path / "out.txt"
    platform = platform_factory(
        project(
            tmp_path,
            "poison",
            "test.poison",
            "{retries: 3, backoffPolicy: exponential, backoffDelay: 0.2s, deadLetterTopic: dlq}",
        )
    )
    platform.publish([cloudevent("test.poison", {"n": 1}, id="p1")])

    dead = wait_for(lambda: platform.events("dlq"), timeout=30, what="the dead-lettered event")

    attempts = [float(t) for t in lines(out)]
    assert len(attempts) == 4  # the first try and 3 retries
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    for gap, expected in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert expected - 0.02 <= gap <= expected + 0.25, gaps
    event = dead[0]["event"]
    assert event["id"] == "p1" and event["data"] == {"n": 1}
    assert event["cumuloattempts"] == "4"
    assert event["cumuloerrortype"] == "ValueError"
    assert "cannot digest this event" in event["cumuloerror"]
    assert event["cumulotrigger"] == "poison-0"


def test_a_killed_template_is_restarted(platform_factory, tmp_path):
    out = tmp_path / "out.txt"
    platform = platform_factory(project(tmp_path, "record", "test.record", "{retries: 5}"))
    template = platform.function("record")["template"]

    os.kill(template, signal.SIGKILL)

    wait_for(
        lambda: platform.function("record")["template"] not in (None, template),
        timeout=15,
        what="a new template",
    )
    platform.publish([cloudevent("test.record", None, id="after-restart")])
    wait_for(lambda: "after-restart" in lines(out), timeout=15, what="the event")
