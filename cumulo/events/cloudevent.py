"""CloudEvents on the wire: the HTTP binding, and the bridge to the ``cloudevents`` SDK.

This is the one module that imports the ``cloudevents`` SDK (functions-framework
pins it, so it stays behind this door). The binary-mode codec is hand-written
because it is on every request's path: it never builds SDK objects.

CloudEvents 1.0 and 0.3 are read in every content mode (binary, structured,
batch) and kept as they came: no attribute is added, renamed or dropped.
``data`` keeps what its content mode says of it:

- binary mode: the body as ``bytes``, or the JSON value it holds under a JSON
  media type (``application/json``, ``text/json``, ``*/*+json``); an empty body
  is ``None``;
- the JSON format (structured, batch): ``data`` as the JSON value it is (a
  string stays a string, whatever the media type), ``data_base64`` as ``bytes``.

:func:`http_message` sends an event on in the mode that carries all of it,
and :func:`to_sdk` types its data for a functions-framework function exactly
as the SDK's ``from_http`` types it on the original request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import orjson
from cloudevents.abstract import CloudEvent as AnyCloudEvent
from cloudevents.http import CloudEvent

from cumulo.errors import (
    EncodingError,
    InvalidEventError,
    PayloadTooLargeError,
    PermanentError,
    UnsupportedMediaTypeError,
)
from cumulo.events.attributes import SPEC_ONLY, EdgeRules, nesting_depth_exceeds
from cumulo.events.event import Event, from_envelope, new_event, to_json, validate_attributes

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
STRUCTURED_CONTENT_TYPE = STRUCTURED + "; charset=utf-8"
BATCH_CONTENT_TYPE = BATCH + "; charset=utf-8"
CAUSE_EXTENSION = "cumulocause"
"""Reply events carry the id of the event that caused them, for lineage."""

_HEADER_PREFIX = "ce-"
# The spec: space, '"', '%' and anything outside printable ASCII MUST be percent-encoded.
_NEEDS_ENCODING = re.compile(r"[^\x21\x23\x24\x26-\x7e]")
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_HEADER_BREAK = re.compile(r"[\x00-\x1f\x7f]")
_QUOTED_PAIR = re.compile(r"\\(.)")


# --- media types -----------------------------------------------------------


def media_type(content_type: str | None) -> str:
    """The lower-cased ``type/subtype`` of a Content-Type, parameters dropped."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_json_media_type(content_type: str | None) -> bool:
    """Whether data of this media type is a JSON value (``application/json``, ``+json``)."""
    essence = media_type(content_type)
    return essence in ("application/json", "text/json") or essence.endswith("+json")


def is_batch(headers: Mapping[str, str]) -> bool:
    """Whether a request with these (lower-cased) headers carries a batch of events."""
    return media_type(headers.get("content-type")).startswith("application/cloudevents-batch")


# --- decoding ----------------------------------------------------------------


def events_from_http(
    headers: Mapping[str, str], body: bytes, rules: EdgeRules = SPEC_ONLY
) -> list[Event]:
    """The events in an HTTP message, whatever its content mode.

    Every mode applies the same rules (:mod:`cumulo.events.attributes`) and the
    edge's ``rules``. Raises :class:`InvalidEventError` listing every problem,
    :class:`UnsupportedMediaTypeError` for an event format Cumulo does not
    read, or :class:`PayloadTooLargeError` for a batch over its event limit.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    essence = media_type(lowered.get("content-type"))
    if essence.startswith("application/cloudevents-batch"):
        _require_json_format(essence, BATCH)
        return _decode_batch(body, rules)
    if essence.startswith("application/cloudevents"):
        _require_json_format(essence, STRUCTURED)
        envelope = _load_json(body, "the structured event")
        return [_checked(from_envelope(envelope, rules))]
    return [_decode_binary(lowered, body, rules)]


def _require_json_format(essence: str, expected: str) -> None:
    if essence != expected:
        raise UnsupportedMediaTypeError(
            [f"event format '{essence}' is not supported (only '{STRUCTURED}' and '{BATCH}')"]
        )


def _load_json(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidEventError([f"{what} is not valid JSON: {e}"]) from e


def batch_envelopes(body: bytes, rules: EdgeRules = SPEC_ONLY) -> list[Any]:
    """The JSON array a batched-mode body holds, its events still to be read (with
    :func:`event_in_batch`); raises :class:`InvalidEventError` for anything else, and
    :class:`PayloadTooLargeError` past the rules' event limit."""
    envelopes = _load_json(body, "the batch")
    if not isinstance(envelopes, list):
        raise InvalidEventError([f"a batch must be a JSON array, not {type(envelopes).__name__}"])
    most = rules.max_batch_events
    if most is not None and len(envelopes) > most:
        raise PayloadTooLargeError(
            [f"the batch holds {len(envelopes)} events, over the max_batch_events limit of {most}"]
        )
    return envelopes


