"""Request and response helpers of the platform's HTTP endpoints (gateway, sources)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cumulo.errors import PayloadTooLargeError
from cumulo.runtimes.worker import contract


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
