"""A real MinIO server on loopback, for everything that talks S3.

The binary is built by ``./scripts/infra/install-minio`` (``./scripts/test`` runs it)
into ``~/.cache/cumulo-infra/minio-<version>/minio``; set ``CUMULO_MINIO_BIN`` to use
another. A missing binary fails the tests that need it, never skips them.

Fixtures:

- ``minio`` (session): a :class:`MinioServer` with ``endpoint``, ``access_key``,
  ``secret_key``, ``region``, ``client()`` (a boto3 S3 client for it),
  ``new_bucket()`` (a fresh, empty bucket) and ``aws_env()`` (the AWS_* variables
  that point boto3's default credential chain at it).
- ``minio_bucket`` (function): the name of a fresh bucket on ``minio``.

For a server of its own, e.g. with webhook notification targets::

    with start_minio(tmp_path, {
        "MINIO_NOTIFY_WEBHOOK_ENABLE_CUMULO": "on",
        "MINIO_NOTIFY_WEBHOOK_ENDPOINT_CUMULO": "http://127.0.0.1:8080/hook",
        "MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_CUMULO": "secret",
    }) as server:
        ...  # ARN: arn:minio:sqs::CUMULO:webhook
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "infra" / "install-minio"
ACCESS_KEY = "cumulo-test"
SECRET_KEY = "cumulo-test-secret"  # MinIO wants at least 8 characters
REGION = "us-east-1"
STARTUP_TIMEOUT = 60.0


class MinioMissing(RuntimeError):
    pass


def minio_version() -> str:
    """The version ``install-minio`` pins (its ``MINIO_VERSION=`` line)."""
    match = re.search(r"^MINIO_VERSION=(\S+)", INSTALL_SCRIPT.read_text(), re.MULTILINE)
    if not match:
        raise MinioMissing(f"no MINIO_VERSION= line in {INSTALL_SCRIPT}")
    return match.group(1)


def minio_binary() -> Path:
    """The MinIO binary the install script built; :class:`MinioMissing` when there is none."""
    override = os.environ.get("CUMULO_MINIO_BIN")
    if override:
        path = Path(override)
    else:
        cache = Path(os.environ.get("CUMULO_INFRA_CACHE", Path.home() / ".cache" / "cumulo-infra"))
        path = cache / f"minio-{minio_version()}" / "minio"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MinioMissing(
            f"MinIO binary not found at {path}: run ./scripts/infra/install-minio "
            "(./scripts/test does it for you)"
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_bucket_numbers = itertools.count(1)


@dataclass
class MinioServer:
    """A running MinIO server."""

    endpoint: str
    console: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (``config``: botocore Config options)."""
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {
            "connect_timeout": 5,
            "read_timeout": 30,
            "retries": {"max_attempts": 2, "mode": "standard"},
            "s3": {"addressing_style": "path"},
        }
        options.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(**options),
        )

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a fresh, empty bucket; its name."""
        name = f"{prefix}-{next(_bucket_numbers)}-{uuid.uuid4().hex[:8]}".lower()
        self.client().create_bucket(Bucket=name)
        return name

    def aws_env(self) -> dict[str, str]:
        """The AWS_* variables under which a plain ``boto3.client("s3", endpoint_url=...)`` works here."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/minio/health/live", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _launch(binary: Path, workdir: Path, extra_env: Mapping[str, str]) -> MinioServer:
    port, console_port = free_port(), free_port()
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"minio-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    env.update(
        MINIO_ROOT_USER=ACCESS_KEY,
        MINIO_ROOT_PASSWORD=SECRET_KEY,
        MINIO_UPDATE="off",
    )
    env.update(extra_env)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                "server",
                str(data_dir),
                "--address",
                f"127.0.0.1:{port}",
                "--console-address",
                f"127.0.0.1:{console_port}",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return MinioServer(
        endpoint=f"http://127.0.0.1:{port}",
        console=f"http://127.0.0.1:{console_port}",
        data_dir=data_dir,
        log_path=log_path,
        process=process,
    )


@contextmanager
def start_minio(
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    timeout: float = STARTUP_TIMEOUT,
) -> Iterator[MinioServer]:
    """Run MinIO with its data under ``workdir`` until the block ends.

    ``extra_env`` goes to the server's environment only (e.g. ``MINIO_NOTIFY_WEBHOOK_*``).
    Raises :class:`MinioMissing` without a binary, RuntimeError when it does not come up.
    """
    binary = minio_binary()
    workdir = Path(workdir)
    for attempt in range(3):
        server = _launch(binary, workdir, extra_env or {})
        deadline = time.monotonic() + timeout
        while server.running and time.monotonic() < deadline and not _healthy(server.endpoint):
            time.sleep(0.1)
        if server.running and _healthy(server.endpoint):
            break
        server.stop()
        log = server.log_tail()
        # Another process may have taken a port we picked; pick again.
        if "address already in use" in log.lower() and attempt < 2:
            continue
        raise RuntimeError(
            f"MinIO did not become healthy at {server.endpoint} within {timeout:.0f}s "
            f"(exit code {server.process.returncode}); log {server.log_path}:\n{log}"
        )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """One MinIO server for the whole test session."""
    try:
        minio_binary()
        missing = None
    except MinioMissing as e:
        missing = str(e)
    if missing:
        pytest.fail(missing, pytrace=False)
    with start_minio(tmp_path_factory.mktemp("minio")) as server:
        yield server


@pytest.fixture
def minio_bucket(minio: MinioServer) -> str:
    """A fresh, empty bucket on the session's MinIO."""
    return minio.new_bucket()
