"""Request and response helpers of the platform's HTTP endpoints (gateway, sources).

:class:`EventReader` is how ``POST /events`` reads its events: the body
bounded by ``max_body_bytes``, then decoded under the edge's rules
(:class:`~cumulo.events.attributes.EdgeRules`, from the settings). A body over
:data:`INLINE_DECODE_BYTES` is decoded in a worker thread, at most
``max_concurrent_decodes`` at a time: the event loop keeps answering (``/healthz``
included) while a big batch is decoded, and the memory that decoding takes is
bounded by that many bodies, not by how many clients post at once.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from cumulo.config import Settings
from cumulo.errors import PayloadTooLargeError
from cumulo.events.attributes import EdgeRules
from cumulo.events.cloudevent import events_from_http
from cumulo.events.event import Event
from cumulo.runtimes.worker import contract

INLINE_DECODE_BYTES = 64 * 1024
"""Bodies up to this size are decoded on the event loop (it takes well under a millisecond)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) anything over ``limit`` before reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError([f"body of {declared} bytes is over the {limit}-byte limit"])
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError([f"body is over the {limit}-byte limit"])
        chunks.append(chunk)
    return b"".join(chunks)


def answer(response: contract.Response, **headers: str) -> Response:
    """A worker-contract response, as Starlette sends it (``retry_after=`` → ``retry-after``)."""
    sent = Response(response.body, status_code=response.status)
    extra = [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    sent.raw_headers = [
        *response.headers,
        *extra,
        (b"content-length", str(len(response.body)).encode()),
    ]
    return sent


def edge_rules(settings: Settings) -> EdgeRules:
    """What ``POST /events`` demands of each event, from the platform's settings."""
    return EdgeRules(
        max_attributes=settings.max_event_attributes,
        max_attribute_bytes=settings.max_attribute_bytes,
        max_batch_events=settings.max_batch_events,
        max_data_depth=settings.max_data_depth,
    )


class EventReader:
    """The events of a request, read and decoded within the edge's limits."""

    def __init__(self, settings: Settings):
        self.rules = edge_rules(settings)
        self.max_body_bytes = settings.max_body_bytes
        self._decoding = asyncio.Semaphore(settings.max_concurrent_decodes)

    async def read(self, request: Request) -> list[Event]:
        """The request's events; raises what :func:`events_from_http` raises, or 413."""
        body = await read_body(request, self.max_body_bytes)
        if len(body) <= INLINE_DECODE_BYTES:
            return events_from_http(request.headers, body, self.rules)
        async with self._decoding:
            return await asyncio.to_thread(events_from_http, request.headers, body, self.rules)
