"""The CloudEvents HTTP binding and SDK bridge, against the shared conformance data."""

from __future__ import annotations

import orjson
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent, from_http

from cumulo.errors import (
    EncodingError,
    InvalidEventError,
    PermanentError,
    UnsupportedMediaTypeError,
)
from cumulo.events.cloudevent import (
    BATCH,
    CAUSE_EXTENSION,
    STRUCTURED,
    batch_http,
    binary_http,
    events_from_http,
    from_sdk,
    http_message,
    is_json_media_type,
    replies_from_result,
    sdk_data,
    structured_http,
    to_sdk,
)
from cumulo.events.event import Event, new_event
from tests.runtimes.worker.conformance import (
    FeatureCase,
    YamlCase,
    feature_cases,
    spec_strings,
    yaml_cases,
)


def case_event(case: YamlCase) -> Event:
    return Event(dict(case.attributes), case.expected_data())


CASES = [spec_strings(case) for case in yaml_cases()]


def test_conformance_values_with_a_line_break_are_refused() -> None:
    broken = [case for case in yaml_cases() if spec_strings(case) != case]
    assert broken, "the shared data has no value with a line break any more"
    for case in broken:
        encode = binary_http if case.mode == "binary" else structured_http
        with pytest.raises(InvalidEventError, match="'comexampleextension2' holds a control"):
            events_from_http(*encode(case_event(case)))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_conformance_events_survive_their_mode(case: YamlCase) -> None:
    encode = binary_http if case.mode == "binary" else structured_http
    headers, body = encode(case_event(case))
    assert events_from_http({**headers, **case.transport}, body) == [case_event(case)]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_conformance_events_from_hand_written_messages(case: YamlCase) -> None:
    request = case.request()
    [event] = events_from_http(request.wire_headers(), request.body)
    assert event.attributes == case.attributes
    assert event.data == case.expected_data()


def test_the_vectors_of_both_versions_are_read() -> None:
    versions = {case.attributes["specversion"] for case in CASES}
    assert versions == {"1.0", "0.3"}
    assert {case.mode for case in CASES} == {"binary", "structured"}


@pytest.mark.parametrize("case", feature_cases(), ids=lambda case: case.name)
def test_http_protocol_binding_feature(case: FeatureCase) -> None:
    [event] = events_from_http(case.headers, case.body)
    assert event.attributes == case.attributes
    assert event.data == case.data


def test_data_keeps_what_its_mode_says_of_it() -> None:
    octets = new_event("t", "/s", b"\x00\x01", datacontenttype="application/octet-stream")
    decoded = [events_from_http(*encode(octets))[0] for encode in (binary_http, structured_http)]
    assert decoded == [octets, octets]
    text = new_event("t", "/s", "caf\u00e9", datacontenttype="text/plain; charset=utf-8")
    assert events_from_http(*binary_http(text))[0].data == "caf\u00e9".encode()  # a body
    assert events_from_http(*structured_http(text))[0].data == "caf\u00e9"  # a JSON string


def test_mode_comes_from_content_type() -> None:
    event = new_event("t", "/s", {"a": 1})
    headers, body = batch_http([event, event.with_attributes(id="2")])
    assert headers["content-type"].startswith(BATCH)
    assert [e.id for e in events_from_http(headers, body)] == [event.id, "2"]
    headers, body = structured_http(event)
    assert events_from_http({"CONTENT-TYPE": headers["content-type"]}, body) == [event]


@pytest.mark.parametrize(
    "content_type", ["application/cloudevents+xml", "application/cloudevents-batch+avro"]
)
def test_unsupported_event_formats(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="not supported"):
        events_from_http({"Content-Type": content_type}, b"<event/>")


def test_ce_datacontenttype_must_not_travel_in_binary_mode() -> None:
    headers, body = binary_http(new_event("t", "/s", {"a": 1}))
    headers["ce-datacontenttype"] = "application/json"
    with pytest.raises(InvalidEventError, match="ce-datacontenttype"):
        events_from_http(headers, body)


def test_header_values_are_percent_encoded_and_decoded() -> None:
    event = new_event("t", "/s", None, subject='a "quoted" 100% \u20ac subject')
    headers, _ = binary_http(event)
    assert headers["ce-subject"] == "a%20%22quoted%22%20100%25%20%E2%82%AC%20subject"
    assert headers["ce-source"] == "/s"
    assert events_from_http(headers, b"")[0].subject == event.subject


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ('"a \\"quoted\\" value"', 'a "quoted" value'),  # RFC 9110 quoted-string, as older senders
        ('"100%25"', "100%"),  # unquoted, then one round of percent-decoding
        ("%41%42c", "ABc"),  # needlessly encoded: accepted
        ("caf\u00c3\u00a9", "caf\u00e9"),  # raw UTF-8, as a server hands it over (latin-1)
        ("%25%32%35", "%25"),  # a single round
        ('"', '"'),
    ],
)
def test_header_values_are_decoded_as_the_binding_says(sent: str, read: str) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
    [event] = events_from_http({**headers, "ce-subject": sent}, b"")
    assert event.subject == read


