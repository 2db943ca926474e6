"""Webhook sources: authenticated HTTP deliveries become CloudEvents.

Every delivery (``POST /sources/<name>``) goes through the same steps, in order:

1. size: a body over the source's ``maxBodyBytes`` is refused (413) before it
   is read whole (the HTTP layer does this);
2. authentication over the *raw* body, before anything parses it: no
   signature or token is 401, a wrong one is 403 (the problem says which header
   was wrong, never the secret);
3. parsing and mapping (a body that is not what it says is 400), then the
   source's filters: a delivery they leave out is answered 202 with a ``note``
   and nothing is published;
4. duplicates: a delivery id already published within :data:`DELIVERY_WINDOW`
   is answered 202 with ``"duplicate": true`` and not published again (a 2xx,
   so GitHub's *Redeliver* and GitLab's retries do not mark the hook failing);
5. publish: 202 once the events are durably on the bus.

Rejections are logged and counted per source (:class:`SourceStats`, shown by
``/api/status``); a rejected delivery is never published.

Signature schemes (HMAC-SHA256 over the raw body, compared in constant time):

==========  ==========================  ===========================================
scheme      header                      value
==========  ==========================  ===========================================
``github``  ``X-Hub-Signature-256``     ``sha256=<hex HMAC-SHA256(secret, body)>``
``gitea``   ``X-Gitea-Signature``       ``<hex HMAC-SHA256(secret, body)>``
``gitlab``  ``X-Gitlab-Token``          the secret itself
``bearer``  ``Authorization``           ``Bearer <secret>``
``hmac``    ``X-Cumulo-Signature``      ``sha256=<hex HMAC-SHA256(secret, body)>``
==========  ==========================  ===========================================
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from cumulo.errors import (
    BadSignatureError,
    CumuloError,
    InvalidEventError,
    MissingSignatureError,
    WebhookRejectedError,
)
from cumulo.events.cloudevent import events_from_http, is_json_media_type, media_type
from cumulo.events.event import Event, new_event
from cumulo.events.sources import SOURCE_EXTENSION, source_uri
from cumulo.events.sources.cron import Publish
from cumulo.spec.models import EventSource

log = logging.getLogger("cumulo.sources")

DEFAULT_TYPE = "dev.cumulo.webhook.received"
SIGNATURE_HEADER = "X-Cumulo-Signature"
"""Events a source makes carry its name, so ``sink.function`` finds them whatever their source."""
DELIVERY_WINDOW = 7 * 86400.0
"""How long a delivery id is remembered (GitHub lets a delivery be redelivered for 3 days)."""

Headers = Mapping[str, str]
Verify = Callable[[Headers, bytes], None]


# --- verification --------------------------------------------------------------


def hmac_sha256(secret: str, body: bytes) -> str:
    """The lower-case hex HMAC-SHA256 of ``body`` under ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _header(headers: Headers, name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise MissingSignatureError(f"the delivery has no {name} header")
    return value


def _same(given: str, expected: str, name: str) -> None:
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise BadSignatureError(f"the {name} header does not match the source's secret")


def verify_prefixed(headers: Headers, body: bytes, secret: str, name: str) -> None:
    """``name: sha256=<hex>`` (GitHub's ``X-Hub-Signature-256``, Cumulo's own)."""
    scheme, _, digest = _header(headers, name).partition("=")
    if scheme != "sha256" or not digest:
        raise BadSignatureError(f"the {name} header is not 'sha256=<hex digest>'")
    _same(digest.lower(), hmac_sha256(secret, body), name)


def verify_github(headers: Headers, body: bytes, secret: str) -> None:
    verify_prefixed(headers, body, secret, "X-Hub-Signature-256")


def verify_hmac(headers: Headers, body: bytes, secret: str) -> None:
    verify_prefixed(headers, body, secret, SIGNATURE_HEADER)


def verify_gitea(headers: Headers, body: bytes, secret: str) -> None:
    name = "X-Gitea-Signature"
    _same(_header(headers, name).lower(), hmac_sha256(secret, body), name)


def verify_gitlab(headers: Headers, body: bytes, secret: str) -> None:
    name = "X-Gitlab-Token"
    _same(_header(headers, name), secret, name)


def verify_bearer(headers: Headers, body: bytes, secret: str) -> None:
    scheme, _, token = _header(headers, "Authorization").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BadSignatureError("the Authorization header is not 'Bearer <token>'")
    _same(token.strip(), secret, "Authorization")


SCHEMES: dict[str, Callable[[Headers, bytes, str], None]] = {
    "github": verify_github,
    "gitea": verify_gitea,
    "gitlab": verify_gitlab,
    "bearer": verify_bearer,
    "hmac": verify_hmac,
}


def verifier(scheme: str, secret: str | None) -> Verify:
    """A check for ``scheme`` (``none``, or no secret, accepts every delivery)."""
    if scheme == "none" or secret is None:
        return lambda headers, body: None
    check = SCHEMES[scheme]
    return lambda headers, body: check(headers, body, secret)


# --- the shape every webhook-style source shares ----------------------------------


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery: lower-cased headers, the raw body, the path under the source."""

    headers: Headers
    body: bytes
    path: str = "/"


@dataclass(frozen=True)
class Mapped:
    """What a delivery becomes: events, the id that makes it a duplicate, or why nothing."""

    events: list[Event]
    key: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


@dataclass
class SourceStats:
    received: int = 0
    published: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


class DeliveryLog(Protocol):
    """Delivery ids already published, per source (durable, so a restart remembers)."""

    def claim(self, source: str, key: str, window: float) -> bool: ...

    def release(self, source: str, key: str) -> None: ...


class HttpSource:
    """Base of the sources that take HTTP deliveries; subclasses write :meth:`map`."""

    kind = "webhook"

    def __init__(
        self, name: str, publish: Publish, deliveries: DeliveryLog, verify: Verify, limit: int
    ):
        self.name = name
        self.publish = publish
        self.deliveries = deliveries
        self.verify = verify
        self.max_body_bytes = limit
        self.path = "/"
        self.stats = SourceStats()

    def map(self, delivery: Delivery) -> Mapped:
        raise NotImplementedError

    def reject(self, slug: str, error: CumuloError) -> None:
        """Count and log a delivery refused before it could be published."""
        self.stats.rejected[slug] = self.stats.rejected.get(slug, 0) + 1
        log.warning("source %s: delivery refused (%s): %s", self.name, slug, error)

    async def handle(self, delivery: Delivery) -> Reply:
        """Verify, map, filter, dedup and publish one delivery (raises what it refuses)."""
        self.stats.received += 1
        try:
            self.verify(delivery.headers, delivery.body)
            mapped = self.map(delivery)
        except WebhookRejectedError as e:
            self.reject(e.slug, e)
            raise
        except InvalidEventError as e:
            self.reject("invalid-body", e)
            raise
        if not mapped.events:
            self.stats.ignored += 1
            return Reply(202, {"accepted": 0, "note": mapped.note})
        if mapped.key and not self.deliveries.claim(self.name, mapped.key, DELIVERY_WINDOW):
            self.stats.duplicates += 1
            note = f"delivery '{mapped.key}' was already published"
            return Reply(202, {"accepted": 0, "duplicate": True, "note": note})
        return await self._publish(mapped)

    async def _publish(self, mapped: Mapped) -> Reply:
        try:
            await self.publish(mapped.events)
        except BaseException:
            if mapped.key:
                self.deliveries.release(self.name, mapped.key)
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

    ``id`` is the ``Idempotency-Key`` or ``X-Request-Id`` header (a repeated one
    is a duplicate) or a new uuid; ``data`` is the JSON value of a JSON body, or
    the bytes of any other, with its Content-Type.
    """

    def __init__(
        self, source: EventSource, publish: Publish, deliveries: DeliveryLog, secret: str | None
    ):
        spec = source.spec.webhook
        assert spec is not None
        verify = verifier(spec.auth, secret)
        super().__init__(source.name, publish, deliveries, verify, spec.max_body_bytes)
        self.path = "/" + spec.path.strip("/")
        self.type = source.spec.type or DEFAULT_TYPE

    def map(self, delivery: Delivery) -> Mapped:
        headers = delivery.headers
        if is_cloudevent(headers):
            return Mapped(events_from_http(headers, delivery.body))
        key = headers.get("idempotency-key") or headers.get("x-request-id")
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
        return Mapped([event], key=key)
