"""A small, real Python base image, made offline from this machine's own interpreter.

No base image can be pulled here (no Docker Hub), so the tests make one and push
it to the test registry with Cumulo's own registry client:

* layer 1, **python**: the interpreter running the tests (``sys.base_prefix``)
  as ``/usr/local/bin/python3.11``, its standard library (tests, IDLE, tkinter
  left out) and every shared library it and its extension modules link to
  (found with ``ldd``), at the paths ``ldd`` names; ``libpython`` goes to
  ``/usr/lib`` where the loader looks without an ``ld.so.cache``; ``/tmp`` and
  a one-line ``/etc/passwd``.
* layer 2, **cumulo runtime**: cumulo's package and the distributions its core
  requirements need (the closure, read from installed metadata), plus pip, in
  ``/usr/local/lib/python3.11/site-packages``. It plays the part of a
  "python:3.11-slim with cumulo installed" base.

It runs ``python3 -m cumulo worker`` under ``buildah run --isolation chroot``.
Built once per test session (a few seconds).
"""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import cumulo
from cumulo.builders.oci import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    Entry,
    Layer,
    build_layer,
    canonical,
    dir_entry,
    file_entry,
    image_config,
    image_manifest,
    sha256,
    tree_entries,
)
from cumulo.builders.registry import RegistryClient

VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
PREFIX = "usr/local"
SITE = f"{PREFIX}/lib/{VERSION}/site-packages"
STDLIB_SKIP = {
    "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "site-packages", "__pycache__",
    "lib2to3", "pydoc_data", "tests", Path(sysconfig.get_config_var("LIBPL")).name,
}  # fmt: skip
_LDD_PATH = re.compile(r"(/\S+) \(0x")


def push_base_image(
    client: RegistryClient, repository: str = "base/python", tag: str = "3.11"
) -> str:
    """Build the base image, push it, and return its reference (``registry/repo:tag``)."""
    layers = [python_layer(), runtime_layer()]
    base = {"config": {"Env": [f"PATH=/{PREFIX}/bin:/usr/bin:/bin", "LANG=C.UTF-8"]}}
    config = image_config(base, layers, entrypoint=["python3"], env={}, workdir="/")
    config["config"].pop("Entrypoint")
    config["config"]["Cmd"] = ["python3"]
    config_bytes = canonical(config)
    for layer in layers:
        client.push_blob(repository, layer.data, layer.descriptor.digest)
    client.push_blob(repository, config_bytes)
    descriptor = Descriptor(OCI_CONFIG, sha256(config_bytes), len(config_bytes))
    manifest = canonical(image_manifest(descriptor, [x.descriptor for x in layers]))
    client.push_manifest(repository, tag, manifest, OCI_MANIFEST)
    return f"{client.registry}/{repository}:{tag}"


def python_layer() -> Layer:
    prefix = Path(sys.base_prefix)
    binary = (prefix / "bin" / VERSION).resolve()
    stdlib = prefix / "lib" / VERSION
    entries = list(tree_entries(stdlib, f"{PREFIX}/lib/{VERSION}", skip=STDLIB_SKIP))
    entries.append(Entry(f"{PREFIX}/bin/{VERSION}", 0o755, binary.read_bytes()))
    entries += [
        Entry(f"{PREFIX}/bin/{name}", 0o777, link=VERSION) for name in ("python3", "python")
    ]
    entries += shared_libraries([binary, *stdlib.joinpath("lib-dynload").glob("*.so")], prefix)
    entries += [
        dir_entry("tmp", 0o1777),
        Entry("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n"),
    ]
    return build_layer(entries, compresslevel=1)


def runtime_layer() -> Layer:
    entries: list[Entry] = []
    for dist in closure(["cumulo", "pip"]):
        if canonicalize_name(dist.metadata["Name"]) == "cumulo":
            entries += cumulo_entries(dist)
            continue
        files = [
            f for f in dist.files or [] if "__pycache__" not in f.parts and ".." not in f.parts
        ]
        entries += [file_entry(Path(str(f.locate())), f"{SITE}/{f.as_posix()}") for f in files]
    sos = [Path(str(e.name)) for e in entries if e.name.endswith(".so")]
    site = Path(md.distribution("pip").locate_file(""))
    entries += shared_libraries([site / p.relative_to(SITE) for p in sos], Path(sys.base_prefix))
    return build_layer(entries, compresslevel=1)


def cumulo_entries(dist: md.Distribution) -> list[Entry]:
    """cumulo's source (it is installed editable here) and its dist-info."""
    package = Path(cumulo.__file__).parent
    entries = list(tree_entries(package, f"{SITE}/cumulo", skip={"__pycache__"}))
    for f in dist.files or []:
        if f.parts[0].endswith(".dist-info") and f.name not in ("RECORD", "direct_url.json"):
            entries.append(file_entry(Path(str(f.locate())), f"{SITE}/{f.as_posix()}"))
    return entries


def closure(names: list[str]) -> list[md.Distribution]:
    """The installed distributions ``names`` need (core requirements and asked-for extras)."""
    seen: dict[str, md.Distribution] = {}
    todo = [Requirement(name) for name in names]
    while todo:
        requirement = todo.pop()
        key = canonicalize_name(requirement.name)
        try:
            dist = seen.get(key) or md.distribution(requirement.name)
        except md.PackageNotFoundError:
            continue
        first = key not in seen
        seen[key] = dist
        for text in dist.requires or []:
            needed = Requirement(text)
            extras = requirement.extras | {""}
            marker_ok = any(
                needed.marker is None or needed.marker.evaluate({"extra": e}) for e in extras
            )
            if marker_ok and (first or requirement.extras):
                todo.append(needed)
    return list(seen.values())


def shared_libraries(binaries: list[Path], prefix: Path) -> Iterator[Entry]:
    """Entries for every shared library ``binaries`` load, at the paths the loader finds them."""
    found: dict[str, Path] = {}
    for binary in binaries:
        output = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        for path in _LDD_PATH.findall(output):
            if "site-packages" not in path:  # bundled libraries travel with their package
                found.setdefault(path, Path(path).resolve())
    for path, real in sorted(found.items()):
        if path.startswith(str(prefix)):  # libpython of a pyenv or /usr/local build
            path = f"/usr/lib/{Path(path).name}"
        yield Entry(path.lstrip("/"), 0o755, real.read_bytes())
