"""The platform's HTTP client to its workers, against real servers on loopback.

A uvicorn server running a small ASGI app stands in for a worker (the workers
are uvicorn with httptools too); raw asyncio servers play the misbehaving ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn

from cumulo.runtimes.local.wire import WireClient, WorkerDroppedError, encode_request

Scope = dict[str, Any]


class Echo:
    """An ASGI app: echoes method, path, query, a header and the body; knows its connections."""

    def __init__(self) -> None:
        self.clients: set[tuple[str, int]] = set()

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        self.clients.add(tuple(scope["client"]))  # type: ignore[arg-type]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/sleep":
            await asyncio.sleep(float(body or b"1"))
        headers = dict(scope["headers"])
        reply = b"|".join([
            scope["method"].encode(), path.encode(), scope["query_string"],
            headers.get(b"x-probe", b"-"), body,
        ])  # fmt: skip
        extra = [(b"connection", b"close")] if path == "/close" else []
        if path == "/chunked":  # no content-length: uvicorn sends it chunked
            await send({"type": "http.response.start", "status": 207, "headers": extra})
            for part in (b"one,", b"two,", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        start = [(b"content-type", b"text/plain"), (b"content-length", str(len(reply)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": start + extra})
        await send({"type": "http.response.body", "body": reply})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off", http="httptools")  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A plain TCP server running ``handle`` per connection; every connection is closed
    and every handler finished before it returns (nothing is left to the next test)."""
    handlers: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await handle(reader, writer)

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.create_task(serve(reader, writer)))

    server = await asyncio.start_server(connected, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.gather(*handlers, return_exceptions=True)
        for writer in writers:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()


@pytest.fixture
def echo() -> Echo:
    return Echo()


async def test_a_request_arrives_whole_and_its_answer_comes_back(echo: Echo) -> None:
    client = WireClient()
    async with serving(echo) as port:
        answer = await client.request(
            port, "PUT", "/a/b?x=1", [("x-probe", "yes")], b"payload", timeout=5
        )
    assert answer.status == 200
    assert answer.body == b"PUT|/a/b|x=1|yes|payload"
    assert ("content-type", "text/plain") in answer.headers
    client.close()


async def test_connections_are_kept_alive_and_reused(echo: Echo) -> None:
    client = WireClient()
    async with serving(echo) as port:
        for _ in range(20):
            await client.request(port, "POST", "/", [], b"x", timeout=5)
    assert len(echo.clients) == 1  # one connection carried all twenty
    client.close()


async def test_concurrent_requests_each_get_their_own_answer(echo: Echo) -> None:
    client = WireClient()
    async with serving(echo) as port:
        answers = await asyncio.gather(*(
            client.request(port, "POST", f"/{i}", [], str(i).encode(), timeout=5)
            for i in range(30)
        ))  # fmt: skip
    assert [a.body for a in answers] == [f"POST|/{i}||-|{i}".encode() for i in range(30)]
    assert 1 < len(echo.clients) <= 30  # in flight together: one connection each
    client.close()


async def test_a_chunked_answer_is_read_whole(echo: Echo) -> None:
    client = WireClient()
    async with serving(echo) as port:
        answer = await client.request(port, "GET", "/chunked", [], b"", timeout=5)
    assert (answer.status, answer.body) == (207, b"one,two,three")
    client.close()


async def test_a_connection_the_worker_closes_is_not_reused(echo: Echo) -> None:
    client = WireClient()
    async with serving(echo) as port:
        await client.request(port, "GET", "/close", [], b"", timeout=5)
        await client.request(port, "GET", "/close", [], b"", timeout=5)
        await client.request(port, "GET", "/", [], b"", timeout=5)
    assert len(echo.clients) == 3
    client.close()


async def test_an_idle_connection_past_its_time_is_replaced(echo: Echo) -> None:
    client = WireClient(idle_seconds=0.0)  # every idle connection is too old
    async with serving(echo) as port:
        await client.request(port, "GET", "/", [], b"", timeout=5)
        await client.request(port, "GET", "/", [], b"", timeout=5)
    assert len(echo.clients) == 2
    client.close()


async def test_a_timeout_raises_and_the_late_answer_meets_no_one(echo: Echo) -> None:
    client = WireClient()
    async with serving(echo) as port:
        with pytest.raises(TimeoutError):
            await client.request(port, "POST", "/sleep", [], b"0.3", timeout=0.05)
        await asyncio.sleep(0.4)  # the slow answer has come and gone by now
        answer = await client.request(port, "POST", "/", [], b"next", timeout=5)
    assert answer.body == b"POST|/||-|next"
    assert len(echo.clients) == 2  # the timed-out connection was closed, not reused
    client.close()


async def test_nobody_listening_is_a_dropped_worker() -> None:
    with pytest.raises(WorkerDroppedError, match="cannot connect"):
        await WireClient().request(free_port(), "GET", "/", [], b"", timeout=5)


async def test_a_worker_that_hangs_up_mid_answer_is_a_dropped_worker() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly some")
        await writer.drain()
        writer.close()

    async with raw_server(half) as port:
        with pytest.raises(WorkerDroppedError, match="closed the connection"):
            await WireClient().request(port, "GET", "/", [], b"", timeout=5)


async def test_an_answer_that_is_not_http_is_a_dropped_worker() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client hangs up
        writer.close()

    async with raw_server(garbage) as port:
        with pytest.raises(WorkerDroppedError, match="not HTTP"):
            await WireClient().request(port, "GET", "/", [], b"", timeout=5)


@pytest.mark.parametrize(
    "header",
    [("x-a", "v\r\nx-injected: 1"), ("x-a\nb", "v"), ("x-a: b", "v"), ("x-a", "v\rw")],
)
def test_a_header_that_would_split_the_message_is_refused(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        encode_request("POST", "/", 8080, [header], b"")


def test_the_request_names_its_length_and_host() -> None:
    wire = encode_request("POST", "/p?q=1", 8080, [("ce-id", "1")], b"body")
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"POST /p?q=1 HTTP/1.1", b"host: 127.0.0.1:8080", b"content-length: 4", b"ce-id: 1",
    ]  # fmt: skip
    assert body == b"body"


@pytest.mark.parametrize("target", ["/a b", "/a\r\nx: 1", "no-slash", "/tab\there"])
def test_a_target_that_would_split_the_request_line_is_refused(target: str) -> None:
    with pytest.raises(ValueError, match="request target"):
        encode_request("GET", target, 8080, [], b"")
