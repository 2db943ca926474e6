"""Cloudevent functions behind a real worker: the CloudEvents HTTP binding and the contract."""

from __future__ import annotations

import asyncio
from typing import Any

import functions_framework
import orjson
import pytest

from cumulo.errors import PermanentError, Retry
from cumulo.events.cloudevent import (
    BATCH,
    CAUSE_EXTENSION,
    batch_http,
    binary_http,
    events_from_http,
    structured_http,
)
from cumulo.events.event import Event, new_event
from cumulo.events.outcome import Failure, RetryLater, Success
from cumulo.runtimes.worker import outcome_from_response
from tests.runtimes.worker.conformance import (
    FeatureCase,
    YamlCase,
    describe,
    feature_cases,
    feature_request,
    sdk_cases,
    sdk_reading,
    spec_strings,
    yaml_cases,
)
from tests.runtimes.worker.ff_functions import ff_receive

PROBLEM = "application/problem+json"
ASK_PROBLEMS = {"accept": PROBLEM}  # Cumulo's dispatcher asks for problem+json errors


def echo(event: Event) -> dict:
    """Replies with what it got, so a test can see the decoded event."""
    return {
        "type": "echoed",
        "data": {"attributes": event.attributes, "data": _jsonable(event.data)},
    }


def _jsonable(data: object) -> object:
    return {"bytes": data.decode()} if isinstance(data, bytes) else data


def behave(event: Event) -> object:
    """Does what the event's type says."""
    match event.type:
        case "none":
            return None
        case "one":
            return {"type": "reply", "data": event.data}
        case "two":
            return [{"type": "first"}, new_event("second", "/elsewhere", b"raw")]
        case "retry":
            raise Retry("not yet", delay=2.5)
        case "retry-anytime":
            raise Retry()
        case "permanent":
            raise PermanentError("this event is hopeless")
        case "garbage":
            return 42
    raise ValueError(f"cannot handle {event.type}")


async def async_behave(event: Event) -> object:
    await asyncio.sleep(0)
    return behave(event)


def ce(event_type: str, data: object = None, **extensions: object) -> Event:
    return new_event(event_type, "/test", data, **extensions)


@pytest.fixture(params=["sync", "async"])
def worker(request, serve):
    return serve(behave if request.param == "sync" else async_behave, "cloudevent")


def test_no_reply_is_200_ok_as_in_functions_framework(worker) -> None:
    reply = worker.post(*binary_http(ce("none")))
    assert (reply.status, reply.body) == (200, b"OK")
    assert outcome_from_response(reply.status, reply.headers, reply.body) == Success([])


def test_one_reply_is_a_binary_mode_event(worker) -> None:
    cause = ce("one", {"n": 1})
    reply = worker.post(*binary_http(cause))
    assert reply.status == 200
    assert reply.headers["ce-type"] == "reply"
    assert reply.headers["ce-source"] == "/cumulo/functions/fn"
    assert reply.headers[f"ce-{CAUSE_EXTENSION}"] == cause.id
    [event] = events_from_http(reply.headers, reply.body)
    assert event.data == {"n": 1}


def test_several_replies_are_a_batch(worker) -> None:
    reply = worker.post(*structured_http(ce("two")))
    assert reply.status == 200 and reply.headers["content-type"].startswith(BATCH)
    first, second = events_from_http(reply.headers, reply.body)
    assert (first.type, second.type, second.data) == ("first", "second", b"raw")


def test_a_batch_request_gets_a_batch_reply(worker) -> None:
    reply = worker.post(*batch_http([ce("one", 1), ce("none"), ce("one", 2)]))
    assert reply.status == 200 and reply.headers["content-type"].startswith(BATCH)
    assert [e.data for e in events_from_http(reply.headers, reply.body)] == [1, 2]


def test_a_batch_stops_at_the_first_failure(worker) -> None:
    events = [ce("one", 1), ce("permanent"), ce("one", 2)]
    reply = worker.post(*batch_http(events))
    assert reply.status == 422
    assert reply.json()["detail"].startswith(f"event [1] ({events[1].id}): ")


