"""A service function's worker pool, on real templates forking real workers.

Two templates are started once for the module (a cloudevent function and an HTTP
function, written to a folder); each test makes its own :class:`ServicePool` on
one of them and stops it afterwards. The functions do what an event or a
request's path tells them: answer, reply, raise, crash, hang, or wait until a
file exists, which is how a test holds requests in flight while it looks at the
pool.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from cumulo.events.event import Event, new_event
from cumulo.events.outcome import Failure, Outcome, RetryLater, Success
from cumulo.runtimes.local.pool import ServicePool
from cumulo.runtimes.local.template import Template
from cumulo.runtimes.local.wire import WireClient
from tests.runtimes.local.conftest import function_spec, process_gone, template_config, wait_until

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(60)]

CLOUDEVENT_FUNCTION = """
import os
import time

import functions_framework

from cumulo.errors import PermanentError, Retry


def wait_for(path):
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)


@functions_framework.cloud_event
def handle(event):
    data = event.data or {}
    if "started" in data:
        open(data["started"], "w").close()
    if "until" in data:
        wait_for(data["until"])
    what = data.get("do", "ok")
    if what == "reply":
        return {"type": "test.replied", "data": {"n": data.get("n"), "pid": os.getpid()}}
    if what == "retry":
        raise Retry("busy", delay=2.5)
    if what == "permanent":
        raise PermanentError("bad input")
    if what == "fail":
        raise ValueError("boom")
    if what == "crash":
        os._exit(data.get("code", 3))
    if what == "hang":
        time.sleep(60)
    return None
"""

HTTP_FUNCTION = """
import os
import time

import flask


def web(request):
    if request.path == "/hang":
        time.sleep(60)
    if request.path == "/crash":
        os._exit(4)
    if request.path == "/broken":
        return "it broke", 500
    if request.path == "/missing":
        return "no such thing", 404
    if request.path == "/moved":
        return flask.redirect("/elsewhere", 302)
    if "ce-id" in request.headers:  # an event in binary mode: answer with one the same way
        headers = {
            "ce-specversion": "1.0",
            "ce-id": "reply-" + request.headers["ce-id"],
            "ce-source": "/web",
            "ce-type": "test.seen",
            "content-type": "application/json",
        }
        seen = {"type": request.headers["ce-type"], "body": request.get_json()}
        return flask.jsonify(seen), 200, headers
    return {
        "method": request.method,
        "path": request.path,
        "query": request.query_string.decode(),
        "body": request.get_data(as_text=True),
        "header": request.headers.get("x-test"),
        "pid": os.getpid(),
    }
"""


class ExitRouter:
    """Tells the pool under test what the template saw exit, as the platform's callback does."""

    def __init__(self) -> None:
        self.pool: ServicePool | None = None
        self.seen: list[tuple[int, int]] = []

    def __call__(self, pid: int, code: int) -> None:
        self.seen.append((pid, code))
        if self.pool is not None:
            self.pool.on_exit(pid, code)

    def code_of(self, pid: int) -> int | None:
        return next((code for seen, code in self.seen if seen == pid), None)


class Running:
    """A started template and the router of its exit reports."""

    def __init__(self, template: Template, router: ExitRouter):
        self.template = template
        self.router = router


