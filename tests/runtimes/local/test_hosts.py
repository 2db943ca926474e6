"""Both kinds of function host keep the one protocol the platform and the gateway use."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from cumulo.events.event import Event
from cumulo.runtimes.local.hosts import FunctionHost, HttpAnswer
from cumulo.runtimes.local.jobs import JobRunner
from cumulo.runtimes.local.pool import ServicePool
from cumulo.runtimes.local.runs import RunStore
from cumulo.runtimes.local.template import Template
from cumulo.runtimes.local.wire import WireClient
from tests.runtimes.local.conftest import function_spec, template_config

MEMBERS = sorted(
    name
    for name, member in vars(FunctionHost).items()
    if inspect.isfunction(member) and not name.startswith("_")
)


def shape(function: object) -> tuple[bool, list[tuple[str, object, object]]]:
    """Whether it is a coroutine function, and its parameters (name, kind, default)."""
    parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    return inspect.iscoroutinefunction(function), [(p.name, p.kind, p.default) for p in parameters]


def test_the_protocol_names_what_the_platform_calls() -> None:
    assert MEMBERS == [
        "cold_starts",
        "deliver",
        "describe",
        "on_exit",
        "reload",
        "request",
        "scale_down_idle",
        "start",
        "stop",
        "workers",
    ]


@pytest.mark.parametrize("host", [ServicePool, JobRunner], ids=lambda c: c.__name__)
@pytest.mark.parametrize("member", MEMBERS)
def test_each_host_has_each_member_with_the_protocols_parameters(host: type, member: str) -> None:
    assert shape(getattr(host, member)) == shape(getattr(FunctionHost, member))


async def test_a_fresh_service_pool_runs_nothing_yet(tmp_path: Path) -> None:
    template = Template(template_config(tmp_path), on_exit=lambda pid, code: None)
    pool = ServicePool(function_spec("svc"), template, WireClient())

    assert pool.function.name == pool.name == "svc"
    assert (pool.workers(), pool.cold_starts()) == (0, 0)
    assert pool.describe() == {
        "replicas": [],
        "cold_starts": 0,
        "crashes": 0,
        "invocations": 0,
        "errors": 0,
        "recycled": 0,
        "solo_retries": 0,
        "reloads": 0,
    }
    await pool.scale_down_idle()
    await pool.stop()  # nothing to stop: returns at once
    assert pool.workers() == 0


async def test_a_job_runner_keeps_nothing_running_between_runs(tmp_path: Path) -> None:
    template = Template(template_config(tmp_path), on_exit=lambda pid, code: None)

    async def announce(event: Event) -> None:
        raise AssertionError("nothing failed, nothing to announce")

    runner = JobRunner(
        function_spec("train", mode="job"), template, RunStore(tmp_path / "runs.db"), announce
    )

    await runner.start()
    await runner.scale_down_idle()
    await runner.stop()

    assert runner.function.name == runner.name == "train"
    assert (runner.workers(), runner.cold_starts(), runner.describe()) == (0, None, {"running": []})
    assert not template.alive  # none of those started anything


def test_an_http_answer_is_a_value() -> None:
    answer = HttpAnswer(200, [("content-type", "text/plain")], b"ok")

    assert answer == HttpAnswer(200, [("content-type", "text/plain")], b"ok")
    with pytest.raises(AttributeError):
        answer.status = 500  # type: ignore[misc]
