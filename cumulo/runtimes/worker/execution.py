"""Execution ids, as functions-framework gives them to a function.

Every request runs in an execution context: the ``Function-Execution-Id``
header (a 12-character random id when absent) and the span id of
``X-Cloud-Trace-Context``, readable through
``functions_framework.execution_id._get_current_context()``. With
``LOG_EXECUTION_ID`` on, what the function prints goes out as JSON lines
carrying them (functions-framework's own stream wrapper does the formatting).
The Flask paths use functions-framework's decorator directly; this module is
for the paths without Flask.
"""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
import string
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from functions_framework import execution_id as ff_execution

from cumulo.runtimes.worker.conventions import execution_id_logging

ID_HEADER = "function-execution-id"
TRACE_HEADER = "x-cloud-trace-context"
ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 12
TRACE_CONTEXT = re.compile(r"^(?P<trace>\w+)/(?P<span>\d+);o=[01]$")


def new_execution_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def context_from(headers: Mapping[str, str]) -> ff_execution.ExecutionContext:
    """The context of a request with these (lower-case) headers."""
    trace = TRACE_CONTEXT.match(headers.get(TRACE_HEADER, ""))
    return ff_execution.ExecutionContext(
        headers.get(ID_HEADER) or new_execution_id(), trace.group("span") if trace else None
    )


@functools.cache
def _log_redirects() -> tuple[contextlib.redirect_stdout[Any], contextlib.redirect_stderr[Any]]:
    """One pair for the process: entered by every request, concurrent ones included (each
    line is labelled with the execution context current where it is written)."""
    return (
        contextlib.redirect_stdout(ff_execution.LoggingHandlerAddExecutionId(sys.stdout)),
        contextlib.redirect_stderr(ff_execution.LoggingHandlerAddExecutionId(sys.stderr)),
    )


@contextlib.contextmanager
def executing(headers: Mapping[str, str]) -> Iterator[None]:
    """Run the block in the request's execution context (and its log format, when on)."""
    token = ff_execution.execution_context_var.set(context_from(headers))  # type: ignore[arg-type]
    try:
        if execution_id_logging():
            stdout, stderr = _log_redirects()
            with stdout, stderr:
                yield
        else:
            yield
    finally:
        ff_execution.execution_context_var.reset(token)
