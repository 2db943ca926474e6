"""Dapr's app callback: programmatic subscriptions and SUCCESS / RETRY / DROP."""

from __future__ import annotations

import pytest

from cumulo.errors import PermanentError, Retry, SpecError
from cumulo.events.cloudevent import binary_http, structured_http
from cumulo.events.event import Event, from_envelope, new_event

SUBSCRIPTIONS = [
    {"pubsubname": "pubsub", "topic": "orders"},
    {
        "pubsubname": "pubsub",
        "topic": "models",
        "route": "/dapr/events",
        "deadLetterTopic": "models-dead",
        "metadata": {"rawPayload": "false"},
    },
]


def handle(event: Event) -> object:
    if event.type == "retry":
        raise Retry("busy", delay=1)
    if event.type == "crash":
        raise RuntimeError("boom")
    if event.type == "permanent":
        raise PermanentError("never")
    if event.type == "reply":
        return {"type": "done", "data": event.data}
    return None


@pytest.fixture
def worker(serve):
    return serve(handle, "cloudevent", dapr_subscriptions=SUBSCRIPTIONS)


def deliver(worker, event_type: str) -> dict:
    event = new_event(event_type, "/dapr", {"n": 1})
    reply = worker.post(*structured_http(event), path="/dapr/events")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    return reply.json()


def test_subscribe_lists_the_subscriptions(worker) -> None:
    reply = worker.request("GET", "/dapr/subscribe")
    assert reply.status == 200
    assert reply.json() == [
        {"pubsubname": "pubsub", "topic": "orders", "route": "/dapr/events"},
        SUBSCRIPTIONS[1],
    ]


def test_no_subscriptions_is_an_empty_list(serve) -> None:
    assert serve(handle, "cloudevent").request("GET", "/dapr/subscribe").json() == []


def test_success(worker) -> None:
    assert deliver(worker, "ok") == {"status": "SUCCESS"}


def test_success_carries_the_replies(worker) -> None:
    answer = deliver(worker, "reply")
    assert answer["status"] == "SUCCESS"
    [reply] = [from_envelope(envelope) for envelope in answer["cumuloReplies"]]
    assert (reply.type, reply.data) == ("done", {"n": 1})


@pytest.mark.parametrize("event_type", ["retry", "crash"])
def test_retry(worker, event_type: str) -> None:
    assert deliver(worker, event_type)["status"] == "RETRY"


def test_permanent_error_is_dropped(worker) -> None:
    answer = deliver(worker, "permanent")
    assert answer == {"status": "DROP", "errorType": "PermanentError", "message": "never"}


def test_malformed_event_is_dropped(worker) -> None:
    reply = worker.post(
        {"content-type": "application/cloudevents+json"}, b'{"id": 1}', "/dapr/events"
    )
    assert reply.status == 200 and reply.json()["status"] == "DROP"


def test_binary_mode_works_too(worker) -> None:
    reply = worker.post(*binary_http(new_event("ok", "/s")), path="/dapr/events")
    assert reply.json() == {"status": "SUCCESS"}


def test_bad_subscriptions_are_reported(serve) -> None:
    with pytest.raises(SpecError) as caught:
        serve(handle, "cloudevent", dapr_subscriptions=[{"topic": "t", "routez": "/x"}])
    assert [str(p) for p in caught.value.problems] == [
        "dapr subscriptions:[0].pubsubname: required",
        "dapr subscriptions:[0].routez: unknown field",
    ]


def test_http_functions_do_not_take_dapr_events(serve) -> None:
    def hello(request):
        return "hello"

    worker = serve(hello)
    assert worker.request("GET", "/dapr/subscribe").json() == []
    assert worker.request("POST", "/dapr/events").body == b"hello"
