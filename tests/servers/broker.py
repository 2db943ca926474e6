"""A broker process on loopback that tests can stop and start again (same port, same data).

Shared by :mod:`tests.servers.redis` and :mod:`tests.servers.nats`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, install: str) -> str:
    """The binary on PATH; a missing one fails the test (never skips) with the install hint."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found: run ./scripts/infra/{install} (./scripts/test does it for you)",
            pytrace=False,
        )
    return path


@dataclass
class BrokerProcess:
    """One server process; ``command(port, folder)`` builds its command line."""

    name: str
    command: Callable[[int, Path], list[str]]
    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    def start(self) -> None:
        if self.process is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(self.port, self.folder), stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_listening()

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), as a broker restart would."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                self.process = None
                pytest.fail(f"{self.name} exited at start:\n{self.log.read_text()[-3000:]}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"{self.name} did not listen on {HOST}:{self.port} in {STARTUP_TIMEOUT}s")
