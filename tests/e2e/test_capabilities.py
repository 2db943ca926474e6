"""Capabilities come from the spec, on a real `cumulo up` (issue 11, holes 1 and 3).

A hostile git repository (its main.py leaves a marker file when imported) is
pushed at ``build_image`` through ``/fn/build-image`` and through ``POST
/events``: a repository the spec does not allow-list is refused naming the rule
and never cloned; an event's ``data.params.cloneUrl`` is refused; an http://
URL is never fetched; an allow-listed repository builds the function its YAML
declares, and its main.py still never runs. ``train`` reads no dataset outside
its data roots, by absolute path, ``..`` or symlink, and its refusal shows no
column of the file and no path of the platform.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cumulo.builders.oci import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    Entry,
    build_layer,
    canonical,
    image_config,
    image_manifest,
    sha256,
)
from cumulo.builders.registry import RegistryClient
from tests.e2e.conftest import write_project
from tests.e2e.platform import Answer, RunningPlatform, cloudevent, wait_for
from tests.events.sources.gitrepo import git
from tests.servers.registry import Registry

SECRET = "aws_secret_access_key,password\nAKIAEXAMPLE,hunter2\n"
CLONE_RULE = "build_image clones only repositories its spec names"
DATA_RULE = "dataset URI outside the allowed data roots"
SPEC = """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: train}}
spec:
  handler: cumulo.functions.train:train
  mode: job
  params: {{model: churn}}
  triggers: [{{filters: [{{exact: {{type: dev.cumulo.dataset.ready}}}}], delivery: {{retries: 0}}}}]
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: build-image}}
spec:
  handler: cumulo.functions.build_image:build_image
  params: {{registry: "{registry}", cacheDir: "{cache}"}}   # allow-lists nothing
  triggers:
    - filters: [{{exact: {{type: dev.cumulo.git.push, source: /tests/unlisted}}}}]
      delivery: {{retries: 0}}
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: build-allowed}}
spec:
  handler: cumulo.functions.build_image:build_image
  params: {{registry: "{registry}", cacheDir: "{cache}", repositories: ["{repository}"]}}
  triggers: [{{filters: [{{exact: {{type: dev.cumulo.git.push, source: /tests/allowed}}}}]}}]
"""
HOSTILE_SPEC = """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: hello}}
spec:
  handler: app:hello
  signature: http
  build: {{builder: oci, baseImage: "{base}"}}
