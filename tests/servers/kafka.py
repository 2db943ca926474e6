"""A real single-node Kafka broker (KRaft) on loopback (``./scripts/infra/install-kafka``).

Fixture ``kafka_server`` (session): a :class:`KafkaServer`, a
:class:`~tests.servers.broker.BrokerProcess` with ``bootstrap``
(``127.0.0.1:<port>``), ``stop()``, ``start()`` and ``restart()`` (same ports,
same log folder: the broker brings its topics and committed offsets back).
The jars come from Maven Central; the broker runs on the machine's Java 17.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.broker import HOST, BrokerProcess, free_port

KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.4.0")
INFRA = Path(os.environ.get("CUMULO_INFRA", Path.home() / ".cache" / "cumulo-infra"))
READY_TIMEOUT = 60.0


def kafka_home() -> Path:
    """The installed jars' folder; a missing install fails (never skips) with the hint."""
    home = INFRA / f"kafka-{KAFKA_VERSION}"
    if not (home / ".complete").exists() or shutil.which("java") is None:
        pytest.fail(
            f"Kafka {KAFKA_VERSION} not installed in {home}: run ./scripts/infra/install-kafka"
            " (./scripts/test does it for you)",
            pytrace=False,
        )
    return home


def server_properties(port: int, controller: int, data: Path) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{controller}",
            f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data / 'logs'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.flush.interval.messages=1",
            "",
        ]
    )


@dataclass
class KafkaServer(BrokerProcess):
    """A BrokerProcess that also waits until a client can fetch metadata."""

    controller: int = field(default_factory=free_port)

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        super().start()
        self._wait_for_metadata()

    def _wait_for_metadata(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except Exception:
                time.sleep(0.2)
        pytest.fail(
            f"kafka on {self.bootstrap} served no metadata:\n{self.log.read_text()[-3000:]}"
        )


def kafka_broker(folder: Path) -> KafkaServer:
    home = kafka_home()
    java = [
        "java",
        "-Xmx512m",
        "-Xms128m",
        f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
    ]
    java += ["-cp", str(home / "libs" / "*")]
    server = KafkaServer("kafka", lambda port, data: [], folder)

    def command(port: int, data: Path) -> list[str]:
        props = data / "server.properties"
        props.write_text(server_properties(port, server.controller, data))
        if not (data / "logs" / "meta.properties").exists():
            format_storage(java, props, data)
        return [*java, "kafka.Kafka", str(props)]

    server.command = command
    return server


def format_storage(java: list[str], props: Path, data: Path) -> None:
    """``kafka-storage format`` with a random cluster id (first start only)."""
    cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    done = subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"kafka storage format failed:\n{done.stdout}\n{done.stderr}")


def kafka_url(server: BrokerProcess, prefix: str | None = None) -> str:
    """A bus URL on ``server``; a fresh random prefix unless one is given."""
    return f"kafka://{HOST}:{server.port}?prefix={prefix or 't' + uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    server = kafka_broker(tmp_path_factory.mktemp("kafka"))
    server.start()
    yield server
    server.stop()