def test_retry_with_delay_is_503_with_both_headers(worker) -> None:
    reply = worker.post(*binary_http(ce("retry")))
    assert reply.status == 503
    assert reply.headers["retry-after"] == "3"
    assert reply.headers["cumulo-retry-after"] == "2.5"
    assert reply.headers["content-type"] == PROBLEM
    problem = reply.json()
    assert problem["type"] == "https://cumulo.dev/problems/retry"
    assert (problem["status"], problem["errorType"], problem["detail"]) == (503, "Retry", "not yet")
    assert outcome_from_response(reply.status, reply.headers, reply.body) == RetryLater(
        "Retry", "not yet", 2.5
    )


def test_retry_without_delay_has_no_retry_after(worker) -> None:
    reply = worker.post(*binary_http(ce("retry-anytime")))
    assert reply.status == 503 and "retry-after" not in reply.headers


def test_permanent_error_is_422(worker) -> None:
    reply = worker.post(*binary_http(ce("permanent")))
    assert reply.status == 422 and reply.headers["content-type"] == PROBLEM
    problem = reply.json()
    assert problem["errorType"] == "PermanentError"
    assert problem["detail"] == "this event is hopeless"
    assert problem["type"] == "https://cumulo.dev/problems/permanent-failure"
    outcome = outcome_from_response(reply.status, reply.headers, reply.body)
    assert outcome == Failure("PermanentError", "this event is hopeless", permanent=True)


def test_an_invalid_return_value_is_a_permanent_failure(worker) -> None:
    reply = worker.post(*binary_http(ce("garbage")))
    assert reply.status == 422
    assert "a int is not an event" in reply.json()["detail"]


def test_other_exceptions_are_500_crash(worker, caplog) -> None:
    reply = worker.post(*binary_http(ce("unknown")))
    assert (reply.status, reply.headers["x-google-status"]) == (500, "crash")
    assert any(record.exc_info for record in caplog.records)


def test_other_exceptions_are_a_500_problem_when_asked(worker, caplog) -> None:
    headers, body = binary_http(ce("unknown"))
    reply = worker.post({**headers, **ASK_PROBLEMS}, body)
    assert reply.status == 500
    problem = reply.json()
    assert (problem["errorType"], problem["detail"]) == ("ValueError", "cannot handle unknown")
    assert problem["type"] == "https://cumulo.dev/problems/function-error"
    assert any(record.exc_info for record in caplog.records)
    outcome = outcome_from_response(reply.status, reply.headers, reply.body)
    assert outcome == Failure("ValueError", "cannot handle unknown", permanent=False)


def test_malformed_event_is_400_with_every_problem(worker) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "content-type": "application/json"}
    reply = worker.post({**headers, **ASK_PROBLEMS}, b"{oops")
    assert reply.status == 400 and reply.headers["content-type"] == PROBLEM
    problem = reply.json()
    assert problem["errorType"] == "InvalidEventError"
    assert "missing required attribute 'source'" in problem["detail"]
    assert "not valid JSON" in problem["detail"]
    assert len(problem["problems"]) == 3


def test_unsupported_format_is_415(worker) -> None:
    reply = worker.post({"content-type": "application/cloudevents+xml", **ASK_PROBLEMS}, b"<e/>")
    assert reply.status == 415 and reply.json()["errorType"] == "UnsupportedMediaTypeError"


def test_body_over_the_limit_is_413(serve) -> None:
    worker = serve(behave, "cloudevent", max_body_bytes=64)
    reply = worker.post(*binary_http(ce("one", "x" * 100)))
    assert reply.status == 413 and reply.json()["errorType"] == "PayloadTooLargeError"


def test_only_post(worker) -> None:
    reply = worker.request("GET", "/anything")
    assert reply.status == 405 and reply.headers["allow"] == "POST"


def test_any_path(worker) -> None:
    assert 200 <= worker.post(*binary_http(ce("none")), path="/some/where?x=1").status < 300


def test_health(worker) -> None:
    reply = worker.request("GET", "/_cumulo/health")
    assert reply.json() == {"status": "ok", "function": "fn", "signature": "cloudevent"}


