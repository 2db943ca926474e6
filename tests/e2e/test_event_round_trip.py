"""CloudEvents 1.0 and 0.3 arrive intact, from ``POST /events`` to a functions-framework function.

One ``cumulo up``, one project: a ``@functions_framework.cloud_event`` function
on a catch-all trigger writes down what it received (every attribute's name,
value and Python type; the data's type and value, bytes as base64) to a file
per event. Every case is published, then each record is compared with what
the CloudEvents SDK's ``from_http`` gives for the original request
(:func:`~tests.runtimes.worker.conformance.sdk_reading`): the same
attributes with the same values and types, the same data. The one attribute
the platform may add is ``traceparent``, to an event that came without one.

The cases: the conformance vectors (1.0 and 0.3, every mode each names), the
HTTP binding feature's requests, and SDK-rendered events (binary, structured,
batches). Each event's id gets the case's number, so the bus's (source, id)
dedup keeps every case and each record names its case.
"""

from __future__ import annotations

import http.client
import inspect
import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import write_project
from tests.e2e.platform import wait_for
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
from tests.servers.kafka import kafka_url

TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

SPEC = """\
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: record}
spec:
  handler: main:record
  signature: cloudevent
  triggers: [{topic: default}]   # no filter: every event
  scale: {min: 1, max: 2, concurrency: 8}
  env: {RECORDS: "%s"}
"""

MAIN = '''\
"""Writes down every event it receives, as describe() shows it."""

from __future__ import annotations  # the copied functions' hints name what is not imported

import json
import os

import functions_framework

%s

@functions_framework.cloud_event
def record(event):
    path = os.path.join(os.environ["RECORDS"], record_name(event["id"]))
    with open(path + ".part", "w") as out:
        json.dump(describe(event), out)
    os.replace(path + ".part", path)


%s'''


def record_name(event_id: str) -> str:
    """The file a received event's record goes to."""
    import hashlib as digest  # imported here: this function's source runs on its own

    return digest.sha256(event_id.encode()).hexdigest() + ".json"


def project(folder: Path, records: Path) -> Path:
    main = MAIN % (inspect.getsource(describe), inspect.getsource(record_name))
    return write_project(folder, {"cumulo.yaml": SPEC % records, "main.py": main})


def cases() -> list[Request]:
    requests = [
        *(spec_strings(case).request() for case in yaml_cases()),
        *(feature_request(case) for case in feature_cases()),
        *sdk_cases(),
    ]
    return [request.with_id_suffix(f".case{n}") for n, request in enumerate(requests)]


def line_breaks() -> list[Request]:
    """The vectors whose extension value ends in a line break (see ``spec_strings``).

    Percent-encoded, the line break is a legal header value; decoded, it is no
    legal attribute value (the String type excludes control characters), so
    the gateway refuses these with 400 and nothing of them reaches the function.
    """
    broken = [case for case in yaml_cases() if spec_strings(case) != case]
    assert {case.attributes["specversion"] for case in broken} == {"1.0", "0.3"}
    return [case.request().with_id_suffix(".refused") for case in broken]


def post(connection: http.client.HTTPConnection, request: Request) -> tuple[int, bytes]:
    """POST the request as it is: ``http.client`` adds no Content-Type of its own."""
    connection.request("POST", "/events", body=request.body, headers=request.wire_headers())
    response = connection.getresponse()
    return response.status, response.read()


def expected_records(requests: list[Request]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Record name → (case, what the SDK reads for that event)."""
    expected = {}
    for request in requests:
        for event in sdk_reading(request):
            expected[record_name(event["id"])] = (request.name, describe(event))
    return expected


def without_added_trace(received: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """``received`` less the ``traceparent`` the platform may add to an untraced event."""
    attributes = dict(received["attributes"])
    if "traceparent" not in expected["attributes"]:
        kind, value = attributes.pop("traceparent")
        assert kind == "str" and TRACEPARENT.fullmatch(value), value
    return {**received, "attributes": attributes}


@pytest.fixture(params=["sqlite", "kafka"])
def bus_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The embedded SQLite log, and a Kafka bus (structured records, the Kafka binding)."""
    if request.param == "sqlite":
        return {}
    return {"CUMULO_BUS_URL": kafka_url(request.getfixturevalue("kafka_server"))}


def test_every_case_reaches_the_function_as_the_sdk_reads_it(platform_factory, tmp_path, bus_env):
    records = tmp_path / "records"
    records.mkdir()
    platform = platform_factory(project(tmp_path / "p", records), env=bus_env)
    requests = cases()
    expected = expected_records(requests)
    assert len(requests) >= 80 and len(expected) >= 90

    connection = http.client.HTTPConnection(urllib.parse.urlsplit(platform.url).netloc, timeout=30)
    try:
        for request in requests:
            status, body = post(connection, request)
            assert status == 202, (request.name, body)
        for refused in line_breaks():
            status, body = post(connection, refused)
            assert status == 400 and b"comexampleextension2" in body, (refused.name, body)
    finally:
        connection.close()

    def arrived() -> bool:
        return {path.name for path in records.glob("*.json")} >= expected.keys()

    wait_for(arrived, timeout=120, what=f"{len(expected)} records")
    differences = []
    for name, (case, seen_by_sdk) in sorted(expected.items(), key=lambda item: item[1][0]):
        received = json.loads((records / name).read_text())
        if without_added_trace(received, seen_by_sdk) != seen_by_sdk:
            differences.append(f"{case}:\n  received {received}\n  expected {seen_by_sdk}")
    assert not differences, "\n".join(differences)
    assert len(list(records.glob("*.json"))) == len(expected)  # and nothing else
