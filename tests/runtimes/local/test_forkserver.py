"""The template process itself (``python -m cumulo.runtimes.local.forkserver``), driven over
its pipes with the typed messages, as the supervisor drives it: what it answers, what its
children are, and what is left when they or it go away."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cumulo.events.event import new_event, to_json
from cumulo.runtimes.local.forkserver_messages import (
    Exited,
    JobStarted,
    Ready,
    Reload,
    Reloaded,
    ReloadFailed,
    Reply,
    Spawn,
    Spawned,
    StartFailed,
    StartJob,
    TemplateSettings,
    encode,
    read_reply,
)
from tests.runtimes.local.conftest import process_gone

pytestmark = pytest.mark.timeout(60)

FUNCTIONS = """
import os
import subprocess

import functions_framework

from cumulo.errors import Retry


def web(request):
    if request.path == "/spawn":  # a subprocess of the user's, as a library might start
        child = subprocess.Popen(["sleep", "60"])
        return {"child": child.pid, "group": os.getpgid(0)}
    return {"pid": os.getpid()}


@functions_framework.cloud_event
def job(event):
    what = event.data["do"]
    if what == "retry":
        raise Retry("later")
    if what == "fail":
        raise ValueError("no")
    print("job ran", flush=True)
"""


def wait_for(check: Callable[[], bool], timeout: float = 15.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class ForkServer:
    """A template process on pipes: send commands, read replies (each wait bounded)."""

    def __init__(self, folder: Path, target: str):
        settings = TemplateSettings(name="fn", target=target, source=folder, log=folder / "fn.log")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cumulo.runtimes.local.forkserver", settings.model_dump_json()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.pending = b""

    def send(self, command: Spawn | StartJob | Reload) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(encode(command))
        self.process.stdin.flush()

    def reply(self, timeout: float = 30.0) -> Reply:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            ready, _, _ = select.select(
                [self.process.stdout], [], [], max(deadline - time.monotonic(), 0)
            )
            if not ready:
                raise AssertionError("the template did not answer in time")
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError("the template closed its replies")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return read_reply(line)

    def exited(self, pid: int) -> Exited:
        """The next reply, which must be ``pid``'s exit."""
        reply = self.reply()
        assert isinstance(reply, Exited) and reply.pid == pid, reply
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[str], ForkServer]]:
    (tmp_path / "main.py").write_text(FUNCTIONS)
    servers: list[ForkServer] = []

    def launch(target: str) -> ForkServer:
        servers.append(ForkServer(tmp_path, target))
        return servers[-1]

    yield launch
    for server in servers:
        server.close()


def serving(port: int, path: str = "/") -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
        return json.loads(answer.read())


def test_it_says_ready_with_the_signature_once_the_function_is_imported(
    start, tmp_path: Path
) -> None:
    server = start("main:web")

    assert server.reply() == Ready(signature="http", sources=(str(tmp_path / "main.py"),))


def test_a_function_that_cannot_be_loaded_is_reported_and_the_template_exits(start) -> None:
    server = start("main:absent")

    reply = server.reply()

    assert isinstance(reply, StartFailed)
    assert reply.error.startswith("TargetError: ")
    assert server.process.wait(15) == 1


def test_a_spawned_worker_leads_its_own_group_and_serves_on_the_port_it_was_given(start) -> None:
    server = start("main:web")
    server.reply()

    server.send(Spawn(id=7))
    spawned = server.reply()

    assert isinstance(spawned, Spawned) and spawned.id == 7
    assert os.getpgid(spawned.pid) == spawned.pid
    assert serving(spawned.port) == {"pid": spawned.pid}


def test_a_workers_exit_is_reported_with_the_signal_that_ended_it(start) -> None:
    server = start("main:web")
    server.reply()
    server.send(Spawn(id=1))
    spawned = server.reply()
    assert isinstance(spawned, Spawned)

    os.kill(spawned.pid, signal.SIGKILL)

    assert server.exited(spawned.pid).code == -signal.SIGKILL


