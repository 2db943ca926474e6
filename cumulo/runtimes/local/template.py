"""The supervisor's handle on a function's pre-warmed template process.

See :mod:`cumulo.runtimes.local.forkserver` for the other end of the pipe. The
template runs with the function's own environment only
(:mod:`cumulo.runtimes.local.environment`), and so does everything it forks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from cumulo.errors import ReloadError, WorkerStartError
from cumulo.runtimes.local.forkserver_messages import (
    Exited,
    JobStarted,
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
    read_reply,
)

log = logging.getLogger("cumulo.template")

START_TIMEOUT_SECONDS = 60.0  # also bounds a spawn or a reload
RESTART_DELAY_SECONDS = 0.5
MAX_RESTART_DELAY_SECONDS = 30.0


Answer = Spawned | JobStarted | Reloaded | ReloadFailed  # a reply to one command


def _paths(sources: tuple[str, ...]) -> frozenset[Path]:
    return frozenset(Path(source) for source in sources)


class TemplateConfig(TemplateSettings):
    """The template's settings, and the environment it runs with (the function's own)."""

    env: tuple[tuple[str, str], ...] = ()  # the function's whole environment: nothing else

    def to_json(self) -> str:
        """The template's one argument: its settings (the environment travels apart)."""
        return self.model_dump_json(exclude={"env"})


class Template:
    """Starts the template, asks it to fork, and reports its children's exits."""

    def __init__(self, config: TemplateConfig, on_exit: Callable[[int, int], None]):
        self.config = config
        self.on_exit = on_exit
        self.signature: str | None = None
        self.sources: frozenset[Path] = frozenset()  # the project's files its import loaded
        self._process: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Answer]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        self._restarter: asyncio.Task[None] | None = None
        self._children: set[int] = set()  # what it forked that has not exited yet

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.alive and self._process else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cumulo.runtimes.local.forkserver",
            self.config.to_json(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=dict(self.config.env),
        )
        assert self._process.stdout is not None
        first = await asyncio.wait_for(self._process.stdout.readline(), START_TIMEOUT_SECONDS)
        ready = read_reply(first) if first else StartFailed(error="the template exited on start")
        if not isinstance(ready, Ready):
            error = ready.error if isinstance(ready, StartFailed) else f"said {ready.kind} first"
            raise WorkerStartError(f"function {self.config.name}: {error} (see {self.config.log})")
        self.signature, self.sources = ready.signature, _paths(ready.sources)
        self._reader = asyncio.create_task(self._read_replies())

    async def spawn_worker(self) -> tuple[int, int]:
        """Fork a service worker; its pid and the port it is (about to be) serving on."""
        reply = await self._request(lambda id: Spawn(id=id))
        assert isinstance(reply, Spawned)
        self._children.add(reply.pid)
        return reply.pid, reply.port

    async def start_job(self, event: Path, result: Path, log_path: Path, run_id: str) -> int:
        reply = await self._request(
            lambda id: StartJob(
                id=id, event=str(event), result=str(result), log=str(log_path), run=run_id
            )
        )
        assert isinstance(reply, JobStarted)
        self._children.add(reply.pid)
        return reply.pid

    async def reload(self) -> None:
        """Import the function's code again; what is forked next runs it.

        Raises :class:`ReloadError` (``file:line: message``) when the new code does
        not load: the template then keeps serving the code it had."""
        reply = await self._request(lambda id: Reload(id=id))
        if isinstance(reply, ReloadFailed):
            raise ReloadError(f"function {self.config.name}: {reply.error}")
        assert isinstance(reply, Reloaded)
        self.signature, self.sources = reply.signature, _paths(reply.sources)

    async def stop(self) -> None:
        if self._process is None:
            return
        self._stopping = True
        if self._process.stdin and not self._process.stdin.is_closing():
            self._process.stdin.close()  # the template kills its children and exits
        try:
            await asyncio.wait_for(self._process.wait(), 5.0)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        for task in (self._reader, self._restarter):
            if task:
                task.cancel()

    async def _request(self, command: Callable[[int], Spawn | StartJob | Reload]) -> Answer:
        """Send the command made for a fresh request id; the template's answer to it."""
        if not self.alive:
            raise WorkerStartError(f"function {self.config.name}: the template is not running")
        request_id = next(self._ids)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(encode(command(request_id)))
        try:
            return await asyncio.wait_for(future, START_TIMEOUT_SECONDS)
        finally:
            self._waiting.pop(request_id, None)

    async def _read_replies(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while line := await self._process.stdout.readline():
            reply = read_reply(line)
            if isinstance(reply, Exited):
                self._children.discard(reply.pid)
                self.on_exit(reply.pid, reply.code)
            elif (
                isinstance(reply, Spawned | JobStarted | Reloaded | ReloadFailed)
                and (future := self._waiting.get(reply.id))
                and not future.done()
            ):
                future.set_result(reply)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(
                    WorkerStartError(f"function {self.config.name}: template died")
                )
        self._report_orphans()
        if not self._stopping:
            log.warning(
                "template of %s exited (code %s); restarting it",
                self.config.name,
                self._process.returncode,
            )
            self._restarter = asyncio.create_task(self._restart())

    def _report_orphans(self) -> None:
        """The template is gone, and its children with it (parent-death signal): say so."""
        for pid in sorted(self._children):
            self.on_exit(pid, -9)
        self._children.clear()

    async def _restart(self) -> None:
        """Start the template again, backing off while it keeps failing."""
        delay = RESTART_DELAY_SECONDS
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self.start()
                return
            except (WorkerStartError, OSError, TimeoutError) as e:
                log.error("template of %s could not restart: %s", self.config.name, e)
                delay = min(delay * 2, MAX_RESTART_DELAY_SECONDS)
