"""The gateway's routing, tested on its own: the parts the platform hands it are fakes.

Each test builds a :class:`Gateway` from :class:`GatewayParts` (an in-memory bus,
function hosts that record what they are asked) and talks to its ASGI app with
httpx, as a client would over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from cumulo.config import Settings
from cumulo.errors import WorkerStartError
from cumulo.events.bus.base import Ack, Bus
from cumulo.events.event import Event, from_envelope
from cumulo.events.outcome import Outcome, Success
from cumulo.runtimes.local.gateway import HOP_BY_HOP, Gateway, GatewayParts
from cumulo.runtimes.local.hosts import HttpAnswer
from cumulo.runtimes.local.jobs import JobRunner
from cumulo.runtimes.local.runs import RunStore
from cumulo.spec.models import Function, FunctionSpec, Metadata, Trigger, TriggerSpec
from cumulo.testing import MemoryBus

EVENT = {"specversion": "1.0", "id": "e1", "source": "/tests", "type": "t.one"}


def function(name: str, **spec: Any) -> Function:
    return Function(metadata=Metadata(name=name), spec=FunctionSpec(handler="main:f", **spec))


class Host:
    """A function host that answers HTTP requests from a script and records them."""

    def __init__(self, name: str, answer: HttpAnswer | BaseException | None = None, **spec: Any):
        self.function = function(name, **spec)
        self.answer = answer or HttpAnswer(200, [("content-type", "text/plain")], b"hi")
        self.requests: list[tuple[str, str, dict[str, str], bytes, float]] = []

    async def request(
        self,
        method: str,
        path_and_query: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout: float,
    ) -> HttpAnswer:
        self.requests.append((method, path_and_query, dict(headers), body, timeout))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        return Success()

    async def start(self) -> None: ...
    async def scale_down_idle(self) -> None: ...
    async def stop(self) -> None: ...
    def on_exit(self, pid: int, code: int) -> None: ...
    def workers(self) -> int:
        return 0

    def cold_starts(self) -> int | None:
        return 0

    def describe(self) -> dict[str, Any]:
        return {}


class Ingested:
    """The ingest hook: publishes to the bus, as Telemetry.ingest does, and remembers it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []

    async def __call__(self, bus: Bus, name: str, topic: str, events: Sequence[Event]) -> list[int]:
        self.calls.append((name, topic, [e.id for e in events]))
        return await bus.publish(topic, list(events))


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    memory = MemoryBus()
    await memory.start()
    yield memory
    await memory.close()


def parts(bus: MemoryBus, *hosts: Host, **overrides: Any) -> GatewayParts:
    async def status() -> dict[str, Any]:
        return {"functions": [h.function.name for h in hosts]}

    async def metrics() -> bytes:
        return b"# metrics\n"

    trigger = Trigger(metadata=Metadata(name="t-0"), spec=TriggerSpec(function="fn"))
    defaults: dict[str, Any] = {
        "settings": Settings(api_token=None),
        "buses": {"default": bus},
        "hosts": {h.function.name: h for h in hosts},
        "triggers": {"t-0": trigger},
        "ingest": Ingested(),
        "status": status,
        "metrics": metrics,
        "webhooks": lambda name: None,
    }
    return GatewayParts(**(defaults | overrides))


def client(gateway_parts: GatewayParts) -> httpx.AsyncClient:
    app = Gateway(gateway_parts).app
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def problem_type(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["type"]).rsplit("/", 1)[-1]


# --- POST /events --------------------------------------------------------------------


async def test_a_structured_event_is_published_to_the_named_topic_before_the_202(bus) -> None:
    gateway_parts = parts(bus)
    async with client(gateway_parts) as http:
        answer = await http.post(
            "/events?topic=orders",
            content=orjson.dumps(EVENT),
            headers={"content-type": "application/cloudevents+json"},
        )
    assert answer.status_code == 202
    assert answer.json()["ids"] == ["e1"]
    assert gateway_parts.ingest.calls == [("default", "orders", ["e1"])]
    stored = await bus.read("orders", after=-1, limit=10)
    assert [m.event.id for m in stored] == ["e1"]
    assert answer.json()["offsets"] == [m.offset for m in stored]


