"""Job-mode functions: one forked run per event, on a real template.

The run's outcome, its record in ``runs.db``, its log, the timeout, ``scale.max``
and the ``dev.cumulo.run.failed`` announcement (published to the in-package
:class:`~cumulo.testing.MemoryBus`, as the platform publishes it to its bus).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from cumulo.errors import BusUnavailableError, InvalidEventError
from cumulo.events import tracing
from cumulo.events.event import Event, new_event, to_json
from cumulo.events.lineage import RUN_FAILED
from cumulo.events.outcome import Failure, RetryLater, Success
from cumulo.runtimes.local.jobs import JobRunner, log_tail, read_result, run_status
from cumulo.runtimes.local.runs import RunStore
from cumulo.runtimes.local.template import Template
from cumulo.testing import MemoryBus
from tests.runtimes.local.conftest import function_spec, process_gone, template_config, wait_until

pytestmark = pytest.mark.timeout(60)

JOB = """
import os
import time

import functions_framework

from cumulo.context import current_run_id
from cumulo.errors import PermanentError, Retry


@functions_framework.cloud_event
def train(event):
    data = event.data
    print(f"run {current_run_id()} got {event['id']}", flush=True)
    for line in range(data.get("lines", 0)):
        print(f"line {line}", flush=True)
    if "started" in data:
        open(data["started"], "w").close()
    if "until" in data:
        deadline = time.monotonic() + 30
        while not os.path.exists(data["until"]) and time.monotonic() < deadline:
            time.sleep(0.005)
    what = data.get("do", "ok")
    if what == "reply":
        return {"type": "model.trained", "data": {"run": current_run_id()}}
    if what == "retry":
        raise Retry("not yet", delay=4)
    if what == "permanent":
        raise PermanentError("dataset has no column 'target'")
    if what == "fail":
        raise ValueError("boom")
    if what == "crash":
        os._exit(3)
    if what == "kill":
        os.kill(os.getpid(), 9)
    if what == "hang":
        time.sleep(60)
