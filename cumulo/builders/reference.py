"""Image references: ``[registry/]repository[:tag][@digest]``, as docker reads them."""

from __future__ import annotations

from dataclasses import dataclass

DOCKER_HUB = "registry-1.docker.io"


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """``python:3.11`` is Docker Hub's ``library/python``; a first part with ``.``/``:``
        or ``localhost`` is a registry.

        ``ValueError`` for no name at all (``""``, ``":v1"``, ``"@sha256:..."``), an empty
        path component (``"a//b"``, ``"registry.example.com/:v1"``) or upper case.
        """
        rest, _, digest = text.partition("@")
        if not rest.partition(":")[0]:  # no name: Docker Hub's library/ would stand in for it
            raise ValueError(f"'{text}' is not an image reference")
        head, _, tail = rest.partition("/")
        if tail and ("." in head or ":" in head or head == "localhost"):
            registry, path = head, tail
        else:
            registry, path = DOCKER_HUB, rest
            path = path if "/" in path else f"library/{path}"
        repository, _, tag = path.partition(":")
        if "" in repository.split("/") or repository != repository.lower():
            raise ValueError(f"'{text}' is not an image reference")
        return cls(registry, repository, tag or (None if digest else "latest"), digest or None)

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when known, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        text += f":{self.tag}" if self.tag else ""
        return text + (f"@{self.digest}" if self.digest else "")


def is_loopback(registry: str) -> bool:
    """Registries on this machine speak plain HTTP unless told otherwise."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return host in ("localhost", "[::1]") or host.startswith("127.")
