"""The registry client against a real distribution registry on loopback."""

from __future__ import annotations

import json
import os

import pytest

from cumulo.builders.oci import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    canonical,
    image_manifest,
    sha256,
)
from cumulo.builders.reference import ImageRef
from cumulo.builders.registry import RegistryClient
from cumulo.errors import ImageNotFoundError, RegistryAuthError, RegistryError
from tests.servers.registry import PASSWORD, USER, Registry


def push_image(client: RegistryClient, repository: str, tag: str, layer: bytes) -> str:
    config = canonical(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    client.push_blob(repository, layer)
    client.push_blob(repository, config)
    manifest = image_manifest(
        Descriptor(OCI_CONFIG, sha256(config), len(config)),
        [Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", sha256(layer), len(layer))],
    )
    return client.push_manifest(repository, tag, canonical(manifest), OCI_MANIFEST)


def test_push_blob_then_skip_it(client: RegistryClient) -> None:
    data = os.urandom(4096)
    assert not client.has_blob("test/blobs", sha256(data))
    assert client.push_blob("test/blobs", data) is True
    assert client.has_blob("test/blobs", sha256(data))
    assert client.push_blob("test/blobs", data) is False  # HEAD says it is there
    assert client.get_blob("test/blobs", sha256(data)) == data


def test_push_pull_and_inspect_a_manifest(client: RegistryClient, oci_registry: Registry) -> None:
    digest = push_image(client, "test/image", "v1", os.urandom(1024))
    ref = ImageRef.parse(f"{oci_registry.address}/test/image:v1")
    manifest, pulled = client.get_manifest(ref)
    assert pulled == digest and manifest["mediaType"] == OCI_MANIFEST
    assert client.inspect(ref) == digest
    assert client.inspect(ref.with_digest(digest)) == digest
    manifest, config = client.get_config(ref)
    assert config["os"] == "linux" and len(manifest["layers"]) == 1


def test_mount_a_blob_from_another_repository(client: RegistryClient) -> None:
    data = os.urandom(2048)
    client.push_blob("test/source", data)
    assert client.mount_blob("test/target", sha256(data), "test/source")
    assert client.has_blob("test/target", sha256(data))


def test_missing_manifest_names_registry_and_repository(
    client: RegistryClient, oci_registry: Registry
) -> None:
    with pytest.raises(ImageNotFoundError) as caught:
        client.get_manifest(ImageRef.parse(f"{oci_registry.address}/test/nothing:here"))
    assert oci_registry.address in str(caught.value) and "test/nothing" in str(caught.value)
    assert caught.value.status == 404


def test_unreachable_registry_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="cannot reach"):
        RegistryClient("127.0.0.1:1", timeout=2).has_blob("x/y", sha256(b""))


def test_basic_auth(oci_registry_basic: Registry) -> None:
    anonymous = RegistryClient(oci_registry_basic.address)
    with pytest.raises(RegistryAuthError, match="username and password"):
        anonymous.push_blob("private/app", b"secret layer")
    wrong = RegistryClient(oci_registry_basic.address, username=USER, password="nope")
    with pytest.raises(RegistryAuthError):
        wrong.push_blob("private/app", b"secret layer")
    client = RegistryClient(oci_registry_basic.address, username=USER, password=PASSWORD)
    digest = push_image(client, "private/app", "v1", b"secret layer")
    assert client.inspect(ImageRef.parse(f"{oci_registry_basic.address}/private/app:v1")) == digest


def test_image_references() -> None:
    assert ImageRef.parse("python:3.11-slim") == ImageRef(
        "registry-1.docker.io", "library/python", "3.11-slim"
    )
    ref = ImageRef.parse("127.0.0.1:5000/shop/hello@sha256:abc")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        "127.0.0.1:5000",
        "shop/hello",
        None,
        "sha256:abc",
    )
    assert str(ImageRef.parse("localhost/app")) == "localhost/app:latest"
    assert json.dumps(str(ref))
