"""Save and see: edits to a project's code and YAML apply while `cumulo up` runs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from tests.e2e.conftest import write_project
from tests.e2e.platform import RunningPlatform, cloudevent, wait_for

BOUND = 5.0  # seconds from a save to the new code answering: the loose bound

SPEC = """\
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: hello}
spec:
  handler: main:hello
  scale: {min: 0, max: 2, concurrency: 8}
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: record}
spec:
  handler: main:record
  env: {OUT: OUTFILE}
  triggers: [{filters: [{exact: {type: test.record}}]}]
"""

CODE = """\
import os
import time

import functions_framework

VERSION = "{version}"


@functions_framework.http
def hello(request):
    time.sleep(float(request.args.get("sleep", 0)))
    return VERSION


@functions_framework.cloud_event
def record(event):
    with open(os.environ["OUT"], "a") as out:
        out.write(f"{{event['id']}} {{VERSION}}\\n")
"""


def project(tmp_path: Path, version: str = "v1") -> Path:
    out = tmp_path / "records.txt"
    return write_project(
        tmp_path / "project",
        {"cumulo.yaml": SPEC.replace("OUTFILE", str(out)), "main.py": code(version)},
    )


def code(version: str) -> str:
    return CODE.format(version=version)


def answer_of(platform: RunningPlatform, path: str = "/fn/hello") -> str:
    return platform.request("GET", path).body.decode()


def save_and_time(platform: RunningPlatform, file: Path, text: str, new_answer: str) -> float:
    """Save ``text`` to ``file``; seconds until ``/fn/hello`` answers ``new_answer``."""
    saved = time.monotonic()
    file.write_text(text)
    wait_for(lambda: answer_of(platform) == new_answer, timeout=BOUND, what=new_answer)
    return time.monotonic() - saved


def records(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "records.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split(" ", 1) for line in lines)


def test_a_saved_change_to_the_code_answers_the_next_http_request(platform_factory, tmp_path):
    root = project(tmp_path)
    platform = platform_factory(root)
    assert answer_of(platform) == "v1"

    assert save_and_time(platform, root / "main.py", code("v2"), "v2") < BOUND
    status = platform.status()["reload"]
    assert status["ok"] and "hello runs its new code" in status["summary"]


def test_events_after_a_save_run_the_new_code(platform_factory, tmp_path):
    root = project(tmp_path)
    platform = platform_factory(root)
    platform.publish([cloudevent("test.record", id="before")])
    wait_for(lambda: records(tmp_path).get("before") == "v1", what="the first event, on v1")

    (root / "main.py").write_text(code("v2"))
    wait_for(lambda: (platform.status()["reload"] or {}).get("ok"), timeout=BOUND, what="reload")
    platform.publish([cloudevent("test.record", id="after")])
    wait_for(lambda: records(tmp_path).get("after") == "v2", what="the next event, on v2")


def test_code_that_no_longer_imports_keeps_the_old_code_and_says_where(platform_factory, tmp_path):
    root = project(tmp_path)
    platform = platform_factory(root)
    assert answer_of(platform) == "v1"

    (root / "main.py").write_text(code("v1") + "\ndef broken(:\n")
    wait_for(lambda: platform.status()["reload"], timeout=BOUND, what="the reload's report")
    report = platform.status()["reload"]
    assert not report["ok"]
    assert any("main.py:" in error and "SyntaxError" in error for error in report["errors"])
    assert "main.py:" in platform.output() and "keeps serving" in platform.output()
    assert answer_of(platform) == "v1"  # still served, by the old code

    assert save_and_time(platform, root / "main.py", code("v3"), "v3") < BOUND


def test_a_request_in_flight_during_a_reload_finishes_on_the_old_code(platform_factory, tmp_path):
    root = project(tmp_path)
    platform = platform_factory(root)
    assert answer_of(platform) == "v1"
    slow: dict[str, str] = {}
    thread = threading.Thread(
        target=lambda: slow.update(a=answer_of(platform, "/fn/hello?sleep=2"))
    )
    thread.start()
    time.sleep(0.3)  # the slow request is in its handler

    save_and_time(platform, root / "main.py", code("v2"), "v2")
    thread.join(10)
    assert slow == {"a": "v1"}


def test_a_function_added_to_the_yaml_is_served_and_a_filter_change_delivers(
    platform_factory, tmp_path
):
    root = project(tmp_path)
    platform = platform_factory(root)
    spec = (root / "cumulo.yaml").read_text()
    added = """
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: hi-again}
spec:
  handler: main:hello
"""
    (root / "cumulo.yaml").write_text(
        spec.replace("type: test.record", "type: test.changed") + added
    )
    wait_for(lambda: platform.status()["reload"], timeout=BOUND, what="the reload's report")
    assert answer_of(platform, "/fn/hi-again") == "v1"
    summary = platform.status()["reload"]["summary"]
    assert "function hi-again added" in summary and "restarted" in summary

    platform.publish([cloudevent("test.changed", id="changed")])
    wait_for(lambda: records(tmp_path).get("changed") == "v1", what="the changed filter's event")


def test_a_spec_that_no_longer_loads_changes_nothing(platform_factory, tmp_path):
    root = project(tmp_path)
    platform = platform_factory(root)
    (root / "cumulo.yaml").write_text(SPEC.replace("handler: main:hello", "handler: 7"))
    wait_for(lambda: platform.status()["reload"], timeout=BOUND, what="the reload's report")
    report = platform.status()["reload"]
    assert not report["ok"] and "cumulo.yaml" in json.dumps(report["errors"])
    assert answer_of(platform) == "v1"


def test_no_reload_leaves_the_running_code_alone(tmp_path):
    root = project(tmp_path)
    platform = RunningPlatform(root, tmp_path / "state", args=["--no-reload"]).start()
    try:
        assert answer_of(platform) == "v1"
        (root / "main.py").write_text(code("v2"))
        time.sleep(1.0)  # nothing to wait for: nothing may happen
        assert answer_of(platform) == "v1"
        assert platform.status()["reload"] is None
    finally:
        platform.stop()
