"""The S3 source's ``notification`` mode: bucket notifications become ``dev.cumulo.object.created``.

One receiver (``POST /sources/<name>``) takes every shape a created object is
announced in:

- MinIO's webhook target: ``{"EventName", "Key", "Records": [...]}`` with
  ``Authorization: Bearer <token>``;
- AWS S3 event JSON, ``{"Records": [...]}``, as sent directly, wrapped by SNS
  (the S3 JSON as a string in ``Message``), or by SQS (in ``Body``, or a
  Lambda-style ``Records[].body``).

Each ``ObjectCreated`` record of the source's bucket whose decoded key passes
``prefix``/``suffix`` becomes one event:

================  ==============================================================
attribute         value
================  ==============================================================
``type``          ``dev.cumulo.object.created`` (or the source's ``type``)
``source``        ``s3://<bucket>``, or ``<endpoint>/<bucket>`` when the spec
                  names an endpoint
``subject``       the object's key, URL-decoded (``red+flower.jpg`` →
                  ``red flower.jpg``)
``id``            ``<bucket>/<key>@<sequencer>``; without a sequencer,
                  ``<bucket>/<key>@<versionId or etag>``
``time``          the record's ``eventTime``
``cumulosource``  the EventSource's name
``data``          ``{bucket, key, size, etag, versionId, eventName, uri}``:
                  ``eventName`` without the ``s3:`` prefix (``ObjectCreated:Put``),
                  ``uri`` = ``s3://<bucket>/<key>`` (the raw key)
================  ==============================================================

Answered 202 with a ``note`` and nothing published: S3's ``s3:TestEvent``, SNS
``SubscriptionConfirmation`` (confirm it by opening its ``SubscribeURL``; the
source never fetches URLs a delivery names), records that are not
``ObjectCreated`` (removals, restores, ...), records of another bucket, and keys
the filters leave out. With a ``token``, a delivery needs ``Authorization:
Bearer <token>`` (or HTTP Basic with the token as password, which SNS sends for
``https://user:token@host/...`` endpoints), compared in constant time: none is
401, a wrong one 403. A delivery whose records were all published before is
answered 202 with ``"duplicate": true``. A body whose fields have the wrong
types is refused naming the field, through any wrapper
(``Message → Records[0].s3.bucket: must be an object``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from pydantic import Field, field_validator

from cumulo.errors import BadSignatureError, InvalidEventError
from cumulo.events.event import Event, new_event
from cumulo.events.sources import SOURCE_EXTENSION
from cumulo.events.sources.cron import Publish
from cumulo.events.sources.payloads import Payload, parse
from cumulo.events.sources.signatures import Headers, Verify, accept_all, verify_bearer
from cumulo.events.sources.webhook import Delivery, DeliveryLog, HttpSource, Mapped, load_json
from cumulo.spec.models import EventSource, S3Source

DEFAULT_TYPE = "dev.cumulo.object.created"
CREATED = "ObjectCreated:"
MAX_NESTING = 4
"""How deep wrappers may nest (SNS in SQS in ...) before a body is called malformed."""
MAX_URL = 2048
"""The longest SubscribeURL a note repeats."""


# --- objects and their events --------------------------------------------------------


@dataclass(frozen=True)
class S3Object:
    """A created object, however it was announced."""

    bucket: str
    key: str
    size: int | None
    etag: str | None
    version_id: str | None
    event_name: str
    time: str | None = None
    sequencer: str | None = None


def event_source(spec: S3Source) -> str:
    """The ``source`` attribute of a bucket's events."""
    if spec.endpoint:
        return f"{spec.endpoint.rstrip('/')}/{spec.bucket}"
    return f"s3://{spec.bucket}"


def keeps(spec: S3Source, key: str) -> bool:
    """Whether the source's prefix and suffix keep ``key`` (decoded)."""
    return key.startswith(spec.prefix) and key.endswith(spec.suffix)


def object_event(name: str, type: str, source: str, obj: S3Object) -> Event:
    """The CloudEvent of one created object (the table in the module docstring)."""
    data = {
        "bucket": obj.bucket,
        "key": obj.key,
        "size": obj.size,
        "etag": obj.etag,
        "versionId": obj.version_id,
        "eventName": obj.event_name,
        "uri": f"s3://{obj.bucket}/{obj.key}",
    }
    tag = obj.sequencer or obj.version_id or obj.etag or ""
    event = new_event(
        type,
        source,
        data,
        id=f"{obj.bucket}/{obj.key}@{tag}",
        subject=obj.key,
        **{SOURCE_EXTENSION: name},
    )
    return event.with_attributes(time=obj.time) if obj.time else event


# --- the record, as far as the source reads it -----------------------------------------


class BucketInfo(Payload):
    name: str


class ObjectInfo(Payload):
    key: str
    size: int | None = None
    e_tag: str | None = Field(default=None, alias="eTag")
    etag: str | None = None
    version_id: str | None = Field(default=None, alias="versionId")
    sequencer: str | None = None


class Entity(Payload):
    bucket: BucketInfo
    object_: ObjectInfo = Field(alias="object")


