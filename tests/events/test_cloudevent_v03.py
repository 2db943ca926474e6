"""CloudEvents 0.3: read in every content mode, checked by 0.3's rules, kept as 0.3."""

from __future__ import annotations

import base64
import json

import pytest
from cloudevents.http import from_http

from cumulo.errors import InvalidEventError
from cumulo.events.attributes import validate_attributes
from cumulo.events.cloudevent import (
    BATCH,
    STRUCTURED,
    events_from_http,
    http_message,
    to_sdk,
)
from cumulo.events.event import Event, from_json, to_json

REQUIRED_03 = {"specversion": "0.3", "id": "1", "source": "/s", "type": "t"}


def binary(**attributes: str) -> dict[str, str]:
    return {f"ce-{name}": value for name, value in {**REQUIRED_03, **attributes}.items()}


def structured(**fields: object) -> tuple[dict[str, str], bytes]:
    return {"content-type": STRUCTURED}, json.dumps({**REQUIRED_03, **fields}).encode()


def test_a_binary_03_event_keeps_its_own_attribute_names() -> None:
    headers = binary(schemaurl="/schemas/x", subject="s", time="2018-04-05T03:56:24Z")
    [event] = events_from_http({**headers, "content-type": "text/plain"}, b"hello")
    assert event.attributes == {
        **REQUIRED_03,
        "schemaurl": "/schemas/x",
        "subject": "s",
        "time": "2018-04-05T03:56:24Z",
        "datacontenttype": "text/plain",
    }
    assert event.data == b"hello"


def test_structured_and_batch_03_events_are_read() -> None:
    [one] = events_from_http(*structured(data={"a": 1}, schemaurl="https://x/s"))
    assert one.attributes["specversion"] == "0.3" and one.data == {"a": 1}
    items = [{**REQUIRED_03, "id": str(n), "data": n} for n in range(3)]
    events = events_from_http({"content-type": BATCH}, json.dumps(items).encode())
    assert [(e.id, e.data, e.attributes["specversion"]) for e in events] == [
        ("0", 0, "0.3"),
        ("1", 1, "0.3"),
        ("2", 2, "0.3"),
    ]


@pytest.mark.parametrize(
    ("attributes", "problem"),
    [
        ({"specversion": "0.3", "schemaurl": "not a uri"}, "'schemaurl' must be a non-empty URI"),
        ({"specversion": "0.3", "datacontentencoding": "base 64"}, "RFC 2045 encoding name"),
        ({"specversion": "1.0", "dataschema": "/relative"}, "'dataschema' must be an absolute URI"),
        ({"specversion": "0.2"}, "unsupported specversion '0.2' (only '1.0' or '0.3')"),
    ],
)
def test_each_version_checks_its_own_attributes(attributes: dict[str, str], problem: str) -> None:
    problems = validate_attributes({**REQUIRED_03, **attributes})
    assert any(problem in p for p in problems), problems


def test_the_other_versions_names_are_plain_extensions() -> None:
    assert validate_attributes({**REQUIRED_03, "dataschema": "not a uri"}) == []
    v1 = {**REQUIRED_03, "specversion": "1.0"}
    assert validate_attributes({**v1, "schemaurl": "/relative", "datacontentencoding": "x y"}) == []


def test_base64_data_stays_the_string_the_sdk_gives_a_function() -> None:
    encoded = base64.b64encode(b"\x00\xffbinary").decode()
    headers, body = structured(
        datacontentencoding="base64", datacontenttype="application/octet-stream", data=encoded
    )
    [event] = events_from_http(headers, body)
    assert event.attributes["datacontentencoding"] == "base64"
    assert event.data == encoded
    sdk_event = to_sdk(event)
    assert sdk_event.get_attributes() == {
        k: v for k, v in from_http(headers, body).get_attributes().items() if k != "time"
    }
    assert sdk_event.data == from_http(headers, body).data == encoded


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"not": "a string"}, "'data' must be a string when datacontentencoding is 'base64'"),
        ("not base64!", "'data' is not valid base64"),
    ],
)
def test_encoded_data_must_be_what_its_encoding_says(data: object, problem: str) -> None:
    with pytest.raises(InvalidEventError, match=problem):
        events_from_http(*structured(datacontentencoding="base64", data=data))


def test_a_03_event_stays_03_on_the_bus_and_on_its_way_to_the_worker() -> None:
    events = [
        Event({**REQUIRED_03, "schemaurl": "/s", "datacontenttype": "text/plain"}, b"hi"),
        Event({**REQUIRED_03, "datacontentencoding": "base64"}, "aGk="),
        Event({**REQUIRED_03, "datacontenttype": "application/json"}, {"k": [1]}),
    ]
    for event in events:
        assert from_json(to_json(event)) == event
        assert events_from_http(*http_message(event)) == [event]
