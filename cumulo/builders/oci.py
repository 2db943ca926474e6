"""OCI image pieces: reproducible layers, image configs and manifests.

A layer is a gzipped tar whose bytes depend only on its files: entries sorted
by name, mtime 0, uid/gid 0 with no user names, a gzip header without a name
or a time. The same files therefore give the same digest on any machine, which
is what lets a registry skip a layer it already has.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
EPOCH = "1970-01-01T00:00:00Z"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    """A blob as a manifest names it."""

    media_type: str
    digest: str
    size: int

    def json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Descriptor:
        return cls(data["mediaType"], data["digest"], int(data["size"]))


@dataclass(frozen=True)
class Layer:
    """A layer blob (``descriptor``) and the digest of its uncompressed tar (``diff_id``)."""

    descriptor: Descriptor
    diff_id: str
    data: bytes


@dataclass(frozen=True)
class Entry:
    """One file, folder or symlink of a layer, at ``name`` (a path inside the image)."""

    name: str
    mode: int
    data: bytes | None = None  # a regular file's content
    link: str | None = None  # a symlink's target

    @property
    def is_dir(self) -> bool:
        return self.data is None and self.link is None


def tree_entries(
    source: Path, target: str, *, skip: Iterable[str] = (), follow: bool = False
) -> Iterator[Entry]:
    """Entries for every file under ``source``, placed under ``target`` in the image.

    ``skip`` holds names (of files or folders, at any depth) to leave out.
    """
    skipped = set(skip)
    for folder, dirs, files in os.walk(source, followlinks=follow):
        dirs[:] = [d for d in dirs if d not in skipped]
        rel = Path(folder).relative_to(source)
        yield dir_entry(str(PurePosixPath(target) / rel.as_posix()))
        for name in files:
            if name not in skipped:
                yield file_entry(Path(folder) / name, str(PurePosixPath(target) / rel / name))
        for name in dirs if not follow else ():
            if (Path(folder) / name).is_symlink():
                yield file_entry(Path(folder) / name, str(PurePosixPath(target) / rel / name))


def dir_entry(name: str, mode: int = 0o755) -> Entry:
    return Entry(name.strip("/") or ".", mode)


def file_entry(path: Path, name: str) -> Entry:
    """An entry for a file (its content and mode) or a symlink (its target)."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return Entry(name.strip("/"), 0o777, link=os.readlink(path))
    return Entry(name.strip("/"), 0o755 if info.st_mode & 0o111 else 0o644, path.read_bytes())


def parents(entries: Iterable[Entry]) -> list[Entry]:
    """``entries`` plus the folders above them, sorted by name, one entry per name."""
    by_name: dict[str, Entry] = {}
    for entry in entries:
        by_name[entry.name] = entry
        parent = PurePosixPath(entry.name).parent
        while str(parent) not in (".", "/", "") and str(parent) not in by_name:
            by_name[str(parent)] = dir_entry(str(parent))
            parent = parent.parent
    by_name.pop(".", None)
    return [by_name[name] for name in sorted(by_name)]


def build_layer(entries: Iterable[Entry], *, compresslevel: int = 6) -> Layer:
    """A reproducible tar+gzip layer of ``entries`` (parent folders added)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for entry in parents(entries):
            info = tarfile.TarInfo(entry.name)
            info.mode, info.mtime, info.uid, info.gid = entry.mode, 0, 0, 0
            if entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
            elif entry.is_dir:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(entry.data or b"")
            tar.addfile(info, io.BytesIO(entry.data) if entry.data is not None else None)
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=compresslevel) as out:
        out.write(tar_bytes)
    data = gz.getvalue()
    return Layer(Descriptor(OCI_LAYER, sha256(data), len(data)), sha256(tar_bytes), data)


def image_config(
    base: dict[str, Any],
    layers: Iterable[Layer],
    *,
    entrypoint: list[str],
    env: dict[str, str],
    workdir: str,
    ports: Iterable[int] = (),
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``base``'s config with ``layers`` on top and the run settings replaced."""
    added = list(layers)
    config = dict(base.get("config") or {})
    merged = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    merged.update(env)
    config.update(
        Entrypoint=entrypoint,
        Cmd=None,
        Env=[f"{key}={value}" for key, value in merged.items()],
        WorkingDir=workdir,
        ExposedPorts={f"{port}/tcp": {} for port in ports} or None,
        Labels={**(config.get("Labels") or {}), **(labels or {})} or None,
    )
    rootfs = base.get("rootfs") or {"type": "layers", "diff_ids": []}
    history = list(base.get("history") or [])
    history += [{"created": EPOCH, "created_by": "cumulo build"} for _ in added]
    return {
        "created": EPOCH,
        "architecture": base.get("architecture", "amd64"),
        "os": base.get("os", "linux"),
        "config": {key: value for key, value in config.items() if value is not None},
        "rootfs": {
            "type": "layers",
            "diff_ids": [*rootfs["diff_ids"], *(x.diff_id for x in added)],
        },
        "history": history,
    }


def canonical(document: dict[str, Any]) -> bytes:
    """The bytes of a JSON document as pushed: sorted keys, no spaces."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def image_manifest(config: Descriptor, layers: Iterable[Descriptor]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.json(),
        "layers": [layer.json() for layer in layers],
    }
