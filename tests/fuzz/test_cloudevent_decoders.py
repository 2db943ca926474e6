"""Property tests of the CloudEvents decoders: refusal, or events that survive re-encoding.

Whatever an HTTP message holds (binary mode's headers and body, a structured
envelope, a batch), :func:`events_from_http` either refuses it with
:class:`InvalidEventError` (400, 413 or 415 over HTTP) or returns events that
follow every rule and travel on unchanged: through the JSON format exactly,
and through binary mode up to what binary mode cannot carry (every attribute
is text there; JSON data gets its Content-Type; an empty body is no data).
Any other exception, which would be a 500 or a delivery loop, fails.

Bounded and reproducible: a fixed number of examples per property (a few
thousand in all), derandomized, no deadline, no example database.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import given
from hypothesis import strategies as st

from cumulo.errors import InvalidEventError
from cumulo.events.attributes import SPEC_ONLY, EdgeRules, validate_attributes
from cumulo.events.cloudevent import (
    BATCH,
    STRUCTURED,
    binary_http,
    events_from_http,
    http_message,
    is_json_media_type,
    structured_http,
)
from cumulo.events.event import Event, from_envelope, from_json, to_json
from tests.fuzz.budget import fuzz

TIGHT = EdgeRules(max_attributes=10, max_attribute_bytes=64, max_batch_events=4, max_data_depth=4)
RULES = st.sampled_from([SPEC_ONLY, TIGHT])


# --- what messages are made of -----------------------------------------------------------
#
# Mostly valid events, each with a chance of one thing wrong (a value of another
# type, a character the spec's String excludes, a bad name, a limit passed), so
# both the refusals and the events that are accepted get their share of examples.

PRINTABLE = st.text(st.characters(exclude_categories=("Cc", "Cs", "Cn")), max_size=30)
NAMES = st.one_of(
    st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
    st.sampled_from(["subject", "traceparent", "Bad_Name", "x" * 21, ""]),
)
SOURCES = st.one_of(
    st.sampled_from(["/tests", "urn:x:y", "https://h/p?q#f", "kafka://h:9092,h2:9092/t"]),
    st.from_regex(r"/[a-z0-9/._~-]{0,20}", fullmatch=True),
)
TIMES = st.one_of(
    st.sampled_from(["2018-04-05T03:56:24Z", "2024-01-01T00:00:00.123456+05:30"]),
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
)
MEDIA_TYPES = st.sampled_from(
    [
        "application/json",
        "text/plain; charset=utf-8",
        'text/plain; charset="utf-8"',
        "application/vnd.x+json",
        "application/octet-stream",
        "text/json;",
    ]
)
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "a b", "1x:y", "%zz", "yesterday", "garbage", "text/plain\nx: 1"]),
    st.text(st.characters(codec="ascii"), min_size=65, max_size=80),
    st.lists(st.integers(), max_size=2),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
EXTENSION_VALUES = st.one_of(
    PRINTABLE, st.booleans(), st.integers(min_value=-(2**31), max_value=2**31 - 1)
)


@st.composite
def valid_attributes(draw: st.DrawFn) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(PRINTABLE.filter(bool)),
        "source": draw(SOURCES),
        "type": draw(PRINTABLE.filter(bool)),
    }
    optional = {"subject": PRINTABLE, "time": TIMES, "dataschema": st.just("urn:schema:1")}
    for name, values in optional.items():
        if draw(st.booleans()):
            attributes[name] = draw(values)
    names = st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True)
    attributes.update(draw(st.dictionaries(names, EXTENSION_VALUES, max_size=3)))
    if draw(st.booleans()):
        attributes["datacontenttype"] = draw(MEDIA_TYPES)
    return attributes


@st.composite
def attributes_maybe_wrong(draw: st.DrawFn) -> dict[str, Any]:
    """Valid attributes, or (three times in seven) with one thing wrong."""
    attributes = draw(valid_attributes())
    mistake = draw(st.sampled_from(["none"] * 4 + ["value", "missing", "name"]))
    if mistake == "value":
        name = draw(st.sampled_from([*attributes, "datacontenttype", "time", "extra"]))
        attributes[name] = draw(WRONG)
    elif mistake == "missing":
        del attributes[draw(st.sampled_from(["id", "source", "type", "specversion"]))]
    elif mistake == "name":
        attributes[draw(NAMES)] = draw(EXTENSION_VALUES)
    return attributes


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    """A JSON-format object: mostly nearly valid, now and then anything at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON)
    envelope = draw(attributes_maybe_wrong())
    data = draw(st.sampled_from(["none", "data", "data", "base64", "both"]))
    if data in ("data", "both"):
        envelope["data"] = draw(JSON)
    if data in ("base64", "both"):
        envelope["data_base64"] = draw(st.one_of(st.sampled_from(["eA==", "", "!!"]), JSON))
    return envelope


