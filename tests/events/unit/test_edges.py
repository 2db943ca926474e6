"""Edge cases of the wire codecs, filters and attribute rules not pinned by the other tests.

Each test names the rule a caller relies on: CloudEvents HTTP binding details
(:mod:`cumulo.events.cloudevent`), filter leaves over missing and typed values
(:mod:`cumulo.events.filters`), and attribute names and repair
(:mod:`cumulo.events.attributes`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from cumulo.errors import InvalidEventError, PermanentError
from cumulo.events.attributes import (
    EdgeRules,
    nesting_depth_exceeds,
    printable,
    repaired,
    rules_of,
    validate_attributes,
)
from cumulo.events.cloudevent import (
    CAUSE_EXTENSION,
    STRUCTURED,
    binary_http,
    encode_data,
    events_from_http,
    from_sdk,
    http_message,
    is_batch,
    replies_from_result,
)
from cumulo.events.event import Event, new_event
from cumulo.events.filters import as_text, compile_filter
from cumulo.spec.models import TriggerBinding

BASE = {"specversion": "1.0", "id": "e-1", "source": "/tests", "type": "t"}


# --- cloudevent ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/cloudevents-batch+json", True),
        ("Application/CloudEvents-Batch+JSON; charset=utf-8", True),
        ("application/cloudevents+json", False),
        (None, False),
    ],
)
def test_is_batch_reads_the_content_type(content_type: str | None, expected: bool) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    assert is_batch(headers) is expected


def test_a_header_value_that_is_already_text_is_kept() -> None:
    """An ASGI server may hand over decoded text that latin-1 cannot hold: it is used as it is."""
    headers = {**{f"ce-{k}": v for k, v in BASE.items()}, "ce-city": "東京"}
    [event] = events_from_http(headers, b"")
    assert event.attributes["city"] == "東京"


def test_binary_mode_writes_booleans_and_integers_as_cloudevents_strings() -> None:
    headers, _ = binary_http(Event({**BASE, "urgent": True, "quiet": False, "count": 3}))
    assert (headers["ce-urgent"], headers["ce-quiet"], headers["ce-count"]) == (
        "true",
        "false",
        "3",
    )


def test_an_event_with_typed_attributes_travels_structured_to_keep_their_types() -> None:
    headers, _ = http_message(Event({**BASE, "datacontenttype": "text/plain", "n": 3}, b"x"))
    assert headers["content-type"].startswith(STRUCTURED)


@pytest.mark.parametrize(
    ("data", "content_type", "body", "sent_as"),
    [
        (None, "text/plain", b"", "text/plain"),
        (bytearray(b"ab"), None, b"ab", None),
        ("héllo", "text/plain", "héllo".encode(), "text/plain"),
        ("héllo", None, b'"h\xc3\xa9llo"', "application/json"),
        ({"n": 1}, "application/json", b'{"n":1}', "application/json"),
    ],
)
def test_encode_data_writes_the_body_its_media_type_calls_for(
    data: object, content_type: str | None, body: bytes, sent_as: str | None
) -> None:
    assert encode_data(data, content_type) == (body, sent_as)


def test_from_sdk_writes_times_in_utc_with_a_z() -> None:
    when = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    attributes: dict[str, Any] = {"type": "t", "source": "/s", "time": when}
    sdk = CloudEvent(attributes)
    assert from_sdk(sdk).attributes["time"] == "2024-05-01T12:00:00Z"


def test_from_sdk_refuses_attributes_the_spec_forbids() -> None:
    sdk = CloudEvent({"type": "t", "source": "a source with spaces"})
    with pytest.raises(InvalidEventError, match="'source' must be a non-empty URI-reference"):
        from_sdk(sdk)


def test_an_invalid_event_returned_by_a_function_is_a_permanent_error() -> None:
    bad = Event({**BASE, "time": "yesterday"})
    with pytest.raises(PermanentError, match="'time' must be an RFC 3339 timestamp"):
        replies_from_result(bad, default_source="/fn", cause=None)


def test_a_reply_keeps_its_own_cause_and_without_a_cause_gets_none() -> None:
    cause = new_event("t", "/s", id="cause-1")
    own = new_event("r", "/fn", **{CAUSE_EXTENSION: "earlier"})
    [kept] = replies_from_result(own, default_source="/fn", cause=cause)
    assert kept.attributes[CAUSE_EXTENSION] == "earlier"
    [plain] = replies_from_result({"type": "r"}, default_source="/fn", cause=None)
    assert CAUSE_EXTENSION not in plain.attributes and plain.source == "/fn"


# --- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"), [(None, None), ("s", "s"), (True, "true"), (False, "false"), (7, "7")]
)
def test_attribute_values_compare_as_cloudevents_strings(value: object, text: str | None) -> None:
    assert as_text(value) == text


@pytest.mark.parametrize("dialect", ["prefix", "suffix"])
def test_prefix_and_suffix_never_match_a_missing_attribute(dialect: str) -> None:
    binding = TriggerBinding.model_validate({"filters": [{dialect: {"region": "e"}}]})
    assert not compile_filter(binding)(Event(dict(BASE)))
    assert compile_filter(binding)(Event({**BASE, "region": "e"}))


@pytest.mark.parametrize(("dialect", "value"), [("prefix", "12"), ("suffix", "34")])
def test_prefix_and_suffix_read_an_integer_extension_as_text(dialect: str, value: str) -> None:
    binding = TriggerBinding.model_validate({"filters": [{dialect: {"code": value}}]})
    assert compile_filter(binding)(Event({**BASE, "code": 1234}))


def test_any_of_a_single_filter_is_that_filter() -> None:
    binding = TriggerBinding.model_validate({"filters": [{"any": [{"exact": {"type": "t"}}]}]})
    accept = compile_filter(binding)
    assert accept(Event(dict(BASE))) and not accept(Event({**BASE, "type": "u"}))


# --- attributes -----------------------------------------------------------------------------------


def test_a_long_or_unprintable_bad_name_is_not_echoed() -> None:
    long_name = "X" * 41
    problems = validate_attributes({**BASE, long_name: "v", "bad\nname": "v", "Short": "v"})
    assert problems.count("attribute names must be 1-20 lowercase letters or digits") == 2
    assert "attribute name 'Short' must be 1-20 lowercase letters or digits" in problems
    assert not any(long_name in problem for problem in problems)


def test_repair_drops_an_attribute_whose_name_is_bad() -> None:
    fixed, changed = repaired({**BASE, "Bad-Name": "v", "fine": "v"})
    assert fixed == {**BASE, "fine": "v"}
    assert changed == ["Bad-Name"]


def test_repair_keeps_a_valid_event_as_it_is() -> None:
    attributes = {**BASE, "count": 3, "flag": True}
    assert repaired(attributes) == (attributes, [])


def test_an_integer_outside_32_bits_is_repaired_into_its_text() -> None:
    fixed, changed = repaired({**BASE, "big": 2**40})
    assert fixed["big"] == str(2**40) and changed == ["big"]


def test_printable_replaces_each_excluded_character_with_a_space() -> None:
    assert printable("a\tb\x7fc\ufdd0d\ud800e") == "a b c d e"
    assert printable("plain text") == "plain text"


def test_the_attribute_count_limit_names_itself() -> None:
    problems = validate_attributes({**BASE, "extra": "x"}, EdgeRules(max_attributes=4))
    assert problems == ["5 attributes are over the max_event_attributes limit of 4"]


def test_each_version_has_its_own_typed_attributes() -> None:
    assert "dataschema" in rules_of(BASE) and "schemaurl" not in rules_of(BASE)
    v03 = {**BASE, "specversion": "0.3"}
    assert "schemaurl" in rules_of(v03) and "dataschema" not in rules_of(v03)
    assert "dataschema" in rules_of({**BASE, "specversion": "2.0"})  # others: 1.0's rules


@pytest.mark.parametrize(
    ("value", "limit", "deeper"),
    [
        ("scalar", 0, False),
        ({}, 0, True),
        ([[]], 1, True),
        ([[]], 2, False),
        ({"a": [1, {"b": 2}]}, 3, False),  # three levels: object, array, object
        ({"a": [1, {"b": 2}]}, 2, True),
    ],
)
def test_nesting_depth_counts_objects_and_arrays(value: object, limit: int, deeper: bool) -> None:
    assert nesting_depth_exceeds(value, limit) is deeper


def test_a_time_with_an_offset_and_a_leap_day_passes() -> None:
    assert validate_attributes({**BASE, "time": "2024-02-29T23:59:60.5+05:30"}) == []
    assert validate_attributes({**BASE, "time": "2023-02-29T00:00:00Z"}) != []
