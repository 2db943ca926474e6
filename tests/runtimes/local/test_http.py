"""Reading bodies and events at the platform's HTTP edge, and answering with the worker
contract's responses, on Starlette requests built from ASGI scopes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from starlette.requests import Request

from cumulo.config import Settings
from cumulo.errors import InvalidEventError, PayloadTooLargeError
from cumulo.events.attributes import EdgeRules
from cumulo.events.event import new_event, to_json
from cumulo.runtimes.local import http
from cumulo.runtimes.local.http import (
    INLINE_DECODE_BYTES,
    EventReader,
    answer,
    edge_rules,
    read_body,
)
from cumulo.runtimes.worker import contract


class Body:
    """A request body sent in chunks; remembers how many the reader asked for."""

    def __init__(self, *chunks: bytes):
        self.chunks = list(chunks)
        self.asked = 0

    async def __call__(self) -> dict[str, Any]:
        self.asked += 1
        chunk = self.chunks.pop(0) if self.chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}


def request(body: Body, headers: dict[str, str] | None = None) -> Request:
    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/events", "headers": raw}, body)


async def test_a_body_within_the_limit_is_read_whole() -> None:
    body = Body(b"abc", b"def", b"g")

    assert await read_body(request(body), limit=7) == b"abcdefg"


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    body = Body(b"x" * 10)

    with pytest.raises(PayloadTooLargeError, match="body of 11 bytes is over the 10-byte limit"):
        await read_body(request(body, {"content-length": "11"}), limit=10)

    assert body.asked == 0


async def test_a_body_without_a_length_is_refused_as_soon_as_it_is_over() -> None:
    body = Body(b"x" * 6, b"x" * 6, b"x" * 6, b"x" * 6)

    with pytest.raises(PayloadTooLargeError, match="body is over the 10-byte limit"):
        await read_body(request(body), limit=10)

    assert body.asked == 2  # the rest was never read


async def test_a_declared_length_that_is_no_number_is_left_to_the_count() -> None:
    assert await read_body(request(Body(b"hi"), {"content-length": "two"}), limit=10) == b"hi"


def test_an_answer_carries_the_contracts_headers_the_extra_ones_and_its_length() -> None:
    problem = contract.problem(
        503, "bus-unavailable", "Bus unavailable", "down", "BusUnavailableError"
    )

    sent = answer(problem, retry_after="1", x_cumulo_note="n")

    assert sent.status_code == 503
    assert sent.body == problem.body
    assert sent.raw_headers == [
        (b"content-type", b"application/problem+json"),
        (b"retry-after", b"1"),
        (b"x-cumulo-note", b"n"),
        (b"content-length", str(len(problem.body)).encode()),
    ]


def test_the_edge_rules_are_the_settings_limits() -> None:
    settings = Settings(
        max_event_attributes=10, max_attribute_bytes=300, max_batch_events=5, max_data_depth=3
    )

    assert edge_rules(settings) == EdgeRules(
        max_attributes=10, max_attribute_bytes=300, max_batch_events=5, max_data_depth=3
    )


def structured(event_data: Any = None, **attributes: Any) -> tuple[dict[str, str], bytes]:
    event = new_event("order.placed", "/shop", event_data, **attributes)
    return {"content-type": "application/cloudevents+json"}, to_json(event)


def batch(count: int, data: Any = None) -> tuple[dict[str, str], bytes]:
    events = [orjson.loads(to_json(new_event("order.placed", "/shop", data))) for _ in range(count)]
    return {"content-type": "application/cloudevents-batch+json"}, orjson.dumps(events)


def reader(**settings: Any) -> EventReader:
    return EventReader(Settings(**settings))


async def read(events: EventReader, headers: dict[str, str], body: bytes) -> list[Any]:
    return await events.read(request(Body(body), {**headers, "content-length": str(len(body))}))


async def test_a_small_event_is_read_and_decoded() -> None:
    headers, body = structured({"n": 1}, id="e-1")

    [event] = await read(reader(), headers, body)

    assert (event.id, event.type, event.data) == ("e-1", "order.placed", {"n": 1})


async def test_a_large_batch_is_decoded_whole() -> None:
    headers, body = batch(50, {"pad": "x" * 2000})
    assert len(body) > INLINE_DECODE_BYTES

    events = await read(reader(), headers, body)

    assert len(events) == 50 and events[0].data == {"pad": "x" * 2000}


async def test_the_edges_rules_apply_to_what_is_read() -> None:
    headers, body = batch(6)

    with pytest.raises(PayloadTooLargeError):
        await read(reader(max_batch_events=5), headers, body)
    with pytest.raises(InvalidEventError, match="nest"):
        await read(reader(max_data_depth=2), *structured({"a": {"b": {"c": 1}}}))


async def test_a_body_over_the_limit_is_refused_before_decoding() -> None:
    headers, body = structured({"pad": "x" * 300})

    with pytest.raises(PayloadTooLargeError, match="over the 100-byte limit"):
        await read(reader(max_body_bytes=100), headers, body)


async def test_large_bodies_are_decoded_one_at_a_time_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoding, most, loop_thread = 0, 0, threading.get_ident()
    threads: set[int] = set()
    lock = threading.Lock()
    real: Callable[..., Any] = http.events_from_http

    def watched(*args: Any) -> Any:
        nonlocal decoding, most
        with lock:
            decoding += 1
            most = max(most, decoding)
            threads.add(threading.get_ident())
        try:
            time.sleep(0.05)  # long enough for the others to arrive if they could
            return real(*args)
        finally:
            with lock:
                decoding -= 1

    monkeypatch.setattr(http, "events_from_http", watched)
    events = reader(max_concurrent_decodes=1)
    headers, body = batch(40, {"pad": "x" * 2000})

    decoded = await asyncio.gather(*(read(events, headers, body) for _ in range(3)))

    assert [len(d) for d in decoded] == [40, 40, 40]
    assert most == 1
    assert loop_thread not in threads
