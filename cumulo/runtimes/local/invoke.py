"""Delivering an event to a worker over HTTP, and reading what came back.

This is the dispatcher's side of the worker contract (see
:mod:`cumulo.runtimes.worker.app`): the CloudEvents HTTP binding out, the
status code and reply events back, exactly as Knative or a Dapr sidecar would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import orjson

from cumulo.errors import InvalidEventError
from cumulo.events.cloudevent import events_from_http
from cumulo.events.outcome import Failure, Outcome, RetryLater, Success

RETRYABLE_CLIENT_ERRORS = frozenset({408, 409, 429})  # as Knative retries them


def outcome_from_response(status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
    if 200 <= status < 300:
        return _success(headers, body)
    error_type, detail = _problem(status, body)
    if status >= 500 or status in RETRYABLE_CLIENT_ERRORS:
        return RetryLater(error_type, detail, retry_after(headers))
    return Failure(error_type, detail, permanent=True)


def _success(headers: Mapping[str, str], body: bytes) -> Outcome:
    content_type = headers.get("Content-Type", "")
    if "ce-id" not in headers and not content_type.startswith("application/cloudevents"):
        return Success([])  # an HTTP function's answer, or no reply
    try:
        return Success(events_from_http(headers, body))
    except InvalidEventError as e:
        return Failure("InvalidReply", f"the function replied with an invalid event: {e}")


def _problem(status: int, body: bytes) -> tuple[str, str]:
    try:
        problem = orjson.loads(body)
        return str(problem.get("errorType") or problem.get("title")), str(problem.get("detail"))
    except (orjson.JSONDecodeError, AttributeError):
        return f"HTTP{status}", body[:512].decode(errors="replace") or f"status {status}"


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The delay a worker asked for: ``Cumulo-Retry-After`` (float) or ``Retry-After``."""
    for name in ("Cumulo-Retry-After", "Retry-After"):
        value = headers.get(name)
        if value is not None:
            try:
                delay = float(value)
            except ValueError:
                continue  # an HTTP date: leave it to the backoff policy
            if math.isfinite(delay) and delay >= 0:
                return delay
    return None
