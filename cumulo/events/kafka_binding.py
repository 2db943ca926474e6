"""The CloudEvents Kafka protocol binding, without a Kafka client.

Shared by the Kafka bus and the Kafka source. Cumulo writes *structured* mode
(the JSON event format as the value, ``content-type:
application/cloudevents+json``); it reads both modes: structured, and *binary*
(``ce_<attribute>`` headers, ``content-type`` → ``datacontenttype``, the value is
the data). The record key is the event's ``partitionkey`` extension, else its
``subject``.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from cumulo.errors import InvalidEventError
from cumulo.events.cloudevent import is_json_media_type, media_type
from cumulo.events.event import Event, from_json, to_json, validate_attributes

STRUCTURED = "application/cloudevents+json"
Headers = Sequence[tuple[str, bytes | str | None]]


def record_key(event: Event) -> bytes | None:
    key = event.attributes.get("partitionkey") or event.subject
    return str(key).encode() if key is not None else None


def encode(event: Event) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of a record carrying ``event`` in structured mode."""
    return record_key(event), to_json(event), [("content-type", STRUCTURED.encode())]


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def header_map(headers: Headers | None) -> dict[str, str]:
    """Headers as a dict, names lower-cased (the last of repeated names wins)."""
    return {name.lower(): _text(value) for name, value in headers or ()}


def is_cloudevent(headers: Headers | None) -> bool:
    """Whether a record carries a CloudEvent (either mode)."""
    found = header_map(headers)
    return media_type(found.get("content-type")) == STRUCTURED or "ce_specversion" in found


def decode(value: bytes | None, headers: Headers | None) -> Event:
    """The CloudEvent a record carries; raises :class:`InvalidEventError`."""
    found = header_map(headers)
    if media_type(found.get("content-type")) == STRUCTURED:
        return from_json(value or b"{}")
    if "ce_specversion" not in found:
        raise InvalidEventError(["the record carries no CloudEvent (no ce_specversion header)"])
    return _decode_binary(found, value)


def _decode_binary(found: dict[str, str], value: bytes | None) -> Event:
    attributes: dict[str, object] = {
        name[3:]: text for name, text in found.items() if name.startswith("ce_")
    }
    if "content-type" in found:
        attributes["datacontenttype"] = found["content-type"]
    problems = validate_attributes(attributes)
    if problems:
        raise InvalidEventError(problems)
    return Event(attributes, _data(value, found.get("content-type")))


def _data(value: bytes | None, content_type: str | None) -> object:
    if value is None:
        return None
    if is_json_media_type(content_type):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise InvalidEventError([f"data is not valid JSON: {e}"]) from e
    return value
