"""Webhook sources: authenticated HTTP deliveries become CloudEvents.

Every delivery (``POST /sources/<name>``) goes through the same steps, in order:

1. size: a body over the source's ``maxBodyBytes`` is refused (413) before it
   is read whole (the HTTP layer does this);
2. authentication over the *raw* body, before anything parses it
   (:mod:`cumulo.events.sources.signatures`): no signature or token is 401, a
   wrong one 403, a signed timestamp outside the tolerance 401;
3. parsing and mapping: a body that is not what it says, or whose fields have
   the wrong types, is 400 naming the field (:mod:`cumulo.events.sources.payloads`),
   and so is an event that could not be stored; then the source's filters: a
   delivery they leave out is answered 202 with a ``note`` and nothing is
   published;
4. duplicates and replays: a delivery whose id, or whose *signed body*, was
   published within the source's ``dedupWindow`` is answered 202 with
   ``"duplicate": true`` and not published again (a 2xx, so GitHub's
   *Redeliver* and GitLab's retries do not mark the hook failing). The body's
   SHA-256 is what the signature covers, so a new unsigned delivery id or
   ``Idempotency-Key`` cannot make a captured delivery new again;
5. publish: 202 once the events are durably on the bus.

Rejections are logged and counted per source (:class:`SourceStats`, shown by
``/api/status``); a rejected delivery is never published.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from cumulo.errors import CumuloError, InvalidEventError, WebhookRejectedError
from cumulo.events.cloudevent import events_from_http, is_json_media_type, media_type
from cumulo.events.event import Event, new_event
from cumulo.events.sources import SOURCE_EXTENSION, source_uri
from cumulo.events.sources.cron import Publish
from cumulo.events.sources.payloads import check_storable
from cumulo.events.sources.signatures import BODY_SIGNED, Headers, Verify, verifier
from cumulo.spec.models import EventSource

log = logging.getLogger("cumulo.sources")

DEFAULT_TYPE = "dev.cumulo.webhook.received"
BODY_KEY_PREFIX = "sha256:"


# --- the shape every webhook-style source shares ----------------------------------


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery: lower-cased headers, the raw body, the path under the source."""

    headers: Headers
    body: bytes
    path: str = "/"


@dataclass(frozen=True)
class Mapped:
    """What a delivery becomes: events, the keys that make it a duplicate, or why nothing."""

    events: list[Event]
    keys: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Seen:
    """A key already claimed, and when (Unix seconds)."""

    key: str
    at: float


@dataclass
class SourceStats:
    received: int = 0
    published: int = 0
    duplicates: int = 0
    replays: int = 0
    ignored: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


class DeliveryLog(Protocol):
    """Keys of deliveries already published, per source (durable, so a restart remembers)."""

    def claim(self, source: str, keys: Sequence[str], window: float) -> Seen | None:
        """Claim every key at once; or, when one was claimed within ``window``, that one."""
        ...

    def release(self, source: str, keys: Sequence[str]) -> None: ...


def body_key(body: bytes) -> str:
    """The replay key of a body: its SHA-256 (what a body signature covers)."""
    return BODY_KEY_PREFIX + hashlib.sha256(body).hexdigest()


def unique(*keys: str | None) -> tuple[str, ...]:
    """The keys given, without empties and repeats, in order."""
    return tuple(dict.fromkeys(k for k in keys if k))