class Record(Payload):
    """One S3 event record (AWS's and MinIO's shape)."""

    s3: Entity
    event_name: str = Field(default="", alias="eventName")
    event_time: str | None = Field(default=None, alias="eventTime")

    @field_validator("event_time")
    @classmethod
    def _rfc3339(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError("must be an RFC 3339 timestamp") from None
        return value


# --- unwrapping deliveries -------------------------------------------------------------


@dataclass
class Found:
    """The S3 records in a delivery (with where each was), and notes on what carried none."""

    records: list[tuple[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _parsed(text: Any, what: str) -> Any:
    if not isinstance(text, str):
        raise InvalidEventError([f"{what} is not a JSON string"])
    return load_json(text.encode(), what)


def _message(payload: dict[str, Any], found: Found) -> bool:
    """Notes for the messages that carry no records; True when ``payload`` was one."""
    kind = payload.get("Type")
    if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        url = payload.get("SubscribeURL")
        at = f"; confirm it at {url}" if isinstance(url, str) and len(url) <= MAX_URL else ""
        found.notes.append(f"SNS {kind}: nothing published{at}")
        return True
    if payload.get("Event") == "s3:TestEvent":
        found.notes.append("s3:TestEvent: nothing published")
        return True
    return False


def unwrap(payload: Any, found: Found, depth: int = 0, where: str = "") -> Found:
    """Collect the S3 records of a delivery body, through SNS and SQS wrappers."""
    if depth > MAX_NESTING:
        raise InvalidEventError([f"the delivery nests wrappers deeper than {MAX_NESTING}"])
    if not isinstance(payload, dict):
        what = f"{where}an S3 notification" if where else "an S3 notification"
        raise InvalidEventError([f"{what} is a JSON object, not {type(payload).__name__}"])
    if _message(payload, found):
        return found
    if "Message" in payload:  # SNS
        inner = _parsed(payload["Message"], f"{where}the SNS Message")
        return unwrap(inner, found, depth + 1, f"{where}Message → ")
    if "Body" in payload:  # an SQS message
        inner = _parsed(payload["Body"], f"{where}the SQS Body")
        return unwrap(inner, found, depth + 1, f"{where}Body → ")
    records = payload.get("Records")
    if not isinstance(records, list):
        raise InvalidEventError([f"{where}the delivery has no Records (nor an SNS or SQS message)"])
    for index, record in enumerate(records):
        _record(record, found, depth, f"{where}Records[{index}]")
    return found


def _record(record: Any, found: Found, depth: int, at: str) -> None:
    """One entry of ``Records``: an S3 record, or an SQS or SNS record wrapping more."""
    if not isinstance(record, dict):
        raise InvalidEventError([f"{at}: must be an object"])
    if record.get("eventSource") == "aws:sqs":
        inner = _parsed(record.get("body"), f"{at}.body")
        unwrap(inner, found, depth + 1, f"{at}.body → ")
    elif record.get("EventSource") == "aws:sns":
        sns = record.get("Sns")
        if not isinstance(sns, dict):
            raise InvalidEventError([f"{at}.Sns: must be an object"])
        inner = _parsed(sns.get("Message"), f"{at}.Sns.Message")
        unwrap(inner, found, depth + 1, f"{at}.Sns.Message → ")
    else:
        found.records.append((at, record))


def parse_record(record: Any, at: str = "Records[0]") -> S3Object:
    """The object an S3 event record names; :class:`InvalidEventError` naming what is wrong."""
    parsed = parse(Record, record, f"{at}.")
    obj = parsed.s3.object_
    etag = obj.e_tag or obj.etag
    return S3Object(
        bucket=parsed.s3.bucket.name,
        key=unquote_plus(obj.key),
        size=obj.size,
        etag=etag.strip('"') if etag else None,
        version_id=obj.version_id or None,
        event_name=parsed.event_name.removeprefix("s3:"),
        time=parsed.event_time,
        sequencer=obj.sequencer or None,
    )


# --- the receiver ----------------------------------------------------------------------


def verify_token(headers: Headers, body: bytes, token: str) -> None:
    """``Authorization: Bearer <token>``, or Basic with ``token`` as the password."""
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        verify_bearer(headers, body, token)
        return
    try:
        password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[2]
    except (binascii.Error, UnicodeDecodeError) as e:
        raise BadSignatureError("the Authorization header is not valid Basic credentials") from e
    verify_bearer({"authorization": f"Bearer {password}"}, body, token)


def token_verifier(token: str | None) -> Verify:
    if token is None:
        return accept_all
    return lambda headers, body: verify_token(headers, body, token)


class S3NotificationSource(HttpSource):
    """Bucket notifications (MinIO webhooks, AWS S3 JSON direct or via SNS/SQS)."""

    kind = "s3"

    def __init__(
        self, source: EventSource, publish: Publish, deliveries: DeliveryLog, token: str | None
    ):
        spec = source.spec.s3
        assert spec is not None
        verify = token_verifier(token)
        super().__init__(source, publish, deliveries, verify, spec.max_body_bytes)
        self.spec = spec
        self.type = source.spec.type or DEFAULT_TYPE
        self.source = event_source(spec)

    def map(self, delivery: Delivery) -> Mapped:
        found = unwrap(load_json(delivery.body, "the delivery"), Found())
        notes, events = list(found.notes), []
        for obj in (parse_record(record, at) for at, record in found.records):
            if note := self.left_out(obj):
                notes.append(note)
            else:
                events.append(object_event(self.name, self.type, self.source, obj))
        if not events:
            return Mapped([], note="; ".join(notes) or "no records: nothing published")
        ids = "\n".join(sorted(e.id for e in events))
        return Mapped(events, keys=("s3:" + hashlib.sha256(ids.encode()).hexdigest(),))

    def left_out(self, obj: S3Object) -> str:
        """Why this object is not announced ('' when it is)."""
        if not obj.event_name.startswith(CREATED):
            return f"'{obj.event_name}' is not ObjectCreated: not published"
        if obj.bucket != self.spec.bucket:
            return f"bucket '{obj.bucket}' is not '{self.spec.bucket}': not published"
        if not keeps(self.spec, obj.key):
            return f"'{obj.key}' is outside the prefix/suffix filter: not published"
        return ""
