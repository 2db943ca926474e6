"""A real Dapr sidecar (``daprd``, self-hosted mode) on loopback, over the test Redis.

The binary is built by ``./scripts/infra/install-dapr`` (``./scripts/test`` runs it)
into ``~/.cache/cumulo-infra/daprd-<version>/daprd``; set ``CUMULO_DAPRD_BIN`` to use
another. A missing binary fails the tests that need it, never skips them.

Fixture ``start_dapr`` (function): a callable
``start_dapr(resources, *, app_port=None, app_id=...)`` that writes the
``resources`` (Component, Resiliency, ... dicts) into a fresh ``--resources-path``,
starts daprd and waits until it is healthy; every sidecar started is stopped at
the end of the test. Fixture ``dapr_redis_url`` (function): a fresh, flushed
database on the session's ``redis_server`` for the sidecar's ``pubsub.redis``.

daprd runs with no placement or scheduler service, no metrics server, the
``kubernetes`` name resolver (``mdns``, the self-hosted default, would announce
the app by multicast), listening on 127.0.0.1 only.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.servers.broker import HOST, BrokerProcess, free_port
from tests.servers.redis import redis_url

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "infra" / "install-dapr"
STARTUP_TIMEOUT = 60.0
CONFIGURATION = {
    "apiVersion": "dapr.io/v1alpha1",
    "kind": "Configuration",
    "metadata": {"name": "cumulo-test"},
    "spec": {
        "nameResolution": {"component": "kubernetes", "version": "v1", "configuration": {}},
        "tracing": {"samplingRate": "0"},
    },
}
_databases = itertools.count()  # databases 40-63: the bus contract suite uses the low ones


def dapr_version() -> str:
    """The version ``install-dapr`` pins (its ``DAPR_VERSION=`` line)."""
    match = re.search(r"^DAPR_VERSION=(\S+)", INSTALL_SCRIPT.read_text(), re.MULTILINE)
    assert match, f"no DAPR_VERSION= line in {INSTALL_SCRIPT}"
    return match.group(1)


def daprd_binary() -> Path:
    override = os.environ.get("CUMULO_DAPRD_BIN")
    if override:
        path = Path(override)
    else:
        cache = Path(os.environ.get("CUMULO_INFRA_CACHE", Path.home() / ".cache" / "cumulo-infra"))
        path = cache / f"daprd-{dapr_version()}" / "daprd"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"daprd not found at {path}: run ./scripts/infra/install-dapr"
            " (./scripts/test does it for you)",
            pytrace=False,
        )
    return path


@dataclass
class Daprd:
    """A running sidecar: its ports, and a small HTTP client for its API."""

    app_id: str
    http_port: int
    grpc_port: int
    folder: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def log(self) -> Path:
        return self.folder / "daprd.log"

    def bus_url(self, pubsub: str = "pubsub") -> str:
        return f"dapr://{HOST}:{self.grpc_port}/{pubsub}"

    def get(self, path: str) -> Any:
        url = f"http://{HOST}:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
        return orjson.loads(body) if body else None

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.http_port}{path}", timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except (urllib.error.URLError, OSError):
            return 0

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def write_resources(folder: Path, resources: Sequence[Mapping[str, Any]]) -> Path:
    """Each resource as its own YAML file in ``folder/resources``; the folder."""
    path = folder / "resources"
    path.mkdir(parents=True, exist_ok=True)
    for index, resource in enumerate(resources):
        name = f"{index:02d}-{resource['kind'].lower()}.yaml"
        (path / name).write_text(yaml.safe_dump(dict(resource), sort_keys=False))
    return path


def daprd_command(
    binary: Path, folder: Path, app_id: str, ports: tuple[int, int, int], app_port: int | None
) -> list[str]:
    http_port, grpc_port, internal_port = ports
    command = [
        str(binary), "--mode", "standalone", "--app-id", app_id,
        "--dapr-listen-addresses", HOST,
        "--dapr-http-port", str(http_port), "--dapr-grpc-port", str(grpc_port),
        "--dapr-internal-grpc-port", str(internal_port),
        "--resources-path", str(folder / "resources"), "--config", str(folder / "config.yaml"),
        "--placement-host-address", "",
        "--enable-metrics=false", "--log-level", "warn",
    ]  # fmt: skip
    if app_port is not None:
        command += ["--app-port", str(app_port), "--app-channel-address", HOST]
    return command


def launch_daprd(
    folder: Path,
    resources: Sequence[Mapping[str, Any]],
    *,
    app_id: str,
    app_port: int | None = None,
) -> Daprd:
    binary = daprd_binary()
    folder.mkdir(parents=True, exist_ok=True)
    write_resources(folder, resources)
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIGURATION, sort_keys=False))
    for _ in range(3):  # free ports can be taken by another process before daprd binds them
        ports = (free_port(), free_port(), free_port())
        with (folder / "daprd.log").open("wb") as log:
            process = subprocess.Popen(
                daprd_command(binary, folder, app_id, ports, app_port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        daprd = Daprd(app_id, ports[0], ports[1], folder, process)
        if not _lost_its_ports(daprd):
            break
    _wait_healthy(daprd)
    return daprd


def _lost_its_ports(daprd: Daprd) -> bool:
    """Whether daprd exited at start because one of its ports was taken meanwhile."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and daprd.process.poll() is None:
        if daprd.status("/v1.0/healthz") == 204:
            return False
        time.sleep(0.1)
    return daprd.process.poll() is not None and "address already in use" in daprd.log_tail()


def _wait_healthy(daprd: Daprd) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if daprd.process.poll() is not None:
            pytest.fail(f"daprd exited at start:\n{daprd.log_tail()}", pytrace=False)
        if daprd.status("/v1.0/healthz") == 204:
            return
        time.sleep(0.1)
    daprd.stop()
    pytest.fail(f"daprd was not healthy in {STARTUP_TIMEOUT}s:\n{daprd.log_tail()}", pytrace=False)


@pytest.fixture
def dapr_redis_url(redis_server: BrokerProcess) -> str:
    """A fresh, flushed Redis database for one test's sidecar."""
    import redis

    url = redis_url(redis_server, db=40 + next(_databases) % 24)
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


@pytest.fixture
def start_dapr(tmp_path: Path) -> Iterator[Callable[..., Daprd]]:
    started: list[Daprd] = []
    names = itertools.count()

    def start(
        resources: Sequence[Mapping[str, Any]],
        *,
        app_id: str = "cumulo-test",
        app_port: int | None = None,
    ) -> Daprd:
        daprd = launch_daprd(
            tmp_path / f"daprd{next(names)}", resources, app_id=app_id, app_port=app_port
        )
        started.append(daprd)
        return daprd

    yield start
    for daprd in started:
        daprd.stop()