async def test_an_unknown_bus_is_a_404_and_nothing_is_published(bus) -> None:
    gateway_parts = parts(bus)
    async with client(gateway_parts) as http:
        answer = await http.post("/events?bus=nope", content=orjson.dumps(EVENT),
                                 headers={"content-type": "application/cloudevents+json"})  # fmt: skip
    assert answer.status_code == 404
    assert problem_type(answer) == "unknown-bus"
    assert gateway_parts.ingest.calls == []


async def test_an_event_without_an_id_is_a_400_naming_it(bus) -> None:
    gateway_parts = parts(bus)
    broken = {k: v for k, v in EVENT.items() if k != "id"}
    async with client(gateway_parts) as http:
        answer = await http.post("/events", content=orjson.dumps(broken),
                                 headers={"content-type": "application/cloudevents+json"})  # fmt: skip
    assert answer.status_code == 400
    assert "id" in answer.json()["detail"]
    assert gateway_parts.ingest.calls == []


# --- /fn/<name> ----------------------------------------------------------------------


async def test_a_function_request_reaches_its_host_with_path_query_and_body(bus) -> None:
    host = Host("hello", timeout=7)
    async with client(parts(bus, host)) as http:
        answer = await http.post("/fn/hello/a/b?x=1&y=2", content=b"payload",
                                 headers={"x-custom": "yes", "connection": "keep-alive"})  # fmt: skip
    assert (answer.status_code, answer.text) == (200, "hi")
    [(method, path, headers, body, timeout)] = host.requests
    assert (method, path, body, timeout) == ("POST", "/a/b?x=1&y=2", b"payload", 7.0)
    assert headers["x-custom"] == "yes"
    assert not HOP_BY_HOP & {k.lower() for k in headers}  # connection, host, content-length


async def test_the_functions_answer_is_sent_on_without_hop_by_hop_headers(bus) -> None:
    answered = HttpAnswer(
        201,
        [("X-Made", "here"), ("Connection", "close"), ("Transfer-Encoding", "chunked")],
        b"made",
    )
    async with client(parts(bus, Host("make", answered))) as http:
        answer = await http.get("/fn/make")
    assert (answer.status_code, answer.content) == (201, b"made")
    assert answer.headers["x-made"] == "here"
    assert answer.headers["content-length"] == "4"
    assert "transfer-encoding" not in answer.headers


@pytest.mark.parametrize(
    ("raised", "status", "slug"),
    [
        (TimeoutError(), 504, "function-timeout"),
        (aiohttp.ServerDisconnectedError(), 502, "worker-failed"),
        (WorkerStartError("hello: the template is gone"), 503, "worker-start-failed"),
    ],
)
async def test_a_host_failure_is_a_problem_saying_which(bus, raised, status, slug) -> None:
    async with client(parts(bus, Host("hello", raised))) as http:
        answer = await http.get("/fn/hello")
    assert answer.status_code == status
    assert problem_type(answer) == slug


async def test_an_unknown_function_is_a_404(bus) -> None:
    async with client(parts(bus, Host("hello"))) as http:
        answer = await http.get("/fn/nobody")
    assert answer.status_code == 404
    assert problem_type(answer) == "unknown-function"


async def test_a_body_over_the_limit_is_a_413_and_never_reaches_the_host(bus) -> None:
    host = Host("hello")
    gateway_parts = parts(bus, host)
    small = replace(gateway_parts, settings=Settings(api_token=None, max_body_bytes=10))
    async with client(small) as http:
        answer = await http.post("/fn/hello", content=b"x" * 11)
    assert answer.status_code == 413
    assert host.requests == []


# --- the API -------------------------------------------------------------------------


