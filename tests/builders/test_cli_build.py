"""``cumulo build``: one thin command that prints the image and its digest."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cumulo.builders.reference import ImageRef
from cumulo.builders.registry import RegistryClient
from cumulo.cli import app
from tests.servers.registry import Registry


def test_cumulo_build(project: Path, oci_registry: Registry) -> None:
    args = [
        "build",
        "hello",
        "--dir",
        str(project),
        "--registry",
        oci_registry.address,
        "--tag",
        "cli",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    image = f"{oci_registry.address}/shop-hello:cli"
    digest = RegistryClient(oci_registry.address).inspect(ImageRef.parse(image))
    assert image in result.output and digest in result.output


def test_unknown_function_is_a_spec_problem(project: Path, oci_registry: Registry) -> None:
    result = CliRunner().invoke(app, ["build", "nope", "--dir", str(project)])
    assert result.exit_code == 2 and "no function 'nope'" in result.output
