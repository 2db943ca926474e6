"""Requests into the typed models of :mod:`.api_models`, and the problem answers when they do not fit.

The ``/api`` handlers call :func:`query`, :func:`path` and :func:`body`; what
they raise becomes an ``application/problem+json`` answer through the
gateway's exception handlers (:data:`EXCEPTION_HANDLERS`), so no handler turns
a bad request into a 500:

- :class:`~cumulo.errors.InvalidRequestError` → 400, with ``problems``: the
  field, where it is (``query``, ``path``, ``body``), the rule and its message;
- a body over ``CUMULO_API_MAX_BODY_BYTES`` → 413, read no further;
- a body that is not JSON (by ``Content-Type``) → 415;
- a replay that starts outside its topic → 409 (the request is well formed,
  the topic's current end is not where it points);
- the bus unreachable → 503 with ``Retry-After``; a bus that cannot do it at all
  (a Dapr bus delivers by push: no replay) → 501;
- no route, or a method a route does not take → 404 / 405 (``Allow``).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from cumulo.errors import (
    BusOperationUnsupportedError,
    BusUnavailableError,
    InvalidEventError,
    InvalidRequestError,
    ReplayOutOfRangeError,
    UnsupportedMediaTypeError,
)
from cumulo.runtimes.local.http import answer, read_body
from cumulo.runtimes.worker import contract

M = TypeVar("M", bound=BaseModel)
MAX_SHOWN = 80  # characters of a refused value shown back in a problem's message


def problems_of(error: ValidationError, where: str) -> list[dict[str, str]]:
    """Each pydantic error as ``{"field", "in", "rule", "message"}``."""
    found = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in item["loc"]) or where
        message = str(item["msg"]).removeprefix("Value error, ")
        found.append({"field": field, "in": where, "rule": item["type"], "message": message})
    return found


def validated(model: type[M], data: Any, where: str) -> M:
    """``data`` as ``model``, or :class:`InvalidRequestError` naming every broken rule."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise InvalidRequestError(problems_of(e, where)) from None


def query(model: type[M], request: Request) -> M:
    """The request's query string as ``model`` (a repeated parameter: its last value)."""
    return validated(model, dict(request.query_params), "query")


def path(model: type[M], request: Request) -> M:
    return validated(model, dict(request.path_params), "path")


def is_json(content_type: str) -> bool:
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence == "application/json" or (
        essence.startswith("application/") and essence.endswith("+json")
    )


async def body(model: type[M], request: Request, limit: int) -> M:
    """A JSON body of at most ``limit`` bytes as ``model``."""
    content_type = request.headers.get("content-type", "")
    if not is_json(content_type):
        raise UnsupportedMediaTypeError(
            [f"the body must be application/json, not {content_type[:MAX_SHOWN]!r}"]
        )
    return validated(model, json_of(await read_body(request, limit)), "body")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_of(raw: bytes) -> Any:
    """Parsed JSON; integers stay exact (``99999999999999999999`` is not ``1e20``), no NaN."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        detail = "nested too deep" if isinstance(e, RecursionError) else str(e)
        raise InvalidRequestError(
            [{"field": "body", "in": "body", "rule": "json", "message": f"not JSON: {detail}"}]
        ) from None


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Response:
    error_type = extra.pop("error_type", "GatewayError")
    headers = extra.pop("headers", {})
    return answer(contract.problem(status, slug, title, detail, error_type, **extra), **headers)


async def invalid_request(request: Request, error: Exception) -> Response:
    assert isinstance(error, InvalidRequestError)
    return problem(
        400,
        "invalid-request",
        "Invalid request",
        str(error),
        error_type="InvalidRequestError",
        problems=error.problems,
    )


async def invalid_body(request: Request, error: Exception) -> Response:
    """413 or 415 (or 400) for a body that is not what the route reads."""
    assert isinstance(error, InvalidEventError)
    return answer(contract.invalid_request_response(error))


async def replay_out_of_range(request: Request, error: Exception) -> Response:
    return problem(409, "replay-out-of-range", "Replay outside the topic", str(error),
                   error_type=type(error).__name__)  # fmt: skip


async def bus_unavailable(request: Request, error: Exception) -> Response:
    detail = str(error)
    return problem(503, "bus-unavailable", "Bus unavailable", detail, headers={"retry_after": "1"})


async def bus_cannot(request: Request, error: Exception) -> Response:
    """501: the bus cannot do this at all (a Dapr bus delivers by push: no replay, no reads)."""
    return problem(501, "bus-operation-unsupported", "Not supported by this bus", str(error),
                   error_type=type(error).__name__)  # fmt: skip


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own 404 (no route) and 405 (method), as problem+json."""
    assert isinstance(error, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
    headers = {k.replace("-", "_"): v for k, v in (error.headers or {}).items()}
    detail = "no such route" if error.status_code == 404 else str(error.detail)
    return problem(error.status_code, slug, str(error.detail), detail, headers=headers)


EXCEPTION_HANDLERS = {
    InvalidRequestError: invalid_request,
    InvalidEventError: invalid_body,
    ReplayOutOfRangeError: replay_out_of_range,
    BusUnavailableError: bus_unavailable,
    BusOperationUnsupportedError: bus_cannot,
    HTTPException: http_error,
}
