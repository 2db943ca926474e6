"""The builders that run on this machine, by name: what ``cumulo build --builder`` picks from."""

from __future__ import annotations

from cumulo.builders.base import BuilderRegistry
from cumulo.builders.buildah import BuildahBuilder
from cumulo.builders.layered import LayeredBuilder


def default_registry() -> BuilderRegistry:
    """The builders that run on this machine: ``oci`` (layered, alias ``auto``) and ``buildah``.

    Kaniko and buildpacks build in a cluster: see :mod:`.kaniko` and :mod:`.buildpacks`.
    """
    registry = BuilderRegistry()
    registry.register("oci", LayeredBuilder)
    registry.register("buildah", BuildahBuilder)
    registry.alias("auto", "oci")
    registry.alias("layered", "oci")
    return registry
