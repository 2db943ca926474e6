"""The pre-warmed template process: imports a function once, then forks on request.

Forking a process that has already imported the function (and Flask, uvicorn,
the user's libraries) is what keeps cold starts short. It is started as
``python -m cumulo.runtimes.local.forkserver SETTINGS_JSON`` and speaks the typed
messages of :mod:`.forkserver_messages`, one per line: commands on stdin,
replies on a private copy of stdout (the real stdout and stderr go to the
function's log, so ``print`` in user code cannot garble the protocol).

On ``Reload`` (the project's code changed under ``cumulo up``) the template
imports the function again in place: the libraries it imported stay loaded, so
this takes milliseconds, and what it forks from then on runs the new code. When
the new code does not load, the template keeps the old one and says where the
new one failed, as ``file:line: message``.

A closed stdin means the platform is gone: the template kills its children and
exits. Children die with the template (parent-death signal), so ``kill -9`` of
the platform leaves no orphans. Each child leads a process group of its own;
when it exits, whatever is left in its group (subprocesses user code started)
is killed too.

The template and its children run with the environment the supervisor gave the
template: the function's own (:mod:`cumulo.runtimes.local.environment`).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import selectors
import signal
import socket
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from cumulo.runtimes.local.forkserver_messages import (
    Exited,
    JobStarted,
    Message,
    Ready,
    Reload,
    Reloaded,
    ReloadFailed,
    Spawn,
    Spawned,
    StartFailed,
    StartJob,
    TemplateSettings,
    encode,
    read_command,
)
from cumulo.runtimes.local.signals import signal_group
from cumulo.runtimes.worker.app import build_app
from cumulo.runtimes.worker.job import job_main
from cumulo.runtimes.worker.serve import preload, serve
from cumulo.runtimes.worker.target import LoadedFunction, load_function, serving_signature
from cumulo.spec.decorated import forget_bytecode, is_project_module

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: closed stdin still cleans up
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ForkServer:
    def __init__(self, settings: TemplateSettings, replies: int):
        self.settings = settings
        self.replies = replies
        self.project = Path(settings.source).absolute()
        # done once here rather than in each forked worker: what uvicorn imports when it
        # starts, and the app (its thread pool is made on first use: each child has its own)
        preload()
        self.function, self.signature, self.app = self.load()
        self.children: set[int] = set()

    def load(self) -> tuple[LoadedFunction, str, Any]:
        """Import the function and build the app its workers serve."""
        function = load_function(self.settings.target, Path(self.settings.source))
        signature = serving_signature(function.fn, self.settings.signature)
        app = build_app(
            function,
            signature=signature,
            name=self.settings.name,
            concurrency=self.settings.concurrency,
            max_body_bytes=self.settings.max_body_bytes,
        )
        return function, signature, app

    @property
    def sources(self) -> tuple[str, ...]:
        """The project's own files that are imported here."""
        return tuple(
            sorted(
                str(Path(m.__file__).absolute())
                for m in self.project_modules().values()
                if m.__file__
            )
        )

    def project_modules(self) -> dict[str, ModuleType]:
        return {
            name: module
            for name, module in list(sys.modules.items())
            if is_project_module(name, module, self.project)
        }

    def send(self, message: Message) -> None:
        os.write(self.replies, encode(message))

    def handle(self, command: Spawn | StartJob | Reload) -> None:
        if isinstance(command, Spawn):
            self.spawn_worker(command.id)
        elif isinstance(command, Reload):
            self.reload(command.id)
        else:
            self.start_job(command)

    def reload(self, request_id: int) -> None:
        """Import the project's modules afresh; on failure put the old ones back."""
        old = self.project_modules()
        for name in old:
            del sys.modules[name]
        forget_bytecode(m.__file__ for m in old.values() if m.__file__)  # a same-second edit
        importlib.invalidate_caches()
        try:
            self.function, self.signature, self.app = self.load()
        except Exception as e:
            for name in self.project_modules():
                del sys.modules[name]
            sys.modules.update(old)
            self.send(ReloadFailed(id=request_id, error=where_it_failed(e, self.project)))
            return
        self.send(Reloaded(id=request_id, signature=self.signature, sources=self.sources))

    def spawn_worker(self, request_id: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)  # connections wait in the backlog while the child starts
        pid = self.fork(lambda: self.run_worker(sock), self.settings.log)
        self.send(Spawned(id=request_id, pid=pid, port=sock.getsockname()[1]))
        sock.close()

    def run_worker(self, sock: socket.socket) -> int:
        serve(self.app, sock=sock)
        return 0

    def start_job(self, command: StartJob) -> None:
        def run() -> int:
            return job_main(
                self.function,
                signature=self.signature,
                name=self.settings.name,
                event_path=Path(command.event),
                result_path=Path(command.result),
                run_id=command.run,
            )

        pid = self.fork(run, command.log)
        self.send(JobStarted(id=command.id, pid=pid))

    def fork(self, run: Any, log_path: str | Path) -> int:
        template = os.getpid()
        pid = os.fork()
        if pid:
            with contextlib.suppress(OSError):  # the child does the same: no race either way
                os.setpgid(pid, pid)
            self.children.add(pid)
            return pid
        code = 1
        try:
            become_child(log_path, self.replies, template)
            code = run()
        finally:
            os._exit(code)

    def reap(self) -> None:
        while self.children:
            try:
                exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if exited is None:
                return
            pid = exited.si_pid
            signal_group(pid, signal.SIGKILL)  # what it started dies with it (pid not reaped yet)
            _, status = os.waitpid(pid, 0)
            self.children.discard(pid)
            self.send(Exited(pid=pid, code=os.waitstatus_to_exitcode(status)))

    def shutdown(self) -> None:
        for pid in list(self.children):
            signal_group(pid, signal.SIGKILL)


