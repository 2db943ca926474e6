"""The CloudEvents 1.0 attribute rules and the edge's limits, the same in every content mode."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
import pytest

from cumulo.errors import InvalidEventError, PayloadTooLargeError
from cumulo.events.attributes import SPEC_ONLY, EdgeRules, repaired, validate_attributes
from cumulo.events.cloudevent import BATCH, STRUCTURED, events_from_http
from cumulo.events.event import Event, from_json, to_json

BASE = {"specversion": "1.0", "id": "e-1", "source": "/tests", "type": "t"}


def structured(attributes: dict[str, Any], rules: EdgeRules = SPEC_ONLY) -> list[Event]:
    return events_from_http({"content-type": STRUCTURED}, orjson.dumps(attributes), rules)


def batch(attributes: dict[str, Any], rules: EdgeRules = SPEC_ONLY) -> list[Event]:
    return events_from_http({"content-type": BATCH}, orjson.dumps([attributes]), rules)


def binary(attributes: dict[str, Any], rules: EdgeRules = SPEC_ONLY) -> list[Event]:
    headers = {f"ce-{k}": quote(str(v), safe="/:") for k, v in attributes.items()}
    if "datacontenttype" in attributes:  # binary mode: Content-Type, as it is
        del headers["ce-datacontenttype"]
        headers["content-type"] = attributes["datacontenttype"]
    return events_from_http(headers, b"", rules)


MODES = [structured, batch, binary]


def problems(decode, attributes: dict[str, Any], rules: EdgeRules = SPEC_ONLY) -> str:
    with pytest.raises(InvalidEventError) as caught:
        decode(attributes, rules)
    return " | ".join(caught.value.problems)


@pytest.mark.parametrize("decode", MODES, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"datacontenttype": "not a media type"}, "'datacontenttype' must be a media type"),
        ({"datacontenttype": "text/plain; charset"}, "'datacontenttype' must be a media type"),
        ({"time": "yesterday"}, "'time' must be an RFC 3339 timestamp"),
        ({"time": "2024-02-30T00:00:00Z"}, "'time' must be an RFC 3339 timestamp"),
        ({"source": "a source with spaces"}, "'source' must be a non-empty URI-reference"),
        ({"source": "1x:y"}, "'source' must be a non-empty URI-reference"),
        ({"dataschema": "relative/schema.json"}, "'dataschema' must be an absolute URI"),
        ({"comment": "line\nbreak"}, "'comment' holds a control character"),
        ({"comment": "bell\x07"}, "'comment' holds a control character"),
        ({"comment": "next\x85line"}, "'comment' holds a control character"),
    ],
)
def test_every_mode_refuses_what_the_spec_forbids(decode, changes, named) -> None:
    assert named in problems(decode, {**BASE, **changes})


@pytest.mark.parametrize("decode", MODES, ids=lambda f: f.__name__)
def test_valid_attributes_of_every_kind_pass_in_every_mode(decode) -> None:
    attributes = {
        **BASE,
        "source": "https://github.com/org/repo?x=1#frag",
        "datacontenttype": 'text/plain; charset="utf-8"',
        "time": "2018-04-05T03:56:24.123456+02:00",
        "dataschema": "urn:example:schema:1",
        "subject": "caf\u00e9 \u2603",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    [event] = decode(attributes)
    assert event.attributes == attributes


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"datacontenttype": 5}, "'datacontenttype' must be a string, not int"),
        ({"datacontenttype": "text/plain\nx: 1"}, "'datacontenttype' holds a control character"),
        ({"source": 11745545518699950080}, "'source' must be a string, not int"),
        ({"id": 7}, "'id' must be a string, not int"),
        ({"type": ""}, "'type' must be a non-empty string"),
        ({"subject": None}, "'subject' must be a string, not null"),
        ({"priority": 2**31}, "'priority' is an integer outside the signed 32-bit range"),
        ({"priority": -(2**31) - 1}, "'priority' is an integer outside the signed 32-bit range"),
        ({"ratio": 0.5}, "'ratio' must be a string, integer or boolean, not float"),
        ({"list": [1]}, "'list' must be a string, integer or boolean, not list"),
    ],
)
@pytest.mark.parametrize("decode", [structured, batch], ids=lambda f: f.__name__)
def test_json_typed_attributes_follow_the_spec(decode, changes, named) -> None:
    assert named in problems(decode, {**BASE, **changes})


def test_integers_and_booleans_in_range_are_extensions_too() -> None:
    attributes = {**BASE, "priority": 2**31 - 1, "floor": -(2**31), "urgent": True}
    assert structured(attributes)[0].attributes == attributes


@pytest.mark.parametrize("decode", [structured, batch], ids=lambda f: f.__name__)
def test_a_json_number_without_a_fraction_is_an_integer(decode) -> None:
    [event] = decode({**BASE, "priority": -12551.0})
    assert event.attributes["priority"] == -12551 and type(event.attributes["priority"]) is int
    assert "signed 32-bit range" in problems(decode, {**BASE, "priority": 1e300})


def test_every_problem_is_reported_at_once() -> None:
    found = problems(structured, {"specversion": "1.0", "datacontenttype": 5, "time": "x"})
    for part in ("'id'", "'source'", "'type'", "'datacontenttype'", "'time'"):
        assert part in found


def test_a_refusal_never_echoes_the_value() -> None:
    secret = "hunter2-" + "x" * 50
    found = problems(structured, {**BASE, "datacontenttype": secret, "time": secret})
    assert "hunter2" not in found


LIMITS = EdgeRules(max_attributes=8, max_attribute_bytes=300, max_data_depth=5)


@pytest.mark.parametrize("decode", MODES, ids=lambda f: f.__name__)
def test_attribute_count_and_size_are_bounded_at_the_edge(decode) -> None:
    many = {**BASE, **{f"x{i}": "v" for i in range(5)}}
    assert "9 attributes are over the max_event_attributes limit of 8" in problems(
        decode, many, LIMITS
    )
    big = {**BASE, "note": "\u00e9" * 151}  # 302 bytes in UTF-8
    assert "'note' is over the max_attribute_bytes limit of 300" in problems(decode, big, LIMITS)
    assert decode({**BASE, "note": "\u00e9" * 150}, LIMITS)[0].attributes["note"]


def test_a_32_megabyte_header_value_is_refused_by_size() -> None:
    headers = {f"ce-{k}": v for k, v in BASE.items()} | {"ce-big": "a" * (32 * 1024 * 1024)}
    with pytest.raises(InvalidEventError, match="'big' is over the max_attribute_bytes limit"):
        events_from_http(headers, b"", EdgeRules(max_attribute_bytes=4096))


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [6, 255, 1023])
def test_deep_json_data_is_refused_in_every_mode(depth: int) -> None:
    data = orjson.dumps(nested(depth)) if depth < 254 else b"[" * depth + b"]" * depth
    envelope = orjson.dumps(BASE)[:-1] + b',"data":' + data + b"}"
    modes = [
        ({"content-type": STRUCTURED}, envelope),
        ({"content-type": BATCH}, b"[" + envelope + b"]"),
        ({**{f"ce-{k}": v for k, v in BASE.items()}, "content-type": "application/json"}, data),
    ]
    for headers, body in modes:  # past 1024 levels the JSON parser itself stops: also a 400
        with pytest.raises(InvalidEventError, match=r"over the 5-level limit|depth limit exceeded"):
            events_from_http(headers, body, LIMITS)


def test_data_at_the_depth_limit_passes_and_encodes() -> None:
    [event] = structured({**BASE, "data": nested(5)}, LIMITS)
    assert event.data == nested(5)
    assert from_json(to_json(event)) == event


def test_a_batch_over_its_event_limit_is_413_naming_the_limit() -> None:
    body = orjson.dumps([{**BASE, "id": str(i)} for i in range(11)])
    with pytest.raises(PayloadTooLargeError, match="11 events, over the max_batch_events limit"):
        events_from_http({"content-type": BATCH}, body, EdgeRules(max_batch_events=10))
    assert len(events_from_http({"content-type": BATCH}, body, EdgeRules(max_batch_events=11)))


def test_no_limits_inside_the_platform() -> None:
    attributes = {**BASE, **{f"x{i}": "v" * 10_000 for i in range(100)}}
    assert validate_attributes(attributes) == []


def test_stored_events_stay_readable_and_can_be_repaired() -> None:
    """An event an older Cumulo stored (before today's rules) is read, and can be dead-lettered."""
    legacy = {**BASE, "source": "my source", "datacontenttype": 5, "note": "a\nb"}
    event = from_json(orjson.dumps({**legacy, "data": {"x": 1}}))
    assert validate_attributes(event.attributes)  # breaks today's rules
    fixed, changed = repaired(event.attributes)
    assert validate_attributes(fixed) == []
    assert sorted(changed) == ["datacontenttype", "note", "source"]
    assert fixed["source"] == "my%20source" and fixed["note"] == "a b"
    assert "datacontenttype" not in fixed


@pytest.mark.parametrize("decode", MODES, ids=lambda f: f.__name__)
def test_a_time_without_an_offset_passes_as_sent_as_the_sdk_takes_it(decode) -> None:
    [event] = decode({**BASE, "time": "2020-08-16T13:58:54.471765"})  # functions-framework's tests
    assert event.attributes["time"] == "2020-08-16T13:58:54.471765"
