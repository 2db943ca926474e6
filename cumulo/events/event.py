"""``Event``: a CloudEvent as a small value, and its JSON event format.

Inside the platform an event is its context attributes (extensions included)
and its data. On the wire it is always a CloudEvent: the JSON event format
here, the HTTP binding in :mod:`cumulo.events.cloudevent`.

A CloudEvents 0.3 event stays 0.3: its ``schemaurl`` and ``datacontentencoding``
are kept, and data its sender encoded (``datacontentencoding: base64``, the
0.3 JSON format's way to carry bytes) stays the string the sender wrote, which
is what the CloudEvents SDK hands a function for it.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from cumulo.errors import EncodingError, InvalidEventError
from cumulo.events import tracing
from cumulo.events.attributes import (
    REQUIRED,
    SPEC_ONLY,
    SPEC_VERSION,
    SPEC_VERSIONS,
    EdgeRules,
    nesting_depth_exceeds,
    validate_attributes,
)

__all__ = [
    "REQUIRED",
    "SPEC_VERSION",
    "SPEC_VERSIONS",
    "EdgeRules",
    "Event",
    "from_envelope",
    "from_json",
    "new_event",
    "now_rfc3339",
    "spec_problems",
    "to_json",
    "validate_attributes",
]

_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")


class Event:
    """A CloudEvent: ``attributes`` (all of them, as strings) and ``data``.

    ``data`` is ``None``, ``bytes`` (opaque payload) or a JSON value.

    ``checked`` says the attributes passed every rule of the spec when the event
    was read at the edge (:func:`from_envelope`, the HTTP and Kafka bindings):
    an event is parsed and validated once, and a bus stores a checked event
    without checking it again (:func:`spec_problems`). A copy with changed
    attributes is unchecked; only :meth:`with_trace` keeps the mark.
    """

    __slots__ = ("attributes", "checked", "data")

    def __init__(self, attributes: dict[str, Any], data: Any = None, *, checked: bool = False):
        self.attributes = attributes
        self.data = data
        self.checked = checked

    id = property(lambda self: self.attributes["id"])
    source = property(lambda self: self.attributes["source"])
    type = property(lambda self: self.attributes["type"])
    subject = property(lambda self: self.attributes.get("subject"))
    time = property(lambda self: self.attributes.get("time"))

    def __repr__(self) -> str:
        return f"Event(type={self.type!r}, source={self.source!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Event)
            and self.attributes == other.attributes
            and self.data == other.data
        )

    def with_attributes(self, **changes: Any) -> Event:
        """A copy with some attributes set (``None`` removes one)."""
        attributes = {**self.attributes, **changes}
        return Event({k: v for k, v in attributes.items() if v is not None}, self.data)

    def with_trace(self, trace: Mapping[str, str]) -> Event:
        """A copy carrying ``trace`` (a well-formed traceparent, and tracestate if any,
        made by :mod:`cumulo.events.tracing`); as checked as this event was."""
        return Event({**self.attributes, **trace}, self.data, checked=self.checked)


def spec_problems(event: Event) -> list[str]:
    """What the spec refuses in ``event``'s attributes; nothing for a checked event."""
    return [] if event.checked else validate_attributes(event.attributes)


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _text(value: Any) -> str:
    """An extension value as its CloudEvents string (a Boolean is ``true`` or ``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def new_event(
    type: str,
    source: str,
    data: Any = None,
    *,
    id: str | None = None,
    subject: str | None = None,
    datacontenttype: str | None = None,
    **extensions: Any,
) -> Event:
    """Make an event, filling in ``id``, ``time`` and ``specversion``."""
    attributes: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": now_rfc3339(),
    }
    if subject is not None:
        attributes["subject"] = subject
    if datacontenttype is None and data is not None and not isinstance(data, bytes):
        datacontenttype = "application/json"
    if datacontenttype is not None:
        attributes["datacontenttype"] = datacontenttype
    attributes.update({k: _text(v) for k, v in extensions.items() if v is not None})
    if tracing.TRACEPARENT not in attributes:  # made while handling an event: join its trace
        attributes.update(tracing.child_attributes())
    return Event(attributes, data)


def to_json(event: Event) -> bytes:
    """The CloudEvents JSON event format (``data`` or ``data_base64``).

    Raises :class:`~cumulo.errors.EncodingError` when the event does not fit
    the format (data nested deeper than the encoder goes, an integer past 64 bits).
    """
    envelope = dict(event.attributes)
    if isinstance(event.data, bytes):
        envelope["data_base64"] = base64.b64encode(event.data).decode()
    elif event.data is not None:
        envelope["data"] = event.data
    try:
        return orjson.dumps(envelope)
    except orjson.JSONEncodeError as e:
        raise EncodingError([f"the event cannot be written in the JSON format: {e}"]) from e


def from_envelope(envelope: Any, rules: EdgeRules = SPEC_ONLY) -> Event:
    """An event from a decoded JSON-format object, checked against the spec and the edge's ``rules``.

    Raises :class:`InvalidEventError` naming every problem.
    """
    attributes = _attributes_of(envelope)
    problems = validate_attributes(attributes, rules)
    problems.extend(_encoded_data_problems(envelope, attributes))
    return _event_of(envelope, attributes, problems, rules, checked=True)


def _encoded_data_problems(envelope: dict[str, Any], attributes: dict[str, Any]) -> list[str]:
    """The 0.3 JSON format: with a ``datacontentencoding``, ``data`` is the encoded string."""
    encoding = attributes.get("datacontentencoding")
    if attributes.get("specversion") != "0.3" or encoding is None or "data" not in envelope:
        return []
    data = envelope["data"]
    if not isinstance(data, str):
        return [f"'data' must be a string when datacontentencoding is '{str(encoding)[:20]}'"]
    if isinstance(encoding, str) and encoding.lower() == "base64":
        try:
            base64.b64decode(data, validate=True)
        except ValueError:
            return ["'data' is not valid base64, as its datacontentencoding says"]
    return []


def from_json(body: bytes | str) -> Event:
    """Parse the JSON event format of an event already on a bus; raises :class:`InvalidEventError`.

    The check is the structural one every stored event passed when it was
    published (an object, the required attributes, valid names, string,
    integer or boolean values), so an event stored before a rule was added is
    still read, and its trigger can dead-letter it. What comes from outside
    goes through :func:`from_envelope`, which applies every rule.
    """
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidEventError([f"body is not valid JSON: {e}"]) from e
    attributes = _attributes_of(envelope)
    return _event_of(envelope, attributes, _structural_problems(attributes), SPEC_ONLY)


def _attributes_of(envelope: Any) -> dict[str, Any]:
    if not isinstance(envelope, dict):
        raise InvalidEventError(
            [f"a CloudEvent must be a JSON object, not {type(envelope).__name__}"]
        )
    return {k: _json_integer(v) for k, v in envelope.items() if k not in ("data", "data_base64")}


def _json_integer(value: Any) -> Any:
    """A JSON number with no fraction (``-12551.0``) is the spec's Integer: keep it as an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _structural_problems(attributes: Mapping[str, Any]) -> list[str]:
    problems = [
        f"missing required attribute '{name}'" for name in REQUIRED if not attributes.get(name)
    ]
    for name, value in attributes.items():
        if not _EXTENSION_NAME.fullmatch(name):
            problems.append("attribute names must be 1-20 lowercase letters or digits")
        elif not isinstance(value, (str, int, bool)):
            problems.append(f"attribute '{name}' must be a string, integer or boolean")
    return problems


def _event_of(
    envelope: dict[str, Any],
    attributes: dict[str, Any],
    problems: list[str],
    rules: EdgeRules,
    *,
    checked: bool = False,
) -> Event:
    if "data" in envelope and "data_base64" in envelope:
        problems.append("'data' and 'data_base64' are mutually exclusive")
    depth = rules.max_data_depth
    if depth is not None and nesting_depth_exceeds(envelope.get("data"), depth):
        problems.append(f"data nests objects and arrays over the {depth}-level limit")
    if problems:
        raise InvalidEventError(problems)
    if "data_base64" in envelope:
        encoded = envelope["data_base64"]
        try:
            if not isinstance(encoded, str):
                raise TypeError(f"it is {type(encoded).__name__}, not a string")
            return Event(attributes, base64.b64decode(encoded, validate=True), checked=checked)
        except (ValueError, TypeError) as e:
            raise InvalidEventError([f"'data_base64' is not valid base64: {e}"]) from e
    return Event(attributes, envelope.get("data"), checked=checked)