"""
HOSTILE_MAIN = """import pathlib
pathlib.Path({marker!r}).write_text("the clone's main.py ran in the platform")
"""


class Recorder:
    """An HTTP server on loopback that records every request it gets (and answers 404)."""

    def __init__(self) -> None:
        paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                self.send_response(404)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.paths = paths
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, oci_registry: Registry
) -> Iterator[dict[str, Any]]:
    """One `cumulo up`, a hostile bare repository, a secret CSV outside the project."""
    root = tmp_path_factory.mktemp("capabilities")
    marker = root / "marker"
    bare = hostile_repository(root, marker, tiny_base_image(oci_registry))
    spec = SPEC.format(registry=oci_registry.address, cache=root / "cache", repository=bare)
    project = write_project(root / "project", {"cumulo.yaml": spec})
    (project / "data").mkdir()
    (root / "secret").mkdir()
    (root / "secret" / "secret.csv").write_text(SECRET)
    os.symlink(root / "secret" / "secret.csv", project / "data" / "link.csv")
    platform = RunningPlatform(project, root / "state").start()
    yield {"platform": platform, "marker": marker, "bare": bare, "root": root}
    platform.stop()


def hostile_repository(root: Path, marker: Path, base: str) -> str:
    """A bare repository whose main.py writes ``marker``; its YAML declares ``hello``."""
    work, bare = root / "hostile", root / "hostile.git"
    files = {
        "cumulo.yaml": HOSTILE_SPEC.format(base=base),
        "main.py": HOSTILE_MAIN.format(marker=str(marker)),
        "app.py": "def hello(request):\n    return 'hello'\n",
    }
    write_project(work, files)
    git("init", "--quiet", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "hostile", cwd=work)
    git("clone", "--quiet", "--bare", str(work), str(bare), cwd=root)
    return str(bare)


def tiny_base_image(registry: Registry) -> str:
    """A one-layer base image in the test registry (the build only stacks a layer on it)."""
    client = RegistryClient(registry.address)
    layer = build_layer([Entry("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")])
    config = canonical(
        image_config({"config": {}}, [layer], entrypoint=["sh"], env={}, workdir="/")
    )
    client.push_blob("base/tiny", layer.data, layer.descriptor.digest)
    client.push_blob("base/tiny", config)
    manifest = image_manifest(
        Descriptor(OCI_CONFIG, sha256(config), len(config)), [layer.descriptor]
    )
    client.push_manifest("base/tiny", "1", canonical(manifest), OCI_MANIFEST)
    return f"{registry.address}/base/tiny:1"


def push(
    repository: str, *, id: str, source: str = "/tests/unlisted", **data: Any
) -> dict[str, Any]:
    body = {"repository": repository, "branch": "main", **data}
    return cloudevent("dev.cumulo.git.push", body, id=id, source=source)


def call(platform: RunningPlatform, function: str, event: dict[str, Any]) -> Answer:
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/cloudevents+json"}
    return platform.request("POST", f"/fn/{function}", body, headers, timeout=90)


def dead_letter(platform: RunningPlatform, event_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        letters = platform.request("GET", "/api/dead-letters").json()
        return next((x for x in letters if x["event"]["id"] == event_id), None)

    return wait_for(find, timeout=90, what=f"the dead letter of {event_id}")


def problem_detail(answer: Answer) -> str:
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.body
    return str(answer.json()["detail"])


# --- hole 1: a clone is a capability the spec grants ----------------------------


def test_an_unlisted_repository_at_fn_build_image_is_refused_and_never_runs(world):
    platform, marker = world["platform"], world["marker"]
    answer = call(platform, "build-image", push(world["bare"], id="fn-unlisted"))
    assert answer.status == 422
    assert "data.repository: not allow-listed" in problem_detail(answer)
    assert CLONE_RULE in problem_detail(answer)
    assert not marker.exists()
    assert not (world["root"] / "state" / "builds").exists()  # not even cloned


def test_an_events_clone_url_param_is_refused(world):
    platform, marker = world["platform"], world["marker"]
    event = push(world["bare"], id="fn-override", params={"cloneUrl": world["bare"]})
    answer = call(platform, "build-allowed", event)
    assert answer.status == 422
    assert "data.params.cloneUrl: set by the function's spec only" in problem_detail(answer)
    assert not marker.exists()


def test_an_http_url_outside_the_allow_list_is_never_fetched(world):
    recorder = Recorder()
    try:
        event = push(f"{recorder.url}/internal/admin.git", id="fn-ssrf")
        answer = call(world["platform"], "build-image", event)
        assert answer.status == 422 and CLONE_RULE in problem_detail(answer)
        event = push(f"{recorder.url}/internal/admin.git", id="bus-ssrf", source="/tests/allowed")
        assert world["platform"].publish([event]).status == 202
        letter = dead_letter(world["platform"], "bus-ssrf")
        assert letter["reason"]["errorType"] == "CapabilityError"
        assert recorder.paths == []
    finally:
        recorder.server.shutdown()
        recorder.server.server_close()


def test_an_unlisted_repository_through_events_dead_letters_with_the_rule(world):
    platform, marker = world["platform"], world["marker"]
    assert platform.publish([push(world["bare"], id="bus-unlisted")]).status == 202
    letter = dead_letter(platform, "bus-unlisted")
    assert letter["reason"]["errorType"] == "CapabilityError"
    assert CLONE_RULE in letter["reason"]["message"]
    assert not marker.exists()


def test_an_allow_listed_repository_builds_its_yaml_function_without_running_it(world):
    platform, marker = world["platform"], world["marker"]
    commit = git("rev-parse", "main", cwd=Path(world["bare"]))
    event = push(world["bare"], id="bus-allowed", source="/tests/allowed", commit=commit)
    assert platform.publish([event]).status == 202

    def built() -> dict[str, Any] | None:
        for message in platform.events("default"):
            found = message["event"]
            trigger = (found.get("data") or {}).get("lineage", {}).get("triggerEvent")
            if found["type"] == "dev.cumulo.image.built" and trigger == "bus-allowed":
                return dict(found)
        return None

    image = wait_for(built, timeout=90, what="dev.cumulo.image.built")
    assert image["data"]["function"] == "hello"
    assert image["data"]["image"].endswith(f"/hostile-hello:{commit[:12]}")
    assert image["data"]["digest"].startswith("sha256:")
    assert not marker.exists()


# --- hole 3: datasets only under the data roots -----------------------------------


@pytest.mark.parametrize(
    "uri", ["{secret}", "file://{secret}", "../secret/secret.csv", "data/link.csv"]
)
def test_train_reads_no_dataset_outside_its_data_roots(world, uri: str):
    secret = world["root"] / "secret" / "secret.csv"
    event = cloudevent(
        "dev.cumulo.dataset.ready", {"uri": uri.format(secret=secret)}, id=f"fn-{uri}"
    )
    answer = call(world["platform"], "train", event)
    assert answer.status == 422
    detail = problem_detail(answer)
    assert DATA_RULE in detail and "params.dataRoots" in detail
    for leaked in ("aws_secret_access_key", "password", "hunter2", str(world["root"])):
        assert leaked not in answer.body.decode()


def test_a_dataset_event_outside_the_data_roots_dead_letters_with_the_reason(world):
    secret = world["root"] / "secret" / "secret.csv"
    event = cloudevent("dev.cumulo.dataset.ready", {"uri": str(secret)}, id="bus-secret")
    assert world["platform"].publish([event]).status == 202
    letter = dead_letter(world["platform"], "bus-secret")
    assert letter["reason"]["errorType"] == "CapabilityError"
    assert DATA_RULE in letter["reason"]["message"]
    for leaked in ("aws_secret_access_key", "password", str(world["root"] / "state")):
        assert leaked not in letter["reason"]["message"]