async def test_status_and_metrics_come_from_the_parts_handed_over(bus) -> None:
    async with client(parts(bus, Host("a"), Host("b"))) as http:
        status = await http.get("/api/status")
        metrics = await http.get("/metrics")
    assert status.json() == {"functions": ["a", "b"]}
    assert metrics.content == b"# metrics\n"
    assert metrics.headers["content-type"].startswith("text/plain")


async def test_replay_of_a_trigger_rewinds_its_group(bus) -> None:
    await bus.subscribe("trigger/t-0", "default", start="earliest")
    await bus.publish("default", [from_envelope(EVENT)])
    [message] = await bus.fetch("trigger/t-0", limit=10, lease=30)
    await bus.settle("trigger/t-0", [Ack(message.offset)])
    async with client(parts(bus)) as http:
        answer = await http.post("/api/replay", json={"trigger": "t-0", "fromOffset": 0})
    assert (answer.status_code, answer.json()) == (200, {"replayed": 1})
    again = await bus.fetch("trigger/t-0", limit=10, lease=30)
    assert [m.event.id for m in again] == ["e1"]


async def test_replay_names_an_unknown_trigger(bus) -> None:
    async with client(parts(bus)) as http:
        answer = await http.post("/api/replay", json={"trigger": "ghost", "fromOffset": 0})
    assert answer.status_code == 404
    assert problem_type(answer) == "unknown-trigger"
    assert "ghost" in answer.json()["detail"]


async def test_events_lists_a_topic_in_offset_order(bus) -> None:
    events = [from_envelope(EVENT | {"id": f"e{i}"}) for i in range(3)]
    await bus.publish("default", events)
    async with client(parts(bus)) as http:
        answer = await http.get("/api/events?limit=2")
    assert [m["event"]["id"] for m in answer.json()] == ["e0", "e1"]


# --- auth ----------------------------------------------------------------------------


async def test_with_a_token_only_public_functions_and_health_are_open(bus) -> None:
    private, public = Host("private"), Host("public", access="public")
    guarded = parts(bus, private, public, settings=Settings(api_token="s3cret"),
                    public=frozenset({"public"}))  # fmt: skip
    async with client(guarded) as http:
        assert (await http.get("/fn/private")).status_code == 401
        assert (await http.get("/api/status")).status_code == 401
        assert (await http.get("/fn/public")).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
        bearer = {"authorization": "Bearer s3cret"}
        assert (await http.get("/fn/private", headers=bearer)).status_code == 200
    assert len(private.requests) == 1


async def test_a_job_takes_one_event_per_request(tmp_path) -> None:
    """A job's ``/fn/<name>`` runs one CloudEvent; a batch is refused before any run starts."""
    runs = RunStore(tmp_path / "runs.db")
    announced: list[Event] = []

    async def announce(event: Event) -> None:
        announced.append(event)

    runner = JobRunner(function("train", mode="job"), template=None, runs=runs, announce=announce)  # type: ignore[arg-type]
    batch = orjson.dumps([EVENT, EVENT | {"id": "e2"}])
    headers = {"content-type": "application/cloudevents-batch+json"}
    answer = await runner.request("POST", "/", headers, batch, timeout=5)
    assert answer.status == 400
    assert orjson.loads(answer.body)["type"].endswith("one-event-per-run")
    assert ("content-type", "application/problem+json") in answer.headers
    assert runs.list() == [] and announced == []


async def test_the_path_after_the_function_goes_on_as_the_client_sent_it(bus) -> None:
    """Percent-encoded text (even what is no UTF-8) reaches the function still encoded."""
    host = Host("hello")
    async with client(parts(bus, host)) as http:
        await http.get("/fn/hello/%F3%B1%BA%A1/x%20y?q=%C3%A9")
        await http.get("/fn/hello")
    assert [path for _, path, *_ in host.requests] == ["/%F3%B1%BA%A1/x%20y?q=%C3%A9", "/"]