def test_what_a_worker_started_dies_with_it(start) -> None:
    server = start("main:web")
    server.reply()
    server.send(Spawn(id=1))
    spawned = server.reply()
    assert isinstance(spawned, Spawned)
    started = serving(spawned.port, "/spawn")
    assert started["group"] == spawned.pid  # the user's subprocess is in the worker's group

    os.kill(spawned.pid, signal.SIGKILL)
    server.exited(spawned.pid)

    wait_for(lambda: process_gone(started["child"]), what="the worker's subprocess to be killed")


def test_a_closed_stdin_ends_the_template_and_kills_its_children(start) -> None:
    server = start("main:web")
    server.reply()
    server.send(Spawn(id=1))
    spawned = server.reply()
    assert isinstance(spawned, Spawned)
    serving(spawned.port)

    server.close()

    assert server.process.returncode == 0
    wait_for(lambda: process_gone(spawned.pid), what="the worker to be killed")


def test_a_killed_template_takes_its_children_along(start) -> None:
    server = start("main:web")
    server.reply()
    server.send(Spawn(id=1))
    spawned = server.reply()
    assert isinstance(spawned, Spawned)
    serving(spawned.port)  # serving: its parent-death signal is set

    server.process.kill()
    server.process.wait(10)

    wait_for(lambda: process_gone(spawned.pid), what="the worker to die with its parent")


@pytest.mark.parametrize(("what", "code"), [("ok", 0), ("retry", 75), ("fail", 1)])
def test_a_job_exits_with_the_code_of_its_outcome(
    start, tmp_path: Path, what: str, code: int
) -> None:
    server = start("main:job")
    assert server.reply() == Ready(signature="cloudevent", sources=(str(tmp_path / "main.py"),))
    event_file = tmp_path / "event.json"
    event_file.write_bytes(to_json(new_event("test.job", "/tests", {"do": what})))
    result, log = tmp_path / "result.json", tmp_path / "run.log"

    server.send(StartJob(id=3, event=str(event_file), result=str(result), log=str(log), run="r-1"))
    started = server.reply()

    assert isinstance(started, JobStarted) and started.id == 3
    assert server.exited(started.pid).code == code
    status = json.loads(result.read_bytes())["status"]
    assert status == {"ok": "success", "retry": "retry", "fail": "failed"}[what]
    assert ("job ran" in log.read_text()) == (what == "ok")  # the job's output: its own log


def spawn_and_ask(server: ForkServer, request_id: int) -> dict[str, int]:
    server.send(Spawn(id=request_id))
    spawned = server.reply()
    assert isinstance(spawned, Spawned)
    return serving(spawned.port, "/version")


VERSIONED = """
import helper


def web(request):
    return {"version": helper.VERSION}
"""


def test_a_reload_imports_the_changed_code_and_what_it_forks_next_runs_it(
    start, tmp_path: Path
) -> None:
    (tmp_path / "main.py").write_text(VERSIONED)
    (tmp_path / "helper.py").write_text("VERSION = 1\n")
    server = start("main:web")
    ready = server.reply()
    assert isinstance(ready, Ready) and str(tmp_path / "helper.py") in ready.sources
    assert spawn_and_ask(server, 1) == {"version": 1}

    (tmp_path / "helper.py").write_text("VERSION = 2\n")  # same size, same second
    server.send(Reload(id=2))
    reloaded = server.reply()

    assert isinstance(reloaded, Reloaded) and reloaded.id == 2 and reloaded.signature == "http"
    assert spawn_and_ask(server, 3) == {"version": 2}


def test_code_that_no_longer_imports_is_reported_where_it_fails_and_the_old_code_stays(
    start, tmp_path: Path
) -> None:
    (tmp_path / "main.py").write_text(VERSIONED)
    (tmp_path / "helper.py").write_text("VERSION = 1\n")
    server = start("main:web")
    server.reply()

    (tmp_path / "helper.py").write_text("VERSION = 1\nVERSION +\n")
    server.send(Reload(id=1))
    failed = server.reply()
    assert failed == ReloadFailed(id=1, error="helper.py:2: SyntaxError: invalid syntax")
    assert spawn_and_ask(server, 2) == {"version": 1}

    (tmp_path / "helper.py").write_text("VERSION = 1 / 0\n")
    server.send(Reload(id=3))
    failed = server.reply()
    assert failed == ReloadFailed(id=3, error="helper.py:1: ZeroDivisionError: division by zero")
    assert spawn_and_ask(server, 4) == {"version": 1}
