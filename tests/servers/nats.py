"""A real nats-server with JetStream on loopback (``./scripts/infra/install-nats`` installs it).

Fixture ``nats_server`` (session): a :class:`~tests.servers.broker.BrokerProcess`
with ``stop()``, ``start()`` and ``restart()`` (same port, same ``-sd`` store
folder: JetStream brings the streams back). :func:`nats_url` builds bus URLs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.broker import HOST, BrokerProcess, find_binary


def nats_broker(folder: Path) -> BrokerProcess:
    binary = find_binary("nats-server", "install-nats")

    def command(port: int, data: Path) -> list[str]:
        return [binary, "-js", "-a", HOST, "-p", str(port), "-sd", str(data / "jetstream")]

    return BrokerProcess("nats-server", command, folder)


def nats_url(server: BrokerProcess, prefix: str | None = None) -> str:
    query = f"?prefix={prefix}" if prefix else ""
    return f"nats://{HOST}:{server.port}{query}"


async def delete_nats_streams(url: str) -> None:
    """Delete every JetStream stream on the server: a clean slate for a test."""
    import nats

    client = await nats.connect(url.split("?")[0])
    try:
        js = client.jetstream()
        for stream in await js.streams_info():
            await js.delete_stream(stream.config.name)
    finally:
        await client.close()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    server = nats_broker(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()
