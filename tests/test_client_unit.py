"""`cumulo.client`: finding the platform, publishing and reading events, with and without it.

Offline, the client writes to and reads from the project's own SQLite bus. Online,
it talks HTTP to the real :class:`~cumulo.runtimes.local.gateway.Gateway`, served
by uvicorn on a loopback port in a thread, over an in-memory bus
(:class:`cumulo.testing.MemoryBus`); its ``gateway.json`` is written as
``cumulo up`` writes it. The CLI commands that only make sense online (status,
replay, invoke) are checked against the same gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from cumulo.cli import app
from cumulo.client import CLI_SOURCE, Client, GatewayError, HttpAnswer, publish
from cumulo.config import Settings
from cumulo.errors import PlatformNotRunningError
from cumulo.events import tracing
from cumulo.events.bus.base import Bus
from cumulo.events.event import Event, new_event
from cumulo.runtimes.local.gateway import Gateway, GatewayParts
from cumulo.spec.models import Metadata, Trigger, TriggerSpec
from cumulo.testing import MemoryBus

PROJECT_YAML = """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: hello}
spec: {handler: 'main:hello'}
"""
STATUS = {
    "functions": [
        {"name": "hello", "mode": "service", "replicas": [1, 2], "invocations": 5,
         "errors": 1, "cold_starts": 2}
    ],
    "triggers": [
        {"name": "hello-0", "function": "hello", "delivered": 9, "retried": 3,
         "dead_lettered": 1, "inflight": 0}
    ],
    "sources": [
        {"name": "hook", "kind": "webhook", "published": 4, "duplicates": 1, "ignored": 0,
         "rejected": {"bad-signature": 2}}
    ],
}  # fmt: skip


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-function project whose state folder is its own ``.cumulo``."""
    for name in ("CUMULO_STATE_DIR", "CUMULO_API_TOKEN", "CUMULO_PUBLISH_TOKEN", "CUMULO_BUS_URL"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "proj"
    root.mkdir()
    (root / "cumulo.yaml").write_text(PROJECT_YAML)
    (root / "main.py").write_text("def hello(request):\n    return 'hi'\n")
    return root


def write_gateway_json(state: Path, info: dict[str, Any]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "gateway.json").write_text(json.dumps(info))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    """A gateway running in a thread: its URL and the bus behind it."""

    url: str
    bus: MemoryBus
    server: uvicorn.Server
    thread: threading.Thread


async def _ingest(bus: Bus, name: str, topic: str, events: Sequence[Event]) -> list[int]:
    return await bus.publish(topic, list(events))


async def _status() -> dict[str, Any]:
    return {"url": "http://gateway", "pid": os.getpid(), **STATUS}


async def _metrics() -> bytes:
    return b""


def serve_gateway(settings: Settings, bus: MemoryBus) -> Served:
    trigger = Trigger(metadata=Metadata(name="hello-0"), spec=TriggerSpec(function="hello"))
    parts = GatewayParts(
        settings=settings,
        buses={"default": bus},
        hosts={},
        triggers={"hello-0": trigger},
        ingest=_ingest,
        status=_status,
        metrics=_metrics,
        webhooks=lambda name: None,
    )
    config = uvicorn.Config(
        Gateway(parts).app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
        ws="none", access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the gateway did not start within 10s")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return Served(f"http://127.0.0.1:{port}", bus, server, thread)


def gateway_for(project: Path, token: str | None) -> Iterator[Served]:
    served = serve_gateway(Settings(api_token=token), MemoryBus())
    write_gateway_json(project / ".cumulo", {"pid": os.getpid(), "url": served.url})
    try:
        yield served
    finally:
        served.server.should_exit = True
        served.thread.join(10)


@pytest.fixture
def gateway(project: Path) -> Iterator[Served]:
    """A running gateway for ``project``, without an API token."""
    yield from gateway_for(project, None)


@pytest.fixture
def guarded(project: Path) -> Iterator[Served]:
    """A running gateway for ``project`` that needs the API token ``s3cret``."""
    yield from gateway_for(project, "s3cret")


def stored(bus: MemoryBus, topic: str = "default") -> list[Event]:
    return [m.event for m in asyncio.run(bus.read(topic, limit=100))]


# --- finding the platform --------------------------------------------------------------


def test_no_gateway_file_means_no_platform(project: Path) -> None:
    """Without ``gateway.json`` the client knows nothing runs, and says how to start it."""
    client = Client(project)

    assert client.gateway_url() is None
    with pytest.raises(PlatformNotRunningError, match="start it with `cumulo up`"):
        client.require_gateway()


@pytest.mark.parametrize(
    "content",
    ["not json", json.dumps({"url": "http://x"}), ""],
)
def test_a_broken_gateway_file_means_no_platform(project: Path, content: str) -> None:
    """Unreadable JSON, an empty file or no pid: treated as not running."""
    (project / ".cumulo").mkdir()
    (project / ".cumulo" / "gateway.json").write_text(content)

    assert Client(project).gateway_url() is None


@pytest.mark.parametrize(
    "content", [json.dumps({"pid": "123", "url": "http://x"}), json.dumps([1, 2]), "null"]
)
def test_a_gateway_file_of_the_wrong_shape_means_no_platform(project: Path, content: str) -> None:
    """A hand-edited or truncated-then-rewritten file must read as "not running", not crash."""
    (project / ".cumulo").mkdir()
    (project / ".cumulo" / "gateway.json").write_text(content)

    assert Client(project).gateway_url() is None


def test_a_gateway_file_left_by_a_dead_process_means_no_platform(project: Path) -> None:
    """A pid that no longer runs (here: a child that already exited) is stale."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    pid = child.pid
    write_gateway_json(project / ".cumulo", {"pid": pid, "url": "http://127.0.0.1:1"})

    assert Client(project).gateway_url() is None


def test_a_live_pid_that_does_not_answer_is_reported(project: Path) -> None:
    """The process lives but nothing listens: PlatformNotRunningError, not a raw URLError."""
    url = f"http://127.0.0.1:{closed_port()}"
    write_gateway_json(project / ".cumulo", {"pid": os.getpid(), "url": url})
    client = Client(project)

    assert client.gateway_url() == url
    with pytest.raises(PlatformNotRunningError, match="the gateway did not answer"):
        client.status()


def test_the_state_folder_setting_is_where_the_client_looks(project: Path, tmp_path: Path) -> None:
    """``Settings.state_dir`` replaces ``PROJECT/.cumulo``."""
    elsewhere = tmp_path / "elsewhere"
    write_gateway_json(elsewhere, {"pid": os.getpid(), "url": "http://127.0.0.1:9"})

    assert Client(project).gateway_url() is None
    assert Client(project, Settings(state_dir=elsewhere)).gateway_url() == "http://127.0.0.1:9"


# --- offline: straight to the bus ------------------------------------------------------


def test_publish_offline_is_durable_and_read_back_in_order(project: Path) -> None:
    """Published events wait on the project's SQLite bus, in publish order."""
    client = Client(project)
    first = client.publish("test.one", {"n": 1})
    second = client.publish("test.two", {"n": 2}, subject="s", topic="default")

    messages = Client(project).events()

    assert [m["event"]["id"] for m in messages] == [first.id, second.id]
    assert messages[1]["event"]["subject"] == "s"
    assert (project / ".cumulo" / "bus.db").exists()


def test_published_events_start_a_trace_and_carry_the_cli_source(project: Path) -> None:
    """Each new event gets a valid traceparent; the default source names the CLI."""
    event = Client(project).publish("test.traced")

    assert event.source == CLI_SOURCE
    assert tracing.context_of(event.attributes) is not None


def test_an_event_with_a_trace_keeps_it(project: Path) -> None:
    """publish_events leaves an existing trace alone."""
    traced = tracing.ensure_trace(new_event("test.keep", "/t", None))
    Client(project).publish_events([traced])

    [message] = Client(project).events()

    assert message["event"]["traceparent"] == traced.attributes["traceparent"]


def test_events_pages_with_after_and_limit(project: Path) -> None:
    """``after`` is exclusive and ``limit`` caps the page."""
    client = Client(project)
    for n in range(5):
        client.publish("test.page", {"n": n})
    everything = client.events()

    page = client.events(after=everything[1]["offset"], limit=2)

    assert [m["event"]["data"]["n"] for m in page] == [2, 3]


def test_extensions_are_published_as_attributes(project: Path) -> None:
    """Keyword extensions become CloudEvent extension attributes."""
    Client(project).publish("test.ext", region="eu")

    [message] = Client(project).events()

    assert message["event"]["region"] == "eu"


def test_the_module_level_publish_uses_the_project_folder(project: Path) -> None:
    """``cumulo.client.publish(..., project=DIR)`` is Client(DIR).publish."""
    event = publish("test.module", [1, 2], project=project)

    assert [m["event"]["id"] for m in Client(project).events()] == [event.id]


# --- online: through the gateway ---------------------------------------------------------


def test_publish_goes_through_the_gateway_when_it_runs(project: Path, gateway: Served) -> None:
    """With the platform up, events reach its bus over HTTP, not the SQLite file."""
    event = Client(project).publish("test.online", {"x": 1}, topic="orders")

    assert [e.id for e in stored(gateway.bus, "orders")] == [event.id]
    assert not (project / ".cumulo" / "bus.db").exists()


def test_events_are_read_from_the_gateway(project: Path, gateway: Served) -> None:
    """``events()`` asks /api/events and gets the events in the JSON format."""
    client = Client(project)
    sent = [client.publish("test.read", {"n": n}) for n in range(3)]

    messages = client.events(limit=2)

    assert [m["event"]["id"] for m in messages] == [e.id for e in sent[:2]]


def test_status_is_the_gateways_answer(project: Path, gateway: Served) -> None:
    """``status()`` returns /api/status as a dict."""
    assert Client(project).status()["functions"][0]["name"] == "hello"


def test_a_token_protected_gateway_refuses_a_client_without_it(
    project: Path, guarded: Served
) -> None:
    """No token: the gateway's 401 becomes a GatewayError naming the status."""
    with pytest.raises(GatewayError, match="HTTP 401"):
        Client(project).publish("test.refused")
    assert stored(guarded.bus) == []


def test_the_api_token_is_sent_as_a_bearer_token(project: Path, guarded: Served) -> None:
    """With ``api_token`` set the same publish is accepted."""
    event = Client(project, Settings(api_token="s3cret")).publish("test.allowed")

    assert [e.id for e in stored(guarded.bus)] == [event.id]


def test_the_publish_token_opens_post_events_and_nothing_else(
    project: Path, guarded: Served
) -> None:
    """A function's publish-only token is sent only with POST /events."""
    client = Client(project, Settings(publish_token="s3cret"))

    event = client.publish("test.by-a-function")

    assert [e.id for e in stored(guarded.bus)] == [event.id]
    assert client.request("GET", "/api/status").status == 401


def test_a_bad_request_is_a_gateway_error_with_the_problem_detail(
    project: Path, gateway: Served
) -> None:
    """An event the gateway refuses (a bad type) raises with the problem+json detail."""
    bad = new_event("test.ok", "/t", None).with_attributes(type="")

    with pytest.raises(GatewayError, match="HTTP 400") as raised:
        Client(project).publish_events([bad])

    assert raised.value.answer.status == 400
    assert stored(gateway.bus) == []


def test_an_unknown_topic_reads_as_empty(project: Path, gateway: Served) -> None:
    """A topic nothing was published to is an empty list, not an error."""
    assert Client(project).events("nothing-here") == []


def test_gateway_error_messages_fall_back_to_the_body() -> None:
    """A body that is not problem+json is quoted (cut at 300 bytes); a JSON list too."""
    plain = GatewayError(HttpAnswer(502, {}, b"x" * 400))
    listed = GatewayError(HttpAnswer(500, {}, b"[1, 2]"))
    problem = GatewayError(HttpAnswer(404, {}, b'{"detail": "no such function"}'))

    assert str(plain) == "HTTP 502: " + "x" * 300
    assert str(listed) == "HTTP 500: [1, 2]"
    assert str(problem) == "HTTP 404: no such function"


# --- the online-only CLI commands ----------------------------------------------------------------

runner = CliRunner(env={"COLUMNS": "200"})


def table_rows(text: str) -> list[list[str]]:
    """The body rows of rich's tables in ``text``, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def test_cli_status_prints_functions_triggers_and_sources(project: Path, gateway: Served) -> None:
    """`cumulo status` shows one table row per function, trigger and source."""
    result = runner.invoke(app, ["status", "--dir", str(project)])

    assert result.exit_code == 0, result.output
    assert f"(pid {os.getpid()})" in result.stdout
    assert table_rows(result.stdout) == [
        ["hello", "service", "2", "5", "1", "2"],
        ["hello-0", "hello", "9", "3", "1", "0"],
        ["hook", "webhook", "4", "1", "0", "bad-signature 2"],
    ]


def test_cli_replay_reports_how_many_events_go_again(project: Path, gateway: Served) -> None:
    """`cumulo replay --topic` asks the gateway; a topic nobody consumes replays none."""
    Client(project).publish("test.again")

    result = runner.invoke(
        app, ["replay", "--topic", "default", "--from-offset", "1", "--dir", str(project)]
    )

    assert result.exit_code == 0, result.output
    assert "replaying 0 event(s)" in result.stdout


def test_cli_replay_of_an_unknown_trigger_fails_with_the_gateways_reason(
    project: Path, gateway: Served
) -> None:
    """The gateway's 404 detail is the error line; exit 1."""
    result = runner.invoke(
        app, ["replay", "--trigger", "ghost", "--from-offset", "1", "--dir", str(project)]
    )

    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr and "ghost" in result.stderr


def test_cli_invoke_of_an_unknown_function_prints_the_404(project: Path, gateway: Served) -> None:
    """`cumulo invoke` prints the status on stderr and the body on stdout; 4xx exits 1."""
    result = runner.invoke(app, ["invoke", "ghost", "--data", "{}", "--dir", str(project)])

    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr
    assert "ghost" in result.stdout
