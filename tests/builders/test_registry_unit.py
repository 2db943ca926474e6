"""The registry client's less travelled paths, against the real registry: image indexes,
refusals with the registry's own error codes, and image references as a property.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cumulo.builders.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    canonical,
    image_manifest,
    sha256,
)
from cumulo.builders.reference import DOCKER_HUB, ImageRef, is_loopback
from cumulo.builders.registry import RegistryClient
from cumulo.errors import ImageNotFoundError, RegistryError
from tests.servers.registry import Registry


def push_platform_image(client: RegistryClient, repository: str, arch: str) -> Descriptor:
    """An image for linux/<arch>, pushed by digest only: its manifest's descriptor."""
    config = canonical(
        {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    layer = os.urandom(256)
    client.push_blob(repository, config)
    client.push_blob(repository, layer)
    manifest = canonical(
        image_manifest(
            Descriptor(OCI_CONFIG, sha256(config), len(config)),
            [Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", sha256(layer), len(layer))],
        )
    )
    digest = client.push_manifest(repository, sha256(manifest), manifest, OCI_MANIFEST)
    return Descriptor(OCI_MANIFEST, digest, len(manifest))


def push_index(client: RegistryClient, repository: str, tag: str, *arches: str) -> dict[str, str]:
    """A multi-platform index under ``tag``; the digest of each platform's manifest."""
    found = {arch: push_platform_image(client, repository, arch) for arch in arches}
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**d.json(), "platform": {"os": "linux", "architecture": arch}}
            for arch, d in found.items()
        ],
    }
    client.push_manifest(repository, tag, canonical(index), OCI_INDEX)
    return {arch: d.digest for arch, d in found.items()}


def test_an_index_resolves_to_the_manifest_of_the_platform(
    client: RegistryClient, oci_registry: Registry
) -> None:
    """A multi-arch tag gives the amd64 image by default, and another platform when asked."""
    digests = push_index(client, "test/multi", "v1", "amd64", "arm64")
    ref = ImageRef.parse(f"{oci_registry.address}/test/multi:v1")

    manifest, digest = client.get_manifest(ref)
    arm, arm_digest = client.get_manifest(ref, platform="linux/arm64")
    assert arm["mediaType"] == OCI_MANIFEST

    assert digest == digests["amd64"] and arm_digest == digests["arm64"]
    assert manifest["mediaType"] == OCI_MANIFEST
    _, config = client.get_config(ref)
    assert config["architecture"] == "amd64"


def test_a_platform_the_index_lacks_is_image_not_found(
    client: RegistryClient, oci_registry: Registry
) -> None:
    """An index without linux/amd64 is ImageNotFoundError naming the repository."""
    push_index(client, "test/armonly", "v1", "arm64")
    ref = ImageRef.parse(f"{oci_registry.address}/test/armonly:v1")

    with pytest.raises(ImageNotFoundError, match="no linux/amd64 image in the index") as raised:
        client.get_manifest(ref)

    assert "test/armonly" in str(raised.value)


def test_a_manifest_naming_missing_blobs_is_refused_with_the_registrys_code(
    client: RegistryClient, oci_registry: Registry
) -> None:
    """The registry's error codes and messages become the error's text, with the status."""
    missing = Descriptor(OCI_CONFIG, sha256(b"never pushed"), 12)
    manifest = canonical(image_manifest(missing, []))

    with pytest.raises(RegistryError) as raised:
        client.push_manifest("test/broken", "v1", manifest, OCI_MANIFEST)

    assert raised.value.status == 400
    assert "MANIFEST_BLOB_UNKNOWN" in str(raised.value)
    assert str(raised.value).startswith(f"{oci_registry.address}/test/broken: PUT /v2/test/broken/")


def test_a_blob_under_the_wrong_digest_is_refused(client: RegistryClient) -> None:
    """The registry checks the digest; its DIGEST_INVALID refusal is the error."""
    with pytest.raises(RegistryError) as raised:
        client.push_blob("test/digest", b"content", sha256(b"other content"))

    assert raised.value.status == 400
    assert "DIGEST_INVALID" in str(raised.value)


def test_a_missing_blob_is_image_not_found(client: RegistryClient) -> None:
    """A blob the repository lacks is ImageNotFoundError."""
    with pytest.raises(ImageNotFoundError):
        client.get_blob("test/none", sha256(b"absent"))


# --- references -----------------------------------------------------------------------------

components = st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)*", fullmatch=True)
registries = st.sampled_from(["127.0.0.1:5000", "registry.example.com", "localhost", "ghcr.io"])
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@settings(max_examples=50)
@given(
    registry=registries,
    path=st.lists(components, min_size=1, max_size=3).map("/".join),
    tag=tags,
    digest=st.none() | st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True),
)
def test_a_reference_prints_as_it_parses(
    registry: str, path: str, tag: str, digest: str | None
) -> None:
    """``str(ImageRef.parse(text))`` parses to the same reference, whatever its parts."""
    text = f"{registry}/{path}:{tag}" + (f"@{digest}" if digest else "")

    ref = ImageRef.parse(text)

    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, path, tag, digest)
    assert ImageRef.parse(str(ref)) == ref
    assert ref.reference == (digest or tag)


@settings(max_examples=50)
@given(name=components)
def test_a_bare_name_is_a_docker_hub_library_image(name: str) -> None:
    """`python` is docker.io's library/python:latest, as docker reads it."""
    ref = ImageRef.parse(name)

    assert (ref.registry, ref.repository, ref.tag) == (DOCKER_HUB, f"library/{name}", "latest")


@pytest.mark.parametrize(
    "text",
    [
        "Upper/Case:1",
        "registry.example.com/:v1",
        "",
    ],
)
def test_text_that_is_no_reference_is_refused(text: str) -> None:
    """Upper case, an empty repository, or nothing at all: not an image reference."""
    with pytest.raises(ValueError, match="is not an image reference"):
        ImageRef.parse(text)


@pytest.mark.parametrize(
    ("registry", "loopback"),
    [("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.8.0.1", True),
     ("[::1]", True), ("registry.example.com", False), ("10.0.0.1:5000", False)],
)  # fmt: skip
def test_loopback_registries_are_recognised(registry: str, loopback: bool) -> None:
    """Only registries on this machine default to plain HTTP."""
    assert is_loopback(registry) is loopback
    assert RegistryClient(registry).base.startswith("http://" if loopback else "https://")
