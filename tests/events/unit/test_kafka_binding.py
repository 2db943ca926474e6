"""The CloudEvents Kafka binding: records written in structured mode, read in either mode."""

from __future__ import annotations

import orjson
import pytest

from cumulo.errors import InvalidEventError
from cumulo.events.event import Event, from_json, new_event
from cumulo.events.kafka_binding import (
    STRUCTURED,
    decode,
    encode,
    header_map,
    is_cloudevent,
    record_key,
)

BASE = {"specversion": "1.0", "id": "e-1", "source": "/tests", "type": "t"}


def binary_headers(**extra: bytes | str | None) -> list[tuple[str, bytes | str | None]]:
    headers: list[tuple[str, bytes | str | None]] = [
        (f"ce_{name}", value.encode()) for name, value in BASE.items()
    ]
    headers.extend(extra.items())
    return headers


# --- writing ------------------------------------------------------------------------------


def test_the_record_key_is_the_partition_key_else_the_subject_else_none() -> None:
    assert record_key(new_event("t", "/s", subject="orders/1", partitionkey="p-9")) == b"p-9"
    assert record_key(new_event("t", "/s", subject="orders/1")) == b"orders/1"
    assert record_key(new_event("t", "/s")) is None


def test_an_integer_partition_key_is_written_as_text() -> None:
    assert record_key(Event({**BASE, "partitionkey": 42})) == b"42"


def test_encode_writes_the_json_format_with_its_content_type() -> None:
    event = new_event("t", "/s", {"n": 1}, subject="k")
    key, value, headers = encode(event)
    assert key == b"k"
    assert from_json(value) == event
    assert headers == [("content-type", STRUCTURED.encode())]


def test_what_encode_writes_decode_reads_back() -> None:
    event = new_event("t", "/s", b"\x00\x01", region="eu")
    _, value, headers = encode(event)
    assert decode(value, headers) == event


# --- headers -----------------------------------------------------------------------------------


def test_header_names_are_lower_cased_and_the_last_repeat_wins() -> None:
    found = header_map([("Content-Type", b"text/plain"), ("X", "one"), ("x", b"two")])
    assert found == {"content-type": "text/plain", "x": "two"}


def test_header_values_are_text_with_bad_utf8_replaced_and_none_empty() -> None:
    assert header_map([("a", b"caf\xc3\xa9"), ("b", b"\xff"), ("c", None)]) == {
        "a": "café",
        "b": "\ufffd",
        "c": "",
    }
    assert header_map(None) == {}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("content-type", b"application/cloudevents+json; charset=utf-8")], True),
        ([("ce_specversion", b"1.0")], True),
        ([("CE_SPECVERSION", b"1.0")], True),
        ([("content-type", b"application/json")], False),
        ([], False),
        (None, False),
    ],
)
def test_is_cloudevent_knows_both_modes(
    headers: list[tuple[str, bytes]] | None, expected: bool
) -> None:
    assert is_cloudevent(headers) is expected


# --- reading -----------------------------------------------------------------------------------


def test_a_binary_record_maps_headers_to_attributes_and_the_value_to_data() -> None:
    event = decode(b'{"n": 1}', binary_headers(**{"content-type": b"application/json"}))
    assert event.attributes == {**BASE, "datacontenttype": "application/json"}
    assert event.data == {"n": 1}


def test_a_binary_record_that_is_not_json_keeps_its_bytes() -> None:
    event = decode(b"\x00raw", binary_headers(**{"content-type": b"application/octet-stream"}))
    assert event.data == b"\x00raw"
    assert decode(b"plain", binary_headers()).data == b"plain"  # no content type: bytes


def test_a_binary_record_without_a_value_has_no_data() -> None:
    assert decode(None, binary_headers()).data is None


def test_a_binary_record_with_bad_json_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="data is not valid JSON"):
        decode(b"{oops", binary_headers(**{"content-type": b"application/json"}))


def test_a_binary_record_is_checked_against_the_spec() -> None:
    headers = [(name, value) for name, value in binary_headers() if name != "ce_source"]
    headers.append(("ce_time", b"yesterday"))
    with pytest.raises(InvalidEventError) as caught:
        decode(b"", headers)
    problems = " | ".join(caught.value.problems)
    assert "missing required attribute 'source'" in problems
    assert "'time' must be an RFC 3339 timestamp" in problems


def test_a_structured_record_is_read_whatever_its_header_case() -> None:
    body = orjson.dumps({**BASE, "data": [1, 2]})
    assert decode(body, [("Content-Type", b"application/cloudevents+json")]).data == [1, 2]


def test_a_structured_record_without_a_value_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="missing required attribute"):
        decode(None, [("content-type", STRUCTURED.encode())])


def test_a_record_that_carries_no_cloudevent_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="no ce_specversion header"):
        decode(b'{"n": 1}', [("content-type", b"application/json")])
