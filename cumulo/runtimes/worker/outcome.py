"""Running a cloudevent function on an event, and what became of it.

The outcome types are :mod:`cumulo.events.outcome`'s, shared by the worker's
HTTP serving, jobs and the dispatcher.

``Retry(delay=)`` → :class:`RetryLater`; ``PermanentError`` (or an invalid
return value) → ``Failure(permanent=True)``; any other exception →
``Failure(permanent=False)``, which the trigger's policy retries. Unexpected
exceptions are logged with their traceback (to stderr when logging is not
configured).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import orjson

from cumulo.errors import InvalidEventError, PermanentError, Retry, RuntimeFailure
from cumulo.events import tracing
from cumulo.events.cloudevent import replies_from_result, to_sdk
from cumulo.events.event import Event, from_envelope, to_json
from cumulo.events.outcome import Failure, Outcome, RetryLater, Success
from cumulo.runtimes.worker.execution import executing
from cumulo.runtimes.worker.target import accepts_native_event, is_async_callable

log = logging.getLogger("cumulo.worker")


def function_source(name: str) -> str:
    """The default ``source`` of the events a function returns."""
    return f"/cumulo/functions/{name}"


def outcome_from_exception(error: BaseException, *, name: str, event: Event | None) -> Outcome:
    """Classify what a function raised; log unexpected errors with their traceback."""
    about = f"function {name!r}" + (f" on event {event.id!r}" if event is not None else "")
    if isinstance(error, Retry):
        log.info("%s asked to retry: %s", about, error)
        return RetryLater(type(error).__name__, str(error), error.delay)
    if isinstance(error, (PermanentError, InvalidEventError)):
        log.warning("%s failed permanently: %s", about, error)
        return Failure(type(error).__name__, str(error), permanent=True)
    log.error("%s raised %s", about, type(error).__name__, exc_info=error)
    return Failure(type(error).__name__, str(error) or type(error).__name__, permanent=False)


class CloudEventInvoker:
    """Calls one cloudevent function on events and turns what happens into an Outcome.

    Each call runs in the request's execution context (:mod:`~cumulo.runtimes.worker.execution`),
    from the request's headers when there are any.
    """

    def __init__(self, fn: Callable[..., Any], *, name: str):
        self.fn = fn
        self.name = name
        self.is_async = is_async_callable(fn)
        self.native = accepts_native_event(fn)
        self.source = function_source(name)

    def _argument(self, event: Event) -> Any:
        return event if self.native else to_sdk(event)

    def _success(self, result: Any, event: Event) -> Success:
        return Success(replies_from_result(result, default_source=self.source, cause=event))

    def run_raising(self, event: Event) -> Outcome:
        """Run a sync function here; only Cumulo's own errors become outcomes, others propagate."""
        try:
            with tracing.handling(event):
                return self._success(self.fn(self._argument(event)), event)
        except (Retry, PermanentError, InvalidEventError) as e:
            return outcome_from_exception(e, name=self.name, event=event)

    def call(self, event: Event, headers: Mapping[str, str] | None = None) -> Outcome:
        """Run a sync function to completion in this thread (an async one via ``asyncio.run``)."""
        if self.is_async:
            return asyncio.run(self.call_async(event, headers=headers))
        with executing(headers or {}):
            try:
                with tracing.handling(event):  # events made meanwhile join the event's trace
                    return self._success(self.fn(self._argument(event)), event)
            except Exception as e:
                return outcome_from_exception(e, name=self.name, event=event)

    async def call_async(
        self,
        event: Event,
        executor: Executor | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Outcome:
        """Await an async function; run a sync one in ``executor``."""
        if not self.is_async:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, self.call, event, headers)
        with executing(headers or {}):
            try:
                with tracing.handling(event):
                    return self._success(await self.fn(self._argument(event)), event)
            except Exception as e:
                return outcome_from_exception(e, name=self.name, event=event)

    async def call_each(
        self,
        events: Sequence[Event],
        executor: Executor | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Outcome, int | None]:
        """Process events in order, stopping at the first that does not succeed.

        Returns the combined :class:`Success`, or the failing outcome and its index:
        a batch is all-or-nothing, and redelivery repeats the whole of it.
        """
        replies: list[Event] = []
        for index, event in enumerate(events):
            outcome = await self.call_async(event, executor, headers)
            if not isinstance(outcome, Success):
                return outcome, index
            replies.extend(outcome.replies)
        return Success(replies), None


def invoke_cloudevent(fn: Callable[..., Any], event: Event, *, name: str) -> Outcome:
    """Run a cloudevent function on one event, here and now, and classify the outcome."""
    return CloudEventInvoker(fn, name=name).call(event)


# --- outcomes as JSON (job results) -------------------------------------------


def outcome_to_dict(outcome: Outcome) -> dict[str, Any]:
    """The JSON shape of an outcome: ``status`` success / retry / failed."""
    if isinstance(outcome, Success):
        return {"status": "success", "replies": [orjson.loads(to_json(e)) for e in outcome.replies]}
    if isinstance(outcome, RetryLater):
        return {
            "status": "retry",
            "delay": outcome.delay,
            "errorType": outcome.error_type,
            "message": outcome.message,
        }
    return {
        "status": "failed",
        "errorType": outcome.error_type,
        "message": outcome.message,
        "permanent": outcome.permanent,
    }


def outcome_from_dict(document: dict[str, Any]) -> Outcome:
    """The inverse of :func:`outcome_to_dict`."""
    status = document.get("status")
    if status == "success":
        return Success([from_envelope(envelope) for envelope in document.get("replies", [])])
    if status == "retry":
        return RetryLater(document["errorType"], document["message"], document.get("delay"))
    if status == "failed":
        return Failure(document["errorType"], document["message"], bool(document["permanent"]))
    raise RuntimeFailure(f"not an outcome: status {status!r}")
