"""Serving a cloudevent function over HTTP: any path, POST, the CloudEvents HTTP binding.

The responses follow :mod:`cumulo.runtimes.worker.contract`.
"""

from __future__ import annotations

from cumulo.errors import InvalidEventError
from cumulo.events.cloudevent import events_from_http, is_batch
from cumulo.runtimes.worker.asgi import LazyExecutor, Receive, Scope, Send, header_dict, read_body
from cumulo.runtimes.worker.asgi import send_response as send_whole
from cumulo.runtimes.worker.contract import (
    Response,
    invalid_request_response,
    method_not_allowed,
    outcome_response,
)
from cumulo.runtimes.worker.outcome import CloudEventInvoker


class CloudEventHandler:
    """ASGI handler that runs each CloudEvent of a request through the function."""

    def __init__(self, invoker: CloudEventInvoker, pool: LazyExecutor, max_body_bytes: int):
        self.invoker = invoker
        self.pool = pool
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.respond(scope, receive)
        if response is not None:
            await send_whole(send, *response)

    async def respond(self, scope: Scope, receive: Receive) -> Response | None:
        """The response to one request; ``None`` when the client went away."""
        if scope["method"] != "POST":
            return method_not_allowed(scope["method"])
        try:
            body = await read_body(scope, receive, self.max_body_bytes)
            if body is None:
                return None
            headers = header_dict(scope)
            events = events_from_http(headers, body)
        except InvalidEventError as e:
            return invalid_request_response(e)
        outcome, index = await self.invoker.call_each(events, self.pool.get())
        batch = is_batch(headers)
        failed = events[index] if index is not None else None
        return outcome_response(outcome, batch=batch, event=failed, index=index if batch else None)
