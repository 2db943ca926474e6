"""The builder contract: a build plan in, an image (and its digest) out.

Every builder has the same shape: a class whose ``build(plan, image)`` pushes
``image`` to its registry and returns a :class:`BuildResult`. Builders are
found by name in a :class:`BuilderRegistry`; ``auto`` means ``oci`` (the
layered builder of :mod:`.layered`, which needs no tool at all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cumulo.builders.detect import BuildPlan
from cumulo.errors import BuilderNotFoundError


@dataclass(frozen=True)
class BuildResult:
    """What a build pushed: the image reference, its manifest digest and how long it took.

    ``pushed`` lists the blobs (layers, config) that were uploaded; the rest
    were in the registry already.
    """

    image: str
    digest: str
    seconds: float
    pushed: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildOptions:
    """What every builder may be given: where its caches live, registry credentials."""

    cache_dir: Path = Path.home() / ".cache" / "cumulo" / "build"
    username: str | None = None
    password: str | None = None
    insecure: bool | None = None  # plain HTTP; default: only for loopback registries


class Builder(Protocol):
    """Builds a plan into an image and pushes it."""

    name: str

    def build(self, plan: BuildPlan, image: str) -> BuildResult: ...


BuilderFactory = Callable[[BuildOptions], Builder]


@dataclass
class BuilderRegistry:
    """Builders by name. ``auto`` is an alias (of ``oci`` unless told otherwise)."""

    factories: dict[str, BuilderFactory] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def register(self, name: str, factory: BuilderFactory) -> None:
        self.factories[name] = factory

    def alias(self, name: str, target: str) -> None:
        self.aliases[name] = target

    def names(self) -> list[str]:
        return sorted({*self.factories, *self.aliases})

    def create(self, name: str, options: BuildOptions | None = None) -> Builder:
        """A builder by name, with ``options`` (defaults when not given)."""
        key = self.aliases.get(name, name)
        if key not in self.factories:
            known = ", ".join(self.names())
            raise BuilderNotFoundError(f"no builder named '{name}' (known: {known})")
        return self.factories[key](options or BuildOptions())