@pytest.mark.parametrize(
    "case", [spec_strings(c) for c in yaml_cases()], ids=lambda case: case.name
)
def test_conformance_cases_over_http(serve, case: YamlCase) -> None:
    """The vectors (1.0 and 0.3) as a conformant sender writes them, to a native function."""
    worker = serve(echo, "cloudevent")
    request = case.request()
    reply = worker.post(request.wire_headers(), request.body)
    assert 200 <= reply.status < 300, reply.body
    seen = events_from_http(reply.headers, reply.body)[0].data
    assert seen["attributes"] == case.attributes
    assert seen["data"] == _jsonable(case.expected_data())


SEEN: list[dict[str, Any]] = []


@functions_framework.cloud_event
def ff_describe(cloud_event: Any) -> None:
    """A functions-framework function that writes down what it got."""
    SEEN.append(describe(cloud_event))


WIRE_CASES = [
    *(spec_strings(case).request() for case in yaml_cases()),
    *(feature_request(case) for case in feature_cases()),
    *sdk_cases(),
]


def test_a_functions_framework_function_gets_what_the_sdk_reads(serve) -> None:
    """Every request straight to the worker: the function sees what ``from_http`` gives."""
    worker = serve(ff_describe)
    differences = []
    for request in WIRE_CASES:
        SEEN.clear()
        reply = worker.post(request.wire_headers(), request.body)
        assert 200 <= reply.status < 300, (request.name, reply.status, reply.body)
        expected = [describe(event) for event in sdk_reading(request)]
        if expected != SEEN:
            differences.append(f"{request.name}: got {SEEN}, the SDK reads {expected}")
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("case", feature_cases(), ids=lambda case: case.name)
def test_http_binding_feature_over_http(serve, case: FeatureCase) -> None:
    reply = serve(echo, "cloudevent").post(case.headers, case.body, path="/someresource")
    seen = events_from_http(reply.headers, reply.body)[0].data
    assert (seen["attributes"], seen["data"]) == (case.attributes, case.data)


def test_functions_framework_function_gets_an_sdk_cloudevent(serve) -> None:
    worker = serve(ff_receive)  # the signature comes from @functions_framework.cloud_event
    event = ce("com.example.thing", {"k": "v"}, subject="s1", comexampleext="x y")
    reply = worker.post(*binary_http(event))
    assert reply.status == 200
    seen = events_from_http(reply.headers, reply.body)[0].data
    assert seen["class"] == "cloudevents.http.event.CloudEvent"
    assert seen["attributes"] == event.attributes
    assert seen["data"] == {"k": "v"}
    assert seen["subscript"] == ["com.example.thing", "/test", event.id]


def test_outcome_from_response_reads_success() -> None:
    headers, body = binary_http(ce("x", {"a": 1}))
    [event] = outcome_from_response(200, headers, body).replies
    assert event.data == {"a": 1}
    assert outcome_from_response(204, {}, b"") == Success([])
    assert outcome_from_response(200, {"content-type": "text/plain"}, b"ok") == Success([])
    assert isinstance(outcome_from_response(429, {"Retry-After": "7"}, b""), RetryLater)
    assert outcome_from_response(404, {}, b"gone").permanent  # type: ignore[union-attr]


def test_replies_carry_lineage(serve) -> None:
    cause = ce("two")
    reply = serve(behave, "cloudevent").post(*binary_http(cause))
    assert [e[CAUSE_EXTENSION] for e in orjson.loads(reply.body)] == [cause.id, cause.id]


def test_chunked_bodies_are_read_and_limited(serve) -> None:
    import http.client

    worker = serve(behave, "cloudevent", max_body_bytes=4096)
    headers, body = binary_http(ce("one", {"n": 1}))

    def send(chunks: list[bytes]) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=30)
        try:
            connection.request("POST", "/", body=iter(chunks), headers=headers, encode_chunked=True)
            return connection.getresponse().status
        finally:
            connection.close()

    assert send([body[:3], body[3:]]) == 200
    assert send([b" " * 3000, b" " * 3000]) == 413
    assert send([b" " * 6000]) == 413  # one chunk, read in one receive()
