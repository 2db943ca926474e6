"""POST /events: what is accepted, and clear problems for what is not."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

from cumulo.events.bus import BusSettings, bus_from_url
from tests.e2e.conftest import write_project
from tests.e2e.platform import cloudevent, wait_for

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

    folder = write_project(
        tmp_path / "p",
        {
            **PROJECT,
            "bus.yaml": "apiVersion: cumulo.dev/v1alpha1\nkind: EventBus\nmetadata: {name: default}\n"
            "spec: {url: 'sqlite:///events.db?busy_timeout=0.2'}\n",
        },
    )
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


# --- issue 11: every event validated at the edge, before the 202 --------------------------


def structured(envelope: dict) -> tuple[bytes, dict[str, str]]:
    return json.dumps(envelope).encode(), {"Content-Type": "application/cloudevents+json"}


def batch(envelopes: list[dict]) -> tuple[bytes, dict[str, str]]:
    return json.dumps(envelopes).encode(), {"Content-Type": "application/cloudevents-batch+json"}


def test_a_poison_datacontenttype_is_refused_before_the_202(platform_factory, tmp_path):
    platform = platform_factory(write_project(tmp_path / "p", PROJECT))
    for value in (5, "text/plain\nx: 1"):
        poison = {**cloudevent("test.poison", None, id="poison"), "datacontenttype": value}
        good = cloudevent("test.good", {"n": 1}, id="good")
        for body, headers in (structured(poison), batch([good, poison])):
            answer = platform.request("POST", "/events", body, headers)
            assert answer.status == 400, answer.body
            found = problem_of(answer)
            assert any("'datacontenttype'" in p for p in found["problems"]), found
    assert platform.events("default") == []  # nothing half-accepted, not even the good one


def test_attributes_the_spec_forbids_are_400_in_every_mode(platform_factory, tmp_path):
    platform = platform_factory(write_project(tmp_path / "p", PROJECT))
    huge = {**cloudevent("test.huge", None, id="huge"), "source": 11745545518699950080}
    wide = {**cloudevent("test.wide", None, id="wide"), "priority": 2**40}
    for envelope, named in ((huge, "'source'"), (wide, "'priority'")):
        for body, headers in (structured(envelope), batch([envelope])):
            answer = platform.request("POST", "/events", body, headers)
            assert answer.status == 400, answer.body
            assert named in problem_of(answer)["detail"]
    binary = platform.request(
        "POST",
        "/events",
        b"",
        {"ce-specversion": "1.0", "ce-id": "b", "ce-source": "/t", "ce-type": "t",
         "ce-note": "line%0Abreak", "ce-time": "yesterday"},
    )  # fmt: skip
    assert binary.status == 400
    detail = problem_of(binary)["detail"]
    assert "'note'" in detail and "'time'" in detail
    assert platform.events("default") == []


def test_deeply_nested_data_is_a_400_not_a_500(platform_factory, tmp_path):
    platform = platform_factory(write_project(tmp_path / "p", PROJECT))
    for depth in (65, 255, 1023):
        data = "[" * depth + "]" * depth
        envelope = json.dumps(cloudevent("test.deep", None, id=f"deep-{depth}"))[:-1]
        body = f'{envelope}, "data": {data}}}'.encode()
        answer = platform.request(
            "POST", "/events", body, {"Content-Type": "application/cloudevents+json"}
        )
        assert answer.status == 400, (depth, answer.status, answer.body[:200])
        assert problem_of(answer)["status"] == 400
    at_limit = cloudevent("test.deep", None, id="deep-64")
    at_limit["data"] = json.loads("[" * 64 + "]" * 64)
    assert platform.publish([at_limit]).status == 202
    assert [m["event"]["id"] for m in platform.events("default")] == ["deep-64"]


LEGACY = {
    "main.py": "import functions_framework, os\n\n"
    "@functions_framework.cloud_event\n"
    "def record(event):\n"
    "    with open(os.environ['OUT'], 'a') as out:\n"
    "        out.write(event['id'] + '\\n')\n",
    "bus.yaml": "apiVersion: cumulo.dev/v1alpha1\nkind: EventBus\nmetadata: {name: default}\n"
    "spec: {url: 'sqlite:///events.db'}\n",
}


def legacy_project(folder: Path, out: Path) -> Path:
    spec = (
        "apiVersion: cumulo.dev/v1alpha1\nkind: Function\nmetadata: {name: record}\n"
        f"spec:\n  handler: main:record\n  env: {{OUT: '{out}'}}\n  triggers:\n"
        "    - filters: [{prefix: {type: test.}}]\n"
        "      delivery: {retries: 2, backoffDelay: 0.1s, deadLetterTopic: dlq}\n"
    )
    return write_project(folder, {**LEGACY, "cumulo.yaml": spec})


def store_as_an_older_cumulo_did(database: Path, envelope: dict) -> None:
    """A row written by a Cumulo from before the rules: the gateway would refuse it now."""
    with sqlite3.connect(database, timeout=10) as conn:
        conn.execute(
            "INSERT INTO events (topic, source, id, type, published_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ("default", envelope["source"], envelope["id"], envelope["type"], time.time(),
             json.dumps(envelope).encode()),
        )  # fmt: skip
    conn.close()


def test_an_accepted_event_that_cannot_be_sent_is_dead_lettered_not_looped(
    platform_factory, tmp_path
):
    out = tmp_path / "out.txt"
    folder = legacy_project(tmp_path / "p", out)
    platform = platform_factory(folder)
    assert platform.publish([cloudevent("test.first", None, id="first")]).status == 202
    wait_for(lambda: out.exists() and "first" in out.read_text(), what="the first event")
    for n, value in enumerate((5, "text/plain\nx: 1")):
        poison = {**cloudevent("test.legacy", None, id=f"legacy-{n}"), "datacontenttype": value}
        store_as_an_older_cumulo_did(folder / "events.db", {**poison, "data_base64": "eA=="})
    assert platform.publish([cloudevent("test.after", None, id="after")]).status == 202

    dead = wait_for(lambda: len(platform.events("dlq")) == 2 and platform.events("dlq"),
                    timeout=30, what="both legacy events dead-lettered")  # fmt: skip
    for message in dead:
        event = message["event"]
        assert event["cumuloerrortype"] == "EncodingError"
        assert "datacontenttype" in event["cumuloerror"]
        assert event["cumuloattempts"] == "3"  # the first try and 2 retries, then no more
    [trigger] = platform.status()["triggers"]
    assert (trigger["retried"], trigger["dead_lettered"], trigger["inflight"]) == (4, 2, 0)
    wait_for(lambda: "after" in out.read_text(), what="the event after them")
    assert "legacy" not in out.read_text()
    platform.stop()

    bus = bus_from_url(f"sqlite:///{folder / 'events.db'}", BusSettings(retention=0.0))

    async def trim() -> tuple[list[str], list[str]]:
        await bus.start()
        try:
            before = [m.event.id for m in await bus.read("default")]
            await bus.trim()
            return before, [m.event.id for m in await bus.read("default")]
        finally:
            await bus.close()

    before, after = asyncio.run(trim())
    assert before == ["first", "legacy-0", "legacy-1", "after"]
    assert after == []  # nothing holds retention back any more