async def _start(folder: Path, source: str, target: str) -> Running:
    folder.mkdir()
    (folder / "main.py").write_text(source)
    router = ExitRouter()
    template = Template(template_config(folder, target=target), on_exit=router)
    await template.start()
    return Running(template, router)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def events_template(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    running = await _start(
        tmp_path_factory.mktemp("pool") / "events", CLOUDEVENT_FUNCTION, "main:handle"
    )
    yield running
    await running.template.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http_template(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    running = await _start(tmp_path_factory.mktemp("pool") / "http", HTTP_FUNCTION, "main:web")
    yield running
    await running.template.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[WireClient]:
    wire = WireClient()
    yield wire
    wire.close()


MakePool = Callable[..., Awaitable[ServicePool]]


@pytest_asyncio.fixture(loop_scope="module")
async def make_pool(client: WireClient) -> AsyncIterator[MakePool]:
    """``await make_pool(running, grace=..., **scale)``: a started pool, stopped after the test.

    The teardown also waits until every worker the pool started has been seen to
    exit, so no test leaves a worker behind for the next one.
    """
    made: list[tuple[ServicePool, Running]] = []

    async def make(running: Running, *, grace: float = 2.0, **scale: Any) -> ServicePool:
        function = function_spec("svc", scale={"idleTimeout": 60, **scale})
        pool = ServicePool(function, running.template, client, grace=grace)
        running.router.pool = pool
        made.append((pool, running))
        await pool.start()
        return pool

    yield make
    for pool, running in made:
        started = set(pool.replicas)
        await pool.stop()
        await wait_until(
            lambda: started <= {pid for pid, _ in running.router.seen},  # noqa: B023
            what="the pool's workers to exit",
        )
        running.router.pool = None


def event(tmp: Path | None = None, **data: Any) -> Event:
    """An event whose data tells the function what to do (paths made under ``tmp``)."""
    for key in ("started", "until"):
        if key in data and tmp is not None:
            data[key] = str(tmp / data[key])
    return new_event("test.asked", "/tests", data)


async def deliver(pool: ServicePool, ask: Event, timeout: float = 20.0) -> Outcome:
    return await pool.deliver(ask, timeout=timeout)


def touched(path: Path) -> Callable[[], bool]:
    return path.exists


# --- starting, scaling ---------------------------------------------------------


async def test_start_keeps_scale_min_replicas_warm(
    events_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(events_template, min=2)

    described = pool.describe()
    assert pool.workers() == 2
    assert pool.cold_starts() == 2
    assert len({replica["port"] for replica in described["replicas"]}) == 2
    assert all(replica["inflight"] == 0 for replica in described["replicas"])
    assert (described["invocations"], described["errors"], described["crashes"]) == (0, 0, 0)


async def test_a_pool_at_zero_starts_a_worker_while_the_first_event_waits(
    events_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(events_template, min=0)
    assert pool.workers() == 0

    assert await deliver(pool, event(do="ok")) == Success([])
    assert (pool.workers(), pool.cold_starts()) == (1, 1)
    assert (pool.stats.invocations, pool.stats.errors) == (1, 0)


async def test_replies_come_back_as_events_caused_by_the_delivered_one(
    events_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(events_template, min=1)
    asked = event(do="reply", n=7)

    outcome = await deliver(pool, asked)

    assert isinstance(outcome, Success)
    [reply] = outcome.replies
    assert reply.type == "test.replied"
    assert reply.data["n"] == 7
    assert reply.data["pid"] in pool.replicas  # it was one of the pool's workers that answered
    assert reply.attributes["cumulocause"] == asked.id


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("retry", RetryLater("Retry", "busy", 2.5)),
        ("permanent", Failure("PermanentError", "bad input", permanent=True)),
        ("fail", Failure("ValueError", "boom", permanent=False)),
    ],
)
async def test_what_the_function_raises_becomes_the_events_outcome(
    events_template: Running, make_pool: MakePool, what: str, expected: Outcome
) -> None:
    pool = await make_pool(events_template, min=1)
    [worker] = pool.replicas

    assert await deliver(pool, event(do=what)) == expected
    assert (pool.stats.invocations, pool.stats.errors, pool.stats.crashes) == (1, 1, 0)
    assert list(pool.replicas) == [worker]  # an exception is the event's, not the worker's


async def test_requests_share_a_replica_up_to_its_concurrency_then_get_a_new_one(
    events_template: Running, make_pool: MakePool, tmp_path: Path
) -> None:
    pool = await make_pool(events_template, min=1, max=2, concurrency=2)
    held = [
        asyncio.create_task(deliver(pool, event(tmp_path, started=f"s{i}", until="go")))
        for i in (1, 2)
    ]
    await wait_until(
        lambda: (tmp_path / "s1").exists() and (tmp_path / "s2").exists(), what="two in flight"
    )
    assert pool.workers() == 1
    assert [r["inflight"] for r in pool.describe()["replicas"]] == [2]

    third = asyncio.create_task(deliver(pool, event(tmp_path, started="s3", until="go")))
    await wait_until(touched(tmp_path / "s3"), what="the third request to run")
    assert pool.workers() == 2  # the first replica was full: a second one was forked
    assert sorted(r["inflight"] for r in pool.describe()["replicas"]) == [1, 2]

    (tmp_path / "go").touch()
    assert await asyncio.gather(*held, third) == [Success([])] * 3
    assert pool.cold_starts() == 2
    assert all(r["inflight"] == 0 for r in pool.describe()["replicas"])


async def test_a_burst_at_zero_within_one_replicas_concurrency_starts_one_replica(
    events_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(events_template, min=0, max=4, concurrency=16)

    outcomes = await asyncio.gather(*(deliver(pool, event(do="ok")) for _ in range(4)))

    assert outcomes == [Success([])] * 4
    assert pool.cold_starts() == 1


async def test_the_request_goes_to_the_replica_with_the_fewest_in_flight(
    events_template: Running, make_pool: MakePool, tmp_path: Path
) -> None:
    pool = await make_pool(events_template, min=2, concurrency=4)
    busy = asyncio.create_task(deliver(pool, event(tmp_path, started="busy", until="go")))
    await wait_until(touched(tmp_path / "busy"), what="the first request to run")
    [loaded] = [pid for pid, replica in pool.replicas.items() if replica.inflight]

    outcome = await deliver(pool, event(do="reply"))

    assert isinstance(outcome, Success)
    assert outcome.replies[0].data["pid"] != loaded
    (tmp_path / "go").touch()
    assert await busy == Success([])


async def test_at_scale_max_a_request_waits_for_a_replica_to_free_up(
    events_template: Running, make_pool: MakePool, tmp_path: Path
) -> None:
    pool = await make_pool(events_template, min=0, max=1, concurrency=1)
    first = asyncio.create_task(
        deliver(pool, event(tmp_path, do="reply", started="s1", until="go1"))
    )
    await wait_until(touched(tmp_path / "s1"), what="the first request to run")
    second = asyncio.create_task(
        deliver(pool, event(tmp_path, do="reply", started="s2", until="go2"))
    )
    third = asyncio.create_task(deliver(pool, event(tmp_path, do="reply", started="s3")))

    (tmp_path / "go1").touch()
    await wait_until(touched(tmp_path / "s2"), what="the second request to run")
    assert not (tmp_path / "s3").exists()  # the one replica is busy with the second
    assert (pool.workers(), pool.cold_starts()) == (1, 1)
    (tmp_path / "go2").touch()

    answers = await asyncio.gather(first, second, third)
    pids = {answer.replies[0].data["pid"] for answer in answers if isinstance(answer, Success)}
    assert len(pids) == 1  # all three, one after the other, on the only replica
    assert pool.cold_starts() == 1


# --- faults ----------------------------------------------------------------------


async def test_a_worker_that_dies_on_an_event_fails_that_event_and_is_replaced(
    events_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(events_template, min=1)
    [worker] = pool.replicas

    outcome = await deliver(pool, event(do="crash", code=3))

    assert outcome == Failure(
        "WorkerCrashed", "the worker exited with code 3 while handling this event"
    )
    assert events_template.router.code_of(worker) == 3
    assert (pool.stats.crashes, pool.stats.errors, pool.workers()) == (1, 1, 0)
    assert await deliver(pool, event(do="ok")) == Success([])  # the next one gets a new worker
    assert pool.cold_starts() == 2
    assert worker not in pool.replicas


async def test_events_that_shared_a_crashed_worker_are_each_delivered_again_alone(
    events_template: Running, make_pool: MakePool, tmp_path: Path
) -> None:
    pool = await make_pool(events_template, min=1, max=1, concurrency=2)
    bystander = asyncio.create_task(
        deliver(pool, event(tmp_path, do="reply", started="bystander", until="go"))
    )
    await wait_until(touched(tmp_path / "bystander"), what="the bystander to run")
    crasher = asyncio.create_task(deliver(pool, event(tmp_path, do="crash", code=5)))
    await wait_until(lambda: pool.stats.crashes >= 1, what="the shared worker to crash")
    (tmp_path / "go").touch()

    crashed, survived = await crasher, await bystander

    # Alone on a fresh worker, the crasher crashed again: now it is its own fault.
    assert crashed == Failure(
        "WorkerCrashed", "the worker exited with code 5 while handling this event"
    )
    assert isinstance(survived, Success)  # the bystander's second delivery succeeded
    assert pool.stats.solo_retries == 2
    assert pool.stats.crashes == 2
    assert (pool.stats.invocations, pool.stats.errors) == (2, 1)


async def test_a_request_past_its_timeout_has_its_worker_recycled(
    events_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(events_template, min=1, grace=0.3)
    [worker] = pool.replicas

    outcome = await deliver(pool, event(do="hang"), timeout=0.5)

    assert outcome == RetryLater("Timeout", "no answer within 0.5s; the worker was recycled")
    assert worker not in pool.replicas  # out of rotation at once
    assert pool.stats.recycled == 1
    await wait_until(lambda: events_template.router.code_of(worker) is not None, what="the exit")
    assert events_template.router.code_of(worker) == -9  # SIGTERM could not stop it: SIGKILL
    assert pool.stats.crashes == 0  # stopped by the pool, not crashed
    assert await deliver(pool, event(do="ok")) == Success([])


async def test_a_bystander_of_another_events_timeout_is_delivered_again_alone(
    events_template: Running, make_pool: MakePool, tmp_path: Path
) -> None:
    pool = await make_pool(events_template, min=1, max=1, concurrency=2, grace=0.3)
    bystander = asyncio.create_task(
        deliver(pool, event(tmp_path, do="reply", started="bystander", until="go"))
    )
    await wait_until(touched(tmp_path / "bystander"), what="the bystander to run")

    hung = await deliver(pool, event(do="hang"), timeout=0.5)
    await wait_until(lambda: pool.stats.solo_retries == 1, what="the bystander to be lost")
    (tmp_path / "go").touch()

    assert isinstance(hung, RetryLater) and hung.error_type == "Timeout"
    assert isinstance(await bystander, Success)
    assert (pool.stats.recycled, pool.stats.crashes) == (1, 0)


async def test_of_two_timeouts_on_one_worker_the_first_is_blamed_and_the_second_tried_alone(
    events_template: Running, make_pool: MakePool
) -> None:
    # A grace longer than the second's timeout: the worker still runs, being recycled for
    # the first, when the second times out.
    pool = await make_pool(events_template, min=1, max=1, concurrency=2, grace=1.5)

    first, second = await asyncio.gather(
        deliver(pool, event(do="hang"), timeout=0.5), deliver(pool, event(do="hang"), timeout=0.8)
    )

    assert first == RetryLater("Timeout", "no answer within 0.5s; the worker was recycled")
    # The second timed out on a worker already recycled for the first: not its fault, so it
    # was delivered again alone, hung alone, and that recycle is its own.
    assert second == RetryLater("Timeout", "no answer within 0.8s; the worker was recycled")
    assert (pool.stats.solo_retries, pool.stats.recycled, pool.stats.crashes) == (1, 2, 0)


async def test_events_in_flight_when_the_pool_stops_are_retried_not_crashed(
    events_template: Running, make_pool: MakePool, tmp_path: Path
) -> None:
    pool = await make_pool(events_template, min=1, grace=0.3)
    held = asyncio.create_task(deliver(pool, event(tmp_path, started="s", until="never")))
    await wait_until(touched(tmp_path / "s"), what="the event to run")

    await pool.stop()
    outcome = await held

    assert isinstance(outcome, RetryLater)  # redelivered after the next start
    assert outcome.message.startswith("worker unreachable: ")
    assert pool.stats.crashes == 0


async def test_an_exit_the_template_reports_takes_the_worker_out_of_rotation(
    events_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(events_template, min=2)
    victim, other = list(pool.replicas)

    os.kill(victim, 9)
    await wait_until(lambda: victim not in pool.replicas, what="the exit report")

    assert list(pool.replicas) == [other]
    assert pool.stats.crashes == 1
    assert events_template.router.code_of(victim) == -9


# --- scaling down and stopping ---------------------------------------------------


async def _two_replicas_used(pool: ServicePool, tmp_path: Path) -> None:
    held = [
        asyncio.create_task(deliver(pool, event(tmp_path, started=f"s{i}", until="go")))
        for i in (1, 2)
    ]
    await wait_until(
        lambda: (tmp_path / "s1").exists() and (tmp_path / "s2").exists(), what="both to run"
    )
    (tmp_path / "go").touch()
    assert await asyncio.gather(*held) == [Success([]), Success([])]


async def test_replicas_idle_past_the_timeout_are_stopped_down_to_min(
    events_template: Running, make_pool: MakePool, tmp_path: Path
) -> None:
    pool = await make_pool(events_template, min=1, max=2, concurrency=1, idleTimeout=0)
    await _two_replicas_used(pool, tmp_path)
    before = set(pool.replicas)
    assert len(before) == 2

    await pool.scale_down_idle()
    assert pool.workers() == 1
    [stopped] = before - set(pool.replicas)
    await wait_until(lambda: events_template.router.code_of(stopped) is not None, what="its exit")
    assert events_template.router.code_of(stopped) == 0  # SIGTERM: it shut down cleanly
    assert pool.stats.crashes == 0

    await pool.scale_down_idle()
    assert pool.workers() == 1  # scale.min stays


async def test_replicas_used_recently_are_kept(
    events_template: Running, make_pool: MakePool, tmp_path: Path
) -> None:
    pool = await make_pool(events_template, min=0, max=2, concurrency=1, idleTimeout=60)
    await _two_replicas_used(pool, tmp_path)

    await pool.scale_down_idle()

    assert pool.workers() == 2


async def test_stop_ends_every_worker_without_counting_crashes(
    events_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(events_template, min=2)
    workers = list(pool.replicas)

    await pool.stop()

    assert pool.workers() == 0
    await wait_until(lambda: all(map(process_gone, workers)), what="the workers to go")
    # SIGTERM ended them (cleanly once serving, by the signal itself if it came first)
    assert {events_template.router.code_of(pid) for pid in workers} <= {0, -15}
    assert pool.stats.crashes == 0


async def test_a_pool_whose_template_is_down_asks_for_a_retry(
    client: WireClient, tmp_path: Path
) -> None:
    running = await _start(tmp_path / "down", CLOUDEVENT_FUNCTION, "main:handle")
    await running.template.stop()
    pool = ServicePool(function_spec("svc", scale={"max": 1}), running.template, client)

    outcome = await asyncio.wait_for(deliver(pool, event(do="ok")), 3)  # bounded: see reason

    assert isinstance(outcome, RetryLater)
    assert outcome.error_type == "WorkerStartError"
    assert "worker unreachable" in outcome.message and "template is not running" in outcome.message
    assert (pool.stats.invocations, pool.stats.errors, pool.workers()) == (1, 1, 0)


# --- an HTTP function ------------------------------------------------------------


async def test_request_passes_method_path_query_headers_and_body_through(
    http_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(http_template, min=0)

    answer = await pool.request(
        "PUT",
        "/items/3?sort=name&n=2",
        {"x-test": "yes", "content-type": "text/plain"},
        b"hello",
        timeout=20,
    )

    assert answer.status == 200
    assert {k.lower(): v for k, v in answer.headers}["content-type"] == "application/json"
    seen = json.loads(answer.body)
    assert {k: seen[k] for k in ("method", "path", "query", "body", "header")} == {
        "method": "PUT",
        "path": "/items/3",
        "query": "sort=name&n=2",
        "body": "hello",
        "header": "yes",
    }
    assert seen["pid"] in pool.replicas
    assert (pool.stats.invocations, pool.stats.errors, pool.cold_starts()) == (1, 0, 1)


async def test_an_answer_of_500_counts_as_an_error_and_one_of_404_does_not(
    http_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(http_template, min=1)

    broken = await pool.request("GET", "/broken", {}, b"", timeout=20)
    missing = await pool.request("GET", "/missing", {}, b"", timeout=20)

    assert (broken.status, broken.body) == (500, b"it broke")
    assert (missing.status, missing.body) == (404, b"no such thing")
    assert (pool.stats.invocations, pool.stats.errors) == (2, 1)


async def test_a_redirect_is_handed_back_not_followed(
    http_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(http_template, min=1)

    answer = await pool.request("GET", "/moved", {}, b"", timeout=20)

    assert answer.status == 302
    assert {k.lower(): v for k, v in answer.headers}["location"] == "/elsewhere"


async def test_a_request_that_times_out_raises_and_recycles_its_worker(
    http_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(http_template, min=1, grace=0.3)
    [worker] = pool.replicas

    with pytest.raises(TimeoutError):
        await pool.request("GET", "/hang", {}, b"", timeout=0.5)

    assert worker not in pool.replicas
    assert (pool.stats.recycled, pool.stats.invocations, pool.stats.errors) == (1, 1, 1)
    answer = await pool.request("GET", "/", {}, b"", timeout=20)
    assert answer.status == 200


async def test_a_request_whose_worker_dies_raises_a_client_error(
    http_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(http_template, min=1)

    with pytest.raises(aiohttp.ClientError):
        await pool.request("POST", "/crash", {}, b"", timeout=20)

    assert (pool.stats.invocations, pool.stats.errors) == (1, 1)
    await wait_until(lambda: pool.stats.crashes == 1, what="the crash to be reported")


async def test_an_event_reaches_an_http_function_in_binary_mode(
    http_template: Running, make_pool: MakePool
) -> None:
    pool = await make_pool(http_template, min=1)
    asked = new_event("test.asked", "/tests", {"n": 1}, id="e-77")

    outcome = await deliver(pool, asked)

    assert isinstance(outcome, Success)
    [reply] = outcome.replies  # the function answered with an event in binary mode too
    assert (reply.id, reply.type) == ("reply-e-77", "test.seen")
    assert reply.data == {"type": "test.asked", "body": {"n": 1}}
