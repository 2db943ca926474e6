"""What a function receives, in-process: the gateway's decoder, the bus's format, the delivery.

The same cases as the end-to-end test (tests/e2e/test_event_round_trip.py),
through the same codecs, without processes: ``events_from_http`` on the
request as a server reads it, the JSON format the bus stores, the message
:func:`http_message` sends to the worker, the worker's ``events_from_http``,
and :func:`to_sdk`. The oracle is the CloudEvents SDK's ``from_http`` on the
original request (:func:`sdk_reading`).
"""

from __future__ import annotations

import pytest

from cumulo.events.cloudevent import events_from_http, http_message, to_sdk
from cumulo.events.event import Event, from_json, to_json
from tests.runtimes.worker.conformance import (
    Request,
    describe,
    feature_cases,
    feature_request,
    sdk_cases,
    sdk_reading,
    spec_strings,
    yaml_cases,
)

REQUESTS = [
    *(spec_strings(case).request() for case in yaml_cases()),
    *(feature_request(case) for case in feature_cases()),
    *sdk_cases(),
]


def as_a_server_reads_them(headers: dict[str, str]) -> dict[str, str]:
    """Lower-case names, and each value's bytes as latin-1 text (what starlette gives)."""
    return {name.lower(): value for name, value in headers.items()}


def delivered(event: Event) -> Event:
    """``event`` through the bus (JSON format) and the delivery to the worker (HTTP)."""
    stored = from_json(to_json(event))
    headers, body = http_message(stored)
    assert "content-type" in headers  # no HTTP client has to pick one
    [received] = events_from_http(as_a_server_reads_them(headers), body)
    return received


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda request: request.name)
def test_the_function_gets_what_the_sdk_reads(request_: Request) -> None:
    accepted = events_from_http(as_a_server_reads_them(request_.wire_headers()), request_.body)
    received = [describe(to_sdk(delivered(event))) for event in accepted]
    assert received == [describe(event) for event in sdk_reading(request_)]


def test_there_are_cases_of_every_kind() -> None:
    names = " ".join(request.name for request in REQUESTS)
    for kind in ("v1.yaml", "v03.yaml", "v1_minimum", "v03_minimum", "Binary content mode"):
        assert kind in names
    for kind in ("-binary", "-structured", "sdk-batch-1.0", "sdk-batch-0.3"):
        assert kind in names
    assert len(REQUESTS) >= 60
