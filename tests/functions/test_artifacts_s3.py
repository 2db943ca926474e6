"""Artifact stores and local copies: a folder, and S3 against a real MinIO server."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cumulo.errors import ArtifactError
from cumulo.functions.artifacts import (
    LocalArtifactStore,
    LocalFile,
    S3ArtifactStore,
    artifact_store,
    local_copy,
)
from tests.servers.minio import MinioServer, start_minio

PAYLOAD = bytes(range(256)) * 64 + b"model weights\n"


@pytest.fixture
def s3_env(minio: MinioServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MinioServer:
    """boto3's default credential chain points at the session MinIO, and nothing else."""
    for name, value in minio.aws_env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return minio


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def object_bytes(server: MinioServer, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def etag(server: MinioServer, bucket: str, key: str) -> str:
    return server.client().head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


# --- the local store ---------------------------------------------------------


def test_local_store_put_copies_the_file_and_local_copy_finds_it(tmp_path: Path, source: Path):
    store = artifact_store(str(tmp_path / "artifacts"))
    assert isinstance(store, LocalArtifactStore)
    uri = store.put("models/churn/1/model.bin", source)
    assert Path(uri) == (tmp_path / "artifacts" / "models/churn/1/model.bin").resolve()
    assert Path(uri).read_bytes() == PAYLOAD
    assert local_copy(uri, tmp_path / "cache") == LocalFile(Path(uri), None)
    assert local_copy(f"file://{uri}", tmp_path / "cache") == LocalFile(Path(uri), None)
    assert not (tmp_path / "cache").exists()


def test_local_store_accepts_a_file_url(tmp_path: Path, source: Path):
    store = artifact_store(f"file://{tmp_path / 'artifacts'}")
    assert isinstance(store, LocalArtifactStore)
    assert Path(store.put("a.bin", source)).read_bytes() == PAYLOAD


def test_local_copy_of_a_missing_file_names_it(tmp_path: Path):
    uri = str(tmp_path / "nope.bin")
    with pytest.raises(ArtifactError, match=r"nope\.bin"):
        local_copy(uri, tmp_path / "cache")
    with pytest.raises(ArtifactError, match=r"nope\.bin"):
        local_copy(f"file://{uri}", tmp_path / "cache")


def test_local_store_that_cannot_write_says_so(tmp_path: Path, source: Path):
    root = tmp_path / "a-file"
    root.write_text("not a folder")
    with pytest.raises(ArtifactError, match="cannot store"):
        artifact_store(str(root)).put("k.bin", source)


# --- S3 (MinIO) --------------------------------------------------------------


def test_s3_put_stores_the_same_bytes_under_the_prefix(
    s3_env: MinioServer, minio_bucket: str, source: Path
):
    store = artifact_store(f"s3://{minio_bucket}/models/prod/", endpoint_url=s3_env.endpoint)
    assert isinstance(store, S3ArtifactStore)
    uri = store.put("churn/1/model.bin", source)
    assert uri == f"s3://{minio_bucket}/models/prod/churn/1/model.bin"
    assert object_bytes(s3_env, minio_bucket, "models/prod/churn/1/model.bin") == PAYLOAD


def test_s3_put_without_a_prefix_uses_the_key(s3_env: MinioServer, minio_bucket: str, source: Path):
    uri = artifact_store(f"s3://{minio_bucket}", endpoint_url=s3_env.endpoint).put("m.bin", source)
    assert uri == f"s3://{minio_bucket}/m.bin"
    assert object_bytes(s3_env, minio_bucket, "m.bin") == PAYLOAD


def test_s3_put_of_a_large_file_goes_up_in_parts_and_comes_back_whole(
    s3_env: MinioServer, minio_bucket: str, tmp_path: Path
):
    big = tmp_path / "big.bin"
    data = os.urandom(9 * 1024 * 1024)  # past boto3's 8 MiB multipart threshold
    big.write_bytes(data)
    uri = artifact_store(f"s3://{minio_bucket}/p", endpoint_url=s3_env.endpoint).put("big.bin", big)
    assert "-" in etag(s3_env, minio_bucket, "p/big.bin")  # a multipart ETag
    copy = local_copy(uri, tmp_path / "cache", endpoint_url=s3_env.endpoint)
    assert copy.path.read_bytes() == data


def test_s3_local_copy_downloads_once_and_gives_the_etag(
    s3_env: MinioServer, minio_bucket: str, source: Path, tmp_path: Path
):
    uri = artifact_store(f"s3://{minio_bucket}/m", endpoint_url=s3_env.endpoint).put(
        "model.bin", source
    )
    cache = tmp_path / "cache"
    first = local_copy(uri, cache, endpoint_url=s3_env.endpoint)
    assert first.version == etag(s3_env, minio_bucket, "m/model.bin")
    assert first.path.name == "model.bin"
    assert first.path.is_relative_to(cache)
    assert first.path.read_bytes() == PAYLOAD
    inode = first.path.stat().st_ino

    again = local_copy(uri, cache, endpoint_url=s3_env.endpoint)
    assert again == first
    assert again.path.stat().st_ino == inode  # not downloaded again
    assert not list(cache.rglob("*.part"))


def test_s3_local_copy_by_many_workers_sharing_a_cache(
    s3_env: MinioServer, minio_bucket: str, tmp_path: Path
):
    big = tmp_path / "m.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    uri = artifact_store(f"s3://{minio_bucket}", endpoint_url=s3_env.endpoint).put("m.bin", big)
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(8) as pool:
        copies = list(
            pool.map(lambda _: local_copy(uri, cache, endpoint_url=s3_env.endpoint), range(8))
        )
    assert len(set(copies)) == 1
    assert copies[0].path.read_bytes() == big.read_bytes()
    assert [p for p in cache.rglob("*") if p.is_file()] == [copies[0].path]


def test_s3_changed_object_gives_a_new_copy(
    s3_env: MinioServer, minio_bucket: str, source: Path, tmp_path: Path
):
    store = artifact_store(f"s3://{minio_bucket}", endpoint_url=s3_env.endpoint)
    uri = store.put("model.bin", source)
    cache = tmp_path / "cache"
    old = local_copy(uri, cache, endpoint_url=s3_env.endpoint)

    source.write_bytes(b"retrained")
    assert store.put("model.bin", source) == uri
    new = local_copy(uri, cache, endpoint_url=s3_env.endpoint)
    assert new.version == etag(s3_env, minio_bucket, "model.bin") != old.version
    assert new.path != old.path
    assert new.path.read_bytes() == b"retrained"
    assert old.path.read_bytes() == PAYLOAD  # an older copy in use is left alone


def test_s3_versioned_bucket_gives_the_version_id(
    s3_env: MinioServer, minio_bucket: str, source: Path, tmp_path: Path
):
    s3_env.client().put_bucket_versioning(
        Bucket=minio_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    uri = artifact_store(f"s3://{minio_bucket}", endpoint_url=s3_env.endpoint).put("v.bin", source)
    head = s3_env.client().head_object(Bucket=minio_bucket, Key="v.bin")
    copy = local_copy(uri, tmp_path / "cache", endpoint_url=s3_env.endpoint)
    assert copy.version == head["VersionId"] and copy.version not in (None, "null")
    assert copy.path.read_bytes() == PAYLOAD


def test_s3_missing_object_names_the_uri(s3_env: MinioServer, minio_bucket: str, tmp_path: Path):
    uri = f"s3://{minio_bucket}/no/such/model.bin"
    with pytest.raises(ArtifactError) as e:
        local_copy(uri, tmp_path / "cache", endpoint_url=s3_env.endpoint)
    assert uri in str(e.value)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_s3_missing_bucket_names_the_uri(s3_env: MinioServer, tmp_path: Path, source: Path):
    uri = "s3://no-such-bucket-cumulo/model.bin"
    with pytest.raises(ArtifactError) as e:
        local_copy(uri, tmp_path / "cache", endpoint_url=s3_env.endpoint)
    assert uri in str(e.value)

    store = artifact_store("s3://no-such-bucket-cumulo/p", endpoint_url=s3_env.endpoint)
    with pytest.raises(ArtifactError) as e:
        store.put("model.bin", source)
    assert "s3://no-such-bucket-cumulo/p/model.bin" in str(e.value)


def test_s3_put_of_a_missing_source_file_is_an_artifact_error(
    s3_env: MinioServer, minio_bucket: str, tmp_path: Path
):
    store = artifact_store(f"s3://{minio_bucket}", endpoint_url=s3_env.endpoint)
    with pytest.raises(ArtifactError, match=r"gone\.bin"):
        store.put("k.bin", tmp_path / "gone.bin")


def test_s3_url_without_a_bucket_is_refused():
    with pytest.raises(ArtifactError, match="s3://"):
        artifact_store("s3://", endpoint_url="http://127.0.0.1:9")


def test_s3_server_stopped_names_the_uri(
    s3_env: MinioServer, tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # refused connections: fail fast
    with start_minio(tmp_path / "own-minio") as server:
        bucket = server.new_bucket()
        uri = artifact_store(f"s3://{bucket}", endpoint_url=server.endpoint).put("m.bin", source)
        cache = tmp_path / "cache"
        assert local_copy(uri, cache, endpoint_url=server.endpoint).path.read_bytes() == PAYLOAD
    assert not server.running

    with pytest.raises(ArtifactError) as e:
        local_copy(uri, cache, endpoint_url=server.endpoint)
    assert uri in str(e.value)
    with pytest.raises(ArtifactError) as e:
        artifact_store(f"s3://{bucket}", endpoint_url=server.endpoint).put("n.bin", source)
    assert f"s3://{bucket}/n.bin" in str(e.value)
