"""A real redis-server on loopback (``./scripts/infra/install-redis`` installs it).

Fixture ``redis_server`` (session): a :class:`~tests.servers.broker.BrokerProcess`
with ``url`` (``redis://127.0.0.1:<port>``), ``stop()``, ``start()`` and ``restart()``
(same port, same data folder: the append-only file brings the data back).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.broker import HOST, BrokerProcess, find_binary


def redis_broker(folder: Path) -> BrokerProcess:
    binary = find_binary("redis-server", "install-redis")

    def command(port: int, data: Path) -> list[str]:
        return [
            binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "yes",
            "--dir", str(data), "--databases", "64",
        ]  # fmt: skip

    return BrokerProcess("redis-server", command, folder)


def redis_url(server: BrokerProcess, db: int = 0) -> str:
    return f"redis://{HOST}:{server.port}/{db}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    server = redis_broker(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