def event_in_batch(envelope: Any, rules: EdgeRules = SPEC_ONLY) -> Event:
    """One element of a batch as an event, checked as the structured mode checks one."""
    return _checked(from_envelope(envelope, rules))


def _decode_batch(body: bytes, rules: EdgeRules) -> list[Event]:
    events: list[Event] = []
    problems: list[str] = []
    for index, envelope in enumerate(batch_envelopes(body, rules)):
        try:
            events.append(event_in_batch(envelope, rules))
        except InvalidEventError as e:
            problems.extend(f"event [{index}]: {problem}" for problem in e.problems)
    if problems:
        raise InvalidEventError(problems)
    return events


def _decode_binary(headers: Mapping[str, str], body: bytes, rules: EdgeRules) -> Event:
    attributes: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in headers.items():
        if name.startswith(_HEADER_PREFIX):
            try:
                attributes[name[3:]] = _header_value(value)
            except UnicodeDecodeError:
                problems.append(f"header '{name}' does not decode to UTF-8 text")
    if not attributes and not problems:
        problems.append(f"no ce- headers, and '{headers.get('content-type')}' is not {STRUCTURED}")
    if "datacontenttype" in attributes:
        problems.append(
            "in binary mode datacontenttype travels as Content-Type, not ce-datacontenttype"
        )
    content_type = headers.get("content-type")
    if content_type:
        attributes["datacontenttype"] = content_type
    problems.extend(validate_attributes(attributes, rules))
    data = _decode_data(body, content_type, problems)
    depth = rules.max_data_depth
    if depth is not None and nesting_depth_exceeds(data, depth):
        problems.append(f"data nests objects and arrays over the {depth}-level limit")
    if problems:
        raise InvalidEventError(problems)
    return Event(attributes, data, checked=True)


