"""``cumulo build`` of examples/ml-pipeline: its ``predict`` and ``train`` images, built and run.

The example's ``requirements.txt`` brings Cumulo's ``ml`` extra (scikit-learn,
pandas, pyarrow, joblib: pip fetches them from PyPI into the dependencies
layer); Cumulo itself comes from the base image, here the test base image (a
``--base-image``, instead of each function's ``spec.build.baseImage``). The ``predict``
image is run with ``buildah run``: with no model registered it answers 503
"no champion yet", so ``cumulo.functions.predict`` and the ML libraries import
and serve inside the image.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from rich.console import Console

from cumulo.builders.cli import run_build
from tests.builders.buildahrun import BuildahStore, get_when_up, stop
from tests.servers.broker import find_binary, free_port
from tests.servers.registry import Registry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ml-pipeline"
pytestmark = pytest.mark.timeout(300)  # a cold build pip-installs ~400 MB of ML libraries


def skopeo(*args: str) -> dict:
    binary = find_binary("skopeo", "install-oci")
    done = subprocess.run([binary, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.fixture
def ml_pipeline(tmp_path: Path) -> Path:
    """A copy of examples/ml-pipeline, as it is."""
    root = tmp_path / "ml-pipeline"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".cumulo", "__pycache__"))
    return root


def test_build_and_run_ml_pipeline(
    ml_pipeline: Path,
    base_image: str,
    oci_registry: Registry,
    buildah_store: BuildahStore,
    tmp_path: Path,
) -> None:
    console = Console(record=True, width=200)
    # a cold build (a cache of its own): pip, then both layers, shared by the two functions
    run_build(
        ml_pipeline, ["predict", "train"], registry=oci_registry.address, builder=None,
        tag="ml", base_image=base_image, cache_dir=tmp_path / "cache", console=console,
    )  # fmt: skip
    output = console.export_text()

    images = {}
    for name, handler in [("predict", "predict:predict"), ("train", "train:train")]:
        image = images[name] = f"{oci_registry.address}/ml-pipeline-{name}:ml"
        info = skopeo("inspect", "--tls-verify=false", f"docker://{image}")
        assert info["Digest"] in output and len(info["Layers"]) == 4  # base 2, deps, app
        config = skopeo("inspect", "--config", "--tls-verify=false", f"docker://{image}")
        entrypoint = ["python3", "-m", "cumulo", "worker", "--target"]
        entrypoint += [f"cumulo.functions.{handler}", "--source", "/app", "--name", name]
        signature = ["--signature-type", "http"] if name == "predict" else []
        assert config["config"]["Entrypoint"] == [*entrypoint, *signature, "--host", "0.0.0.0"]
        env = config["config"]["Env"]
        assert f"CUMULO_FUNCTION={name}" in env and "PYTHONPATH=/opt/cumulo/site-packages" in env
    predict, train = (skopeo("inspect", "--tls-verify=false", f"docker://{images[n]}")
                      for n in ("predict", "train"))  # fmt: skip
    assert predict["Layers"][:3] == train["Layers"][:3]  # one dependencies layer for both

    container = buildah_store.container(images["predict"])
    config = buildah_store.inspect(container)["OCIv1"]["config"]
    imports = "import sklearn, pandas, pyarrow, joblib; print(sklearn.__file__)"
    done = subprocess.run(
        buildah_store.command("run", "--isolation", "chroot", container, "--",
                              "python3", "-c", imports),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("/opt/cumulo/site-packages/sklearn/")

    port, log = free_port(), tmp_path / "predict.log"
    env = {"PORT": str(port), "CUMULO_PARAMS": '{"model": "churn"}', "CUMULO_STATE_DIR": "/tmp/s"}
    args = [f"--env={k}={v}" for k, v in env.items()]  # what a Deployment would set
    command = [*config["Entrypoint"], "--host", "127.0.0.1"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            buildah_store.command("run", "--isolation", "chroot", *args, container, "--", *command),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        get_when_up(f"http://127.0.0.1:{port}/_cumulo/health", process, log)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/", data=b'{"instances": [[0, 0, 0, 0, 0, 0]]}',
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        answer = caught.value
        body = answer.read()  # before the server stops: the body may still be on its way
    finally:
        stop(process)
    assert answer.code == 503 and answer.headers["Content-Type"].startswith(
        "application/problem+json"
    )
    problem = json.loads(body)
    assert "no champion yet" in problem["detail"], problem