@pytest.mark.parametrize("sent", ["%FF", "caf%C3", "caf\u00e9"])
def test_header_values_that_are_not_utf8_are_refused(sent: str) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
    with pytest.raises(InvalidEventError, match="'ce-subject' does not decode to UTF-8"):
        events_from_http({**headers, "ce-subject": sent}, b"")


REQUIRED = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
TEXT = {"datacontenttype": "text/plain"}
JSON_TYPE = {"datacontenttype": "application/json"}


@pytest.mark.parametrize(
    ("event", "mode"),
    [
        (Event({**REQUIRED, **TEXT}, b"bytes"), "binary"),
        (Event({**REQUIRED, **JSON_TYPE}, {"a": 1}), "binary"),
        (Event({**REQUIRED, **JSON_TYPE}), "binary"),
        (Event(REQUIRED, {"a": 1}), "structured"),  # JSON without a media type
        (Event(REQUIRED, b"bytes"), "structured"),  # bytes without one
        (Event(REQUIRED), "structured"),  # a bare body would get application/octet-stream
        (Event({**REQUIRED, **TEXT}, "text"), "structured"),  # text would arrive as bytes
        (Event({**REQUIRED, **TEXT}, b""), "structured"),  # empty data would arrive as none
        (Event({**REQUIRED, **JSON_TYPE}, b"{}"), "structured"),  # bytes would arrive parsed
        (Event({**REQUIRED, **JSON_TYPE, "n": 5}, 1), "structured"),  # an integer as "5"
        (Event({**REQUIRED, **JSON_TYPE, "ok": True}, 1), "structured"),
    ],
)
def test_http_message_carries_the_whole_event(event: Event, mode: str) -> None:
    headers, body = http_message(event)
    assert ("ce-id" in headers) == (mode == "binary")
    assert headers["content-type"]  # no HTTP client has to choose one
    assert events_from_http(headers, body) == [event]


def test_to_sdk_types_data_as_the_sdk_does() -> None:
    cases = [
        (b'{"k": [1]}', {"k": [1]}),  # bytes that parse as JSON: the SDK parses every body
        (b"123", 123),
        (b"not json", b"not json"),
        (b"\xff\xfe", b"\xff\xfe"),
        (b"", None),
        ("", None),
        ("text", "text"),
        ({"a": 1}, {"a": 1}),
        (b"[" * 100_000 + b"]" * 100_000, b"[" * 100_000 + b"]" * 100_000),  # past the parser
    ]
    for data, typed in cases:
        assert to_sdk(Event(dict(REQUIRED), data)).data == typed
        assert sdk_data(data) == typed


@pytest.mark.parametrize("content_type", [5, "text/plain\nx: 1", "text/plain\r\nx: 1"])
def test_binary_mode_will_not_send_a_content_type_that_is_not_a_header(content_type) -> None:
    """An event stored before the rules existed cannot inject headers when it is sent on."""
    event = Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}, b"x")
    event.attributes["datacontenttype"] = content_type
    with pytest.raises(EncodingError, match="'datacontenttype' cannot be a Content-Type"):
        binary_http(event)


def test_data_past_the_json_encoder_is_an_encoding_error() -> None:
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    event = new_event("t", "/s", deep)
    for encode in (binary_http, structured_http):
        with pytest.raises(EncodingError, match="JSON"):
            encode(event)


def test_json_data_under_a_media_type_that_is_not_json_is_refused() -> None:
    """Binary mode could only send its JSON text: the modes would disagree (found by fuzzing)."""
    envelope = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
    envelope |= {"datacontenttype": "text/plain", "data": [1, 2]}
    body = orjson.dumps(envelope)
    for headers, message in (
        ({"content-type": STRUCTURED}, body),
        ({"content-type": BATCH}, b"[" + body + b"]"),
    ):
        with pytest.raises(InvalidEventError, match="'data' must be a string"):
            events_from_http(headers, message)
    [text] = events_from_http({"content-type": STRUCTURED}, body.replace(b"[1,2]", b'"[1,2]"'))
    assert text.data == "[1,2]"


def test_header_names_are_case_insensitive() -> None:
    headers = {"CE-ID": "1", "Ce-Source": "/s", "ce-SpecVersion": "1.0", "Ce-Type": "t"}
    assert events_from_http(headers, b"")[0].attributes == {
        "id": "1",
        "source": "/s",
        "specversion": "1.0",
        "type": "t",
    }


