"""The buildah builder: a generated Containerfile built without a daemon.

``buildah build --isolation chroot`` with the ``vfs`` storage driver needs no
daemon, no fuse and no user namespaces; its storage lives under the build cache
(``CACHE/buildah``), so intermediate layers (``--layers``) are reused between
builds. The image is pushed with ``buildah push``; plain HTTP (``--tls-verify=false``)
for loopback registries or when ``insecure`` is set.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from cumulo.builders.base import BuildOptions, BuildResult
from cumulo.builders.containerfile import render_containerfile, render_ignorefile
from cumulo.builders.detect import BuildPlan
from cumulo.builders.reference import ImageRef, is_loopback
from cumulo.errors import BuildToolError


class BuildahBuilder:
    name = "buildah"

    def __init__(self, options: BuildOptions | None = None):
        self.options = options or BuildOptions()
        self.root = self.options.cache_dir / "buildah"

    def command(self, *args: str) -> list[str]:
        binary = shutil.which("buildah")
        if binary is None:
            raise BuildToolError("buildah is not installed (apt-get install buildah)")
        storage = ["--storage-driver", "vfs", "--root", str(self.root / "storage")]
        return [binary, *storage, "--runroot", str(self.root / "run"), *args]

    def build(self, plan: BuildPlan, image: str) -> BuildResult:
        started = time.monotonic()
        ref = ImageRef.parse(image)
        with tempfile.TemporaryDirectory(prefix="cumulo-buildah-") as tmp:
            containerfile, ignore = Path(tmp) / "Containerfile", Path(tmp) / "ignore"
            containerfile.write_text(render_containerfile(plan))
            ignore.write_text(render_ignorefile())
            self.run(
                "build", "--isolation", "chroot", "--layers", *self.registry_flags(ref),
                "-f", str(containerfile), "--ignorefile", str(ignore), "-t", str(ref),
                str(plan.context),
            )  # fmt: skip
            digestfile = Path(tmp) / "digest"
            self.run(
                "push", *self.registry_flags(ref), "--digestfile", str(digestfile),
                str(ref), f"docker://{ref}",
            )  # fmt: skip
            digest = digestfile.read_text().strip()
        return BuildResult(str(ref), digest, time.monotonic() - started)

    def registry_flags(self, ref: ImageRef) -> list[str]:
        o = self.options
        flags = []
        if (o.insecure is None and is_loopback(ref.registry)) or o.insecure:
            flags.append("--tls-verify=false")
        if o.username is not None:
            flags += ["--creds", f"{o.username}:{o.password or ''}"]
        return flags

    def run(self, *args: str) -> str:
        done = subprocess.run(self.command(*args), capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout)[-3000:]
            raise BuildToolError(f"buildah {args[0]} failed (exit {done.returncode}):\n{tail}")
        return done.stdout
