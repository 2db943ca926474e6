"""The worker's HTTP response contract for cloudevent functions.

A functions-framework function's caller sees exactly what functions-framework
answers; Cumulo's extras layer on top. The answers come in two flavours, as
functions-framework's own two servers give them: ``flask`` (the default) and
``asgi`` (``--asgi``, ``async def`` and ``@functions_framework.aio`` functions).

======================================  ======  ===============================================
what happened                           status  response
======================================  ======  ===============================================
success, no reply                       200     ``OK`` (flask: ``text/html; charset=utf-8``)
success, one reply                      200     the reply in binary mode (``ce-*`` + body)
success, several replies, or any        200     ``application/cloudevents-batch+json``
replies to a batch request
``Retry(delay=)``                       503     ``Retry-After`` (whole seconds, rounded up) and
                                                ``Cumulo-Retry-After`` (float seconds) when a
                                                delay was given; problem body
``PermanentError``, invalid reply       422     problem body
malformed CloudEvent                    400     flask: an HTML page naming the SDK's error
                                                (``MissingRequiredFields``…); asgi: plain text
unsupported event format                415     problem body
body over the limit                     413     problem body
not POST                                405     ``Allow: POST``
any other exception                     500     ``X-Google-Status: crash``; flask: Flask's
                                                500 text, asgi: ``Internal Server Error``
======================================  ======  ===============================================

A caller that sends ``Accept: application/problem+json`` (the local
dispatcher, the gateway's ``/fn`` proxy when its client does) gets every error
as an RFC 9457 problem instead: ``type`` (``https://cumulo.dev/problems/<slug>``),
``title``, ``status``, ``detail`` and ``errorType`` (the exception's class
name), and 400s list ``problems``: every reason. A batch request is
all-or-nothing: events run in order and the first that does not succeed
decides the response (its ``detail`` names its index and id).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import orjson
import werkzeug.exceptions

from cumulo.errors import InvalidEventError, PayloadTooLargeError, UnsupportedMediaTypeError
from cumulo.events.cloudevent import batch_http, events_from_http, http_message, media_type
from cumulo.events.event import Event
from cumulo.events.outcome import Failure, Outcome, RetryLater, Success
from cumulo.runtimes.worker.asgi import Headers, encode_headers

PROBLEM_TYPE = "https://cumulo.dev/problems/"
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER = "cumulo-retry-after"
CRASH_HEADER_NAME, CRASH = "X-Google-Status", "crash"  # functions-framework's crash marker
CRASH_HEADER = (CRASH_HEADER_NAME.lower().encode(), CRASH.encode())
FLASK_TEXT = b"text/html; charset=utf-8"
Flavor = Literal["flask", "asgi"]


class Response(NamedTuple):
    status: int
    headers: Headers
    body: bytes = b""


def wants_problems(headers: Mapping[str, str]) -> bool:
    """Whether the caller asked for problem+json errors (lower-case header names)."""
    return PROBLEM_JSON in headers.get("accept", "")


def ok(flavor: Flavor) -> Response:
    """Success without a reply, as functions-framework answers it."""
    headers = [(b"content-type", FLASK_TEXT)] if flavor == "flask" else []
    return Response(200, headers, b"OK")


def crash(flavor: Flavor) -> Response:
    """An uncaught exception, as functions-framework answers it."""
    if flavor == "asgi":
        return Response(
            500, [(b"content-type", b"text/plain"), CRASH_HEADER], b"Internal Server Error"
        )
    text = str(werkzeug.exceptions.InternalServerError()).encode()
    return Response(500, [(b"content-type", FLASK_TEXT), CRASH_HEADER], text)


def bad_request(flavor: Flavor, detail: str) -> Response:
    """A request that is not a CloudEvent, as functions-framework answers it."""
    if flavor == "asgi":
        return Response(400, [(b"content-type", b"text/plain; charset=utf-8")], detail.encode())
    page = werkzeug.exceptions.BadRequest(description=detail).get_body().encode()
    return Response(400, [(b"content-type", FLASK_TEXT)], page)


def problem(
    status: int, slug: str, title: str, detail: str, error_type: str, **extra: Any
) -> Response:
    """An RFC 9457 problem response."""
    document = {
        "type": PROBLEM_TYPE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "errorType": error_type,
        **extra,
    }
    return Response(status, [(b"content-type", PROBLEM_JSON.encode())], orjson.dumps(document))


def invalid_request_response(error: InvalidEventError) -> Response:
    """400, 413 or 415, for a request that does not carry events Cumulo can read."""
    name = type(error).__name__
    if isinstance(error, PayloadTooLargeError):
        return problem(413, "payload-too-large", "Request body too large", str(error), name)
    if isinstance(error, UnsupportedMediaTypeError):
        return problem(415, "unsupported-media-type", "Unsupported event format", str(error), name)
    title = "Not a valid CloudEvent"
    return problem(400, "invalid-cloudevent", title, str(error), name, problems=error.problems)


def method_not_allowed(method: str, flavor: Flavor | None = None) -> Response:
    """405 for a cloudevent function asked with another method than POST."""
    if flavor == "asgi":
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"allow", b"POST")]
        return Response(405, headers, b"Method Not Allowed")
    if flavor == "flask":
        error = werkzeug.exceptions.MethodNotAllowed(valid_methods=["POST"])
        headers = [(b"content-type", FLASK_TEXT), (b"allow", b"POST")]
        return Response(405, headers, error.get_body().encode())
    response = problem(
        405,
        "method-not-allowed",
        "Method not allowed",
        f"a cloudevent function takes POST, not {method}",
        "MethodNotAllowed",
    )
    response.headers.append((b"allow", b"POST"))
    return response


def outcome_response(
    outcome: Outcome,
    *,
    batch: bool = False,
    event: Event | None = None,
    index: int | None = None,
    flavor: Flavor = "flask",
    problems: bool = True,
) -> Response:
    """The response for an outcome; ``event``/``index`` name the event that failed.

    Without ``problems``, an uncaught exception answers as functions-framework's
    ``flavor`` of server does.
    """
    if isinstance(outcome, Success):
        return _success_response(outcome.replies, batch, flavor)
    where = f"event [{index}] ({event.id}): " if index is not None and event is not None else ""
    if isinstance(outcome, RetryLater):
        return _retry_response(outcome, where)
    if outcome.permanent:
        title = "The event cannot be processed"
        return problem(422, "permanent-failure", title, where + outcome.message, outcome.error_type)
    if not problems:
        return crash(flavor)
    title = "The function raised an error"
    return problem(500, "function-error", title, where + outcome.message, outcome.error_type)


def _success_response(replies: list[Event], batch: bool, flavor: Flavor) -> Response:
    if not replies:
        return ok(flavor)
    headers, body = batch_http(replies) if batch or len(replies) > 1 else http_message(replies[0])
    return Response(200, encode_headers(headers), body)


def _retry_response(outcome: RetryLater, where: str) -> Response:
    detail = where + (outcome.message or "the function asked for a retry")
    response = problem(503, "retry", "Retry requested", detail, outcome.error_type)
    if outcome.delay is not None:
        delay = max(0.0, outcome.delay)
        response.headers.append((b"retry-after", str(math.ceil(delay)).encode()))
        response.headers.append((RETRY_AFTER.encode(), repr(delay).encode()))
    return response


# --- reading the contract back (the dispatcher's side) ----------------------


def outcome_from_response(status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
    """What a worker's (or any CloudEvents sink's) response says became of the event.

    2xx: success, with the reply events it carries; 408, 429, 503: retry (after
    ``Cumulo-Retry-After`` or ``Retry-After`` seconds); other 4xx: permanent
    failure; other 5xx: failure the trigger's policy retries.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    if 200 <= status < 300:
        try:
            return Success(_replies_in(lowered, body) if status != 204 else [])
        except InvalidEventError as e:
            return Failure("InvalidReply", f"the function replied with an invalid event: {e}")
    error_type, detail = _error_in(status, lowered, body)
    if status in (408, 429, 503):
        return RetryLater(error_type, detail, _retry_delay(lowered))
    return Failure(error_type, detail, permanent=400 <= status < 500)


def _replies_in(headers: Mapping[str, str], body: bytes) -> list[Event]:
    carries_events = "ce-specversion" in headers or media_type(
        headers.get("content-type")
    ).startswith("application/cloudevents")
    return events_from_http(headers, body) if carries_events else []


def _error_in(status: int, headers: Mapping[str, str], body: bytes) -> tuple[str, str]:
    if media_type(headers.get("content-type")) == PROBLEM_JSON:
        try:
            document = orjson.loads(body)
            return str(document.get("errorType", "HTTPError")), str(document.get("detail", ""))
        except (orjson.JSONDecodeError, AttributeError):
            pass
    return "HTTPError", f"HTTP {status}: {body[:500].decode('utf-8', 'replace')}"


def _retry_delay(headers: Mapping[str, str]) -> float | None:
    for name in (RETRY_AFTER, "retry-after"):
        try:
            return float(headers[name])
        except (KeyError, ValueError):
            continue
    return None