def duplicate_note(seen: Seen) -> str:
    at = datetime.fromtimestamp(seen.at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if seen.key.startswith(BODY_KEY_PREFIX):
        return f"replayed delivery: the same body was published at {at}; not published again"
    return f"delivery '{seen.key}' was already published at {at}; not published again"


class HttpSource:
    """Base of the sources that take HTTP deliveries; subclasses write :meth:`map`."""

    kind = "webhook"

    def __init__(
        self,
        source: EventSource,
        publish: Publish,
        deliveries: DeliveryLog,
        verify: Verify,
        limit: int,
    ):
        self.name = source.name
        self.publish = publish
        self.deliveries = deliveries
        self.verify = verify
        self.max_body_bytes = limit
        self.window = source.spec.dedup_window
        self.path = "/"
        self.stats = SourceStats()

    def map(self, delivery: Delivery) -> Mapped:
        raise NotImplementedError

    def reject(self, slug: str, error: CumuloError) -> None:
        """Count and log a delivery refused before it could be published."""
        self.stats.rejected[slug] = self.stats.rejected.get(slug, 0) + 1
        log.warning("source %s: delivery refused (%s): %s", self.name, slug, error)

    def accept(self, delivery: Delivery) -> Mapped:
        """Verify and map one delivery, and check its events (raises what it refuses)."""
        try:
            self.verify(delivery.headers, delivery.body)
            mapped = self.map(delivery)
            check_storable(mapped.events)
        except WebhookRejectedError as e:
            self.reject(e.slug, e)
            raise
        except InvalidEventError as e:
            self.reject("invalid-body", e)
            raise
        return mapped

    async def handle(self, delivery: Delivery) -> Reply:
        """Verify, map, filter, dedup and publish one delivery (raises what it refuses)."""
        self.stats.received += 1
        mapped = self.accept(delivery)
        if not mapped.events:
            self.stats.ignored += 1
            return Reply(202, {"accepted": 0, "note": mapped.note})
        if mapped.keys and (seen := self.deliveries.claim(self.name, mapped.keys, self.window)):
            self.stats.duplicates += 1
            self.stats.replays += seen.key.startswith(BODY_KEY_PREFIX)
            return Reply(202, {"accepted": 0, "duplicate": True, "note": duplicate_note(seen)})
        return await self._publish(mapped)

    async def _publish(self, mapped: Mapped) -> Reply:
        try:
            await self.publish(mapped.events)
        except BaseException:
            if mapped.keys:
                self.deliveries.release(self.name, mapped.keys)
            raise
        self.stats.published += len(mapped.events)
        return Reply(202, {"accepted": len(mapped.events), "ids": [e.id for e in mapped.events]})


# --- the generic webhook source ------------------------------------------------------


def load_json(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidEventError([f"{what} is not valid JSON: {e}"]) from e


def is_cloudevent(headers: Headers) -> bool:
    """Whether a request already carries CloudEvents (ce- headers or the JSON formats)."""
    essence = media_type(headers.get("content-type"))
    return essence.startswith("application/cloudevents") or "ce-specversion" in headers


class WebhookSource(HttpSource):
    """Any body POSTed becomes a CloudEvent; a CloudEvent passes through unchanged.

    ``id`` is the Standard Webhooks ``webhook-id``, else the ``Idempotency-Key``
    or ``X-Request-Id`` header (a repeated one is a duplicate), else a new uuid;
    ``data`` is the JSON value of a JSON body, or the bytes of any other, with
    its Content-Type. With ``auth: hmac`` the signed body is a key too: sent
    again, under any id, it is a replay.
    """

    def __init__(
        self, source: EventSource, publish: Publish, deliveries: DeliveryLog, secret: str | None
    ):
        spec = source.spec.webhook
        assert spec is not None
        verify = verifier(spec.auth, secret, source=source.name, tolerance=spec.tolerance)
        super().__init__(source, publish, deliveries, verify, spec.max_body_bytes)
        self.auth = spec.auth if secret is not None else "none"
        self.path = "/" + spec.path.strip("/")
        self.type = source.spec.type or DEFAULT_TYPE

    def delivery_id(self, headers: Headers) -> str | None:
        """The id a sender gave this delivery (signed for Standard Webhooks), if any."""
        if self.auth == "standard-webhooks":
            return headers.get("webhook-id", "").strip() or None
        return headers.get("idempotency-key") or headers.get("x-request-id") or None

    def map(self, delivery: Delivery) -> Mapped:
        headers, key = delivery.headers, self.delivery_id(delivery.headers)
        signed = body_key(delivery.body) if self.auth in BODY_SIGNED else None
        if is_cloudevent(headers):
            return Mapped(events_from_http(headers, delivery.body), keys=unique(key, signed))
        content_type = headers.get("content-type") or None
        data: Any = delivery.body or None
        if data is not None and is_json_media_type(content_type):
            data = load_json(delivery.body, "the body")
        elif data is not None and content_type is None:
            content_type = "application/octet-stream"
        event = new_event(
            self.type,
            source_uri(self.name),
            data,
            id=key or str(uuid.uuid4()),
            datacontenttype=content_type if data is not None else None,
            **{SOURCE_EXTENSION: self.name},
        )
        return Mapped([event], keys=unique(key, signed))
