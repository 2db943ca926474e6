"""Image builds: the layered (oci) builder against buildah, on the same project.

A real registry (``docker-registry``, see ``scripts/infra/install-oci``) runs on
loopback with a Python base image made from this machine's interpreter
(``tests/builders/baseimage.py``). The project is the builder tests' one: an
http function and a dependency from a local wheel.

Rows (seconds): layered cold build (empty cache: pip, both layers, every blob
pushed), layered code-only rebuild (one file changed: only the app layer,
config and manifest are pushed; the goal is under 2 s), buildah cold build and
buildah code-only rebuild (its ``--layers`` cache keeps the pip step). Run
standalone: ``python benchmarks/bench_build.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cumulo.builders.available import default_registry  # noqa: E402
from cumulo.builders.base import BuildOptions  # noqa: E402
from cumulo.builders.detect import detect  # noqa: E402
from cumulo.builders.registry import RegistryClient  # noqa: E402
from cumulo.spec.load import load_project  # noqa: E402
from tests.builders.baseimage import push_base_image  # noqa: E402
from tests.builders.conftest import MAIN, SPEC, WHEEL, wheel  # noqa: E402
from tests.servers.registry import registry_process  # noqa: E402


def make_project(root: Path, base: str) -> Path:
    (root / "wheels").mkdir(parents=True)
    (root / "cumulo.yaml").write_text(SPEC.format(base=base))
    (root / "app.py").write_text(MAIN)
    (root / "wheels" / WHEEL).write_bytes(wheel())
    (root / "requirements.txt").write_text(f"./wheels/{WHEEL}\n")
    return root


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return round(time.perf_counter() - started, 3)


def measure(builder_name: str, project: Path, image: str, cache: Path) -> tuple[float, float]:
    """Seconds of a cold build and of a rebuild after a code-only change."""
    builder = default_registry().create(builder_name, BuildOptions(cache_dir=cache))

    def build() -> object:
        return builder.build(detect(load_project(project).functions["hello"], project), image)

    cold = timed(build)
    source = project / "app.py"
    source.write_text(source.read_text().replace('"v1"', f'"v{time.time_ns()}"'))
    return cold, timed(build)


def run() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="cumulo-bench-build-") as tmp:
        folder = Path(tmp)
        registry = registry_process(folder / "registry")
        registry.start()
        try:
            base = push_base_image(RegistryClient(registry.address))
            rows = []
            for name in ("oci", "buildah"):
                project = make_project(folder / name / "shop", base)
                image = f"{registry.address}/bench/{name}:latest"
                cold, rebuild = measure(name, project, image, folder / name / "cache")
                label = "layered" if name == "oci" else "buildah"
                rows.append({"benchmark": f"{label} cold build", "value": cold, "unit": "s"})
                rows.append({"benchmark": f"{label} code-only rebuild", "value": rebuild, "unit": "s"})
            return rows
        finally:
            registry.stop()


if __name__ == "__main__":
    for row in run():
        print(f"{row['benchmark']:<32} {row['value']:>10} {row['unit']}")
