"""POST /events: what is accepted, and clear problems for what is not."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import write_project
from tests.e2e.platform import cloudevent

PROJECT = {
    "main.py": "def noop(request):\n    return 'ok'\n",
    "cumulo.yaml": "apiVersion: cumulo.dev/v1alpha1\nkind: Function\nmetadata: {name: noop}\n"
    "spec: {handler: 'main:noop'}\n",
}


def problem_of(answer):
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()


def test_binary_structured_and_batch_modes_are_accepted(platform_factory, tmp_path: Path):
    platform = platform_factory(write_project(tmp_path / "p", PROJECT))
    binary = platform.request(
        "POST",
        "/events",
        b'{"x": 1}',
        {
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": "b-1",
            "ce-source": "/tests",
            "ce-type": "test.binary",
        },
    )
    structured = platform.request(
        "POST",
        "/events",
        json.dumps(cloudevent("test.structured", {"x": 2}, id="s-1")).encode(),
        {"Content-Type": "application/cloudevents+json"},
    )
    batch = platform.publish([cloudevent("test.batch", i, id=f"batch-{i}") for i in range(3)])

    assert (binary.status, structured.status, batch.status) == (202, 202, 202)
    stored = {m["event"]["id"]: m["event"] for m in platform.events("default")}
    assert stored["b-1"]["data"] == {"x": 1}
    assert stored["s-1"]["type"] == "test.structured"
    assert {f"batch-{i}" for i in range(3)} <= stored.keys()


def test_malformed_events_get_a_problem_that_says_what_is_wrong(platform_factory, tmp_path):
    platform = platform_factory(write_project(tmp_path / "p", PROJECT))

    missing = platform.request(
        "POST",
        "/events",
        b'{"specversion": "1.0", "source": "/x"}',
        {"Content-Type": "application/cloudevents+json"},
    )
    assert missing.status == 400
    detail = problem_of(missing)["detail"]
    assert "'id'" in detail and "'type'" in detail

    not_json = platform.request(
        "POST", "/events", b"{nope", {"Content-Type": "application/cloudevents+json"}
    )
    assert not_json.status == 400
    assert "JSON" in problem_of(not_json)["detail"]

    xml = platform.request(
        "POST", "/events", b"<event/>", {"Content-Type": "application/cloudevents+xml"}
    )
    assert xml.status == 415
    assert problem_of(xml)["status"] == 415

    assert platform.events("default") == []  # nothing half-accepted


def test_oversized_body_is_refused_with_413(platform_factory, tmp_path):
    platform = platform_factory(
        write_project(tmp_path / "p", PROJECT), env={"CUMULO_MAX_BODY_BYTES": "1024"}
    )
    big = cloudevent("test.big", "x" * 2000, id="big-1")
    answer = platform.publish([big])
    assert answer.status == 413
    assert "1024" in problem_of(answer)["detail"]


def test_a_bus_that_cannot_write_gives_503_and_loses_nothing(platform_factory, tmp_path):
    import sqlite3

    folder = write_project(tmp_path / "p", {
        **PROJECT,
        "bus.yaml": "apiVersion: cumulo.dev/v1alpha1\nkind: EventBus\nmetadata: {name: default}\n"
                    "spec: {url: 'sqlite:///events.db?busy_timeout=0.2'}\n",
    })
    platform = platform_factory(folder)
    assert platform.publish([cloudevent("test.before", None, id="before")]).status == 202

    blocker = sqlite3.connect(folder / "events.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    try:
        refused = platform.publish([cloudevent("test.during", None, id="during")])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    assert refused.status == 503
    assert refused.headers["retry-after"] == "1"
    assert "events.db" in problem_of(refused)["detail"]
    assert platform.publish([cloudevent("test.after", None, id="after")]).status == 202
    ids = [m["event"]["id"] for m in platform.events("default")]
    assert ids == ["before", "after"]
