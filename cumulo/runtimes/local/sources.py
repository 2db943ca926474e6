"""Event sources in a running platform: built from their specs, and served over HTTP.

``POST /sources/<name>`` (plus the source's ``webhook.path``, when not ``/``)
takes a webhook-style source's deliveries, in ``cumulo up``'s gateway and in
``cumulo source run`` alike. Answers: 202 once the events are durably on the
bus (or with a ``note`` when the source's filters leave the delivery out, or
``"duplicate": true``, a replayed signed body included); problem+json 400
(malformed, or fields of the wrong type: the problem names them), 401 (no
signature or token, or a signed timestamp outside the tolerance), 403 (a wrong
one), 404 (no such source), 413 (too large), 415, and 503 with ``Retry-After``
when the bus cannot take the events.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cumulo import config
from cumulo.errors import (
    BusUnavailableError,
    InvalidEventError,
    PayloadTooLargeError,
    SecretNotSetError,
    WebhookRejectedError,
)
from cumulo.events.sources.cron import Checkpoints, CronSource, Publish
from cumulo.events.sources.git import GitWebhookSource
from cumulo.events.sources.git_poll import GitPoller
from cumulo.events.sources.s3 import S3NotificationSource
from cumulo.events.sources.s3_poll import S3Poller
from cumulo.events.sources.webhook import Delivery, DeliveryLog, HttpSource, Seen, WebhookSource
from cumulo.runtimes.local.http import answer, read_body
from cumulo.runtimes.worker import contract
from cumulo.spec.models import EventSource, SecretRef

if TYPE_CHECKING:
    from cumulo.events.sources.kafka import KafkaEventSource

log = logging.getLogger("cumulo.sources")

Running = Union[CronSource, GitPoller, S3Poller, HttpSource, "KafkaEventSource"]


# --- building ----------------------------------------------------------------------


def resolve_secret(source: str, ref: SecretRef | None) -> str | None:
    """The secret's value, from the variable it names; :class:`SecretNotSetError` if unset."""
    if ref is None:
        return None
    value = config.secret(ref.variable)
    if value is None:
        raise SecretNotSetError(source, ref.variable)
    return value


def build_source(
    source: EventSource, publish: Publish, checkpoints: Checkpoints, deliveries: DeliveryLog
) -> Running | KafkaEventSource | None:
    """The running form of ``source`` (None for kinds not available yet)."""
    spec = source.spec
    if spec.cron is not None:
        return CronSource(source, publish, checkpoints)
    if spec.git is not None and spec.git.provider == "poll":
        return GitPoller(source, publish, checkpoints)
    if spec.git is not None:
        if spec.git.secret is None:
            log.warning("source %s: no secret, so deliveries are not verified", source.name)
        secret = resolve_secret(source.name, spec.git.secret)
        return GitWebhookSource(source, publish, deliveries, secret)
    if spec.webhook is not None:
        secret = resolve_secret(source.name, spec.webhook.secret)
        return WebhookSource(source, publish, deliveries, secret)
    if spec.s3 is not None:
        return build_s3(source, publish, checkpoints, deliveries)
    if spec.kafka is not None:
        from cumulo.events.sources.kafka import KafkaEventSource

        return KafkaEventSource(source, publish, config=kafka_security(source))
    return None


def kafka_security(source: EventSource) -> dict[str, str]:
    """librdkafka's TLS and SASL settings for a Kafka source (the password from its secret)."""
    spec = source.spec.kafka
    assert spec is not None
    settings: dict[str, str] = {}
    if spec.tls is not None:
        files = {
            "ssl.ca.location": spec.tls.ca_file,
            "ssl.certificate.location": spec.tls.cert_file,
            "ssl.key.location": spec.tls.key_file,
        }
        settings |= {key: path for key, path in files.items() if path}
    if spec.sasl is not None:
        settings |= {
            "sasl.mechanism": spec.sasl.mechanism,
            "sasl.username": spec.sasl.username,
            "sasl.password": resolve_secret(source.name, spec.sasl.password) or "",
        }
    if settings:
        tls, sasl = spec.tls is not None, spec.sasl is not None
        settings["security.protocol"] = {(True, True): "SASL_SSL", (True, False): "SSL"}.get(
            (tls, sasl), "SASL_PLAINTEXT"
        )
    return settings


def build_s3(
    source: EventSource, publish: Publish, checkpoints: Checkpoints, deliveries: DeliveryLog
) -> S3Poller | S3NotificationSource:
    spec = source.spec.s3
    assert spec is not None
    if spec.mode == "poll":
        access = resolve_secret(source.name, spec.access_key)
        secret = resolve_secret(source.name, spec.secret_key)
        keys = (access, secret) if access and secret else None
        return S3Poller(source, publish, checkpoints, keys)
    if spec.token is None:
        log.warning("source %s: no token, so deliveries are not verified", source.name)
    token = resolve_secret(source.name, spec.token)
    return S3NotificationSource(source, publish, deliveries, token)