def _decode_data(body: bytes, content_type: str | None, problems: list[str]) -> Any:
    if not body:
        return None
    if not is_json_media_type(content_type):
        return bytes(body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        problems.append(f"data is not valid JSON, as its Content-Type says: {e}")
        return None


def _header_value(value: str) -> str:
    """An attribute's value from its ``ce-`` header, as the HTTP binding decodes it.

    A quoted string (RFC 9110, which older senders wrote) loses its quotes and
    escapes, then one round of percent-decoding. Raw non-ASCII, which the spec
    forbids but some SDKs send, is read as the UTF-8 it is. Raises
    :class:`UnicodeDecodeError` where the bytes are not UTF-8, which the spec
    says to refuse.
    """
    if len(value) > 1 and value[0] == value[-1] == '"':
        value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
    if not value.isascii():
        value = _as_utf8(value)
    return unquote(value, errors="strict") if "%" in value else value


def _as_utf8(value: str) -> str:
    """Raw UTF-8 that the server decoded as latin-1 (as HTTP servers do), as text."""
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire: already text
        return value
    return raw.decode("utf-8")


def _checked(event: Event) -> Event:
    """``event``, unless its data is JSON other than a string under a non-JSON media type.

    Such data has no bytes of its own (binary mode would send its JSON text as,
    say, ``text/plain``): the JSON format asks for a string there, so it is refused.
    """
    content_type = event.attributes.get("datacontenttype")
    if event.data is None or isinstance(event.data, (bytes, str)):
        return event
    if not content_type or is_json_media_type(content_type):
        return event
    raise InvalidEventError(
        [
            "'data' must be a string when datacontenttype is not a JSON media type"
            " (or send the bytes as 'data_base64')"
        ]
    )


# --- encoding ----------------------------------------------------------------


def http_message(event: Event) -> tuple[dict[str, str], bytes]:
    """Headers and body that carry all of ``event``: binary mode where it can, else structured.

    What the receiver decodes is ``event`` itself, and the message always has
    a Content-Type of its own, so no HTTP client adds one (aiohttp labels a
    bare body ``application/octet-stream``). Binary mode is used when it loses
    nothing: a ``datacontenttype``, string attributes (every header is text),
    and data that is none, bytes under a media type that is not JSON, or a JSON
    value under a JSON one. Anything else (no ``datacontenttype``, an integer
    or boolean attribute, text or empty bytes under a media type that is not
    JSON, bytes labelled JSON) goes in structured mode. Raises
    :class:`~cumulo.errors.EncodingError` as :func:`binary_http` does, in
    either mode, for a ``datacontenttype`` that is no header value (an event
    stored before the rules existed).
    """
    return binary_http(event) if _binary_carries(event) else structured_http(event)


def check_sendable(event: Event) -> None:
    """Raise :class:`~cumulo.errors.EncodingError` for an event no HTTP message can carry,
    as :func:`http_message` would (a ``datacontenttype`` that is no header value)."""
    if "datacontenttype" in event.attributes:
        _content_type_header(event.attributes["datacontenttype"])


def _binary_carries(event: Event) -> bool:
    if "datacontenttype" not in event.attributes:
        return False
    content_type = _content_type_header(event.attributes["datacontenttype"])
    if not all(value.__class__ is str for value in event.attributes.values()):
        return False
    data = event.data
    if data is None:
        return True
    if isinstance(data, bytes):
        return bool(data) and not is_json_media_type(content_type)
    return is_json_media_type(content_type)


def binary_http(event: Event) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``event`` in binary content mode.

    Binary mode says less than the event may hold (see :func:`http_message`,
    which picks the mode that carries all of it): JSON data without a
    ``datacontenttype`` is sent as ``application/json``. Raises
    :class:`~cumulo.errors.EncodingError` for an event that cannot travel this
    way (a ``datacontenttype`` that is no header value, data that is not
    JSON-serializable).
    """
    headers: dict[str, str] = {}
    content_type = None
    for name, value in event.attributes.items():
        if name == "datacontenttype":
            content_type = _content_type_header(value)
        else:
            headers[_HEADER_PREFIX + name] = _percent_encode(_attribute_text(value))
    body, content_type = encode_data(event.data, content_type)
    if content_type:
        headers["content-type"] = content_type
    return headers, body


def _content_type_header(value: Any) -> str:
    if isinstance(value, str) and not _HEADER_BREAK.search(value):
        return value
    raise EncodingError(
        ["attribute 'datacontenttype' cannot be a Content-Type header: it is not a media type"]
    )


def structured_http(event: Event) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``event`` in structured content mode (JSON format)."""
    return {"content-type": STRUCTURED_CONTENT_TYPE}, to_json(event)


def batch_http(events: Iterable[Event]) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``events`` in batched content mode (a JSON array)."""
    return {"content-type": BATCH_CONTENT_TYPE}, b"[" + b",".join(map(to_json, events)) + b"]"


def encode_data(data: Any, content_type: str | None) -> tuple[bytes, str | None]:
    """``data`` as body bytes, and the Content-Type to send with them."""
    if data is None:
        return b"", content_type
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), content_type
    if isinstance(data, str) and content_type and not is_json_media_type(content_type):
        return data.encode(), content_type
    try:
        return orjson.dumps(data), content_type or "application/json"
    except orjson.JSONEncodeError as e:
        raise EncodingError([f"data cannot be written as JSON: {e}"]) from e


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _percent_encode(text: str) -> str:
    return quote(text, safe=_SAFE) if _NEEDS_ENCODING.search(text) else text


# --- the SDK (functions-framework's user functions see these) ---------------


def to_sdk(event: Event) -> CloudEvent:
    """The SDK ``CloudEvent`` a functions-framework function expects.

    Its attributes are the event's, no more: the SDK's default ``time`` is
    taken out again, as an event without a time has none. Its data is typed
    as the SDK's ``from_http`` types it on the request the event came in:
    see :func:`sdk_data`.
    """
    sdk_event = CloudEvent(dict(event.attributes), sdk_data(event.data))
    if "time" not in event.attributes:
        del sdk_event["time"]  # the SDK invents one; an event without a time has none
    return sdk_event


def sdk_data(data: Any) -> Any:
    """``data`` as the SDK's ``from_http`` gives it to a function.

    The SDK reads every binary-mode body and every ``data_base64`` as JSON
    when it parses as JSON, whatever the media type, and as bytes otherwise;
    it gives empty data as ``None``; it leaves a structured event's ``data``
    as the JSON value it is. Cumulo keeps bytes as bytes and JSON as decoded
    JSON, so bytes that parse as JSON become that value here.
    """
    if isinstance(data, (str, bytes)) and not data:
        return None
    if isinstance(data, bytes):
        try:
            return json.loads(data)  # the standard library's reading, as the SDK's
        except (ValueError, RecursionError):  # not JSON, not text, or nested past the parser
            return data
    return data


def from_sdk(sdk_event: AnyCloudEvent) -> Event:
    """An :class:`Event` from an SDK ``CloudEvent``; raises :class:`InvalidEventError`."""
    attributes = {
        name: _from_sdk_value(value) for name, value in sdk_event.get_attributes().items()
    }
    problems = validate_attributes(attributes)
    if problems:
        raise InvalidEventError(problems)
    return _checked(Event(attributes, sdk_event.get_data()))


def _from_sdk_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value if isinstance(value, (str, int, bool)) else str(value)


# --- what a cloudevent function returns --------------------------------------


def replies_from_result(result: Any, *, default_source: str, cause: Event | None) -> list[Event]:
    """The events a cloudevent function returned, ready to publish.

    ``result`` may be ``None``, an :class:`Event`, an SDK ``CloudEvent``, a dict
    (``type`` required; ``source`` defaults to ``default_source``; ``data``,
    ``subject``, ``id``, ``datacontenttype`` and extensions optional) or a list
    of those. Each reply gets ``cumulocause`` = the cause's id.

    A string or bytes is no reply: functions-framework ignores what a
    cloudevent function returns, and code written for it (``return "OK"``)
    runs unchanged. Anything else is a bug in the function, and the same event
    would produce it again: raises :class:`PermanentError` naming every bad reply.
    """
    if result is None or isinstance(result, (str, bytes)):
        return []
    items = result if isinstance(result, (list, tuple)) else [result]
    replies: list[Event] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            replies.append(_reply(item, default_source, cause))
        except InvalidEventError as e:
            where = f"reply [{index}]: " if isinstance(result, (list, tuple)) else ""
            problems.extend(where + problem for problem in e.problems)
    if problems:
        raise PermanentError("the function returned an invalid reply: " + "; ".join(problems))
    return replies


def _reply(item: Any, default_source: str, cause: Event | None) -> Event:
    if isinstance(item, Event):
        problems = validate_attributes(item.attributes)
        if problems:
            raise InvalidEventError(problems)
        reply = item
    elif isinstance(item, AnyCloudEvent):
        reply = from_sdk(item)
    elif isinstance(item, Mapping):
        reply = _event_from_mapping(item, default_source)
    else:
        raise InvalidEventError(
            [
                f"a {type(item).__name__} is not an event (return None, an Event, a CloudEvent, "
                "a dict with a 'type', or a list of these)"
            ]
        )
    _check_data(reply)
    if cause is not None and CAUSE_EXTENSION not in reply.attributes:
        reply = Event({**reply.attributes, CAUSE_EXTENSION: cause.id}, reply.data)
    return reply


def _event_from_mapping(fields: Mapping[str, Any], default_source: str) -> Event:
    rest = dict(fields)
    event_type = rest.pop("type", None)
    if not isinstance(event_type, str) or not event_type:
        raise InvalidEventError(["a reply dict needs a non-empty string 'type'"])
    event = new_event(
        event_type,
        rest.pop("source", None) or default_source,
        rest.pop("data", None),
        id=rest.pop("id", None),
        subject=rest.pop("subject", None),
        datacontenttype=rest.pop("datacontenttype", None),
    )
    attributes = {**event.attributes, **rest}
    problems = validate_attributes(attributes)
    if problems:
        raise InvalidEventError(problems)
    return _checked(Event(attributes, event.data))


def _check_data(event: Event) -> None:
    if event.data is None or isinstance(event.data, (bytes, str)):
        return
    try:
        orjson.dumps(event.data)
    except TypeError as e:
        raise InvalidEventError([f"data is not JSON-serializable: {e}"]) from e