def dumps(value: Any) -> bytes:
    """JSON text for any value (integers past 64 bits and lone surrogates included)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")


BODIES = st.one_of(st.binary(max_size=200), st.builds(dumps, JSON))


@st.composite
def binary_messages(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    attributes = draw(attributes_maybe_wrong())
    content_type = attributes.pop("datacontenttype", None)
    headers = {}
    for name, value in attributes.items():
        text = value if isinstance(value, str) else json.dumps(value)
        headers[f"ce-{name}"] = draw(st.sampled_from([quote(text), text]))
    if content_type is not None or draw(st.booleans()):
        header = draw(st.sampled_from(["content-type", "Content-Type"]))
        headers[header] = content_type if isinstance(content_type, str) else draw(MEDIA_TYPES)
    return headers, draw(BODIES)


CONTENT_TYPES = st.sampled_from(
    [
        STRUCTURED,
        STRUCTURED + "; charset=utf-8",
        "Application/CloudEvents+JSON",
        BATCH,
        BATCH + "; charset=utf-8",
        "application/cloudevents+xml",
        "application/cloudevents-batch+avro",
    ]
)


@st.composite
def json_messages(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    content_type = draw(CONTENT_TYPES)
    if "batch" in content_type.lower():
        batches = st.builds(dumps, st.lists(envelopes(), max_size=5))
        body = draw(st.one_of(batches, batches, BODIES))
    else:
        body = draw(st.one_of(st.builds(dumps, envelopes()), st.builds(dumps, envelopes()), BODIES))
    return {"content-type": content_type}, body


# --- the property ------------------------------------------------------------------------


def decoded(headers: dict[str, str], body: bytes, rules: EdgeRules) -> list[Event] | None:
    """The decoder's events (an empty batch has none), or None for a refusal.

    Any exception but a refusal fails the test.
    """
    try:
        events = events_from_http(headers, body, rules)
    except InvalidEventError as refusal:
        assert refusal.problems and all(isinstance(p, str) and p for p in refusal.problems)
        return None
    assert events or "batch" in headers["content-type"].lower()
    return events


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def through_binary_mode(event: Event) -> Event:
    """What binary mode can carry of ``event``: text attributes, a Content-Type for JSON data."""
    attributes = {name: as_text(value) for name, value in event.attributes.items()}
    data = event.data
    if data is not None and not isinstance(data, bytes):
        attributes.setdefault("datacontenttype", "application/json")
        if isinstance(data, str) and not is_json_media_type(attributes["datacontenttype"]):
            data = data.encode()  # binary mode carries text as its bytes
    return Event(attributes, None if data == b"" else data)


def assert_travels(event: Event, rules: EdgeRules) -> None:
    assert validate_attributes(event.attributes, rules) == []
    assert from_json(to_json(event)) == event
    assert from_envelope(orjson.loads(to_json(event)), rules) == event
    assert events_from_http(*structured_http(event), rules) == [event]
    headers, body = binary_http(event)
    content_type = event.attributes.get("datacontenttype")
    if isinstance(event.data, bytes) and event.data and is_json_media_type(content_type):
        return  # opaque bytes labelled JSON: a receiver reads them as JSON, if they are
    assert events_from_http(headers, body) == [through_binary_mode(event)]
    assert events_from_http(*http_message(event), rules) == [event]  # what the dispatcher sends


@fuzz(1500)
@given(binary_messages(), RULES)
def test_binary_mode_messages(message: tuple[dict[str, str], bytes], rules: EdgeRules) -> None:
    for event in decoded(*message, rules) or []:
        assert_travels(event, rules)


@fuzz(1500)
@given(json_messages(), RULES)
def test_structured_and_batch_messages(
    message: tuple[dict[str, str], bytes], rules: EdgeRules
) -> None:
    for event in decoded(*message, rules) or []:
        assert_travels(event, rules)


@fuzz(500)
@given(st.lists(envelopes(), min_size=1, max_size=4), RULES)
def test_a_batch_is_all_or_nothing_and_agrees_with_structured_mode(
    items: list[Any], rules: EdgeRules
) -> None:
    one_by_one = [decoded({"content-type": STRUCTURED}, dumps(item), rules) for item in items]
    together = decoded({"content-type": BATCH}, dumps(items), rules)
    if all(one_by_one) and len(items) <= (rules.max_batch_events or len(items)):
        assert together == [events[0] for events in one_by_one if events]
    else:
        assert together is None


@fuzz(500)
@given(BODIES)
def test_stored_events_decode_or_are_refused(body: bytes) -> None:
    try:
        event = from_json(body)
    except InvalidEventError:
        return
    assert from_json(to_json(event)) == event
