"""``cumulo deploy/delete/cluster-status`` against a real kube-apiserver with the Knative, KEDA, Dapr CRDs.

What the server holds is read back with plain HTTPS (``kube.get``), not with
Cumulo's own client. No controllers run there: nothing reconciles, so
conditions appear only where a test writes them as a controller would.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cumulo.cli import app
from cumulo.errors import (
    ClusterAuthError,
    ClusterForbiddenError,
    ClusterUnreachableError,
    KindNotServedError,
    KubeconfigError,
    ObjectInvalidError,
)
from cumulo.manifests.apply import Target, delete, deploy
from cumulo.manifests.cluster import Cluster
from cumulo.manifests.options import RenderOptions
from cumulo.manifests.render import render_project
from cumulo.manifests.status import cluster_status
from cumulo.spec import load_project
from tests.servers.kube import NOBODY_TOKEN, KubeServer, kubeconfig
from tests.servers.minio import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ml-pipeline" / "cumulo.yaml"
OPTIONS = RenderOptions(image_registry="registry.test:5000/ml", bus_url="redis://redis.ml:6379")
PLURALS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "Deployment": "deployments",
    "CronJob": "cronjobs",
    "Component": "components",
    "Resiliency": "resiliencies",
    "Subscription": "subscriptions",
    "ScaledObject": "scaledobjects",
    "ScaledJob": "scaledjobs",
    "TriggerAuthentication": "triggerauthentications",
}


def path_of(obj: dict[str, Any]) -> str:
    api, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
    prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
    plural = "services" if kind == "Service" else PLURALS[kind]
    if kind == "Namespace":
        return f"{prefix}/namespaces/{meta['name']}"
    return f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


def assert_subset(sent: Any, live: Any, where: str = "") -> None:
    """Everything Cumulo sent is stored as sent (the server may add defaults)."""
    if isinstance(sent, dict):
        assert isinstance(live, dict), where
        for key, value in sent.items():
            assert key in live, f"{where}.{key} was dropped by the server"
            assert_subset(value, live[key], f"{where}.{key}")
    elif isinstance(sent, list):
        assert isinstance(live, list) and len(live) == len(sent), where
        for i, (a, b) in enumerate(zip(sent, live, strict=True)):
            assert_subset(a, b, f"{where}[{i}]")
    else:
        assert sent == live, f"{where}: sent {sent!r}, stored {live!r}"


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """examples/ml-pipeline's specs in a folder of a fresh name (so: its own namespace)."""
    folder = tmp_path / f"mlp-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "cumulo.yaml")
    return folder


@pytest.fixture
def cluster(kube: KubeServer) -> Any:
    with Cluster.connect(kube.kubeconfig) as connected:
        yield connected


def render(folder: Path, options: RenderOptions = OPTIONS) -> tuple[list[dict], Target]:
    project = load_project(folder)
    return render_project(project, options), Target.of(project, options)


def versions(kube: KubeServer, objects: list[dict]) -> dict[str, str]:
    return {path_of(o): kube.get(path_of(o))["metadata"]["resourceVersion"] for o in objects}


def drop_function(folder: Path, name: str) -> None:
    spec = folder / "cumulo.yaml"
    docs = [d for d in yaml.safe_load_all(spec.read_text()) if d["metadata"]["name"] != name]
    spec.write_text(yaml.safe_dump_all(docs))