def test_every_problem_is_listed() -> None:
    headers = {"ce-specversion": "0.2", "ce-id": "1", "content-type": "application/json"}
    with pytest.raises(InvalidEventError) as caught:
        events_from_http(headers, b"{not json")
    problems = " | ".join(caught.value.problems)
    assert "'source'" in problems and "'type'" in problems
    assert "specversion '0.2' (only '1.0' or '0.3')" in problems and "not valid JSON" in problems


def test_a_request_without_ce_headers_says_so() -> None:
    with pytest.raises(InvalidEventError, match="no ce- headers"):
        events_from_http({"content-type": "text/plain"}, b"hi")


def test_batch_problems_name_the_event() -> None:
    body = b'[{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}, {"id": "2"}]'
    with pytest.raises(InvalidEventError, match=r"event \[1\]: missing required attribute"):
        events_from_http({"content-type": BATCH}, body)
    with pytest.raises(InvalidEventError, match="JSON array"):
        events_from_http({"content-type": BATCH}, b"{}")


def test_json_media_types() -> None:
    assert is_json_media_type("application/json; charset=utf-8")
    assert is_json_media_type("application/vnd.api+json")
    assert is_json_media_type("text/json")
    assert not is_json_media_type("text/plain")
    assert not is_json_media_type(None)


def test_sdk_round_trip_matches_the_sdk_codec() -> None:
    event = new_event("t", "/s", {"a": [1, 2]}, subject="x", traceid="abc")
    sdk_event = to_sdk(event)
    assert isinstance(sdk_event, CloudEvent)
    assert sdk_event["subject"] == "x" and sdk_event["traceid"] == "abc"
    assert sdk_event.data == {"a": [1, 2]}
    assert from_sdk(sdk_event) == event
    headers, body = binary_http(event)
    sdk_parsed = from_http(headers, body)
    assert sdk_parsed.get_attributes() == to_sdk(event).get_attributes()
    sdk_headers, sdk_body = to_binary(sdk_event)
    assert events_from_http(sdk_headers, sdk_body) == [event]


def test_to_sdk_invents_no_time() -> None:
    event = Event({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"})
    assert "time" not in to_sdk(event).get_attributes()


class TestReplies:
    cause = new_event("cause", "/s", None, id="cause-1")

    def replies(self, result: object) -> list[Event]:
        return replies_from_result(result, default_source="/fn", cause=self.cause)

    def test_none_is_no_reply(self) -> None:
        assert self.replies(None) == []

    def test_a_dict_is_filled_in(self) -> None:
        [reply] = self.replies(
            {"type": "done", "data": {"ok": True}, "subject": "s", "priority": 5}
        )
        assert reply.source == "/fn" and reply.type == "done" and reply.subject == "s"
        assert reply.attributes["specversion"] == "1.0" and reply.id and reply.time
        assert reply.attributes["priority"] == 5
        assert reply.attributes[CAUSE_EXTENSION] == "cause-1"
        assert reply.data == {"ok": True}

    def test_events_sdk_events_and_lists(self) -> None:
        sdk_event = CloudEvent({"type": "sdk", "source": "/x"}, {"n": 1})
        replies = self.replies([new_event("native", "/y"), sdk_event, {"type": "d", "id": "7"}])
        assert [r.type for r in replies] == ["native", "sdk", "d"]
        assert replies[2].id == "7"
        assert all(r.attributes[CAUSE_EXTENSION] == "cause-1" for r in replies)

    @pytest.mark.parametrize("result", [None, "OK", b"done"])
    def test_what_functions_framework_ignores_is_no_reply(self, result: object) -> None:
        assert self.replies(result) == []

    @pytest.mark.parametrize(
        ("result", "message"),
        [
            (["OK"], "a str is not an event"),
            ({"data": 1}, "non-empty string 'type'"),
            ([{"type": "ok"}, 42], r"reply \[1\]: a int is not an event"),
            ({"type": "t", "data": {1, 2}}, "not JSON-serializable"),
            ({"type": "t", "Bad_Name": "x"}, "Bad_Name"),
        ],
    )
    def test_anything_else_is_a_permanent_error(self, result: object, message: str) -> None:
        with pytest.raises(PermanentError, match=message):
            self.replies(result)


@pytest.mark.parametrize("content_type", [5, "text/plain\nx: 1"])
def test_http_message_will_not_send_a_content_type_that_is_not_a_header(content_type) -> None:
    """In either mode: such an event was stored before the rules, and is dead-lettered."""
    event = Event({**REQUIRED, "datacontenttype": content_type}, {"a": 1})
    with pytest.raises(EncodingError, match="'datacontenttype' cannot be a Content-Type"):
        http_message(event)
