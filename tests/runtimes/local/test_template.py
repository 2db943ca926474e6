"""The supervisor's handle on a template process: start, fork workers and jobs, report exits,
restart after the template dies, stop. Every template here is a real process importing a
function written to ``tmp_path``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import urllib.request
from pathlib import Path

import pytest

from cumulo.errors import WorkerStartError
from cumulo.events.event import new_event, to_json
from cumulo.runtimes.local.template import Template
from tests.runtimes.local.conftest import (
    Eventually,
    StartTemplate,
    process_gone,
    template_config,
)

pytestmark = pytest.mark.timeout(60)

HTTP_FUNCTION = """
import os

print("imported once, in the template", flush=True)


def handle(request):
    print(f"serving {request.path}", flush=True)
    return {"pid": os.getpid(), "setting": os.environ.get("FN_SETTING"),
            "leaked": os.environ.get("PLATFORM_ONLY")}
"""

CLOUDEVENT_FUNCTION = """
import functions_framework


@functions_framework.cloud_event
def handle(event):
    print(f"job got {event['id']}", flush=True)
"""


def get_json(port: int, path: str = "/") -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
        return json.loads(answer.read())


async def fetch(port: int, path: str = "/") -> dict[str, object]:
    return await asyncio.to_thread(get_json, port, path)


async def test_the_template_says_which_signature_it_serves(start_template: StartTemplate) -> None:
    template, _ = await start_template(CLOUDEVENT_FUNCTION)

    assert template.signature == "cloudevent"
    assert template.alive and template.pid is not None


async def test_a_signature_set_in_the_spec_wins_over_detection(
    start_template: StartTemplate,
) -> None:
    template, _ = await start_template(HTTP_FUNCTION, signature="cloudevent")

    assert template.signature == "cloudevent"


async def test_output_at_import_goes_to_the_log_not_into_the_protocol(
    start_template: StartTemplate, tmp_path: Path
) -> None:
    template, _ = await start_template(HTTP_FUNCTION)

    assert template.signature == "http"  # the first reply was still read as Ready
    assert "imported once, in the template" in (tmp_path / "fn.log").read_text()


async def test_a_target_that_does_not_load_fails_the_start_naming_why_and_the_log(
    start_template: StartTemplate, tmp_path: Path
) -> None:
    with pytest.raises(WorkerStartError) as refused:
        await start_template(HTTP_FUNCTION, target="main:nowhere")

    message = str(refused.value)
    assert message.startswith("function fn: TargetError")
    assert "nowhere" in message
    assert f"(see {tmp_path / 'fn.log'})" in message


async def test_a_template_that_exits_while_starting_fails_the_start(
    start_template: StartTemplate,
) -> None:
    with pytest.raises(WorkerStartError, match="the template exited on start"):
        await start_template("import os\nos._exit(0)\n")


async def test_each_worker_serves_on_its_own_port_and_logs_to_the_functions_log(
    start_template: StartTemplate, tmp_path: Path
) -> None:
    template, _ = await start_template(HTTP_FUNCTION)

    (first, first_port), (second, second_port) = [await template.spawn_worker() for _ in range(2)]

    assert first != second and first_port != second_port
    assert (await fetch(first_port, "/a"))["pid"] == first
    assert (await fetch(second_port, "/b"))["pid"] == second
    log = (tmp_path / "fn.log").read_text()
    assert "serving /a" in log and "serving /b" in log


async def test_the_function_runs_with_the_environment_it_was_given_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_ONLY", "not for functions")
    (tmp_path / "main.py").write_text(HTTP_FUNCTION)
    env = {"PATH": os.environ["PATH"], "FN_SETTING": "from the spec"}
    config = template_config(tmp_path).model_copy(update={"env": tuple(env.items())})
    template = Template(config, on_exit=lambda pid, code: None)
    await template.start()
    try:
        _, port = await template.spawn_worker()
        seen = await fetch(port)
    finally:
        await template.stop()

    assert seen["setting"] == "from the spec"
    assert seen["leaked"] is None


async def test_a_workers_exit_is_reported_with_its_code(
    start_template: StartTemplate, eventually: Eventually
) -> None:
    template, exits = await start_template(HTTP_FUNCTION)
    pid, _ = await template.spawn_worker()

    os.kill(pid, signal.SIGTERM)
    await eventually(lambda: bool(exits), what="the exit report")

    assert exits[0][0] == pid
    assert exits[0][1] in (0, -signal.SIGTERM)  # shut down cleanly, or ended by the signal


async def test_a_job_runs_its_event_writes_its_result_and_is_reported(
    start_template: StartTemplate, tmp_path: Path, eventually: Eventually
) -> None:
    template, exits = await start_template(CLOUDEVENT_FUNCTION)
    event_file, result, log = (
        tmp_path / "event.json",
        tmp_path / "result.json",
        tmp_path / "run.log",
    )
    event_file.write_bytes(to_json(new_event("test.job", "/tests", {"n": 1}, id="job-1")))

    pid = await template.start_job(event_file, result, log, "run-1")
    await eventually(lambda: bool(exits), what="the job to end")

    assert exits == [(pid, 0)]
    assert json.loads(result.read_bytes()) == {"status": "success", "replies": []}
    assert "job got job-1" in log.read_text()


async def test_nothing_is_forked_without_a_running_template(tmp_path: Path) -> None:
    template = Template(template_config(tmp_path), on_exit=lambda pid, code: None)

    assert not template.alive and template.pid is None
    with pytest.raises(WorkerStartError, match="the template is not running"):
        await template.spawn_worker()
    with pytest.raises(WorkerStartError, match="the template is not running"):
        await template.start_job(tmp_path / "e", tmp_path / "r", tmp_path / "l", "run")
    await template.stop()  # stopping one never started is a no-op


async def test_stop_ends_the_template_and_its_children_and_reports_them(
    start_template: StartTemplate, eventually: Eventually
) -> None:
    template, exits = await start_template(HTTP_FUNCTION)
    workers = [pid for pid, _ in [await template.spawn_worker() for _ in range(2)]]

    await template.stop()

    assert not template.alive and template.pid is None
    assert sorted(exits) == sorted((pid, -9) for pid in workers)
    await eventually(lambda: all(map(process_gone, workers)), what="the workers to go")


async def test_a_template_killed_takes_its_workers_along_and_is_restarted(
    start_template: StartTemplate, eventually: Eventually
) -> None:
    template, exits = await start_template(HTTP_FUNCTION)
    worker, port = await template.spawn_worker()
    assert (await fetch(port))["pid"] == worker  # serving: past its start-up
    first = template.pid
    assert first is not None

    os.kill(first, signal.SIGKILL)
    await eventually(lambda: (worker, -9) in exits, what="the orphaned worker's report")
    await eventually(lambda: process_gone(worker), what="the worker to die with its parent")
    await eventually(lambda: template.alive, what="the restart")

    assert template.pid != first
    _, port = await template.spawn_worker()  # the new template forks as the old one did
    assert (await fetch(port))["setting"] is None


async def test_a_restart_that_fails_is_tried_again_later(
    start_template: StartTemplate,
    tmp_path: Path,
    eventually: Eventually,
    caplog: pytest.LogCaptureFixture,
) -> None:
    template, _ = await start_template(HTTP_FUNCTION)
    pid = template.pid
    assert pid is not None
    (tmp_path / "main.py").write_text("raise RuntimeError('broken for now')\n")
    caplog.set_level(logging.ERROR, logger="cumulo.template")

    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: "could not restart" in caplog.text, what="a failed restart")
    await eventually(lambda: not template.alive, what="the failed try to exit")
    assert "broken for now" in caplog.text
    (tmp_path / "main.py").write_text(HTTP_FUNCTION)

    await eventually(lambda: template.alive, what="the next try")
    assert template.signature == "http"


async def test_a_template_that_exits_with_requests_waiting_fails_them(
    start_template: StartTemplate, eventually: Eventually
) -> None:
    # SIGSTOP holds the template so the request waits; SIGKILL then ends it unanswered.
    template, _ = await start_template(HTTP_FUNCTION)
    pid = template.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    asked = asyncio.create_task(template.spawn_worker())
    await asyncio.sleep(0)  # the command is written before the template is killed

    os.kill(pid, signal.SIGKILL)

    with pytest.raises(WorkerStartError, match="template died"):
        await asyncio.wait_for(asked, 30)


def test_the_settings_travel_as_json_without_the_environment(tmp_path: Path) -> None:
    config = template_config(tmp_path, concurrency=3).model_copy(
        update={"env": (("SECRET", "s3cr3t-value"),)}
    )

    settings = json.loads(config.to_json())

    assert "env" not in settings and "s3cr3t-value" not in config.to_json()
    assert settings["concurrency"] == 3
    assert settings["target"] == "main:handle"
