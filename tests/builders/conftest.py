"""Fixtures for the builder tests: the registry client, a base image, a sample project."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cumulo.builders.registry import RegistryClient
from tests.builders.baseimage import push_base_image
from tests.builders.buildahrun import BuildahStore
from tests.servers.registry import Registry

SPEC = """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: hello}}
spec:
  handler: app:hello
  signature: http
  build: {{baseImage: "{base}"}}
"""
MAIN = """from greeting import GREETING


def hello(request):
    return f"{GREETING} ({VERSION})"


VERSION = "v1"
"""


@pytest.fixture
def client(oci_registry: Registry) -> RegistryClient:
    return RegistryClient(oci_registry.address)


@pytest.fixture(scope="session")
def base_image(oci_registry: Registry) -> str:
    """A real Python base image with cumulo in it, in the test registry (built once)."""
    return push_base_image(RegistryClient(oci_registry.address))


@pytest.fixture(scope="session")
def buildah_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuildahStore]:
    store = BuildahStore(tmp_path_factory.mktemp("buildah-run"))
    yield store
    store.clean()


@pytest.fixture
def project(tmp_path: Path, base_image: str) -> Path:
    """A project: one http function that imports a package from a local wheel."""
    root = tmp_path / "shop"
    (root / "wheels").mkdir(parents=True)
    (root / "cumulo.yaml").write_text(SPEC.format(base=base_image))
    (root / "app.py").write_text(MAIN)  # not main.py: loading a project imports that
    (root / "wheels" / WHEEL).write_bytes(wheel())
    (root / "requirements.txt").write_text(f"./wheels/{WHEEL}\n")
    return root


WHEEL = "greeting-1.0-py3-none-any.whl"


def wheel() -> bytes:
    """A tiny, valid wheel (``greeting``), made by hand so that pip needs no network."""
    files = {
        "greeting/__init__.py": b'GREETING = "hello from a wheel"\n',
        "greeting-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: greeting\nVersion: 1.0\n",
        "greeting-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: cumulo-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{name},sha256={_b64(data)},{len(data)}" for name, data in files.items()]
    files["greeting-1.0.dist-info/RECORD"] = "\n".join(
        [*record, "greeting-1.0.dist-info/RECORD,,", ""]
    ).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
