"""Knative Services as Cumulo renders them, checked against Knative Serving's own CRD."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.errors import SpecError
from cumulo.manifests import canary_traffic, crd_schema, knative_service, validate_manifest
from cumulo.manifests.knative import GPU_RESOURCE, MAX_SCALE, MIN_SCALE

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
SERVICE_CRD = SHARED / "crds" / "knative-serving" / "service.yaml"


@pytest.fixture(scope="module")
def schema():
    return crd_schema(SERVICE_CRD, "v1")


RENDERED = {
    "minimal": lambda: knative_service("predict", "cumulo/predict:latest"),
    "everything": lambda: knative_service(
        "predict",
        "registry.local/predict@sha256:" + "a" * 64,
        namespace="ml",
        env={"CUMULO_PARAMS": '{"model": "iris", "version": 3}', "CUMULO_FUNCTION": "predict"},
        min_scale=1,
        max_scale=5,
        concurrency=8,
        gpu=1,
        revision="predict-v3",
        traffic=canary_traffic("predict-v3", "predict-v2", 10),
        labels={"cumulo.dev/model": "iris"},
    ),
    "all traffic to latest": lambda: knative_service(
        "predict", "img", revision="predict-v1", traffic=canary_traffic("predict-v1", None, 30)
    ),
}


@pytest.mark.parametrize("case", RENDERED)
def test_rendered_services_validate_against_the_crd(schema, case):
    validate_manifest(RENDERED[case](), schema)


def test_the_check_catches_what_the_api_server_would_refuse_or_prune(schema):
    service = knative_service("predict", "img", revision="predict-v1")
    service["spec"]["template"]["spec"]["containerConcurrency"] = "eight"
    service["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"

    with pytest.raises(SpecError) as caught:
        validate_manifest(service, schema)

    paths = {problem.path for problem in caught.value.problems}
    assert paths == {"spec.template.spec.containerConcurrency", "spec.template.spec.containers[0]"}
    assert all(problem.file == "Service/predict" for problem in caught.value.problems)
    assert "'imagePullPolicyy' was unexpected" in str(caught.value)


def test_scale_concurrency_and_gpu_land_where_knative_reads_them():
    service = knative_service(
        "predict", "img", min_scale=2, max_scale=4, concurrency=3, gpu=1, env={"A": "1"}
    )
    template = service["spec"]["template"]
    assert template["metadata"]["annotations"] == {MIN_SCALE: "2", MAX_SCALE: "4"}
    assert template["spec"]["containerConcurrency"] == 3
    container = template["spec"]["containers"][0]
    assert container["resources"] == {"limits": {GPU_RESOURCE: "1"}}
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert "traffic" not in service["spec"]


def test_no_gpu_no_max_scale_leaves_them_out():
    template = knative_service("predict", "img")["spec"]["template"]
    assert MAX_SCALE not in template["metadata"]["annotations"]
    assert "resources" not in template["spec"]["containers"][0]


def test_canary_splits_between_tagged_revisions():
    assert canary_traffic("predict-v3", "predict-v2", 25) == [
        {"revisionName": "predict-v3", "latestRevision": False, "percent": 25, "tag": "candidate"},
        {"revisionName": "predict-v2", "latestRevision": False, "percent": 75, "tag": "current"},
    ]


@pytest.mark.parametrize(("previous", "percent"), [(None, 40), ("predict-v2", 0)])
def test_no_canary_sends_everything_to_the_latest_revision(previous, percent):
    assert canary_traffic("predict-v3", previous, percent) == [
        {"latestRevision": True, "percent": 100}
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: canary_traffic("a-1", "a-0", 101), "between 0 and 100"),
        (lambda: knative_service("Predict", "img"), "not a DNS-1035 label"),
        (lambda: knative_service("predict", "img", revision="other-v1"), "must start with"),
        (lambda: knative_service("predict", "img", min_scale=3, max_scale=2), "below min_scale"),
        (lambda: knative_service("predict", ""), "needs an image"),
    ],
)
def test_bad_arguments_say_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_an_unknown_crd_version_is_a_spec_error():
    with pytest.raises(SpecError, match="no version 'v9'"):
        crd_schema(SERVICE_CRD, "v9")
