"""cloudevent and background functions answer exactly as functions-framework's own server does.

The reference is functions-framework's Flask app for the same function, driven by its
test client; the worker is served over real HTTP. Then Cumulo's extras on top:
problem+json for callers that ask for it, and the dispatcher's reading of both.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import functions_framework
import pytest

from cumulo.events.outcome import Failure, Success
from cumulo.runtimes.worker import outcome_from_response
from tests.runtimes.worker import ff_functions

SOURCE = str(Path(ff_functions.__file__))
COMPARED = ("content-type", "x-google-status")
CE = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
JSON = {"Content-Type": "application/json"}
PUBSUB_PUSH = {
    "message": {"data": "aGk=", "messageId": "9", "publishTime": "2026-01-02T03:04:05Z"},
    "subscription": "projects/p/subscriptions/s",
}
LEGACY = {
    "context": {
        "eventId": "7",
        "timestamp": "2026-01-02T03:04:05Z",
        "eventType": "e",
        "resource": "r",
    },
    "data": {"x": 1},
}

CLOUDEVENT_REQUESTS = {
    "binary": ({**CE, **JSON}, b'{"a": 1}'),
    "binary-0.3": ({**CE, "ce-specversion": "0.3", **JSON}, b'{"a": 1}'),
    "structured": (
        {"Content-Type": "application/cloudevents+json"},
        json.dumps({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}).encode(),
    ),
    "structured-as-json": (
        JSON,
        json.dumps(
            {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data": 3}
        ).encode(),
    ),
    "legacy-pubsub-push": (JSON, json.dumps(PUBSUB_PUSH).encode()),
    "legacy-event": (JSON, json.dumps(LEGACY).encode()),
    "missing-fields": ({"ce-specversion": "1.0", "ce-id": "1", **JSON}, b"{}"),
    "invalid-fields": ({**CE, "ce-specversion": "9.9", **JSON}, b"{}"),
    "unparsable": ({"Content-Type": "application/cloudevents+json"}, b"{not json"),
    "crash": ({**CE, **JSON}, b'{"crash": true}'),
}


def reference_client(target: str, signature: str):
    return functions_framework.create_app(target, SOURCE, signature).test_client()


SDK_ERRORS = re.compile(rb"(MissingRequiredFields|InvalidRequiredFields|EventConversionException)")


def assert_same(ours, theirs) -> None:
    """Same status, headers and body; a 400 page's text echoes the request, so for those
    the errors it names are compared."""
    assert ours.status == theirs.status_code, ours.body
    for name in COMPARED:
        assert ours.headers.get(name) == theirs.headers.get(name), name
    if ours.status == 400:
        assert b"<title>400 Bad Request</title>" in ours.body
        assert SDK_ERRORS.findall(ours.body) == SDK_ERRORS.findall(theirs.data)
    else:
        assert ours.body == theirs.data


@pytest.mark.parametrize("case", CLOUDEVENT_REQUESTS)
def test_a_cloudevent_function_answers_as_functions_framework(serve, case) -> None:
    headers, body = CLOUDEVENT_REQUESTS[case]
    theirs = reference_client("ff_ce_strict", "cloudevent").post("/", headers=headers, data=body)
    ours = serve(ff_functions.ff_ce_strict).post(headers, body)
    assert_same(ours, theirs)


BACKGROUND_REQUESTS = {
    "legacy-event": (JSON, json.dumps(LEGACY).encode()),
    "pubsub-push": (JSON, json.dumps(PUBSUB_PUSH).encode()),
    "binary-cloudevent": ({**CE, **JSON}, b'{"a": 1}'),
    "no-body": (JSON, b""),
    "crash": (JSON, json.dumps({**LEGACY, "data": {"crash": True}}).encode()),
}


@pytest.mark.parametrize("case", BACKGROUND_REQUESTS)
def test_a_background_function_answers_as_functions_framework(serve, case) -> None:
    headers, body = BACKGROUND_REQUESTS[case]
    theirs = reference_client("ff_background", "event").post("/", headers=headers, data=body)
    ours = serve(ff_functions.ff_background, signature="event").post(headers, body)
    assert_same(ours, theirs)


def test_a_caller_asking_for_problems_gets_the_error_type_and_message(serve) -> None:
    worker = serve(ff_functions.ff_ce_strict)
    headers, body = CLOUDEVENT_REQUESTS["crash"]
    reply = worker.post({**headers, "Accept": "application/problem+json"}, body)
    assert reply.status == 500
    assert reply.headers["content-type"] == "application/problem+json"
    assert (reply.json()["errorType"], reply.json()["detail"]) == ("ValueError", "asked to crash")
    outcome = outcome_from_response(reply.status, reply.headers, reply.body)
    assert outcome == Failure("ValueError", "asked to crash", permanent=False)


def test_the_dispatcher_reads_functions_framework_answers(serve) -> None:
    worker = serve(ff_functions.ff_ce_strict)
    ok = worker.post(*CLOUDEVENT_REQUESTS["binary"])
    assert outcome_from_response(ok.status, ok.headers, ok.body) == Success([])
    crashed = worker.post(*CLOUDEVENT_REQUESTS["crash"])
    outcome = outcome_from_response(crashed.status, crashed.headers, crashed.body)
    assert isinstance(outcome, Failure) and not outcome.permanent
