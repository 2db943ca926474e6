"""Where models and datasets live: a local folder by default, any S3-compatible store by URL.

``artifact_store("/var/cumulo/artifacts")`` or
``artifact_store("s3://models/prod", endpoint_url="http://127.0.0.1:9000")``.
URIs name files: a plain path, ``file:///path`` or ``s3://bucket/key``.
:func:`local_copy` gives a local file for any of them (S3 objects are fetched
once into a cache), with the object's version when the store has one.
The S3 client (boto3) is imported only when an ``s3://`` URL is used.
"""

from __future__ import annotations

import abc
import hashlib
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cumulo.errors import ArtifactError
from cumulo.extras import from_extra

S3_SCHEME = "s3://"


@dataclass(frozen=True)
class LocalFile:
    """A local copy of what a URI names, and the version the store gave it, if any."""

    path: Path
    version: str | None = None


class ArtifactStore(abc.ABC):
    url: str

    @abc.abstractmethod
    def put(self, key: str, source: Path) -> str:
        """Store a local file under ``key``; the URI to fetch it by."""


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.url = str(self.root)

    def put(self, key: str, source: Path) -> str:
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root):
            raise ArtifactError(f"artifact key {key!r} leaves the store {self.root}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        except OSError as e:
            raise ArtifactError(f"cannot store {source} at {target}: {e}") from e
        return str(target)


class S3ArtifactStore(ArtifactStore):
    def __init__(self, url: str, *, endpoint_url: str | None = None):
        self.url = url.rstrip("/")
        self.bucket, self.prefix = split_s3(self.url)
        self.client = s3_client(endpoint_url)

    def put(self, key: str, source: Path) -> str:
        object_key = f"{self.prefix}/{key}" if self.prefix else key
        with s3_errors(f"cannot upload {source} to s3://{self.bucket}/{object_key}"):
            self.client.upload_file(str(source), self.bucket, object_key)
        return f"{S3_SCHEME}{self.bucket}/{object_key}"


def artifact_store(url: str, *, endpoint_url: str | None = None) -> ArtifactStore:
    """The store for a URL: ``s3://bucket/prefix`` or a folder."""
    if url.startswith(S3_SCHEME):
        return S3ArtifactStore(url, endpoint_url=endpoint_url)
    return LocalArtifactStore(url.removeprefix("file://"))


def local_copy(uri: str, cache: Path, *, endpoint_url: str | None = None) -> LocalFile:
    """A local file with the contents ``uri`` names (S3 objects are downloaded into ``cache``)."""
    if not uri.startswith(S3_SCHEME):
        path = Path(uri.removeprefix("file://"))
        if not path.is_file():
            raise ArtifactError(f"{uri}: no such file")
        return LocalFile(path)
    bucket, key = split_s3(uri)
    client = s3_client(endpoint_url)
    with s3_errors(f"cannot read {uri}"):
        head = client.head_object(Bucket=bucket, Key=key)
        version = head.get("VersionId") or head.get("ETag", "").strip('"') or None
        target = (
            cache / hashlib.sha256(f"{uri}@{version}".encode()).hexdigest()[:32] / Path(key).name
        )
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # A name of its own, so that workers sharing the cache don't trip on each other.
            partial = target.with_name(f"{target.name}.{uuid.uuid4().hex[:12]}.part")
            try:
                client.download_file(bucket, key, str(partial))
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
    return LocalFile(target, version)


def split_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → (``bucket``, ``some/key``)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ArtifactError(f"{url!r} is not an s3://bucket/key URL")
    return parts.netloc, parts.path.strip("/")


def s3_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client; credentials come from boto3's usual places (AWS_* variables)."""
    with from_extra("s3", needed_by="an s3:// URL"):
        import boto3
    return boto3.client("s3", endpoint_url=endpoint_url)


@contextmanager
def s3_errors(doing: str) -> Iterator[None]:
    """Turn boto3's errors into :class:`ArtifactError` that say what was being done."""
    try:
        yield
    except Exception as e:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        # boto3's transfers wrap the client's errors in their own (S3UploadFailedError,
        # RetriesExceededError); OSError: a missing source file, an unwritable cache.
        if isinstance(e, (BotoCoreError, ClientError, Boto3Error, OSError)):
            raise ArtifactError(f"{doing}: {e}") from e
        raise
