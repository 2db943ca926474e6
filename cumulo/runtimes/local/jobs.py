"""Job-mode functions: one process per event, run to completion (how training runs).

Each run is forked from the function's template with the event in a file; it
writes its outcome to a result file and its output to the run's log. At most
``scale.max`` runs are in flight; a run past its timeout is killed, with the
subprocesses it started (its process group).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from cumulo.errors import CumuloError
from cumulo.events import tracing
from cumulo.events.cloudevent import events_from_http
from cumulo.events.event import Event, to_json
from cumulo.events.lineage import RUN_FAILED, Lineage, lineage_event
from cumulo.events.outcome import Failure, Outcome, RetryLater, Success
from cumulo.runtimes.local.hosts import HttpAnswer
from cumulo.runtimes.local.runs import Run, RunStore
from cumulo.runtimes.local.signals import signal_group
from cumulo.runtimes.local.template import Template
from cumulo.runtimes.worker import contract
from cumulo.runtimes.worker.outcome import outcome_from_dict
from cumulo.spec.models import Function

log = logging.getLogger("cumulo.jobs")


def run_status(outcome: Outcome) -> tuple[str, str | None]:
    """The run's status and error text, as ``cumulo runs`` shows them."""
    if isinstance(outcome, Success):
        return "succeeded", None
    error = f"{outcome.error_type}: {outcome.message}"
    if outcome.error_type == "Timeout":
        return "timed-out", error
    return ("retrying" if isinstance(outcome, RetryLater) else "failed"), error


Announce = Callable[[Event], Awaitable[object]]
LOG_TAIL_LINES = 40


class JobRunner:
    """Runs a job function's events; a failed run is announced as ``dev.cumulo.run.failed``."""

    def __init__(self, function: Function, template: Template, runs: RunStore, announce: Announce):
        self.function = function
        self.template = template
        self.runs = runs
        self.announce = announce
        self.running: dict[int, Run] = {}
        self._slots = asyncio.Semaphore(function.spec.scale.max)
        self._exits: dict[int, asyncio.Future[int]] = {}

    @property
    def name(self) -> str:
        return self.function.name

    # --- as a FunctionHost (see .hosts): a run is forked per event, nothing waits idle ----

    async def start(self) -> None:
        return None

    async def reload(self) -> None:
        """Runs started from now on import the new code; running ones finish on the old."""
        await self.template.reload()

    async def scale_down_idle(self) -> None:
        return None

    async def stop(self) -> None:
        return None  # the template takes its runs down with it

    def workers(self) -> int:
        return len(self.running)

    def cold_starts(self) -> int | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"running": [{"pid": pid, "run": run.id} for pid, run in self.running.items()]}

    async def request(
        self,
        method: str,
        path_and_query: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout: float,
    ) -> HttpAnswer:
        """``/fn/<name>`` of a job: the request carries one CloudEvent; the answer, when the
        run ends, is functions-framework's for its outcome (a 400 for a batch)."""
        events = events_from_http(headers, body)
        if len(events) != 1:
            detail = "a job function runs one event at a time"
            refused = contract.problem(400, "one-event-per-run", "One event per run", detail,
                                       "InvalidEventError")  # fmt: skip
            return _http_answer(refused)
        outcome = await self.deliver(events[0], timeout=timeout)
        return _http_answer(contract.outcome_response(outcome))

    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        async with self._slots:
            trace = tracing.trace_id_of(event)
            run = await asyncio.to_thread(self.runs.start, self.name, event.id, event.type, trace)
            outcome, code = await self._run(run, event, timeout)
            status, error = run_status(outcome)
            await asyncio.to_thread(self.runs.finish, run.id, status, code, error)
            if isinstance(outcome, Failure):
                await self._announce_failure(run, event, outcome)
            return outcome

    async def _announce_failure(self, run: Run, event: Event, failure: Failure) -> None:
        announcement = run_failed_event(self.name, run, event, failure)
        try:
            await self.announce(announcement)
        except CumuloError as e:  # the failure itself is still settled by the dispatcher
            log.warning("run %s: could not announce its failure: %s", run.id, e)

    async def _run(self, run: Run, event: Event, timeout: float) -> tuple[Outcome, int | None]:
        folder = Path(run.log).parent
        event_path, result_path = folder / "event.json", folder / "result.json"
        event_path.write_bytes(to_json(event))
        pid = await self.template.start_job(event_path, result_path, Path(run.log), run.id)
        self.running[pid] = run
        try:
            code = await asyncio.wait_for(asyncio.shield(self._exit_of(pid)), timeout)
        except TimeoutError:
            signal_group(pid, signal.SIGKILL)
            await self._exit_of(pid)
            return Failure("Timeout", f"the run took longer than {timeout:g}s"), None
        finally:
            self.running.pop(pid, None)
            self._exits.pop(pid, None)
        return read_result(result_path, code), code

    def _exit_of(self, pid: int) -> asyncio.Future[int]:
        return self._exits.setdefault(pid, asyncio.get_running_loop().create_future())

    def on_exit(self, pid: int, code: int) -> None:
        future = self._exit_of(pid)
        if not future.done():
            future.set_result(code)


def _http_answer(response: contract.Response) -> HttpAnswer:
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers]
    return HttpAnswer(response.status, headers, response.body)


def read_result(path: Path, code: int) -> Outcome:
    """The outcome a job wrote; a job that died without writing one crashed."""
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return Failure("Crashed", f"the run ended without a result ({how})")
    try:
        return outcome_from_dict(document)  # the codec job_main wrote it with
    except (KeyError, TypeError, AttributeError, CumuloError) as e:
        return Failure("InvalidResult", f"the run's result is not an outcome: {e!r}")


def run_failed_event(function: str, run: Run, event: Event, failure: Failure) -> Event:
    """``dev.cumulo.run.failed``: what failed, why, the log's tail and the chain's lineage."""
    data = {
        "function": function,
        "run": run.id,
        "event": event.id,
        "eventType": event.type,
        "errorType": failure.error_type,
        "message": failure.message,
        "permanent": failure.permanent,
        "logTail": log_tail(Path(run.log)),
    }
    lineage = Lineage.of(event).with_(run_id=run.id)
    announcement = lineage_event(RUN_FAILED, function, data, lineage, subject=function)
    return tracing.reply_of(event, announcement)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log (a whole log is read: run logs are small)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