def describe_source(running: Running) -> dict[str, Any]:
    """What ``/api/status`` shows about a source: its counters."""
    if isinstance(running, CronSource):
        return {"name": running.name, "kind": "cron", "fired": running.fired}
    return {"name": running.name, "kind": running.kind, **vars(running.stats)}


class SqliteDeliveries:
    """Keys of deliveries already published, per source, within a window (a :class:`DeliveryLog`).

    A key is a delivery id or the SHA-256 of a signed body. Claims are one
    transaction (``BEGIN IMMEDIATE``), so ``cumulo up`` and ``cumulo source run``
    sharing the file never both publish one delivery; keys older than their
    source's window are trimmed as that source claims new ones.
    """

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS deliveries"
            " (source TEXT, key TEXT, seen REAL NOT NULL, PRIMARY KEY (source, key))"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS deliveries_seen ON deliveries (seen)")

    def claim(self, source: str, keys: Sequence[str], window: float) -> Seen | None:
        """Claim every key of a delivery; None if all are new, else the first already seen."""
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "DELETE FROM deliveries WHERE source = ? AND seen < ?", (source, now - window)
            )
            seen = self._seen(source, keys)
            if seen is None:
                self.db.executemany(
                    "INSERT OR IGNORE INTO deliveries (source, key, seen) VALUES (?, ?, ?)",
                    [(source, key, now) for key in keys],
                )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return seen

    def _seen(self, source: str, keys: Sequence[str]) -> Seen | None:
        marks = ",".join("?" * len(keys))
        rows = self.db.execute(
            f"SELECT key, seen FROM deliveries WHERE source = ? AND key IN ({marks})",
            (source, *keys),
        ).fetchall()
        found = dict(rows)
        return next((Seen(key, found[key]) for key in keys if key in found), None)

    def release(self, source: str, keys: Sequence[str]) -> None:
        """Forget keys whose events could not be published (so a retry publishes them)."""
        self.db.executemany(
            "DELETE FROM deliveries WHERE source = ? AND key = ?", [(source, k) for k in keys]
        )

    def close(self) -> None:
        self.db.close()


# --- HTTP --------------------------------------------------------------------------


REJECTION_TITLES = {
    "missing-signature": "Signature missing",
    "bad-signature": "Signature does not match",
    "timestamp-out-of-tolerance": "Signed timestamp outside the tolerance",
}


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Response:
    return answer(contract.problem(status, slug, title, detail, "SourceError", **extra))


def refused(error: Exception) -> Response:
    """The problem+json answer to a delivery a source refused."""
    if isinstance(error, WebhookRejectedError):
        title = REJECTION_TITLES.get(error.slug, "Signature does not match")
        return problem(error.status, error.slug, title, str(error))
    if isinstance(error, BusUnavailableError):
        return answer(
            contract.problem(503, "bus-unavailable", "Bus unavailable", str(error), "BusError"),
            retry_after="1",
        )
    assert isinstance(error, InvalidEventError)
    if type(error) is InvalidEventError:
        detail = "; ".join(error.problems)
        return problem(
            400, "malformed-delivery", "Malformed delivery", detail, problems=error.problems
        )
    return answer(contract.invalid_request_response(error))


async def receive(source: HttpSource | None, request: Request) -> Response:
    """One delivery to a webhook-style source, answered as the module docstring says."""
    name = request.path_params["name"]
    if source is None:
        return problem(404, "unknown-source", "Unknown source", f"no webhook source '{name}'")
    path = "/" + request.path_params.get("path", "").strip("/")
    if path != source.path:
        detail = f"source '{name}' takes deliveries at /sources/{name}{source.path.rstrip('/')}"
        return problem(404, "unknown-source-path", "Unknown source path", detail)
    try:
        body = await read_body(request, source.max_body_bytes)
    except PayloadTooLargeError as e:
        source.reject("too-large", e)
        return refused(e)
    try:
        reply = await source.handle(Delivery(dict(request.headers), body, path))
    except (WebhookRejectedError, InvalidEventError, BusUnavailableError) as e:
        return refused(e)
    return JSONResponse(reply.body, status_code=reply.status)


def source_routes(lookup: Callable[[str], HttpSource | None]) -> list[Route]:
    """``POST /sources/<name>[/<path>]``, served by the source ``lookup`` finds."""

    async def endpoint(request: Request) -> Response:
        return await receive(lookup(request.path_params["name"]), request)

    return [
        Route("/sources/{name}", endpoint, methods=["POST"]),
        Route("/sources/{name}/{path:path}", endpoint, methods=["POST"]),
    ]