def test_deploy_stores_every_object_as_rendered(kube: KubeServer, cluster, project_dir) -> None:
    objects, target = render(project_dir)
    changes = deploy(cluster, objects, target)
    assert [c.action for c in changes] == ["created"] * len(objects)
    for obj in objects:
        live = kube.get(path_of(obj))
        assert live is not None, f"{path_of(obj)} not stored"
        assert live["kind"] == obj["kind"]
        assert_subset(obj, live, f"{obj['kind']}/{obj['metadata']['name']}")
        labels = live["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "cumulo"
        assert labels["app.kubernetes.io/part-of"] == target.project
    ns = target.namespace
    knative = kube.get(f"/apis/serving.knative.dev/v1/namespaces/{ns}/services/predict")
    annotations = knative["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/max-scale"] == "2"
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    train = kube.get(f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledjobs/train")
    trigger = train["spec"]["triggers"][0]
    assert trigger["type"] == "redis-streams"
    assert trigger["metadata"]["consumerGroup"] == "trigger/train-0"
    assert trigger["metadata"]["address"] == "redis.ml:6379"
    assert train["spec"]["maxReplicaCount"] == 2
    scaled = kube.get(f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/evaluate")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "evaluate"
    assert scaled["spec"]["triggers"][0]["metadata"]["stream"] == "default"
    subscription = kube.get(f"/apis/dapr.io/v2alpha1/namespaces/{ns}/subscriptions/alert-1")
    assert subscription["spec"]["deadLetterTopic"] == "dead-letter"
    assert subscription["metadata"]["labels"]["cumulo.dev/function"] == "alert"
    cron = kube.get(f"/apis/batch/v1/namespaces/{ns}/cronjobs/nightly-retrain")
    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["metadata"]["labels"]["cumulo.dev/source"] == "nightly-retrain"


def test_second_deploy_changes_nothing(kube: KubeServer, cluster, project_dir) -> None:
    objects, target = render(project_dir)
    deploy(cluster, objects, target)
    before = versions(kube, objects)
    changes = deploy(cluster, objects, target)
    assert {c.action for c in changes} == {"unchanged"}
    assert versions(kube, objects) == before


def test_changed_spec_configures_only_what_changed(kube, cluster, project_dir) -> None:
    objects, target = render(project_dir)
    deploy(cluster, objects, target)
    before = versions(kube, objects)
    tagged = RenderOptions(image_registry="registry.test:5000/ml", bus_url="redis://redis.ml:6379",
                           image_tag="v2")  # fmt: skip
    changes = deploy(cluster, render(project_dir, tagged)[0], target)
    configured = {f"{c.kind}/{c.name}" for c in changes if c.action == "configured"}
    assert {"ScaledJob/train", "Deployment/evaluate", "Service/predict"} <= configured
    assert "Subscription/alert-0" not in configured
    after = versions(kube, objects)
    for obj in objects:
        if f"{obj['kind']}/{obj['metadata']['name']}" not in configured:
            assert after[path_of(obj)] == before[path_of(obj)], path_of(obj)


def test_removed_function_is_pruned_others_untouched(kube, cluster, project_dir) -> None:
    objects, target = render(project_dir)
    deploy(cluster, objects, target)
    before = versions(kube, objects)
    drop_function(project_dir, "drift")
    remaining, _ = render(project_dir)
    changes = deploy(cluster, remaining, target)
    pruned = {f"{c.kind}/{c.name}" for c in changes if c.action == "pruned"}
    assert pruned == {
        "Deployment/drift", "Subscription/drift-0", "Resiliency/drift", "ScaledObject/drift"
    }  # fmt: skip
    for obj in objects:
        live = kube.get(path_of(obj))
        if obj["metadata"]["labels"].get("cumulo.dev/function") == "drift":
            assert live is None, f"{path_of(obj)} was not pruned"
        else:
            assert live["metadata"]["resourceVersion"] == before[path_of(obj)], path_of(obj)


def test_dry_run_creates_nothing(kube: KubeServer, cluster, project_dir) -> None:
    objects, target = render(project_dir)
    changes = deploy(cluster, objects, target, dry_run=True)
    assert [c.action for c in changes] == ["created"] * len(objects)
    assert all(kube.get(path_of(o)) is None for o in objects)


def test_dry_run_of_a_change_reports_it_and_changes_nothing(kube, cluster, project_dir) -> None:
    objects, target = render(project_dir)
    deploy(cluster, objects, target)
    before = versions(kube, objects)
    drop_function(project_dir, "alert")
    changes = deploy(cluster, render(project_dir)[0], target, dry_run=True)
    assert {c.name for c in changes if c.action == "pruned"} >= {"alert", "alert-0", "alert-2"}
    assert {c.action for c in changes} == {"unchanged", "pruned"}
    assert versions(kube, objects) == before


def test_delete_removes_every_object(kube: KubeServer, cluster, project_dir) -> None:
    objects, target = render(project_dir)
    deploy(cluster, objects, target)
    changes = delete(cluster, target)
    assert len(changes) == len(objects)
    assert changes[-1].kind == "Namespace"
    for obj in objects:
        live = kube.get(path_of(obj))
        if obj["kind"] == "Namespace":  # no namespace controller runs to finish it
            assert live is None or live["status"]["phase"] == "Terminating"
        else:
            assert live is None, f"{path_of(obj)} was not deleted"


def test_invalid_object_reports_the_servers_causes(cluster, project_dir) -> None:
    objects, target = render(project_dir)
    predict = next(o for o in objects if o["metadata"]["name"] == "predict")
    predict["metadata"]["labels"]["cumulo.dev/function"] = "not a label!"
    with pytest.raises(ObjectInvalidError) as caught:
        deploy(cluster, objects, target)
    message = str(caught.value)
    assert message.startswith('Service/predict: metadata.labels: Invalid value: "not a label!"')
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("field", "value", "reported"),
    [
        (
            "maxReplicaCount",
            0,
            r"spec.maxReplicaCount: Invalid value: 0: .*greater than or equal to 1",
        ),
        ("maxReplicaCount", "lots", r"spec.maxReplicaCount: expected numeric .*got string"),
        ("replicas", 3, r"spec.replicas: field not declared in schema"),
    ],
)
def test_crd_schema_violation_is_reported(cluster, project_dir, field, value, reported) -> None:
    objects, target = render(project_dir)
    train = next(o for o in objects if o["kind"] == "ScaledJob")
    train["spec"][field] = value
    with pytest.raises(ObjectInvalidError, match=f"^ScaledJob/train: {reported}"):
        deploy(cluster, objects, target)


def test_unreachable_server_is_a_clear_error(kube: KubeServer, tmp_path, project_dir) -> None:
    config = yaml.safe_load(kube.kubeconfig.read_text())
    url = f"https://127.0.0.1:{free_port()}"
    config["clusters"][0]["cluster"]["server"] = url
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    objects, target = render(project_dir)
    expected = pytest.raises(ClusterUnreachableError, match=f"cannot reach the API server at {url}")
    with Cluster.connect(tmp_path / "kubeconfig") as cluster, expected:
        deploy(cluster, objects, target)


def test_bad_kubeconfig_and_context(kube: KubeServer, tmp_path: Path) -> None:
    (tmp_path / "garbage").write_text("clusters: [oops\n")
    with pytest.raises(KubeconfigError, match="garbage"):
        Cluster.connect(tmp_path / "garbage")
    with pytest.raises(KubeconfigError):
        Cluster.connect(tmp_path / "missing")
    with pytest.raises(KubeconfigError, match="nope"):
        Cluster.connect(kube.kubeconfig, context="nope")


def test_forbidden_and_unauthenticated(kube: KubeServer, tmp_path, project_dir) -> None:
    objects, target = render(project_dir)
    nobody = kubeconfig(kube, tmp_path / "nobody", NOBODY_TOKEN)
    forbidden = pytest.raises(ClusterForbiddenError, match='User "nobody" cannot list')
    with Cluster.connect(nobody) as cluster, forbidden:
        deploy(cluster, objects, target)
    stranger = kubeconfig(kube, tmp_path / "stranger", "no-such-token")
    with Cluster.connect(stranger) as cluster, pytest.raises(ClusterAuthError):
        deploy(cluster, objects, target)


def test_status_shows_conditions_only_where_set(kube: KubeServer, cluster, project_dir) -> None:
    objects, target = render(project_dir)
    deploy(cluster, objects, target)
    # Play Knative's controller for one object: write a Ready condition to its status.
    path = f"/apis/serving.knative.dev/v1/namespaces/{target.namespace}/services/predict"
    service = kube.get(path)
    service["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert kube.request("PUT", f"{path}/status", service)[0] == 200
    found = {s.ref: s.summary for s in cluster_status(cluster, target)}
    assert len(found) == len(objects)
    assert found["Service/predict"] == "Ready=True"
    assert found["Deployment/evaluate"] == "no conditions yet"
    assert found["ScaledJob/train"] == "no conditions yet"
    assert found[f"Namespace/{target.namespace}"] == "phase Active"


def test_cli_deploy_status_delete(kube: KubeServer, project_dir: Path) -> None:
    runner = CliRunner()
    common = ["--kubeconfig", str(kube.kubeconfig)]
    deploy_args = ["deploy", str(project_dir), *common, "--image-registry", "registry.test:5000"]
    deploy_args += ["--bus-url", "redis://redis.ml:6379"]
    dry = runner.invoke(app, [*deploy_args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "created Deployment/evaluate" in dry.output and "dry run" in dry.output
    assert kube.get(f"/api/v1/namespaces/{project_dir.name}") is None
    done = runner.invoke(app, [*deploy_args, "--target", "kubernetes"])
    assert done.exit_code == 0, done.output
    assert "created ScaledJob/train" in done.output
    status = runner.invoke(app, ["cluster-status", str(project_dir), *common])
    assert status.exit_code == 0, status.output
    assert "Deployment/evaluate" in status.output and "no conditions yet" in status.output
    gone = runner.invoke(app, ["delete", str(project_dir), *common])
    assert gone.exit_code == 0, gone.output
    assert "deleted Deployment/evaluate" in gone.output


def test_cli_reports_errors(tmp_path: Path, project_dir: Path) -> None:
    config = tmp_path / "kubeconfig"
    url = f"https://127.0.0.1:{free_port()}"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": url}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
    }))  # fmt: skip
    args = ["--kubeconfig", str(config), "--bus-url", "redis://redis:6379"]
    result = CliRunner().invoke(app, ["deploy", str(project_dir), *args])
    assert result.exit_code == 1
    assert f"cannot reach the API server at {url}" in result.output
    result = CliRunner().invoke(app, ["deploy", str(project_dir), "--target", "nomad"])
    assert result.exit_code == 2 and "unknown target" in result.output


def test_kind_the_cluster_does_not_serve(cluster, project_dir) -> None:
    objects, target = render(project_dir)
    objects[-1] = {**objects[-1], "apiVersion": "keda.sh/v9", "kind": "ScaledWidget"}
    with pytest.raises(
        KindNotServedError, match=r"no ScaledWidget in keda.sh/v9 \(is KEDA installed"
    ):
        deploy(cluster, objects, target)
