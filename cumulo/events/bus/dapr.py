"""The Dapr bus: publishing through a Dapr sidecar; delivery is Dapr's, by push.

URL: ``dapr://<host>:<gRPC port>/<pubsub component>``, e.g.
``dapr://127.0.0.1:50001/pubsub`` (the port defaults to Dapr's 50001).

Shape, and why it differs from the pull contract of :mod:`.base`:

- ``publish`` sends each event to the sidecar's ``PublishEvent`` (gRPC) with
  ``data_content_type = application/cloudevents+json``, so Dapr keeps Cumulo's
  CloudEvent as it is (same ``id``, ``source``, ``type``, ``data``) and only adds
  its extensions (``topic``, ``pubsubname``, ``traceid``, ``traceparent``,
  ``tracestate``). Over ``pubsub.redis`` the event lands in the Redis stream
  named by the topic, field ``data``: the layout :mod:`.redis` reads and writes.
  The sidecar answers no offset, so every offset returned is ``0``; it offers
  no publish-side dedup, so ``dedup`` is not applied (the trigger's consumer
  side dedup still is).
- Delivery is Dapr's: the sidecar calls the worker's ``GET /dapr/subscribe``
  and POSTs each event to it (:mod:`cumulo.runtimes.worker.dapr`); the worker
  answers ``SUCCESS`` / ``RETRY`` / ``DROP``. Retries, backoff, timeouts and
  dead letters come from the Resiliency policy and the subscription's
  ``deadLetterTopic`` that :mod:`cumulo.runtimes.dapr` generates from the
  trigger's delivery policy. So ``subscribe``, ``fetch``, ``settle``,
  ``wait``, ``replay``, ``read``, ``topics``, ``groups`` and ``trim`` raise
  :class:`~cumulo.errors.BusOperationUnsupportedError`: a lease that Dapr does
  not hold would be a fake. Read a topic with the broker's own bus (``redis://``)
  when you need to.

``grpc`` and the Dapr protos come with the ``dapr`` extra; the SDK's
``DaprClient`` is not used because it waits for a sidecar at the address
its environment names, not the one in the URL.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

from cumulo.extras import from_extra

with from_extra("dapr", needed_by="dapr://"):
    import grpc
    from dapr.proto import api_service_v1, api_v1

from cumulo.errors import (
    BusError,
    BusOperationUnsupportedError,
    BusUnavailableError,
    InvalidEventError,
    UnknownBackendError,
)
from cumulo.events.bus.base import (
    Accept,
    Bus,
    BusSettings,
    GroupInfo,
    Message,
    Settlement,
    StartAt,
)
from cumulo.events.event import Event, spec_problems, to_json

DEFAULT_GRPC_PORT = 50001
CLOUDEVENT_JSON = "application/cloudevents+json"
CALL_TIMEOUT = 30.0
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass(frozen=True, slots=True)
class DaprSettings:
    """Where the sidecar listens for gRPC, and which pub/sub component to publish to."""

    url: str
    host: str
    port: int
    pubsub: str
    bus: BusSettings = field(default_factory=BusSettings)

    @classmethod
    def from_url(cls, url: str, settings: BusSettings | None = None) -> DaprSettings:
        parts = urlsplit(url)
        if parts.scheme != "dapr":
            raise UnknownBackendError(f"not a dapr URL: {url!r}")
        pubsub = parts.path.strip("/")
        if not pubsub or "/" in pubsub:
            raise BusError(
                f"a dapr bus URL names one pub/sub component: dapr://host:port/<pubsub>, got {url!r}"
            )
        host = parts.hostname or "127.0.0.1"
        return cls(url, host, parts.port or DEFAULT_GRPC_PORT, pubsub, settings or BusSettings())

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class DaprBus(Bus):
    """Publishes through a Dapr sidecar. Takes :class:`DaprSettings` or a URL."""

    def __init__(self, settings: DaprSettings | str, *, bus_settings: BusSettings | None = None):
        if isinstance(settings, str):
            settings = DaprSettings.from_url(settings, bus_settings)
        self.settings = settings
        self.url = settings.url
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    async def start(self) -> None:
        """Connect, and check that the sidecar answers and has the pub/sub component."""
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.settings.address)
            self._stub = api_service_v1.DaprStub(self._channel)
        async with self._errors():
            metadata = await self._stub.GetMetadata(
                api_v1.GetMetadataRequest(), timeout=CALL_TIMEOUT
            )
        names = [c.name for c in metadata.registered_components if c.type.startswith("pubsub.")]
        if self.settings.pubsub not in names:
            raise BusError(
                f"dapr sidecar {self.settings.address} has no pub/sub component"
                f" {self.settings.pubsub!r} (it has: {', '.join(names) or 'none'})"
            )

    async def close(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()

    @contextlib.asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        """gRPC errors as Cumulo's: an unreachable sidecar is BusUnavailableError."""
        try:
            yield
        except grpc.aio.AioRpcError as e:
            text = f"dapr bus: {e.code().name}: {e.details()}"
            if e.code() in _UNREACHABLE:
                raise BusUnavailableError(text, address=self.settings.address) from e
            raise BusError(f"{text} ({self.settings.address})") from e

    async def publish(
        self, topic: str, events: Sequence[Event], *, dedup: bool = True
    ) -> list[int]:
        """Publish each event, in order, through the sidecar; offsets are unknown (``0``)."""
        if self._stub is None:
            raise BusError(f"dapr bus {self.settings.address} is not started")
        bodies = [_encode(event) for event in events]
        for body in bodies:
            request = api_v1.PublishEventRequest(
                pubsub_name=self.settings.pubsub,
                topic=topic,
                data=body,
                data_content_type=CLOUDEVENT_JSON,
            )
            async with self._errors():
                await self._stub.PublishEvent(request, timeout=CALL_TIMEOUT)
        return [0] * len(bodies)

    # --- the pull contract: Dapr delivers by push --------------------------------

    def _push_only(self, operation: str) -> NoReturn:
        raise BusOperationUnsupportedError(
            f"the dapr bus delivers by push through the sidecar; {operation} is not available:"
            " the worker's /dapr/subscribe subscribes, Dapr's Resiliency policy retries and"
            " the subscription's deadLetterTopic dead-letters (see cumulo.runtimes.dapr);"
            " read a topic through the broker's own bus URL (e.g. redis://)"
        )

    async def subscribe(self, group: str, topic: str, *, start: StartAt = "latest") -> None:
        self._push_only("subscribe (consumer groups)")

    async def fetch(
        self, group: str, *, limit: int, lease: float, accept: Accept | None = None
    ) -> list[Message]:
        self._push_only("fetch (leases)")

    async def settle(self, group: str, settlements: Sequence[Settlement]) -> None:
        self._push_only("settle (ack/nack/dead-letter)")

    async def wait(self, group: str, timeout: float) -> None:
        self._push_only("wait")

    async def replay(
        self,
        *,
        group: str | None = None,
        topic: str | None = None,
        from_offset: int | None = None,
        from_time: float | None = None,
    ) -> int:
        self._push_only("replay")

    async def read(
        self, topic: str, *, after: int = 0, limit: int = 100, since: float | None = None
    ) -> list[Message]:
        self._push_only("read")

    async def last_offset(self, topic: str) -> int:
        self._push_only("last_offset")

    async def topics(self) -> list[str]:
        self._push_only("topics")

    async def groups(self) -> list[GroupInfo]:
        self._push_only("groups")

    async def trim(self) -> int:
        self._push_only("trim")


def _encode(event: Event) -> bytes:
    problems = spec_problems(event)
    if problems:
        raise InvalidEventError(problems)
    return to_json(event)
