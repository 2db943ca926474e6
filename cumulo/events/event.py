"""``Event``: a CloudEvent as a small value, and its JSON event format.

Inside the platform an event is its context attributes (extensions included)
and its data. On the wire it is always a CloudEvent: the JSON event format
here, the HTTP binding in :mod:`cumulo.events.cloudevent`.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from cumulo.errors import InvalidEventError
from cumulo.events import tracing

SPEC_VERSION = "1.0"
REQUIRED = ("id", "source", "specversion", "type")
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


class Event:
    """A CloudEvent: ``attributes`` (all of them, as strings) and ``data``.

    ``data`` is ``None``, ``bytes`` (opaque payload) or a JSON value.
    """

    __slots__ = ("attributes", "data")

    def __init__(self, attributes: dict[str, Any], data: Any = None):
        self.attributes = attributes
        self.data = data

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


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


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
    attributes.update({k: str(v) for k, v in extensions.items() if v is not None})
    if tracing.TRACEPARENT not in attributes:  # made while handling an event: join its trace
        attributes.update(tracing.child_attributes())
    return Event(attributes, data)


def validate_attributes(attributes: Mapping[str, Any]) -> list[str]:
    """Every problem with a set of context attributes (empty when valid)."""
    problems = [
        f"missing required attribute '{name}'" for name in REQUIRED if not attributes.get(name)
    ]
    version = attributes.get("specversion")
    if version and version != SPEC_VERSION:
        problems.append(f"unsupported specversion '{version}' (only '1.0')")
    for name, value in attributes.items():
        if not _EXTENSION_NAME.match(name):
            problems.append(f"attribute name '{name}' must be 1-20 lowercase letters or digits")
        elif not isinstance(value, (str, int, bool)):
            problems.append(f"attribute '{name}' must be a string, integer or boolean")
    return problems


def to_json(event: Event) -> bytes:
    """The CloudEvents JSON event format (``data`` or ``data_base64``)."""
    envelope = dict(event.attributes)
    if isinstance(event.data, bytes):
        envelope["data_base64"] = base64.b64encode(event.data).decode()
    elif event.data is not None:
        envelope["data"] = event.data
    return orjson.dumps(envelope)


def from_envelope(envelope: Any) -> Event:
    """An event from a decoded JSON-format object; raises :class:`InvalidEventError`."""
    if not isinstance(envelope, dict):
        raise InvalidEventError(
            [f"a CloudEvent must be a JSON object, not {type(envelope).__name__}"]
        )
    attributes = {k: v for k, v in envelope.items() if k not in ("data", "data_base64")}
    problems = validate_attributes(attributes)
    if "data" in envelope and "data_base64" in envelope:
        problems.append("'data' and 'data_base64' are mutually exclusive")
    if problems:
        raise InvalidEventError(problems)
    if "data_base64" in envelope:
        try:
            return Event(attributes, base64.b64decode(envelope["data_base64"], validate=True))
        except (ValueError, TypeError) as e:
            raise InvalidEventError([f"'data_base64' is not valid base64: {e}"]) from e
    return Event(attributes, envelope.get("data"))


def from_json(body: bytes | str) -> Event:
    """Parse the JSON event format; raises :class:`InvalidEventError`."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidEventError([f"body is not valid JSON: {e}"]) from e
    return from_envelope(envelope)
