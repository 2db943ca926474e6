"""deploy: promotion, the rendered Knative Service, the deployed event, and idempotence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cumulo.config import FunctionSettings
from cumulo.errors import PermanentError
from cumulo.events.event import new_event
from cumulo.events.lineage import MODEL_DEPLOYED, MODEL_EVALUATED
from cumulo.functions import deploy as deploy_module
from cumulo.functions.context import FunctionContext
from cumulo.functions.deploy import deploy_evaluated, repository, resolve_image
from cumulo.functions.model_registry import ModelRegistry
from cumulo.manifests import crd_schema, validate_manifest

SERVICE_CRD = Path(__file__).resolve().parents[2] / ".." / "shared" / "crds" / "knative-serving"
DIGEST = "sha256:" + "b" * 64


def context(tmp_path: Path, **params: object) -> FunctionContext:
    return FunctionContext(FunctionSettings(function="deploy", state_dir=tmp_path, params=params))


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    models = ModelRegistry(tmp_path / "models.db")
    for _ in range(3):
        models.register("iris", str(tmp_path / "bundle.joblib"), metrics={"accuracy": 0.9})
    return models


def evaluated(version: int, *, promote: bool = True, champion: int | None = None, **lineage):
    data = {
        "model": "iris",
        "version": version,
        "metric": "accuracy",
        "direction": "maximize",
        "candidate": {"metrics": {"accuracy": 0.95}},
        "champion": {"version": champion, "metrics": {"accuracy": 0.9}} if champion else None,
        "promote": promote,
        "reason": "better" if promote else "worse",
        "lineage": {"runId": "run-1", "datasetUri": "s3://data/iris.csv", **lineage},
    }
    return new_event(MODEL_EVALUATED, "/cumulo/functions/evaluate", data, subject="iris")


def test_promotes_and_answers_deployed_with_lineage(tmp_path, registry):
    registry.promote("iris", 1)

    answer = deploy_evaluated(context(tmp_path), evaluated(2, champion=1))

    assert registry.champion_version("iris") == 2
    assert answer.type == MODEL_DEPLOYED and answer.subject == "iris"
    manifest = tmp_path / "deployments" / "iris-v2.yaml"
    assert answer.data == {
        "model": "iris",
        "version": 2,
        "previous": 1,
        "manifest": str(manifest),
        "canaryPercent": 0,
        "service": "predict",
        "namespace": "default",
        "image": "cumulo/predict:latest",
        "lineage": {
            "datasetUri": "s3://data/iris.csv",
            "runId": "run-1",
            "model": "iris",
            "modelVersion": 2,
        },
    }


def test_the_manifest_is_a_valid_knative_service_for_the_version(tmp_path, registry):
    deploy_evaluated(context(tmp_path, namespace="ml", maxScale=3, gpu=1), evaluated(1))

    service = yaml.safe_load((tmp_path / "deployments" / "iris-v1.yaml").read_text())
    validate_manifest(service, crd_schema(SERVICE_CRD / "service.yaml", "v1"))
    assert service["metadata"]["namespace"] == "ml"
    template = service["spec"]["template"]
    assert template["metadata"]["name"] == "predict-v1"
    env = {e["name"]: e["value"] for e in template["spec"]["containers"][0]["env"]}
    assert json.loads(env["CUMULO_PARAMS"]) == {"model": "iris", "version": 1}
    assert service["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]


def test_a_canary_splits_traffic_with_the_previous_revision(tmp_path, registry):
    registry.promote("iris", 1)
    ctx = context(tmp_path, canaryPercent=20, service="serve-iris")

    answer = deploy_evaluated(ctx, evaluated(2, champion=1))

    service = yaml.safe_load(Path(answer.data["manifest"]).read_text())
    validate_manifest(service, crd_schema(SERVICE_CRD / "service.yaml", "v1"))
    assert answer.data["canaryPercent"] == 20
    assert [(t["revisionName"], t["percent"], t["tag"]) for t in service["spec"]["traffic"]] == [
        ("serve-iris-v2", 20, "candidate"),
        ("serve-iris-v1", 80, "current"),
    ]


def test_an_event_that_does_not_promote_does_nothing(tmp_path, registry):
    registry.promote("iris", 1)

    assert deploy_evaluated(context(tmp_path), evaluated(2, promote=False)) is None
    assert registry.champion_version("iris") == 1
    assert not (tmp_path / "deployments").exists()


def test_the_same_event_twice_promotes_once(tmp_path, registry):
    registry.promote("iris", 1)
    event = evaluated(2, champion=1)

    first = deploy_evaluated(context(tmp_path), event)
    second = deploy_evaluated(context(tmp_path), event)

    assert [h["version"] for h in registry.history("iris")] == [1, 2]
    assert second.data == first.data  # the redelivery answers the same, previous included


def test_a_stale_redelivery_after_a_rollback_is_ignored(tmp_path, registry):
    registry.promote("iris", 1)
    event = evaluated(2, champion=1)
    deploy_evaluated(context(tmp_path), event)
    registry.rollback("iris")

    assert deploy_evaluated(context(tmp_path), event) is None
    assert registry.champion_version("iris") == 1


def test_the_image_built_in_the_chain_is_used(tmp_path, registry):
    answer = deploy_evaluated(
        context(tmp_path, image="registry.local:5000/ml/predict:dev"),
        evaluated(1, imageDigest=DIGEST),
    )
    assert answer.data["image"] == f"registry.local:5000/ml/predict@{DIGEST}"


@pytest.mark.parametrize(
    ("configured", "digest", "image"),
    [
        (None, None, "cumulo/predict:latest"),
        ("me/predict:2", None, "me/predict:2"),
        (None, DIGEST, f"cumulo/predict@{DIGEST}"),
        ("me/predict:2", f"other/img@{DIGEST}", f"other/img@{DIGEST}"),
        ("localhost:5000/p@sha256:" + "c" * 64, DIGEST, f"localhost:5000/p@{DIGEST}"),
    ],
)
def test_resolve_image(configured, digest, image):
    assert resolve_image(configured, digest) == image


def test_repository_keeps_a_registry_port():
    assert repository("registry:5000/team/predict:1.2") == "registry:5000/team/predict"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"promote": True, "version": 1}, "no 'model' name"),
        ({"promote": True, "model": "iris"}, "no model 'version'"),
        ({"promote": True, "model": "iris", "version": "two"}, "'two' is not a number"),
        ({"promote": True, "model": "iris", "version": 9}, "model 'iris' has no version 9"),
        (
            {"promote": True, "model": "iris", "version": 1, "params": {"canaryPercent": 120}},
            "less than or equal to 100",
        ),
    ],
)
def test_events_that_cannot_succeed_are_permanent_errors(tmp_path, registry, data, message):
    event = new_event(MODEL_EVALUATED, "/test", data)
    with pytest.raises(PermanentError, match=message):
        deploy_evaluated(context(tmp_path), event)


def test_the_function_reads_its_platform_settings(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("CUMULO_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CUMULO_FUNCTION", "deploy")
    monkeypatch.setenv("CUMULO_PARAMS", json.dumps({"namespace": "prod"}))

    answer = deploy_module.deploy(evaluated(3))

    assert answer.data["namespace"] == "prod"
    assert answer.source == "/cumulo/functions/deploy"
    assert registry.champion_version("iris") == 3
