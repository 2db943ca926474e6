"""``POST /_cumulo/deliveries``: several events in one request, an outcome for each.

The local platform's pool sends a cloudevent function the events that are
ready for it at once in one batched-mode request (a JSON array of CloudEvents)
instead of one request each. Unlike a batch on the function's own route
(functions-framework's contract: all or nothing, :mod:`.contract`), each event
here runs on its own, concurrently within the worker's pool, and the answer
streams one line per event as it finishes (``application/x-ndjson``, chunked):
``{"index": i, ...}`` with the outcome in the job-result codec
(:func:`cumulo.runtimes.worker.outcome.outcome_to_dict`). So the platform
learns each outcome as soon as it is known: one slow or crashing event does
not hold back, or take down, the answers of the others. Only the platform
calls this route; a function's callers use its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson

from cumulo.errors import InvalidEventError, PayloadTooLargeError, UnsupportedMediaTypeError
from cumulo.events.cloudevent import BATCH, batch_envelopes, event_in_batch, media_type
from cumulo.events.outcome import Failure, Outcome
from cumulo.runtimes.worker import contract
from cumulo.runtimes.worker.asgi import (
    LazyExecutor,
    Receive,
    Scope,
    Send,
    header_dict,
    read_body,
    send_response,
)
from cumulo.runtimes.worker.outcome import CloudEventInvoker, outcome_to_dict

DELIVERIES_ROUTE = "/_cumulo/deliveries"
NDJSON = (b"content-type", b"application/x-ndjson")


class Deliveries:
    """Runs each event of a batch on its own and answers every outcome."""

    def __init__(self, invoker: CloudEventInvoker, pool: LazyExecutor, max_body_bytes: int):
        self.invoker = invoker
        self.pool = pool
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await send_response(send, *contract.method_not_allowed(scope["method"]))
            return
        try:
            body = await read_body(scope, receive, self.max_body_bytes)
            if body is None:
                return
            envelopes = batch_of(header_dict(scope), body)
        except (PayloadTooLargeError, InvalidEventError) as e:
            await send_response(send, *contract.invalid_request_response(e))
            return
        await send({"type": "http.response.start", "status": 200, "headers": [NDJSON]})
        runs = [self._run(i, envelope) for i, envelope in enumerate(envelopes)]
        for finished in asyncio.as_completed(runs):
            await send({"type": "http.response.body", "body": await finished, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _run(self, index: int, envelope: Any) -> bytes:
        """One event's outcome line; an event that cannot be read is its own failure only."""
        try:
            event = event_in_batch(envelope)
        except InvalidEventError as e:
            outcome: Outcome = Failure("InvalidEventError", str(e), permanent=True)
        else:
            outcome = await self.invoker.call_async(event, self.pool.get())
        return orjson.dumps({"index": index, **outcome_to_dict(outcome)}) + b"\n"


def batch_of(headers: Mapping[str, str], body: bytes) -> list[Any]:
    """The JSON array a batched-mode request carries, its events still to be read one by one."""
    if media_type(headers.get("content-type")) != BATCH:
        raise UnsupportedMediaTypeError([f"a batch is sent as {BATCH}"])
    return batch_envelopes(body)
