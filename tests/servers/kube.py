"""A real Kubernetes API server (kube-apiserver on etcd) on loopback, with Knative, KEDA, Dapr CRDs.

``./scripts/infra/install-kube`` (``./scripts/test`` runs it) installs etcd from
Debian and builds kube-apiserver into
``~/.cache/cumulo-infra/kube-apiserver-<version>/``; set ``CUMULO_KUBE_APISERVER_BIN``
or ``CUMULO_ETCD_BIN`` to use others. A missing binary fails the tests that need
it, never skips them. No controllers run: objects are stored and validated,
nothing reconciles them (no pods, no conditions, Namespaces stay Terminating).

Fixture ``kube`` (session): a :class:`KubeServer` with ``kubeconfig`` (a file:
server, the CA of its self-signed serving cert, the admin token), ``url``,
``token``, ``api_client()`` (a ``kubernetes`` ApiClient for it), ``request()`` /
``get()`` (plain HTTPS with the admin token, for checking what the server holds
independently of Cumulo's client), and :func:`kubeconfig` to write one for
another token (:data:`NOBODY_TOKEN`: authenticated, allowed nothing).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers.minio import free_port

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "infra" / "install-kube"
CRDS = Path(os.environ.get("CUMULO_CRDS", REPO.parent / "shared" / "crds"))
CRD_FOLDERS = ("knative-serving", "keda", "dapr")
TOKEN = "cumulo-test-admin-token"  # user admin, group system:masters
NOBODY_TOKEN = "cumulo-test-nobody-token"  # user nobody: authenticated, no RBAC grants
STARTUP_TIMEOUT = 120.0
_UNVERIFIED = ssl._create_unverified_context()  # only until the serving cert exists


class KubeMissing(RuntimeError):
    pass


def kube_version() -> str:
    match = re.search(r"^KUBE_VERSION=(\S+)", INSTALL_SCRIPT.read_text(), re.MULTILINE)
    if not match:
        raise KubeMissing(f"no KUBE_VERSION= line in {INSTALL_SCRIPT}")
    return match.group(1)


def binaries() -> tuple[Path, Path]:
    """etcd and kube-apiserver; :class:`KubeMissing` when either is not installed."""
    cache = Path(os.environ.get("CUMULO_INFRA_CACHE", Path.home() / ".cache" / "cumulo-infra"))
    apiserver = Path(
        os.environ.get("CUMULO_KUBE_APISERVER_BIN")
        or cache / f"kube-apiserver-{kube_version()}" / "kube-apiserver"
    )
    etcd = Path(os.environ.get("CUMULO_ETCD_BIN") or shutil.which("etcd") or "/usr/bin/etcd")
    for path in (etcd, apiserver):
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise KubeMissing(
                f"{path.name} not found at {path}: run ./scripts/infra/install-kube "
                "(./scripts/test does it for you)"
            )
    return etcd, apiserver


@dataclass
class KubeServer:
    url: str
    kubeconfig: Path
    workdir: Path
    token: str = TOKEN
    ca: Path | None = None  # the serving cert's bundle, once the server wrote it
    processes: list[subprocess.Popen] = field(default_factory=list, repr=False)

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured from :attr:`kubeconfig`."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, JSON body)`` of one request with the admin token."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        context = ssl.create_default_context(cafile=self.ca) if self.ca else _UNVERIFIED
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                return response.status, _decoded(response.read())
        except urllib.error.HTTPError as e:
            return e.code, _decoded(e.read())

    def get(self, path: str) -> Any:
        """The JSON at ``path``; ``None`` for a 404."""
        status, body = self.request("GET", path)
        if status == 404:
            return None
        assert status == 200, f"GET {path}: {status} {body}"
        return body

    def log_tail(self, chars: int = 4000) -> str:
        logs = sorted(self.workdir.glob("*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in logs)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=20)


def _decoded(body: bytes) -> Any:
    """JSON as data; anything else (``/readyz`` says ``ok``) as text."""
    try:
        return json.loads(body or b"null")
    except ValueError:
        return body.decode(errors="replace")


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )


def _wait(what: str, ready: Any, server: KubeServer, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if ready():
            return
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"{what} did not become ready; logs:\n{server.log_tail()}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_etcd(binary: Path, server: KubeServer) -> str:
    client, peer = free_port(), free_port()
    url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    command = [
        str(binary), "--name", "cumulo-test", "--data-dir", str(server.workdir / "etcd"),
        "--listen-client-urls", url, "--advertise-client-urls", url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"cumulo-test={peer_url}", "--log-level", "warn",
    ]  # fmt: skip
    process = _spawn(command, server.workdir / "etcd.log")
    server.processes.append(process)
    _wait("etcd", lambda: _http_ok(f"{url}/health"), server, process)
    return url


def apiserver_flags(server: KubeServer, etcd_url: str, port: int) -> list[str]:
    work = server.workdir
    key = work / "sa.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    (work / "tokens.csv").write_text(
        f'{TOKEN},admin,admin-uid,"system:masters"\n{NOBODY_TOKEN},nobody,nobody-uid\n'
    )
    issuer = "https://kubernetes.default.svc.cluster.local"
    return [
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={work / 'certs'}",
        f"--service-account-issuer={issuer}",
        f"--api-audiences={issuer}",
        f"--service-account-key-file={key}",
        f"--service-account-signing-key-file={key}",
        f"--token-auth-file={work / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--disable-admission-plugins=ServiceAccount",
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def start_apiserver(binary: Path, server: KubeServer, etcd_url: str) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    flags = apiserver_flags(server, etcd_url, port)
    process = _spawn([str(binary), *flags], server.workdir / "kube-apiserver.log")
    server.processes.append(process)

    def ready() -> bool:
        try:
            return server.request("GET", "/readyz")[0] == 200
        except (urllib.error.URLError, OSError):
            return False

    _wait("kube-apiserver", ready, server, process)


def kubeconfig(server: KubeServer, path: Path, token: str = TOKEN) -> Path:
    """Write a kubeconfig for ``server`` that authenticates with ``token``; its path."""
    assert server.ca is not None
    ca = base64.b64encode(server.ca.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server.url, "certificate-authority-data": ca}}
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def install_crds(server: KubeServer, folders: tuple[str, ...] = CRD_FOLDERS) -> None:
    """Create every CRD in ``folders`` and wait until each is Established and served."""
    crds = [
        doc
        for folder in folders
        for path in sorted((CRDS / folder).glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for crd in crds:
        status, body = server.request("POST", base, crd)
        assert status in (201, 409), f"CRD {crd['metadata']['name']}: {status} {body}"
    deadline = time.monotonic() + 60
    for crd in crds:
        while not _crd_served(server, crd):
            assert time.monotonic() < deadline, f"CRD {crd['metadata']['name']} not established"
            time.sleep(0.2)


def _crd_served(server: KubeServer, crd: dict[str, Any]) -> bool:
    live = server.get(
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
    )
    conditions = (live or {}).get("status", {}).get("conditions", [])
    if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
        return False
    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    for version in (v["name"] for v in crd["spec"]["versions"] if v.get("served")):
        listing = server.get(f"/apis/{group}/{version}") or {}
        if plural not in {r["name"] for r in listing.get("resources", [])}:
            return False
    return True


def start_kube(workdir: Path) -> KubeServer:
    """etcd and kube-apiserver under ``workdir``, CRDs installed; ``stop()`` ends both."""
    etcd, apiserver = binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    server = KubeServer(f"https://127.0.0.1:{free_port()}", workdir / "kubeconfig", workdir)
    try:
        start_apiserver(apiserver, server, start_etcd(etcd, server))
        # --cert-dir: the server made a CA and a serving cert for 127.0.0.1 (one bundle).
        server.ca = workdir / "certs" / "apiserver.crt"
        kubeconfig(server, server.kubeconfig)
        install_crds(server)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeServer]:
    """One API server (with the Knative, KEDA and Dapr CRDs) for the whole test session."""
    try:
        binaries()
        missing = None
    except KubeMissing as e:
        missing = str(e)
    if missing:
        pytest.fail(missing, pytrace=False)
    server = start_kube(tmp_path_factory.mktemp("kube"))
    try:
        yield server
    finally:
        server.stop()
