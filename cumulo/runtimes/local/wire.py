"""A lean HTTP/1.1 client for the platform's own workers on loopback.

Every delivery and every ``/fn/`` call is one request to a worker the platform
forked; aiohttp's general-purpose client spent more of the platform's CPU on
each than the rest of the delivery together (docs/benchmarks.md). This one does
only what that hop needs: keep-alive connections per worker port, a request
written in one piece, the response read by httptools (the parser the workers'
uvicorn uses), a timeout per request, nothing else: no redirects, cookies,
proxies, compression or TLS. The worker's side is the HTTP contract as before
(``cumulo.runtimes.worker``), so anything that speaks HTTP can stand in for it.

Failures raise :class:`WorkerDroppedError`, an :class:`aiohttp.ClientConnectionError`
so callers handle one family of client errors; a timeout raises
:class:`TimeoutError` and closes that connection (its answer may still come).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import aiohttp
import httptools

from cumulo.runtimes.local.hosts import HttpAnswer

IDLE_SECONDS = 4.0  # under uvicorn's keep-alive (5 s): never reuse what the worker is closing
HOST = "127.0.0.1"


class WorkerDroppedError(aiohttp.ClientConnectionError):
    """The worker's connection failed or closed before its whole answer came."""


def encode_request(
    method: str, target: str, port: int, headers: Iterable[tuple[str, str]], body: bytes
) -> bytes:
    """The request as bytes; a target or header that would split the message is refused."""
    if not target.startswith("/") or any(c in target for c in " \t\r\n"):
        raise ValueError(f"{target[:80]!r} cannot be a request target")
    lines = [f"{method} {target} HTTP/1.1", f"host: {HOST}:{port}", f"content-length: {len(body)}"]
    for name, value in headers:
        if "\n" in name or "\r" in name or "\n" in value or "\r" in value or ":" in name:
            raise ValueError(f"header {name!r} cannot be sent: it holds a line break or ':'")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request on it at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[HttpAnswer] | None = None
        self.closed = False
        self.last_used = time.monotonic()
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self.sink: Callable[[bytes], None] | None = None  # takes the body as it comes

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(f"the worker's answer is not HTTP: {e}")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(f"the worker closed the connection{f': {exc}' if exc else ''}")

    # --- httptools callbacks -----------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        answer = HttpAnswer(self.parser.get_status_code(), self._headers, b"".join(self._body))
        self._headers, self._body = [], []
        if not self.parser.should_keep_alive():
            self.close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(answer)

    # --- use -------------------------------------------------------------------------

    async def exchange(
        self, request: bytes, sink: Callable[[bytes], None] | None = None
    ) -> HttpAnswer:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.sink = sink
        self.transport.write(request)
        try:
            return await self.answer
        finally:
            self.answer, self.sink = None, None
            self.last_used = time.monotonic()

    def _fail(self, why: str) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(WorkerDroppedError(why))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class WireClient:
    """Keep-alive connections to the workers, by port; one request per connection at a time."""

    idle_seconds: float = IDLE_SECONDS
    _idle: dict[int, list[_Connection]] = field(default_factory=dict)

    async def request(
        self,
        port: int,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        timeout: float,
        sink: Callable[[bytes], None] | None = None,
    ) -> HttpAnswer:
        """Send one request to the worker on ``port`` and read its whole answer; with
        ``sink``, the body goes to it piece by piece as it arrives (the answer's is empty)."""
        message = encode_request(method, target, port, headers, body)
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                connection = self._reusable(port) or await self._connect(port)
                answer = await connection.exchange(message, sink)
        except BaseException:
            if connection is not None:
                connection.close()  # a late answer must not meet the next request
            raise
        if not connection.closed:
            self._idle.setdefault(port, []).append(connection)
        return answer

    def _reusable(self, port: int) -> _Connection | None:
        idle = self._idle.get(port)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.last_used < self.idle_seconds:
                return connection
            connection.close()
        return None

    async def _connect(self, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(_Connection, HOST, port)
        except OSError as e:
            raise WorkerDroppedError(f"cannot connect to the worker on port {port}: {e}") from e
        return connection

    def forget(self, port: int) -> None:
        """Close the idle connections to a worker that is going away."""
        for connection in self._idle.pop(port, []):
            connection.close()

    def close(self) -> None:
        for port in list(self._idle):
            self.forget(port)
