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
answered 202 with ``"duplicate": true``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from cumulo.errors import BadSignatureError, InvalidEventError
from cumulo.events.event import Event, new_event
from cumulo.events.sources.cron import Publish
from cumulo.events.sources.webhook import (
    SOURCE_EXTENSION,
    Delivery,
    DeliveryLog,
    Headers,
    HttpSource,
    Mapped,
    Verify,
    load_json,
    verify_bearer,
)
from cumulo.spec.models import EventSource, S3Source

DEFAULT_TYPE = "dev.cumulo.object.created"
CREATED = "ObjectCreated:"
MAX_NESTING = 4
"""How deep wrappers may nest (SNS in SQS in ...) before a body is called malformed."""


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


# --- unwrapping deliveries -------------------------------------------------------------


@dataclass
class Found:
    """The S3 records in a delivery, and notes on what carried none."""

    records: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _parsed(text: Any, what: str) -> Any:
    if not isinstance(text, str):
        raise InvalidEventError([f"{what} is not a JSON string"])
    return load_json(text.encode(), what)


def _message(payload: dict[str, Any], found: Found) -> bool:
    """Notes for the messages that carry no records; True when ``payload`` was one."""
    kind = payload.get("Type")
    if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        url = payload.get("SubscribeURL") or ""
        found.notes.append(f"SNS {kind}: nothing published; confirm it at {url}".strip())
        return True
    if payload.get("Event") == "s3:TestEvent":
        found.notes.append("s3:TestEvent: nothing published")
        return True
    return False


def unwrap(payload: Any, found: Found, depth: int = 0) -> Found:
    """Collect the S3 records of a delivery body, through SNS and SQS wrappers."""
    if depth > MAX_NESTING:
        raise InvalidEventError([f"the delivery nests wrappers deeper than {MAX_NESTING}"])
    if not isinstance(payload, dict):
        raise InvalidEventError(
            [f"an S3 notification is a JSON object, not {type(payload).__name__}"]
        )
    if _message(payload, found):
        return found
    if "Message" in payload:  # SNS
        return unwrap(_parsed(payload["Message"], "the SNS Message"), found, depth + 1)
    if "Body" in payload:  # an SQS message
        return unwrap(_parsed(payload["Body"], "the SQS Body"), found, depth + 1)
    records = payload.get("Records")
    if not isinstance(records, list):
        raise InvalidEventError(["the delivery has no Records (nor an SNS or SQS message)"])
    for record in records:
        if not isinstance(record, dict):
            raise InvalidEventError(["a record is not a JSON object"])
        if record.get("eventSource") == "aws:sqs":
            unwrap(_parsed(record.get("body"), "an SQS record's body"), found, depth + 1)
        elif record.get("EventSource") == "aws:sns":
            sns = record.get("Sns") or {}
            unwrap(_parsed(sns.get("Message"), "an SNS record's Message"), found, depth + 1)
        else:
            found.records.append(record)
    return found


def parse_record(record: dict[str, Any]) -> S3Object:
    """The object an S3 event record names; :class:`InvalidEventError` if it names none."""
    s3 = record.get("s3")
    bucket = (s3 or {}).get("bucket", {}).get("name") if isinstance(s3, dict) else None
    obj = (s3 or {}).get("object") if isinstance(s3, dict) else None
    if (
        not isinstance(bucket, str)
        or not isinstance(obj, dict)
        or not isinstance(obj.get("key"), str)
    ):
        raise InvalidEventError(["a record has no s3.bucket.name and s3.object.key"])
    etag = obj.get("eTag") or obj.get("etag")
    return S3Object(
        bucket=bucket,
        key=unquote_plus(obj["key"]),
        size=obj.get("size"),
        etag=etag.strip('"') if isinstance(etag, str) else None,
        version_id=obj.get("versionId") or None,
        event_name=str(record.get("eventName", "")).removeprefix("s3:"),
        time=record.get("eventTime"),
        sequencer=obj.get("sequencer") or None,
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
        return lambda headers, body: None
    return lambda headers, body: verify_token(headers, body, token)


class S3NotificationSource(HttpSource):
    """Bucket notifications (MinIO webhooks, AWS S3 JSON direct or via SNS/SQS)."""

    kind = "s3"

    def __init__(
        self, source: EventSource, publish: Publish, deliveries: DeliveryLog, token: str | None
    ):
        spec = source.spec.s3
        assert spec is not None
        super().__init__(
            source.name, publish, deliveries, token_verifier(token), spec.max_body_bytes
        )
        self.spec = spec
        self.type = source.spec.type or DEFAULT_TYPE
        self.source = event_source(spec)

    def map(self, delivery: Delivery) -> Mapped:
        found = unwrap(load_json(delivery.body, "the delivery"), Found())
        notes, events = list(found.notes), []
        for obj in map(parse_record, found.records):
            if note := self.left_out(obj):
                notes.append(note)
            else:
                events.append(object_event(self.name, self.type, self.source, obj))
        if not events:
            return Mapped([], note="; ".join(notes) or "no records: nothing published")
        ids = "\n".join(sorted(e.id for e in events))
        return Mapped(events, key="s3:" + hashlib.sha256(ids.encode()).hexdigest())

    def left_out(self, obj: S3Object) -> str:
        """Why this object is not announced ('' when it is)."""
        if not obj.event_name.startswith(CREATED):
            return f"'{obj.event_name}' is not ObjectCreated: not published"
        if obj.bucket != self.spec.bucket:
            return f"bucket '{obj.bucket}' is not '{self.spec.bucket}': not published"
        if not keeps(self.spec, obj.key):
            return f"'{obj.key}' is outside the prefix/suffix filter: not published"
        return ""