"""


class Jobs:
    """A runner on a started template, its run store and the bus its failures go to."""

    def __init__(self, runner: JobRunner, runs: RunStore, bus: MemoryBus, folder: Path):
        self.runner = runner
        self.runs = runs
        self.bus = bus
        self.folder = folder

    async def announced(self) -> list[Event]:
        return [message.event for message in await self.bus.read("default")]

    def ask(self, **data: Any) -> Event:
        for key in ("started", "until"):
            if key in data:
                data[key] = str(self.folder / data[key])
        return new_event("dataset.ready", "/tests", data)


MakeJobs = Callable[..., Awaitable[Jobs]]


@pytest_asyncio.fixture
async def make_jobs(tmp_path: Path) -> AsyncIterator[MakeJobs]:
    """``await make_jobs(announce=None, **scale)``; the template is stopped after the test."""
    templates: list[Template] = []
    (tmp_path / "main.py").write_text(JOB)

    async def make(
        announce: Callable[[Event], Awaitable[object]] | None = None, **scale: Any
    ) -> Jobs:
        bus = MemoryBus()
        await bus.start()
        runs = RunStore(tmp_path / "runs.db")
        template = Template(
            template_config(tmp_path, name="train", target="main:train"),
            on_exit=lambda pid, code: runner.on_exit(pid, code),
        )
        function = function_spec("train", "main:train", mode="job", scale=scale)
        runner = JobRunner(
            function, template, runs, announce or (lambda e: bus.publish("default", [e]))
        )
        templates.append(template)
        await template.start()
        await runner.start()
        return Jobs(runner, runs, bus, tmp_path)

    yield make
    for template in templates:
        await template.stop()


async def test_a_run_that_succeeds_returns_its_replies_and_is_recorded(make_jobs: MakeJobs) -> None:
    jobs = await make_jobs()
    asked = jobs.ask(do="reply")

    outcome = await jobs.runner.deliver(asked, timeout=30)

    [run] = jobs.runs.list("train")
    assert isinstance(outcome, Success)
    [reply] = outcome.replies
    assert reply.type == "model.trained"
    assert reply.data == {"run": run.id}  # the function knew its run id
    assert (run.status, run.exit_code, run.error) == ("succeeded", 0, None)
    assert (run.event_id, run.event_type) == (asked.id, "dataset.ready")
    assert run.duration is not None and run.duration >= 0
    assert f"run {run.id} got {asked.id}" in Path(run.log).read_text()
    assert orjson.loads((Path(run.log).parent / "event.json").read_bytes())["id"] == asked.id
    assert await jobs.announced() == []  # only failures are announced
    assert (jobs.runner.workers(), jobs.runner.cold_starts()) == (0, None)


async def test_a_failed_run_is_recorded_and_announced_with_its_reason_and_lineage(
    make_jobs: MakeJobs,
) -> None:
    jobs = await make_jobs()
    asked = jobs.ask(do="permanent", uri="data/broken.csv")

    outcome = await jobs.runner.deliver(asked, timeout=30)

    assert outcome == Failure("PermanentError", "dataset has no column 'target'", permanent=True)
    [run] = jobs.runs.list()
    assert (run.status, run.exit_code) == ("failed", 1)
    assert run.error == "PermanentError: dataset has no column 'target'"
    [announcement] = await jobs.announced()
    assert (announcement.type, announcement.subject) == (RUN_FAILED, "train")
    assert announcement.source == "/cumulo/functions/train"
    data = announcement.data
    assert {
        k: data[k] for k in ("function", "run", "event", "eventType", "errorType", "permanent")
    } == {
        "function": "train",
        "run": run.id,
        "event": asked.id,
        "eventType": "dataset.ready",
        "errorType": "PermanentError",
        "permanent": True,
    }
    assert data["message"] == "dataset has no column 'target'"
    assert f"run {run.id} got {asked.id}" in data["logTail"]
    assert data["lineage"] == {
        "datasetUri": "data/broken.csv",
        "runId": run.id,
        "triggerEvent": asked.id,
    }


async def test_the_announcement_and_the_record_stay_in_the_events_trace(
    make_jobs: MakeJobs,
) -> None:
    jobs = await make_jobs()
    asked = tracing.ensure_trace(jobs.ask(do="fail"))
    trace = tracing.trace_id_of(asked)

    outcome = await jobs.runner.deliver(asked, timeout=30)

    assert outcome == Failure("ValueError", "boom", permanent=False)
    [announcement] = await jobs.announced()
    assert tracing.trace_id_of(announcement) == trace
    assert announcement.data["permanent"] is False
    assert jobs.runs.list()[0].trace == trace


async def test_the_announcement_carries_only_the_tail_of_a_long_log(make_jobs: MakeJobs) -> None:
    jobs = await make_jobs()

    await jobs.runner.deliver(jobs.ask(do="fail", lines=100), timeout=30)

    [announcement] = await jobs.announced()
    tail = announcement.data["logTail"].splitlines()
    assert len(tail) == 40
    assert "line 99" in announcement.data["logTail"]
    assert "line 9\n" not in announcement.data["logTail"] + "\n"


async def test_a_run_that_asks_for_a_retry_is_retrying_and_not_announced(
    make_jobs: MakeJobs,
) -> None:
    jobs = await make_jobs()

    outcome = await jobs.runner.deliver(jobs.ask(do="retry"), timeout=30)

    assert outcome == RetryLater("Retry", "not yet", 4.0)
    [run] = jobs.runs.list()
    assert (run.status, run.exit_code, run.error) == ("retrying", 75, "Retry: not yet")
    assert await jobs.announced() == []


async def test_a_run_past_its_timeout_is_killed_recorded_and_announced(make_jobs: MakeJobs) -> None:
    jobs = await make_jobs()
    running = asyncio.create_task(
        jobs.runner.deliver(jobs.ask(do="hang", started="s"), timeout=1.0)
    )
    await wait_until((jobs.folder / "s").exists, what="the run to start")
    # The run may start before its pid is booked: wait for the bookkeeping, not a time.
    await wait_until(lambda: jobs.runner.workers() == 1, what="the run to be booked")
    [entry] = jobs.runner.describe()["running"]

    outcome = await running

    assert outcome == Failure("Timeout", "the run took longer than 1s")
    assert process_gone(entry["pid"])
    [run] = jobs.runs.list()
    assert run.id == entry["run"]
    assert (run.status, run.exit_code, run.error) == (
        "timed-out",
        None,
        "Timeout: the run took longer than 1s",
    )
    [announcement] = await jobs.announced()
    assert announcement.data["errorType"] == "Timeout"
    assert jobs.runner.describe() == {"running": []}


@pytest.mark.parametrize(
    ("what", "code", "how"), [("crash", 3, "exit code 3"), ("kill", -9, "killed by signal 9")]
)
async def test_a_run_that_dies_without_a_result_crashed(
    make_jobs: MakeJobs, what: str, code: int, how: str
) -> None:
    jobs = await make_jobs()

    outcome = await jobs.runner.deliver(jobs.ask(do=what), timeout=30)

    assert outcome == Failure("Crashed", f"the run ended without a result ({how})")
    [run] = jobs.runs.list()
    assert (run.status, run.exit_code) == ("failed", code)
    [announcement] = await jobs.announced()
    assert announcement.data["errorType"] == "Crashed"


async def test_at_most_scale_max_runs_are_in_flight(make_jobs: MakeJobs) -> None:
    jobs = await make_jobs(max=1)
    first = asyncio.create_task(jobs.runner.deliver(jobs.ask(started="s1", until="go"), timeout=30))
    second = asyncio.create_task(jobs.runner.deliver(jobs.ask(started="s2"), timeout=30))
    await wait_until((jobs.folder / "s1").exists, what="the first run to start")

    await wait_until(lambda: jobs.runner.workers() == 1, what="the first run to be booked")
    assert len(jobs.runs.list()) == 1  # the second has not even been recorded yet
    (jobs.folder / "go").touch()

    assert await asyncio.gather(first, second) == [Success([]), Success([])]
    assert [run.status for run in jobs.runs.list()] == ["succeeded", "succeeded"]


async def test_runs_up_to_scale_max_run_side_by_side(make_jobs: MakeJobs) -> None:
    jobs = await make_jobs(max=2)
    both = [
        asyncio.create_task(jobs.runner.deliver(jobs.ask(started=f"s{i}", until="go"), timeout=30))
        for i in (1, 2)
    ]
    await wait_until(
        lambda: (jobs.folder / "s1").exists() and (jobs.folder / "s2").exists(), what="both runs"
    )

    await wait_until(lambda: jobs.runner.workers() == 2, what="both runs to be booked")
    assert len({entry["pid"] for entry in jobs.runner.describe()["running"]}) == 2
    (jobs.folder / "go").touch()
    assert await asyncio.gather(*both) == [Success([]), Success([])]


async def test_a_failure_that_cannot_be_announced_is_still_the_runs_outcome(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    async def bus_down(event: Event) -> None:
        raise BusUnavailableError("the bus is down")

    jobs = await make_jobs(announce=bus_down)
    caplog.set_level(logging.WARNING, logger="cumulo.jobs")

    outcome = await jobs.runner.deliver(jobs.ask(do="fail"), timeout=30)

    assert outcome == Failure("ValueError", "boom")
    [run] = jobs.runs.list()
    assert run.status == "failed"
    assert f"run {run.id}: could not announce its failure: the bus is down" in caplog.text


# --- /fn/<job>: one CloudEvent over HTTP, answered when the run ends -------------


def structured(event: Event) -> tuple[dict[str, str], bytes]:
    return {"content-type": "application/cloudevents+json"}, to_json(event)


async def test_an_http_request_with_one_event_runs_it_and_answers_with_its_reply(
    make_jobs: MakeJobs,
) -> None:
    jobs = await make_jobs()
    headers, body = structured(jobs.ask(do="reply"))

    answer = await jobs.runner.request("POST", "/", headers, body, timeout=30)

    [run] = jobs.runs.list()
    assert answer.status == 200
    sent = dict(answer.headers)
    assert (sent["ce-type"], sent["ce-source"]) == ("model.trained", "/cumulo/functions/train")
    assert orjson.loads(answer.body) == {"run": run.id}
    assert run.status == "succeeded"


@pytest.mark.parametrize(
    ("what", "status", "error_type"),
    [("permanent", 422, "PermanentError"), ("fail", 500, "ValueError")],
)
async def test_an_http_request_whose_run_fails_gets_the_problem(
    make_jobs: MakeJobs, what: str, status: int, error_type: str
) -> None:
    jobs = await make_jobs()
    headers, body = structured(jobs.ask(do=what))

    answer = await jobs.runner.request("POST", "/", headers, body, timeout=30)

    assert answer.status == status
    assert dict(answer.headers)["content-type"] == "application/problem+json"
    assert orjson.loads(answer.body)["errorType"] == error_type
    assert len(await jobs.announced()) == 1  # failed as a delivery would: announced too


async def test_a_batch_over_http_is_refused_without_a_run(make_jobs: MakeJobs) -> None:
    jobs = await make_jobs()
    batch = orjson.dumps([orjson.loads(to_json(jobs.ask())) for _ in range(2)])

    answer = await jobs.runner.request(
        "POST", "/", {"content-type": "application/cloudevents-batch+json"}, batch, timeout=30
    )

    assert answer.status == 400
    problem = orjson.loads(answer.body)
    assert problem["type"].endswith("/one-event-per-run")
    assert problem["detail"] == "a job function runs one event at a time"
    assert jobs.runs.list() == []


async def test_a_request_that_is_no_cloudevent_is_refused_without_a_run(
    make_jobs: MakeJobs,
) -> None:
    jobs = await make_jobs()

    with pytest.raises(InvalidEventError):
        await jobs.runner.request(
            "POST", "/", {"content-type": "application/json"}, b'{"n": 1}', timeout=30
        )

    assert jobs.runs.list() == []


# --- reading what a run left behind ---------------------------------------------


def write(path: Path, document: Any) -> Path:
    path.write_bytes(document if isinstance(document, bytes) else orjson.dumps(document))
    return path


@pytest.mark.parametrize(
    ("code", "how"), [(0, "exit code 0"), (2, "exit code 2"), (-15, "killed by signal 15")]
)
def test_no_result_file_means_the_run_crashed(tmp_path: Path, code: int, how: str) -> None:
    assert read_result(tmp_path / "result.json", code) == Failure(
        "Crashed", f"the run ended without a result ({how})"
    )


def test_a_half_written_result_is_a_crash_too(tmp_path: Path) -> None:
    result = write(tmp_path / "result.json", b'{"status": "succ')

    assert read_result(result, 1).error_type == "Crashed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "document",
    [{"status": "done"}, {"status": "failed"}, ["success"], {"status": "retry", "message": "m"}],
    ids=["unknown-status", "missing-fields", "not-an-object", "retry-without-type"],
)
def test_a_result_that_is_not_an_outcome_is_an_invalid_result(
    tmp_path: Path, document: Any
) -> None:
    outcome = read_result(write(tmp_path / "result.json", document), 0)

    assert isinstance(outcome, Failure)
    assert outcome.error_type == "InvalidResult"
    assert outcome.message.startswith("the run's result is not an outcome: ")
    assert not outcome.permanent


def test_a_result_is_read_with_the_codec_the_job_wrote_it_with(tmp_path: Path) -> None:
    reply = new_event("model.trained", "/cumulo/functions/train", {"v": 1})
    document = {"status": "success", "replies": [orjson.loads(to_json(reply))]}

    outcome = read_result(write(tmp_path / "result.json", document), 0)

    assert outcome == Success([reply])


@pytest.mark.parametrize(
    ("outcome", "shown"),
    [
        (Success([]), ("succeeded", None)),
        (RetryLater("Retry", "later"), ("retrying", "Retry: later")),
        (Failure("ValueError", "boom"), ("failed", "ValueError: boom")),
        (Failure("Timeout", "too long"), ("timed-out", "Timeout: too long")),
        (RetryLater("Timeout", "too long"), ("timed-out", "Timeout: too long")),
    ],
)
def test_what_cumulo_runs_shows_for_each_outcome(
    outcome: Any, shown: tuple[str, str | None]
) -> None:
    assert run_status(outcome) == shown


def test_the_log_tail_is_the_last_lines_or_nothing(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("".join(f"{n}\n" for n in range(10)))

    assert log_tail(log, lines=3) == "7\n8\n9"
    assert log_tail(log) == "\n".join(str(n) for n in range(10))
    assert log_tail(tmp_path / "missing.txt") == ""
