"""Request heads bounded at the gateway's edge: the ASGI middleware on crafted scopes,
and the httptools protocol in a real uvicorn server spoken to over a socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio
import uvicorn

from cumulo.runtimes.local.limits import HeaderLimits, bounded_httptools

pytestmark = pytest.mark.timeout(30)


class Inner:
    """The app behind the limits: echoes how many body bytes it read."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(size).encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def call(
    app: Any, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request through an ASGI app; its status, headers and body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": "/", "headers": headers}, receive, send)
    return (
        sent[0]["status"],
        dict(sent[0]["headers"]),
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


def fields(count: int, value: bytes = b"v") -> list[tuple[bytes, bytes]]:
    return [(f"x-h{n}".encode(), value) for n in range(count)]


async def test_headers_within_both_limits_reach_the_app() -> None:
    inner = Inner()
    # 10 fields of 4 + 1 bytes each, plus 4 bytes of ": " and CRLF: 90 bytes.
    status, _, _ = await call(HeaderLimits(inner, max_headers=10, max_header_bytes=90), fields(10))

    assert status == 200 and inner.calls == 1


async def test_one_field_too_many_is_refused_before_the_app() -> None:
    inner = Inner()
    status, headers, body = await call(
        HeaderLimits(inner, max_headers=10, max_header_bytes=10_000), fields(11)
    )

    assert status == 431 and inner.calls == 0
    problem = orjson.loads(body)
    assert problem["detail"] == "11 header fields are over the max_headers limit of 10"
    assert (problem["status"], problem["errorType"]) == (431, "HeaderLimitExceeded")
    assert problem["type"].endswith("/header-fields-too-large")
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"content-length"] == str(len(body)).encode()
    assert headers[b"connection"] == b"close"


async def test_one_byte_too_many_is_refused_without_echoing_the_headers() -> None:
    inner = Inner()
    status, _, body = await call(
        HeaderLimits(inner, max_headers=100, max_header_bytes=90), [*fields(9), (b"x-big", b"s3")]
    )  # 9 * 9 + (5 + 2 + 4) = 92 bytes

    assert status == 431 and inner.calls == 0
    assert (
        orjson.loads(body)["detail"]
        == "the header fields are over the max_header_bytes limit of 90"
    )
    assert b"s3" not in body and b"x-big" not in body


async def test_a_scope_that_is_not_http_goes_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await HeaderLimits(app, max_headers=1, max_header_bytes=1)({"type": "lifespan"}, None, None)

    assert seen == ["lifespan"]


# --- the protocol, in a real server ---------------------------------------------

LIMIT = 2048


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tuple[int, Inner]]:
    """uvicorn serving :class:`Inner` with heads bounded to :data:`LIMIT` bytes; its port."""
    inner = Inner()
    config = uvicorn.Config(
        inner, host="127.0.0.1", port=0, http=bounded_httptools(LIMIT), lifespan="off",
        log_config=None, access_log=False, ws="none",
    )  # fmt: skip
    running = uvicorn.Server(config)
    serving = asyncio.create_task(running.serve())
    async with asyncio.timeout(10):
        while not running.started:
            await asyncio.sleep(0.01)
    port = running.servers[0].sockets[0].getsockname()[1]
    yield port, inner
    running.should_exit = True
    await asyncio.wait_for(serving, 15)


def request(size: int, body: bytes = b"", path: str = "/") -> bytes:
    """A request whose head is ``size`` bytes long (padded with one header)."""
    start = f"POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-length: {len(body)}\r\n".encode()
    pad = size - len(start) - len(b"x-pad: \r\n\r\n")
    return start + b"x-pad: " + b"p" * pad + b"\r\n\r\n" + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status, *lines = head[:-4].split(b"\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(b": ") for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers[b"content-length"])), 10)
    return status, headers, body


async def test_a_head_over_the_limit_gets_431_and_the_app_never_runs(server) -> None:
    port, inner = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(64 * 1024))

    status, headers, body = await read_answer(reader)

    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert headers[b"connection"] == b"close"
    assert (
        orjson.loads(body)["detail"]
        == f"the request head is over the max_header_bytes limit of {LIMIT}"
    )
    assert b"ppp" not in body
    assert await asyncio.wait_for(reader.read(), 10) == b""  # the server sent its EOF
    assert inner.calls == 0
    writer.close()
    await writer.wait_closed()


async def test_heads_within_the_limit_are_served_one_after_another_on_one_connection(
    server,
) -> None:
    port, inner = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    answers = []
    for _ in range(3):  # together well over the limit: each head is counted on its own
        writer.write(request(LIMIT - 100))
        answers.append(await read_answer(reader))

    assert [status for status, _, _ in answers] == [b"HTTP/1.1 200 OK"] * 3
    assert inner.calls == 3
    writer.close()
    await writer.wait_closed()


async def test_a_body_does_not_count_towards_the_head(server) -> None:
    port, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    writer.write(request(200, body=b"b" * (8 * LIMIT)))
    status, _, body = await read_answer(reader)

    assert status == b"HTTP/1.1 200 OK"
    assert body == str(8 * LIMIT).encode()
    writer.close()
    await writer.wait_closed()


async def test_a_head_sent_in_small_pieces_is_counted_across_them(server) -> None:
    port, inner = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    whole = request(3 * LIMIT)

    for at in range(0, len(whole), 256):  # what arrives after the refusal is dropped unread
        writer.write(whole[at : at + 256])
        await writer.drain()

    status, _, _ = await read_answer(reader)
    assert status.startswith(b"HTTP/1.1 431")
    assert inner.calls == 0
    writer.close()
    await writer.wait_closed()


def test_each_limit_gets_its_own_protocol_class() -> None:
    small, large = bounded_httptools(1024), bounded_httptools(65536)

    assert (small.max_header_bytes, large.max_header_bytes) == (1024, 65536)
    assert small is not large
