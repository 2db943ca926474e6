"""A real OCI registry (Debian's ``docker-registry``, the CNCF distribution) on loopback.

``./scripts/infra/install-oci`` installs it. Fixtures (session):

* ``oci_registry``: an open registry; its ``address`` is ``127.0.0.1:<port>``.
* ``oci_registry_basic``: one that wants HTTP Basic (htpasswd): user ``cumulo``,
  password ``registry-secret``.

Both keep their blobs on the filesystem in a temporary folder.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.broker import HOST, BrokerProcess, find_binary

USER, PASSWORD = "cumulo", "registry-secret"
_CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: {host}:{port}
{auth}"""
_AUTH = """auth:
  htpasswd:
    realm: cumulo-tests
    path: {htpasswd}
"""


class Registry(BrokerProcess):
    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


def registry_process(folder: Path, *, basic_auth: bool = False) -> Registry:
    binary = find_binary("docker-registry", "install-oci")
    auth = ""
    if basic_auth:
        htpasswd = folder / "htpasswd"
        folder.mkdir(parents=True, exist_ok=True)
        htpasswd.write_text(f"{USER}:{bcrypt(PASSWORD)}\n")
        auth = _AUTH.format(htpasswd=htpasswd)

    def command(port: int, data: Path) -> list[str]:
        config = data / "config.yml"
        storage = data / "storage"
        config.write_text(_CONFIG.format(data=storage, host=HOST, port=port, auth=auth))
        return [binary, "serve", str(config)]

    return Registry("docker-registry", command, folder)


def bcrypt(password: str) -> str:
    """A bcrypt hash for htpasswd, by the system's libcrypt (no Python package needed)."""
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    hashed = lib.crypt(password.encode(), b"$2b$05$cumulotestsaltcumulotu")
    assert hashed and hashed.startswith(b"$2b$"), "libcrypt cannot make bcrypt hashes"
    return str(hashed.decode())


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    server = registry_process(tmp_path_factory.mktemp("registry"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oci_registry_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    server = registry_process(tmp_path_factory.mktemp("registry-basic"), basic_auth=True)
    server.start()
    yield server
    server.stop()
