"""``cumulo job``: deliver one event to a job function, then exit — the pod of a KEDA ScaledJob.

KEDA starts one Job per waiting event of a training function (see
:mod:`cumulo.manifests.functions`). Its pod runs this: for each of the
function's triggers in turn, the trigger's dispatcher leases one matching event
from the bus (consumer group ``trigger/<name>``, as under ``cumulo up``), runs
the function here, to completion, and settles the event by the trigger's
delivery policy: ack with the events the function returned, retry later, or
dead-letter. The exit code says what happened (0 success or nothing to do, 75
retry later, 1 failure), but the bus already knows: the Job need not be retried.

A group that does not exist yet starts at the beginning of its topic, so the
events that made KEDA start the first Job are not skipped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from cumulo.config import Settings
from cumulo.context import running
from cumulo.events.dispatcher import TriggerDispatcher
from cumulo.events.event import Event
from cumulo.events.outcome import Outcome
from cumulo.runtimes.local.wiring import open_bus
from cumulo.runtimes.worker.job import EXIT_SUCCESS, exit_code, run_job
from cumulo.spec import Project
from cumulo.spec.models import Function


class InProcessJob:
    """A destination that runs the function in this process (the pod is the sandbox)."""

    def __init__(self, fn: Callable[..., Any], function: Function):
        self.fn = fn
        self.function = function

    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        return await asyncio.wait_for(asyncio.to_thread(self._run, event), timeout)

    def _run(self, event: Event) -> Outcome:
        run_id = f"{self.function.name}-{uuid.uuid4().hex[:10]}"
        with running(run_id):
            return run_job(
                self.fn,
                signature=self.function.spec.signature,
                name=self.function.name,
                event=event,
            )


async def deliver_one(
    project: Project, function: Function, fn: Callable[..., Any], settings: Settings
) -> Outcome | None:
    """The outcome of the one event delivered, or None when no trigger had one waiting."""
    destination = InProcessJob(fn, function)
    state = settings.state_path(project.root)
    for trigger in project.all_triggers().values():
        if trigger.spec.function != function.name:
            continue
        bus = open_bus(project.buses[trigger.spec.bus], project.root, state, settings)
        async with bus:
            dispatcher = TriggerDispatcher(
                bus, trigger, destination, function_timeout=function.spec.timeout, concurrency=1
            )
            outcome = await dispatcher.deliver_one(start="earliest")
        if outcome is not None:
            return outcome
    return None


def job_pod_main(project: Project, name: str, fn: Callable[..., Any], settings: Settings) -> int:
    """Run :func:`deliver_one`; the pod's exit code."""
    outcome = asyncio.run(deliver_one(project, project.functions[name], fn, settings))
    return EXIT_SUCCESS if outcome is None else exit_code(outcome)
