"""Gateway responses: RFC 9457 problem details, and an outcome as the worker would answer."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from cumulo.events.cloudevent import batch_http, binary_http
from cumulo.events.outcome import Failure, Outcome, RetryLater, Success

PROBLEM_BASE = "https://cumulo.dev/problems/"


def problem(
    status: int,
    title: str,
    detail: str,
    slug: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    return Response(
        orjson.dumps({**body, **extra}),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def outcome_response(outcome: Outcome) -> Response:
    """The worker contract's answer for an outcome (see ``cumulo.runtimes.worker``)."""
    if isinstance(outcome, Success):
        if not outcome.replies:
            return Response(status_code=204)
        encode = binary_http if len(outcome.replies) == 1 else batch_http
        arg = outcome.replies[0] if len(outcome.replies) == 1 else outcome.replies
        headers, body = encode(arg)  # type: ignore[arg-type]
        return Response(body, status_code=200, headers=headers)
    if isinstance(outcome, RetryLater):
        headers = {}
        if outcome.delay is not None:
            headers = {"Retry-After": str(int(-(-outcome.delay // 1))),
                       "Cumulo-Retry-After": f"{outcome.delay:g}"}
        return problem(503, "Retry later", outcome.message, "retry", headers=headers,
                       errorType=outcome.error_type)
    assert isinstance(outcome, Failure)
    status = 422 if outcome.permanent else 500
    return problem(status, "Function failed", outcome.message, "function-failed",
                   errorType=outcome.error_type)
