"""Execution ids, as functions-framework gives them to a function.

Every request runs in an execution context: the ``Function-Execution-Id``
header (a 12-character random id when absent) and the span id of
``X-Cloud-Trace-Context``, readable through
``functions_framework.execution_id._get_current_context()``. With
``LOG_EXECUTION_ID`` on, what the function prints goes out as JSON lines
carrying them (functions-framework's own stream wrapper does the formatting).
:class:`executing` is for the paths without Flask, :func:`in_execution_context`
for Flask views.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import random
import re
import string
import sys
from collections.abc import Callable, Mapping
from typing import Any

import flask
from functions_framework import execution_id as ff_execution

from cumulo.runtimes.worker.conventions import execution_id_logging

ID_HEADER = "function-execution-id"
TRACE_HEADER = "x-cloud-trace-context"
ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 12
# functions-framework's variable (typed by its default, None, for mypy)
CONTEXT: contextvars.ContextVar[Any] = ff_execution.execution_context_var
TRACE_CONTEXT = re.compile(r"^(?P<trace>\w+)/(?P<span>\d+);o=[01]$")


def new_execution_id() -> str:
    return "".join(random.choices(ID_ALPHABET, k=ID_LENGTH))


class LazyExecutionContext(ff_execution.ExecutionContext):
    """An execution context whose id, when the request brought none, is made on first use:
    most functions never ask, and the hot path need not pay for it."""

    def __init__(self, execution_id: str | None, span_id: str | None):
        self._execution_id = execution_id
        self.span_id = span_id

    @property
    def execution_id(self) -> str:
        if self._execution_id is None:
            self._execution_id = new_execution_id()
        return self._execution_id

    @execution_id.setter
    def execution_id(self, value: str | None) -> None:
        self._execution_id = value


def context_from(headers: Mapping[str, str]) -> LazyExecutionContext:
    """The context of a request with these (lower-case) headers."""
    trace = headers.get(TRACE_HEADER)
    matched = TRACE_CONTEXT.match(trace) if trace else None
    return LazyExecutionContext(headers.get(ID_HEADER), matched.group("span") if matched else None)


@functools.cache
def _log_redirects() -> tuple[contextlib.redirect_stdout[Any], contextlib.redirect_stderr[Any]]:
    """One pair for the process: entered by every request, concurrent ones included (each
    line is labelled with the execution context current where it is written)."""
    return (
        contextlib.redirect_stdout(ff_execution.LoggingHandlerAddExecutionId(sys.stdout)),
        contextlib.redirect_stderr(ff_execution.LoggingHandlerAddExecutionId(sys.stderr)),
    )


class executing:
    """Run the block in the request's execution context (and its log format, when on)."""

    __slots__ = ("headers", "redirects", "token")

    def __init__(self, headers: Mapping[str, str]):
        self.headers = headers

    def __enter__(self) -> None:
        self.token = CONTEXT.set(context_from(self.headers))
        self.redirects = _log_redirects() if execution_id_logging() else ()
        for redirect in self.redirects:
            redirect.__enter__()

    def __exit__(self, *exc: object) -> None:
        for redirect in reversed(self.redirects):
            redirect.__exit__(None, None, None)
        CONTEXT.reset(self.token)


def in_execution_context(view: Callable[..., Any]) -> Callable[..., Any]:
    """A Flask view run in its request's execution context.

    The context stays set after the view returns, so that Flask's log of a crash,
    written after the view, carries the execution id too; the next request on the
    thread sets its own.
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        CONTEXT.set(context_from(flask.request.headers))  # type: ignore[arg-type]
        if not execution_id_logging():
            return view(*args, **kwargs)
        stdout, stderr = _log_redirects()
        with stdout, stderr:
            return view(*args, **kwargs)

    return run
