"""Where a bus lives in the cluster: its broker, read from the bus URL.

``redis://[user:password@]host[:6379]``, ``rediss://`` (TLS),
``kafka://host:9092[,host:9092]``, ``nats://host[:4222][?prefix=cumulo]``
(JetStream stream ``CUMULO``, monitoring on port 8222), ``dapr://<component>``
(a Dapr pub/sub component that already exists: nothing rendered for it).

Credentials in a URL are never copied into a manifest: the Dapr component and
KEDA's TriggerAuthentication read them from the Secret ``cumulo-bus-<bus>``
(keys ``username``, ``password``), which the operator creates.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from cumulo.events.bus.names import consumer_name

DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "kafka": 9092, "nats": 4222}
NATS_MONITORING_PORT = 8222
KINDS = {"redis": "redis", "rediss": "redis", "kafka": "kafka", "nats": "nats", "dapr": "dapr"}


@dataclass(frozen=True)
class Broker:
    """A bus's broker as the cluster objects need it."""

    bus: str
    kind: str  # redis, kafka, nats or dapr
    hosts: tuple[str, ...]  # host:port each
    username: str | None = None
    password: bool = False  # whether the URL carries one (its value is never kept)
    tls: bool = False
    stream: str = "CUMULO"  # nats: the JetStream stream holding every topic
    component: str = ""  # the Dapr pub/sub component's name
    prefix: str = ""  # kafka: Cumulo's topic and group prefix (?prefix=)

    @property
    def secret(self) -> str:
        """The Secret that holds this bus's credentials."""
        return f"cumulo-bus-{self.bus}"

    @property
    def credentials(self) -> bool:
        return self.password or self.username is not None

    def pulled_names(self, topic: str, group: str) -> tuple[str, str]:
        """The broker's own topic and group names for a group Cumulo's bus backend reads.

        (``cumulo job`` pulls with Cumulo's backends, where Dapr's consumers use the
        topic and the app id as they are.)
        """
        if self.kind == "nats":
            return topic, consumer_name(group)
        if self.kind == "kafka" and self.prefix:
            return f"{self.prefix}.{topic}", f"{self.prefix}.{group}"
        return topic, group


def broker(bus: str, url: str) -> Broker:
    """The broker of bus ``bus`` at ``url``; ``ValueError`` says what is wrong with it."""
    parts = urlsplit(url)
    kind = KINDS.get(parts.scheme)
    if kind is None:
        schemes = ", ".join(f"{scheme}://" for scheme in KINDS)
        raise ValueError(f"{url.split('@')[-1]!r} is not a cluster bus URL ({schemes})")
    if kind == "dapr":
        return _dapr(bus, parts.netloc)
    hosts = tuple(_hosts(parts.netloc.rsplit("@", 1)[-1], DEFAULT_PORTS[parts.scheme]))
    if not hosts:
        raise ValueError(f"a {kind} bus URL needs a host")
    query = dict(parse_qsl(parts.query))
    stream = query.get("prefix", "cumulo").upper() if kind == "nats" else "CUMULO"
    return Broker(
        bus,
        kind,
        hosts,
        username=parts.username or None,
        password=bool(parts.password),
        tls=parts.scheme == "rediss",
        stream=stream,
        component=bus,
        prefix=query.get("prefix", "") if kind == "kafka" else "",
    )


def _dapr(bus: str, component: str) -> Broker:
    if not component:
        raise ValueError("a dapr:// bus URL names its pub/sub component: dapr://<component>")
    return Broker(bus, "dapr", (), component=component)


def _hosts(netloc: str, port: int) -> list[str]:
    hosts = []
    for host in filter(None, netloc.split(",")):
        hosts.append(host if ":" in host.strip("[]").rsplit("]", 1)[-1] else f"{host}:{port}")
    return hosts


def monitoring_endpoint(broker: Broker) -> str:
    """NATS's HTTP monitoring endpoint (KEDA's nats-jetstream scaler reads it)."""
    host = broker.hosts[0].rsplit(":", 1)[0]
    return f"{host}:{NATS_MONITORING_PORT}"