def where_it_failed(error: BaseException, project: Path) -> str:
    """``file:line: Type: message`` where the project's own code failed (following the
    chain of causes: the loader wraps what the import raised); the error alone otherwise."""
    for cause in reversed(_causes(error)):
        if isinstance(cause, SyntaxError) and cause.filename and _inside(cause.filename, project):
            what = f"{type(cause).__name__}: {cause.msg}"
            return f"{_shown(cause.filename, project)}:{cause.lineno}: {what}"
        own = [f for f in traceback.extract_tb(cause.__traceback__) if _inside(f.filename, project)]
        if own:
            what = f"{type(cause).__name__}: {cause}"
            return f"{_shown(own[-1].filename, project)}:{own[-1].lineno}: {what}"
    return f"{type(error).__name__}: {error}"


def _causes(error: BaseException) -> list[BaseException]:
    chain = [error]
    while (cause := chain[-1].__cause__) is not None and cause not in chain:
        chain.append(cause)
    return chain


def _inside(file: str, project: Path) -> bool:
    path = Path(file).absolute()
    return path.is_relative_to(project) and "site-packages" not in path.parts


def _shown(file: str, project: Path) -> str:
    path = Path(file).absolute()
    return str(path.relative_to(project)) if path.is_relative_to(project) else file


def become_child(log_path: str | Path, replies: int, template: int) -> None:
    """Reset what the template set up, lead a process group, and send output to the log.

    A template killed between the fork and ``die_with_parent`` would leave this
    child behind (the request to die with it came too late): it exits instead."""
    os.setpgid(0, 0)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    die_with_parent()
    if os.getppid() != template:
        os._exit(1)
    os.close(replies)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.close(null_fd)


def redirect_output(log_path: str | Path) -> int:
    """Keep a private copy of stdout for replies; point fds 1 and 2 at the log."""
    replies = os.dup(1)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return replies


def serve_commands(server: ForkServer) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "commands")
    selector.register(wake_r, selectors.EVENT_READ, "children")
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.data == "children":
                os.read(wake_r, 4096)
                server.reap()
                continue
            chunk = os.read(0, 65536)
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                server.handle(read_command(line))


def main() -> None:
    settings = TemplateSettings.model_validate_json(sys.argv[1])
    die_with_parent()
    replies = redirect_output(settings.log)
    try:
        server = ForkServer(settings, replies)
    except Exception as e:  # tell the supervisor why, then give up
        error = where_it_failed(e, Path(settings.source).absolute())
        os.write(replies, encode(StartFailed(error=error)))
        raise SystemExit(1) from e
    server.send(Ready(signature=server.signature, sources=server.sources))
    try:
        serve_commands(server)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
