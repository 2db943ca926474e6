"""Run a pushed image with ``buildah run --isolation chroot`` (no Docker engine here).

The container shares the host's network, so a worker started inside on a free
port answers on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers.broker import find_binary


class BuildahStore:
    """A vfs image store of its own (pull from the test registry, run, clean up)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.containers: list[str] = []

    def command(self, *args: str) -> list[str]:
        binary = find_binary("buildah", "install-oci")
        storage = ["--storage-driver", "vfs", "--root", str(self.folder / "root")]
        return [binary, *storage, "--runroot", str(self.folder / "run"), *args]

    def container(self, image: str) -> str:
        done = subprocess.run(
            self.command("from", "--tls-verify=false", "--pull-always", image),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        name = done.stdout.strip().splitlines()[-1]
        self.containers.append(name)
        return name

    def inspect(self, container: str) -> dict:
        done = subprocess.run(
            self.command("inspect", "--type", "container", container),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(done.stdout)

    def start(self, container: str, command: list[str], port: int, log: Path) -> subprocess.Popen:
        args = ["run", "--isolation", "chroot", "--env", f"PORT={port}", container, "--", *command]
        with log.open("wb") as out:
            return subprocess.Popen(self.command(*args), stdout=out, stderr=subprocess.STDOUT)

    def clean(self) -> None:
        for name in self.containers:
            subprocess.run(self.command("rm", name), capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def get_when_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the container exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.read().decode()
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"nothing answered {url} in {timeout}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
