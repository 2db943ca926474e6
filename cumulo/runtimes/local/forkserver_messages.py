"""What the supervisor and a function's template process say to each other, typed.

One JSON object per line, each with its ``kind``; both sides encode with
:func:`encode` and decode with :func:`read_command` / :func:`read_reply`, so
a field renamed on one side is a validation error on the other, not a
``KeyError`` at some later line. The template's start-up settings travel as
:class:`TemplateSettings` (its one command-line argument).

    supervisor → template                     template → supervisor
    Spawn(id)                                 Spawned(id, pid, port)
    StartJob(id, event, result, log, run)     JobStarted(id, pid)
    Reload(id)                                Reloaded(id, signature, sources)
                                              | ReloadFailed(id, error)
                                              Exited(pid, code)       (any time)
    (at start)                                Ready(signature, sources) | StartFailed(error)

``sources`` are the project's own files the function's import loaded: a change
to one of them is a change to the function (:mod:`.reload`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from cumulo.runtimes.worker.asgi import DEFAULT_MAX_BODY_BYTES


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TemplateSettings(Message):
    """How a template loads and serves its function."""

    name: str
    target: str
    source: Path
    log: Path
    signature: str | None = None
    concurrency: int = 16
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class Spawn(Message):
    kind: Literal["spawn"] = "spawn"
    id: int


class StartJob(Message):
    kind: Literal["job"] = "job"
    id: int
    event: str  # the event's file
    result: str  # where the run writes its outcome
    log: str
    run: str | None = None


class Reload(Message):
    """Import the function's code again: what is forked from now on runs the new code."""

    kind: Literal["reload"] = "reload"
    id: int


class Ready(Message):
    kind: Literal["ready"] = "ready"
    signature: str
    sources: tuple[str, ...] = ()


class Reloaded(Message):
    kind: Literal["reloaded"] = "reloaded"
    id: int
    signature: str
    sources: tuple[str, ...] = ()


class ReloadFailed(Message):
    """The new code does not load; the template keeps the code it had."""

    kind: Literal["reload-failed"] = "reload-failed"
    id: int
    error: str  # file:line: message


class StartFailed(Message):
    kind: Literal["start-failed"] = "start-failed"
    error: str


class Spawned(Message):
    kind: Literal["spawned"] = "spawned"
    id: int
    pid: int
    port: int


class JobStarted(Message):
    kind: Literal["job-started"] = "job-started"
    id: int
    pid: int


class Exited(Message):
    kind: Literal["exited"] = "exited"
    pid: int
    code: int


AnyCommand = Spawn | StartJob | Reload
AnyReply = Ready | StartFailed | Spawned | JobStarted | Reloaded | ReloadFailed | Exited
Command = Annotated[AnyCommand, Field(discriminator="kind")]
Reply = Annotated[AnyReply, Field(discriminator="kind")]
_COMMANDS: TypeAdapter[AnyCommand] = TypeAdapter(Command)
_REPLIES: TypeAdapter[AnyReply] = TypeAdapter(Reply)


def encode(message: Message) -> bytes:
    """One line of the protocol."""
    return message.model_dump_json().encode() + b"\n"


def read_command(line: bytes) -> AnyCommand:
    """A command line from the supervisor; raises :class:`pydantic.ValidationError`."""
    return _COMMANDS.validate_json(line)


def read_reply(line: bytes) -> AnyReply:
    """A reply line from the template; raises :class:`pydantic.ValidationError`."""
    return _REPLIES.validate_json(line)
