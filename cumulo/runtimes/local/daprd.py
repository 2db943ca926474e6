"""Self-hosted ``daprd`` sidecars that ``cumulo up`` starts for an embedded Dapr bus.

Each sidecar gets a fresh ``--resources-path`` (the Dapr documents it is
given, one YAML file each), listens on loopback only, with no placement or
scheduler service, no metrics server, and the ``kubernetes`` name resolver
(``mdns``, the self-hosted default, would announce the app by multicast).
``cumulo up`` stops them when it stops; when it dies (``kill -9``) they get
SIGTERM through ``setpriv --pdeathsig`` (util-linux) where it is installed: no
Python may run between fork and exec while gRPC is loaded, so not ``prctl``.

The binary: the ``CUMULO_DAPRD`` setting, else ``daprd`` on ``PATH``, else the
newest ``~/.cache/cumulo-infra/daprd-*/daprd`` (``./scripts/infra/install-dapr``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from cumulo.errors import RuntimeFailure

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
CONFIGURATION = {
    "apiVersion": "dapr.io/v1alpha1",
    "kind": "Configuration",
    "metadata": {"name": "cumulo"},
    "spec": {
        "nameResolution": {"component": "kubernetes", "version": "v1", "configuration": {}},
        "tracing": {"samplingRate": "0"},
    },
}


def daprd_binary(configured: Path | None) -> Path:
    """The daprd to run; :class:`RuntimeFailure` saying how to get one when there is none."""
    cache = Path.home() / ".cache" / "cumulo-infra"
    found = shutil.which("daprd")
    candidates = (
        [configured]
        if configured
        else [
            *([Path(found)] if found else []),
            *sorted(cache.glob("daprd-*/daprd"), reverse=True),
        ]
    )
    for path in candidates:
        if path.is_file():
            return path
    raise RuntimeFailure(
        f"no daprd binary ({configured or 'not on PATH nor in ' + str(cache)}):"
        " set CUMULO_DAPRD, or run ./scripts/infra/install-dapr"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Sidecar:
    """A running daprd: its ports and process."""

    app_id: str
    http_port: int
    grpc_port: int
    folder: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def log(self) -> Path:
        return self.folder / "daprd.log"

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    async def wait_healthy(self, session: aiohttp.ClientSession) -> None:
        url = f"http://{HOST}:{self.http_port}/v1.0/healthz"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeFailure(f"daprd {self.app_id} exited at start:\n{self.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as answer:
                    if answer.status == 204:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeFailure(f"daprd {self.app_id} was not healthy in {STARTUP_TIMEOUT:g}s")

    async def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait, STOP_TIMEOUT)


def write_resources(folder: Path, resources: Sequence[Mapping[str, Any]]) -> None:
    path = folder / "resources"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    for index, resource in enumerate(resources):
        name = f"{index:02d}-{resource['kind'].lower()}.yaml"
        (path / name).write_text(yaml.safe_dump(dict(resource), sort_keys=False))
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIGURATION, sort_keys=False))


def command(binary: Path, folder: Path, app_id: str, ports: Sequence[int]) -> list[str]:
    http_port, grpc_port, internal_port = ports
    return [
        str(binary), "--mode", "standalone", "--app-id", app_id,
        "--dapr-listen-addresses", HOST,
        "--dapr-http-port", str(http_port), "--dapr-grpc-port", str(grpc_port),
        "--dapr-internal-grpc-port", str(internal_port),
        "--resources-path", str(folder / "resources"), "--config", str(folder / "config.yaml"),
        "--placement-host-address", "", "--enable-metrics=false", "--log-level", "warn",
    ]  # fmt: skip


def _with_parent() -> list[str]:
    """``setpriv`` so that daprd gets SIGTERM when the platform dies, where there is one."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def launch(
    binary: Path,
    folder: Path,
    resources: Sequence[Mapping[str, Any]],
    *,
    app_id: str,
    app_port: int | None = None,
    app_token: str | None = None,
) -> Sidecar:
    """Start daprd (not waiting for it: see :meth:`Sidecar.wait_healthy`)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_resources(folder, resources)
    ports = (free_port(), free_port(), free_port())
    argv = [*_with_parent(), *command(binary, folder, app_id, ports)]
    if app_port is not None:
        argv += ["--app-port", str(app_port), "--app-channel-address", HOST]
    env = {"HOME": str(Path.home()), "PATH": "/usr/bin:/bin"}
    if app_token:
        env["APP_API_TOKEN"] = app_token  # daprd sends it as dapr-api-token
    with (folder / "daprd.log").open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return Sidecar(app_id, ports[0], ports[1], folder, process)
