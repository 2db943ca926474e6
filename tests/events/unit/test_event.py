"""Event values, new_event's defaults, and the JSON event format as the bus stores it."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

import orjson
import pytest

from cumulo.errors import EncodingError, InvalidEventError
from cumulo.events import tracing
from cumulo.events.attributes import EdgeRules
from cumulo.events.event import (
    SPEC_VERSION,
    Event,
    from_envelope,
    from_json,
    new_event,
    now_rfc3339,
    to_json,
)
from cumulo.events.filters import compile_filter
from cumulo.spec.models import TriggerBinding

BASE = {"specversion": "1.0", "id": "e-1", "source": "/tests", "type": "t"}
CAUSE_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def problems_of(body: bytes) -> list[str]:
    with pytest.raises(InvalidEventError) as caught:
        from_json(body)
    return caught.value.problems


# --- the value ---------------------------------------------------------------------------


def test_events_are_equal_by_attributes_and_data() -> None:
    event = Event(dict(BASE), {"n": 1})
    assert event == Event(dict(BASE), {"n": 1})
    assert event != Event(dict(BASE), {"n": 2})
    assert event != Event({**BASE, "id": "e-2"}, {"n": 1})
    assert event != BASE  # not an Event at all


def test_repr_names_type_source_and_id() -> None:
    assert repr(Event(dict(BASE))) == "Event(type='t', source='/tests', id='e-1')"


def test_optional_attributes_read_as_none_when_absent() -> None:
    event = Event(dict(BASE))
    assert (event.subject, event.time) == (None, None)
    assert Event({**BASE, "subject": "s"}).subject == "s"


def test_with_attributes_copies_sets_and_removes() -> None:
    event = Event({**BASE, "region": "eu"}, b"x")
    changed = event.with_attributes(region=None, tier="gold")
    assert changed.attributes == {**BASE, "tier": "gold"}
    assert changed.data == b"x"
    assert event.attributes["region"] == "eu" and "tier" not in event.attributes


# --- new_event ------------------------------------------------------------------------------


def test_new_event_fills_in_id_time_and_specversion() -> None:
    event = new_event("order.placed", "/shop")
    assert event.attributes["specversion"] == SPEC_VERSION == "1.0"
    assert uuid.UUID(event.id)
    assert event.time.endswith("Z")
    assert datetime.fromisoformat(event.time.replace("Z", "+00:00")).tzinfo is not None
    assert new_event("t", "/s").id != new_event("t", "/s").id


def test_new_event_keeps_a_given_id_and_subject() -> None:
    event = new_event("t", "/s", id="fixed", subject="orders/1")
    assert (event.id, event.subject) == ("fixed", "orders/1")


@pytest.mark.parametrize(
    ("data", "given", "expected"),
    [
        ({"n": 1}, None, "application/json"),
        ("text", None, "application/json"),  # a JSON string
        (b"\x00raw", None, None),  # opaque bytes have no media type of their own
        (None, None, None),
        (b"<a/>", "application/xml", "application/xml"),
        ({"n": 1}, "application/vnd.x+json", "application/vnd.x+json"),
    ],
)
def test_new_event_labels_its_data(data: object, given: str | None, expected: str | None) -> None:
    event = new_event("t", "/s", data, datacontenttype=given)
    assert event.attributes.get("datacontenttype") == expected
    assert event.data == data


def test_new_event_writes_extensions_as_strings_and_drops_none() -> None:
    event = new_event("t", "/s", priority=7, region="eu", tenant=None)
    assert event.attributes["priority"] == "7"
    assert event.attributes["region"] == "eu"
    assert "tenant" not in event.attributes


def test_a_boolean_extension_matches_the_filter_for_its_cloudevents_string() -> None:
    event = new_event("t", "/s", urgent=True)
    binding = TriggerBinding.model_validate({"filters": [{"exact": {"urgent": "true"}}]})
    assert compile_filter(binding)(event)


def test_an_event_made_while_handling_another_joins_its_trace() -> None:
    cause = new_event("t", "/s", traceparent=CAUSE_TRACE)
    with tracing.handling(cause):
        child = new_event("progress", "/fn")
        explicit = new_event("other", "/fn", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert tracing.trace_id_of(child) == "0af7651916cd43dd8448eb211c80319c"
    assert explicit.attributes["traceparent"] == "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


def test_now_rfc3339_is_utc_with_a_z() -> None:
    stamp = now_rfc3339()
    assert stamp.endswith("Z") and "+" not in stamp
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).utcoffset().total_seconds() == 0  # type: ignore[union-attr]


# --- the JSON event format -------------------------------------------------------------------


@pytest.mark.parametrize("data", [None, {"n": [1, 2]}, "text", 3, b"\x00\xffbytes", b""])
def test_to_json_and_from_json_round_trip(data: object) -> None:
    event = Event({**BASE, "count": 3, "flag": True}, data)
    assert from_json(to_json(event)) == event


def test_bytes_travel_as_data_base64_and_none_as_nothing() -> None:
    envelope = orjson.loads(to_json(Event(dict(BASE), b"\x01\x02")))
    assert envelope["data_base64"] == base64.b64encode(b"\x01\x02").decode()
    assert "data" not in envelope
    assert "data" not in orjson.loads(to_json(Event(dict(BASE))))
    assert "data_base64" not in orjson.loads(to_json(Event(dict(BASE))))


def test_data_the_format_cannot_hold_is_an_encoding_error() -> None:
    with pytest.raises(EncodingError, match="cannot be written in the JSON format"):
        to_json(Event(dict(BASE), {"big": 2**70}))


def test_from_json_refuses_what_is_not_json() -> None:
    [problem] = problems_of(b"{not json")
    assert problem.startswith("body is not valid JSON")


def test_from_json_refuses_a_json_value_that_is_no_object() -> None:
    assert problems_of(b"[1, 2]") == ["a CloudEvent must be a JSON object, not list"]


def test_from_json_names_every_structural_problem() -> None:
    body = orjson.dumps({"specversion": "1.0", "id": "", "type": "t", "Bad": "x", "ext": [1]})
    found = problems_of(body)
    assert "missing required attribute 'id'" in found  # empty counts as missing
    assert "missing required attribute 'source'" in found
    assert "attribute names must be 1-20 lowercase letters or digits" in found
    assert "attribute 'ext' must be a string, integer or boolean" in found


def test_from_json_still_reads_an_event_stored_before_todays_rules() -> None:
    legacy = from_json(orjson.dumps({**BASE, "source": "my source", "time": "yesterday"}))
    assert legacy.source == "my source" and legacy.time == "yesterday"
    with pytest.raises(InvalidEventError):
        from_envelope({**BASE, "source": "my source"})  # from outside: every rule applies


def test_a_json_number_without_a_fraction_is_read_as_an_integer() -> None:
    event = from_json(orjson.dumps({**BASE, "count": 3.0}))
    assert event.attributes["count"] == 3 and isinstance(event.attributes["count"], int)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"data": 1, "data_base64": "AA=="}, "'data' and 'data_base64' are mutually exclusive"),
        ({"data_base64": 5}, "'data_base64' is not valid base64: it is int, not a string"),
        ({"data_base64": "%%%"}, "'data_base64' is not valid base64"),
    ],
)
def test_data_base64_must_be_base64_text_alone(extra: dict[str, object], problem: str) -> None:
    [found] = problems_of(orjson.dumps({**BASE, **extra}))
    assert found.startswith(problem)


def test_from_envelope_applies_the_edges_depth_limit() -> None:
    rules = EdgeRules(max_data_depth=2)
    assert from_envelope({**BASE, "data": {"a": {"b": 1}}}, rules).data == {"a": {"b": 1}}
    with pytest.raises(InvalidEventError, match="over the 2-level limit"):
        from_envelope({**BASE, "data": {"a": {"b": [1]}}}, rules)


def test_a_03_event_without_data_needs_no_encoded_string() -> None:
    envelope = {**BASE, "specversion": "0.3", "datacontentencoding": "base64"}
    assert from_envelope(envelope).data is None
