"""Dapr's app callback: programmatic subscriptions and pub/sub delivery.

``GET /dapr/subscribe`` answers the subscriptions as Dapr expects them
(``pubsubname``, ``topic``, ``route`` or ``routes``, optional ``metadata``,
``deadLetterTopic``, ``bulkSubscribe``); a subscription without a route points
at ``POST /dapr/events``. There Dapr delivers one structured CloudEvent, and
always gets 200 with ``{"status": ...}``:

- ``SUCCESS``: the function succeeded;
- ``RETRY``: it raised ``Retry`` or an unexpected exception (Dapr redelivers);
- ``DROP``: it raised ``PermanentError``, or the request was not a readable
  CloudEvent (Dapr dead-letters or drops it).

Reply events ride along as ``cumuloReplies`` (CloudEvents JSON format
objects); Dapr ignores the field. Publishing them is the Dapr bus backend's
job, later. Bulk subscribe deliveries are not supported.

With ``APP_API_TOKEN`` set (Dapr's app API token, the same value daprd is
given), :class:`DaprTokenCheck` refuses every ``/dapr/*`` request that does not
carry it as ``dapr-api-token`` (401 problem+json), compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from cumulo.errors import InvalidEventError, Problem, SpecError
from cumulo.events.cloudevent import events_from_http
from cumulo.events.dapr_objects import EVENTS_ROUTE
from cumulo.events.event import to_json
from cumulo.events.outcome import Failure, Outcome, Success
from cumulo.runtimes.worker.asgi import (
    JSON,
    LazyExecutor,
    Receive,
    Scope,
    Send,
    header_dict,
    read_body,
    send_json,
    send_response,
)
from cumulo.runtimes.worker.contract import method_not_allowed, problem
from cumulo.runtimes.worker.outcome import CloudEventInvoker

SUBSCRIBE_ROUTE = "/dapr/subscribe"
CALLBACK_PREFIX = "/dapr/"
TOKEN_HEADER = b"dapr-api-token"
_REQUIRED = ("pubsubname", "topic")
_KNOWN = {*_REQUIRED, "route", "routes", "metadata", "deadLetterTopic", "bulkSubscribe"}

log = logging.getLogger("cumulo.worker")


def subscription_documents(subscriptions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``/dapr/subscribe`` answer; raises :class:`SpecError` listing every mistake."""
    documents: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for index, subscription in enumerate(subscriptions):
        document = dict(subscription)
        problems.extend(
            Problem("dapr subscriptions", f"[{index}].{key}", "required")
            for key in _REQUIRED
            if not document.get(key)
        )
        problems.extend(
            Problem("dapr subscriptions", f"[{index}].{key}", "unknown field")
            for key in document.keys() - _KNOWN
        )
        if "route" not in document and "routes" not in document:
            document["route"] = EVENTS_ROUTE
        documents.append(document)
    if problems:
        raise SpecError(problems)
    return documents


def dapr_status(outcome: Outcome) -> str:
    """``SUCCESS``, ``RETRY`` or ``DROP`` for an outcome."""
    if isinstance(outcome, Success):
        return "SUCCESS"
    if isinstance(outcome, Failure) and outcome.permanent:
        return "DROP"
    return "RETRY"


class DaprHandler:
    """The two Dapr callback routes of a cloudevent function's worker."""

    def __init__(
        self,
        invoker: CloudEventInvoker | None,
        pool: LazyExecutor,
        subscriptions: Iterable[Mapping[str, Any]],
        max_body_bytes: int,
    ):
        self.invoker = invoker
        self.pool = pool
        self.subscriptions = subscription_documents(subscriptions)
        self.max_body_bytes = max_body_bytes

    async def subscribe(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":
            await send_response(send, *method_not_allowed(scope["method"]))
            return
        await send_json(send, 200, self.subscriptions)

    async def skip(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Acknowledge an event none of the routing rules matched (else Dapr dead-letters it)."""
        if scope["method"] != "POST":
            await send_response(send, *method_not_allowed(scope["method"]))
            return
        await send_json(send, 200, {"status": "SUCCESS"})

    async def events(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST" or self.invoker is None:
            await send_response(send, *method_not_allowed(scope["method"]))
            return
        try:
            body = await read_body(scope, receive, self.max_body_bytes)
            if body is None:
                return
            events = events_from_http(header_dict(scope), body)
        except InvalidEventError as e:
            log.warning("dropping a delivery from Dapr that is not a CloudEvent: %s", e)
            await send_json(
                send, 200, {"status": "DROP", "errorType": type(e).__name__, "message": str(e)}
            )
            return
        outcome, _ = await self.invoker.call_each(events, self.pool.get())
        await send_response(send, 200, [(b"content-type", JSON)], _status_body(outcome))


def _status_body(outcome: Outcome) -> bytes:
    status = dapr_status(outcome).encode()
    if isinstance(outcome, Success):
        if not outcome.replies:
            return b'{"status":"' + status + b'"}'
        replies = b",".join(to_json(reply) for reply in outcome.replies)
        return b'{"status":"' + status + b'","cumuloReplies":[' + replies + b"]}"
    document = {
        "status": status.decode(),
        "errorType": outcome.error_type,
        "message": outcome.message,
    }
    return orjson.dumps(document)


def carries_token(scope: Scope, token: bytes) -> bool:
    """Whether the request's ``dapr-api-token`` header is ``token`` (constant time)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == TOKEN_HEADER:
            return hmac.compare_digest(bytes(value), token)
    return False


class DaprTokenCheck:
    """ASGI middleware: Dapr's callbacks (``/dapr/*``) need Dapr's app API token."""

    def __init__(self, app: Any, token: str):
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        callback = scope["type"] == "http" and scope["path"].startswith(CALLBACK_PREFIX)
        if callback and not carries_token(scope, self.token):
            detail = "Dapr's callbacks need the app API token as 'dapr-api-token'"
            refused = problem(401, "unauthorized", "Unauthorized", detail, "DaprTokenError")
            await send_response(send, *refused)
            return
        await self.app(scope, receive, send)

    def close(self) -> None:
        """Close the app it guards (the worker's thread pool)."""
        close = getattr(self.app, "close", None)
        if close is not None:
            close()
