"""Plain-ASGI plumbing for the worker: no framework sits on the hot path.

Bodies are read whole (within a limit) and responses are sent whole, always
with a Content-Length, so uvicorn never falls back to chunked encoding.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from cumulo.errors import PayloadTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
JSON = b"application/json"


def header_dict(scope: Scope) -> dict[str, str]:
    """The request headers as ``{lower-case name: value}`` (the last of repeated ones wins)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, when it declares a sane one."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole request body; ``None`` if the client went away before sending it.

    Raises :class:`PayloadTooLargeError` as soon as the body is known to exceed ``limit``.
    """
    declared = declared_length(scope)
    if declared is not None and declared > limit:
        raise PayloadTooLargeError([f"the body is {declared} bytes; the limit is {limit}"])
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:  # a chunked body has no declared length: count what arrives
            raise PayloadTooLargeError([f"the body exceeds the limit of {limit} bytes"])
        more = bool(message.get("more_body"))
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def encode_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Headers:
    """ASGI header pairs from text headers."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


async def send_response(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    """Send a complete response; adds Content-Length."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send_raw(send, status, headers, body)


async def send_raw(send: Send, status: int, headers: Headers, body: bytes) -> None:
    """Send a complete response whose headers already say its length."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, document: Any) -> None:
    await send_response(send, status, [(b"content-type", JSON)], orjson.dumps(document))


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge lifespan startup and shutdown (the worker needs neither)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class LazyExecutor:
    """A thread pool created on first use, so an app built before ``fork`` works after it."""

    def __init__(self, max_workers: int, name: str):
        self.max_workers = max_workers
        self.name = name
        self._executor: ThreadPoolExecutor | None = None

    def get(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.max_workers, f"cumulo-{self.name}")
        return self._executor

    def shutdown(self, wait: bool = True) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait)
            self._executor = None
