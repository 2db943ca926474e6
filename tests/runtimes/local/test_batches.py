"""Deliveries that are ready together travel together: the coalescer and the worker's route."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import orjson
import pytest

from cumulo.events.cloudevent import batch_http
from cumulo.events.event import Event, new_event
from cumulo.events.outcome import Failure, Success
from cumulo.runtimes.local.batches import Coalescer, OutcomeLines
from cumulo.runtimes.local.faults import Lost
from cumulo.runtimes.worker import build_app
from cumulo.runtimes.worker.deliveries import DELIVERIES_ROUTE


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.chunks: list[list[int]] = []
        self.fail = fail

    async def send(self, items: Sequence[int]) -> list[int]:
        self.chunks.append(list(items))
        await asyncio.sleep(0)
        if self.fail:
            raise RuntimeError("the worker went away")
        return [item * 10 for item in items]


async def test_what_is_submitted_in_one_turn_is_sent_together_in_chunks() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.send, most=4)
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert recorder.chunks == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_what_comes_in_a_later_turn_is_not_held_for_a_batch() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.send, most=64)
    assert await coalescer.submit(1) == 10  # alone: sent at the end of its own turn
    assert await coalescer.submit(2) == 20
    assert recorder.chunks == [[1], [2]]


async def test_a_failed_send_reaches_every_caller_of_its_chunk() -> None:
    coalescer = Coalescer(Recorder(fail=True).send, most=8)
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError] * 3


async def test_a_caller_cancelled_meanwhile_leaves_the_others_their_results() -> None:
    coalescer = Coalescer(Recorder().send, most=8)
    first = asyncio.create_task(coalescer.submit(1))
    second = asyncio.create_task(coalescer.submit(2))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == 20
    with pytest.raises(asyncio.CancelledError):
        await first


def test_outcome_lines_are_read_as_they_arrive_in_any_pieces() -> None:
    answered: dict[int, object] = {}
    lines = OutcomeLines(answered)  # type: ignore[arg-type]
    text = (
        b'{"index": 1, "status": "success", "replies": []}\n'
        b'{"index": 0, "status": "failed", "errorType": "ValueError", "message": "no",'
        b' "permanent": false}\n'
    )
    for start in range(0, len(text), 7):
        lines.feed(text[start : start + 7])
    assert answered == {1: Success([]), 0: Failure("ValueError", "no", False)}
    assert not isinstance(answered[0], Lost)


# --- the worker's route ---------------------------------------------------------------


def handler(event):  # a cloudevent function: slow for "slow", failing for "bad"
    import time

    if event["type"] == "slow":
        time.sleep(0.3)
    if event["type"] == "bad":
        raise ValueError(f"cannot handle {event['id']}")


async def post_batch(events: list[Event]) -> list[dict[str, object]]:
    app = build_app(handler, signature="cloudevent", name="fn", concurrency=4)
    headers, body = batch_http(events)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        answer = await client.post(DELIVERIES_ROUTE, content=body, headers=headers)
    app.close()
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-ndjson"
    return [orjson.loads(line) for line in answer.content.splitlines()]


async def test_each_event_of_a_batch_gets_its_own_outcome_in_the_order_they_finish() -> None:
    events = [new_event("slow", "/t", id="a"), new_event("bad", "/t", id="b"),
              new_event("ok", "/t", id="c")]  # fmt: skip
    lines = await post_batch(events)
    by_index = {line["index"]: line for line in lines}
    assert sorted(by_index) == [0, 1, 2]
    assert by_index[0]["status"] == "success" and by_index[2]["status"] == "success"
    assert by_index[1]["status"] == "failed" and "cannot handle b" in str(by_index[1]["message"])
    assert lines[-1]["index"] == 0  # the slow one is answered last, the others did not wait


async def test_the_route_refuses_what_is_not_a_batch_of_events() -> None:
    app = build_app(handler, signature="cloudevent", name="fn")
    transport = httpx.ASGITransport(app=app)
    batch = {"content-type": "application/cloudevents-batch+json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        not_an_array = await client.post(DELIVERIES_ROUTE, content=b"{}", headers=batch)
        not_json = await client.post(DELIVERIES_ROUTE, content=b"[", headers=batch)
        not_a_batch = await client.post(DELIVERIES_ROUTE, content=b"[]",
                                        headers={"content-type": "application/json"})  # fmt: skip
        wrong_method = await client.get(DELIVERIES_ROUTE)
    app.close()
    assert (not_an_array.status_code, not_json.status_code) == (400, 400)
    assert not_a_batch.status_code == 415
    assert wrong_method.status_code == 405


async def test_an_event_of_the_batch_that_cannot_be_read_fails_alone() -> None:
    good = orjson.loads(batch_http([new_event("ok", "/t", id="good")])[1])[0]
    lines = await post_raw(orjson.dumps([{"id": "no-type"}, good]))
    by_index = {line["index"]: line for line in lines}
    assert by_index[0]["status"] == "failed" and by_index[0]["permanent"] is True
    assert by_index[0]["errorType"] == "InvalidEventError"
    assert by_index[1]["status"] == "success"


async def post_raw(body: bytes) -> list[dict[str, object]]:
    app = build_app(handler, signature="cloudevent", name="fn")
    transport = httpx.ASGITransport(app=app)
    headers = {"content-type": "application/cloudevents-batch+json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        answer = await client.post(DELIVERIES_ROUTE, content=body, headers=headers)
    app.close()
    assert answer.status_code == 200
    return [orjson.loads(line) for line in answer.content.splitlines()]


async def test_an_event_is_read_from_a_batch_as_the_function_route_reads_it() -> None:
    """JSON data that is no string under a non-JSON media type is refused there (it has no
    bytes of its own): here too, and for that event only."""
    odd = {"specversion": "1.0", "id": "odd", "source": "/t", "type": "ok",
           "datacontenttype": "text/plain", "data": {"a": 1}}  # fmt: skip
    good = orjson.loads(batch_http([new_event("ok", "/t", id="good")])[1])[0]
    lines = await post_raw(orjson.dumps([odd, good]))
    by_index = {line["index"]: line for line in lines}
    assert (by_index[0]["status"], by_index[0]["errorType"]) == ("failed", "InvalidEventError")
    assert by_index[1]["status"] == "success"
