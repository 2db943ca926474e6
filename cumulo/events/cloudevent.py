"""CloudEvents on the wire: the HTTP binding, and the bridge to the ``cloudevents`` SDK.

This is the one module that imports the ``cloudevents`` SDK (functions-framework
pins it, so it stays behind this door). The binary-mode codec is hand-written
because it is on every request's path: it never builds SDK objects.

Data rules, the same in every content mode, so an :class:`Event` does not
depend on how it travelled:

- a JSON media type (``application/json``, ``text/json``, ``*/*+json``) or no
  ``datacontenttype`` at all in a JSON envelope: ``data`` is a JSON value;
- any other media type: ``data`` is ``bytes`` (a structured envelope's string
  ``data`` is UTF-8 encoded; ``data_base64`` is decoded);
- an empty binary-mode body: ``data`` is ``None``.
"""

from __future__ import annotations

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
        return [_normalized(from_envelope(envelope, rules))]
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


def _decode_batch(body: bytes, rules: EdgeRules) -> list[Event]:
    envelopes = _load_json(body, "the batch")
    if not isinstance(envelopes, list):
        raise InvalidEventError([f"a batch must be a JSON array, not {type(envelopes).__name__}"])
    most = rules.max_batch_events
    if most is not None and len(envelopes) > most:
        raise PayloadTooLargeError(
            [f"the batch holds {len(envelopes)} events, over the max_batch_events limit of {most}"]
        )
    events: list[Event] = []
    problems: list[str] = []
    for index, envelope in enumerate(envelopes):
        try:
            events.append(_normalized(from_envelope(envelope, rules)))
        except InvalidEventError as e:
            problems.extend(f"event [{index}]: {problem}" for problem in e.problems)
    if problems:
        raise InvalidEventError(problems)
    return events


def _decode_binary(headers: Mapping[str, str], body: bytes, rules: EdgeRules) -> Event:
    attributes: dict[str, Any] = {}
    for name, value in headers.items():
        if name.startswith(_HEADER_PREFIX):
            attributes[name[3:]] = _percent_decode(value)
    problems = (
        []
        if attributes
        else [f"no ce- headers, and '{headers.get('content-type')}' is not {STRUCTURED}"]
    )
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
    return Event(attributes, data)


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


def _percent_decode(value: str) -> str:
    if not value.isascii():  # raw UTF-8 that the server decoded as latin-1
        value = value.encode("latin-1", "replace").decode("utf-8", "replace")
    return unquote(value) if "%" in value else value


def _normalized(event: Event) -> Event:
    """Text data of a non-JSON media type becomes bytes, as in binary mode.

    Other JSON data under a non-JSON media type has no bytes of its own (binary
    mode would send its JSON text as, say, ``text/plain``): the JSON format asks
    for a string there, so it is refused.
    """
    content_type = event.attributes.get("datacontenttype")
    if event.data is None or isinstance(event.data, bytes):
        return event
    if not content_type or is_json_media_type(content_type):
        return event
    if isinstance(event.data, str):
        return Event(event.attributes, event.data.encode())
    raise InvalidEventError(
        [
            "'data' must be a string when datacontenttype is not a JSON media type"
            " (or send the bytes as 'data_base64')"
        ]
    )


# --- encoding ----------------------------------------------------------------


def binary_http(event: Event) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``event`` in binary content mode.

    Raises :class:`~cumulo.errors.EncodingError` for an event that cannot
    travel this way (a ``datacontenttype`` that is no header value, data that
    is not JSON-serializable).
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
    """The SDK ``CloudEvent`` a functions-framework function expects."""
    sdk_event = CloudEvent(dict(event.attributes), event.data)
    if "time" not in event.attributes:
        del sdk_event["time"]  # the SDK invents one; an event without a time has none
    return sdk_event


def from_sdk(sdk_event: AnyCloudEvent) -> Event:
    """An :class:`Event` from an SDK ``CloudEvent``; raises :class:`InvalidEventError`."""
    attributes = {
        name: _from_sdk_value(value) for name, value in sdk_event.get_attributes().items()
    }
    problems = validate_attributes(attributes)
    if problems:
        raise InvalidEventError(problems)
    return _normalized(Event(attributes, sdk_event.get_data()))


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
    return _normalized(Event(attributes, event.data))


def _check_data(event: Event) -> None:
    if event.data is None or isinstance(event.data, (bytes, str)):
        return
    try:
        orjson.dumps(event.data)
    except TypeError as e:
        raise InvalidEventError([f"data is not JSON-serializable: {e}"]) from e
