"""The layered builder (``oci``, the default): images without a daemon or a tool, as ko and Jib do.

The base image's manifest and config come from its registry; on top go two
reproducible layers:

* **dependencies**: ``pip install --target`` of the plan's requirements into
  :data:`~cumulo.builders.detect.DEPS_DIR`, cached by the hash of everything
  pip reads (:meth:`BuildPlan.dependencies_key`);
* **application**: the project's files under ``/app``, cached by their content.

Only blobs the registry lacks are uploaded, so a code-only change uploads the
application layer, the config and the manifest, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cumulo.builders.base import BuildOptions, BuildResult
from cumulo.builders.detect import APP_DIR, DEPS_DIR, PORT, BuildPlan
from cumulo.builders.oci import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    Layer,
    build_layer,
    canonical,
    image_config,
    image_manifest,
    sha256,
    tree_entries,
)
from cumulo.builders.reference import ImageRef
from cumulo.builders.registry import RegistryClient
from cumulo.errors import BuildToolError

SKIP = frozenset(
    {".git", "__pycache__", ".venv", "venv", ".cumulo", ".mypy_cache", ".pytest_cache",
     ".ruff_cache", "node_modules", ".DS_Store"}
)  # fmt: skip


class LayerCache:
    """Layers by key (``kind-hash``), their blobs stored by digest under ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "blobs").mkdir(parents=True, exist_ok=True)
        (folder / "layers").mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Layer | None:
        record = self.folder / "layers" / f"{key}.json"
        if not record.exists():
            return None
        data = json.loads(record.read_text())
        blob = self.folder / "blobs" / data["digest"].replace(":", "-")
        if not blob.exists():
            return None
        return Layer(Descriptor.of(data), data["diffId"], blob.read_bytes())

    def put(self, key: str, layer: Layer) -> Layer:
        blob = self.folder / "blobs" / layer.descriptor.digest.replace(":", "-")
        blob.write_bytes(layer.data)
        record = {**layer.descriptor.json(), "diffId": layer.diff_id}
        (self.folder / "layers" / f"{key}.json").write_text(json.dumps(record))
        return layer

    def layer(self, key: str, make: Callable[[], Layer]) -> Layer:
        return self.get(key) or self.put(key, make())


class LayeredBuilder:
    name = "oci"

    def __init__(self, options: BuildOptions | None = None):
        self.options = options or BuildOptions()
        self.cache = LayerCache(self.options.cache_dir / "oci")

    def build(self, plan: BuildPlan, image: str) -> BuildResult:
        started = time.monotonic()
        target, base = ImageRef.parse(image), ImageRef.parse(plan.base_image)
        client = self.client(target.registry)
        base_client = client if base.registry == target.registry else self.client(base.registry)
        base_manifest, base_config = base_client.get_config(base)
        layers = self.layers(plan)
        config = image_config(
            base_config, layers, entrypoint=plan.entrypoint, env=plan.image_env,
            workdir=APP_DIR, ports=[PORT], labels={"dev.cumulo.function": plan.function},
        )  # fmt: skip
        base_layers = [Descriptor.of(item) for item in base_manifest["layers"]]
        for descriptor in base_layers:
            copy_blob(base_client, base, client, target.repository, descriptor.digest)
        pushed = [
            x.descriptor.digest for x in layers if client.push_blob(target.repository, x.data)
        ]
        config_bytes = canonical(config)
        if client.push_blob(target.repository, config_bytes):
            pushed.append(sha256(config_bytes))
        config_descriptor = Descriptor(OCI_CONFIG, sha256(config_bytes), len(config_bytes))
        descriptors = [*base_layers, *(x.descriptor for x in layers)]
        manifest = canonical(image_manifest(config_descriptor, descriptors))
        digest = client.push_manifest(
            target.repository, target.tag or sha256(manifest), manifest, OCI_MANIFEST
        )
        return BuildResult(str(target), digest, time.monotonic() - started, tuple(pushed))

    def client(self, registry: str) -> RegistryClient:
        o = self.options
        return RegistryClient(
            registry, username=o.username, password=o.password, insecure=o.insecure
        )

    def layers(self, plan: BuildPlan) -> list[Layer]:
        """The dependencies layer (when there is something to install) and the app layer."""
        layers = []
        if plan.kind != "none" and plan.requirements:
            key = f"deps-{plan.dependencies_key()}"
            layers.append(self.cache.layer(key, lambda: dependencies_layer(plan)))
        layers.append(
            self.cache.layer(f"app-{content_hash(plan.context)}", lambda: app_layer(plan))
        )
        return layers


def copy_blob(
    source: RegistryClient, ref: ImageRef, target: RegistryClient, repository: str, digest: str
) -> None:
    """Make a base layer available in the target repository: there already, mounted, or copied."""
    if target.has_blob(repository, digest):
        return
    if source is target and target.mount_blob(repository, digest, ref.repository):
        return
    target.push_blob(repository, source.get_blob(ref.repository, digest), digest)


def app_layer(plan: BuildPlan) -> Layer:
    return build_layer(tree_entries(plan.context, APP_DIR, skip=SKIP))


def dependencies_layer(plan: BuildPlan) -> Layer:
    """``pip install --target`` of the plan's requirements, as a layer at DEPS_DIR."""
    with tempfile.TemporaryDirectory(prefix="cumulo-deps-") as tmp:
        staging = Path(tmp) / "site-packages"
        command = [
            sys.executable, "-m", "pip", "install", "--target", str(staging), "--no-compile",
            "--disable-pip-version-check", "--no-input", "--quiet", *plan.requirements,
        ]  # fmt: skip
        done = subprocess.run(command, cwd=plan.context, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout)[-2000:]
            raise BuildToolError(f"pip install for {plan.function} failed:\n{tail}")
        shutil.rmtree(staging / "bin", ignore_errors=True)  # scripts name this machine's python
        return build_layer(tree_entries(staging, DEPS_DIR, skip={"__pycache__"}))


def content_hash(folder: Path) -> str:
    """A hash of the files (names, modes, contents) the application layer would hold."""
    digest = hashlib.sha256()
    for entry in sorted(tree_entries(folder, APP_DIR, skip=SKIP), key=lambda e: e.name):
        digest.update(f"{entry.name}\0{entry.mode}\0{entry.link or ''}\0".encode())
        digest.update(hashlib.sha256(entry.data or b"").digest())
    return digest.hexdigest()
