"""Whole projects rendered for a cluster, checked against the CRDs and Kubernetes' own schemas."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cumulo.cli import app
from cumulo.errors import ManifestError
from cumulo.events.dapr_rules import filter_expression
from cumulo.manifests.options import Canary, RenderOptions
from cumulo.manifests.render import render_project, to_yaml
from cumulo.manifests.schemas import object_problems
from cumulo.spec import Filter, load_project

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / ".." / "shared" / "crds"
RICH = Path(__file__).parent / "rich"
BUS = "redis://redis.cumulo:6379"
RICH_OPTIONS = RenderOptions(
    image_registry="registry.example.com/ml",
    namespace="ml",
    revision="b42",
    canary={"predict": Canary("predict-b41", 10)},
)


def render(folder: Path, options: RenderOptions | None = None) -> list[dict]:
    return render_project(load_project(folder), options or RenderOptions(bus_url=BUS))


@pytest.fixture(scope="module")
def rich() -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in render(RICH, RICH_OPTIONS)}


PROJECTS = {
    "hello": lambda: render(ROOT / "examples" / "hello"),
    "ml-pipeline": lambda: render(ROOT / "examples" / "ml-pipeline"),
    "rich": lambda: render(RICH, RICH_OPTIONS),
}


@pytest.mark.parametrize("project", PROJECTS)
def test_every_object_validates_against_its_schema(project):
    objects = PROJECTS[project]()
    problems = [str(p) for o in objects for p in object_problems(o, CRDS)]
    assert problems == []
    assert {"Namespace", "ServiceAccount"} <= {o["kind"] for o in objects}


@pytest.mark.parametrize("project", PROJECTS)
def test_every_object_carries_the_labels_deploy_prunes_by(project):
    for o in PROJECTS[project]():
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "cumulo"
        assert labels["app.kubernetes.io/part-of"] == ("rich" if project == "rich" else project)


def test_the_schema_check_catches_a_misspelt_field():
    deployment = next(
        o for o in render(ROOT / "examples" / "ml-pipeline") if o["kind"] == "Deployment"
    )
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    problems = object_problems(deployment, CRDS)
    assert [p.path for p in problems] == ["spec.template.spec.containers[0]"]


def test_an_http_function_is_a_knative_service_with_a_canary(rich):
    service = rich["Service", "predict"]
    template = service["spec"]["template"]
    assert template["metadata"]["name"] == "predict-b42"
    assert template["metadata"]["annotations"] == {
        "autoscaling.knative.dev/min-scale": "1",
        "autoscaling.knative.dev/max-scale": "6",
    }
    assert template["spec"]["containerConcurrency"] == 8
    assert template["spec"]["serviceAccountName"] == "rich"
    container = template["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/ml/rich-predict:latest"
    assert container["command"][:4] == ["cumulo", "worker", "--target", "handlers:predict"]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "1Gi", "nvidia.com/gpu": "1"},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["CUMULO_PARAMS"]["value"] == '{"model":"churn"}'
    assert env["CUMULO_FUNCTION"]["value"] == "predict"
    assert env["MODEL_STORE_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "model-store", "key": "token"}
    }
    assert [(t.get("revisionName"), t["percent"]) for t in service["spec"]["traffic"]] == [
        ("predict-b42", 10),
        ("predict-b41", 90),
    ]


def test_an_event_consumer_is_a_dapr_deployment_scaled_by_keda(rich):
    pod = rich["Deployment", "enrich"]["spec"]["template"]
    assert pod["metadata"]["annotations"] == {
        "dapr.io/enabled": "true",
        "dapr.io/app-id": "enrich",
        "dapr.io/app-port": "8080",
        "dapr.io/app-protocol": "http",
    }
    scaled = rich["ScaledObject", "enrich"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "enrich"
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"], scaled["cooldownPeriod"]) == (
        0,
        10,
        120,
    )
    by_type = {t["type"]: t for t in scaled["triggers"]}
    assert set(by_type) == {"redis-streams", "nats-jetstream"}  # the dapr:// bus has no scaler
    assert by_type["redis-streams"]["metadata"] == {
        "address": "redis.data:6380",
        "stream": "raw",
        "consumerGroup": "enrich",
        "lagCount": "4",  # scales from zero: only lag wakes a group with no consumers
        "enableTLS": "false",
    }
    assert by_type["redis-streams"]["authenticationRef"] == {"name": "cumulo-bus-fast"}
    assert by_type["nats-jetstream"]["metadata"] == {
        "natsServerMonitoringEndpoint": "nats.data:8222",
        "account": "$G",
        "stream": "ML",
        "consumer": "enrich",
        "lagThreshold": "4",
    }


def test_a_consumer_that_never_scales_to_zero_counts_pending_entries(rich):
    scaled = rich["ScaledObject", "steady"]["spec"]
    assert scaled["minReplicaCount"] == 2
    assert scaled["triggers"][0]["metadata"]["pendingEntriesCount"] == "16"
    assert rich["Deployment", "steady"]["spec"]["replicas"] == 2


def test_subscriptions_carry_topic_filters_and_dead_letters(rich):
    spec = rich["Subscription", "enrich-fast"]["spec"]
    assert (spec["pubsubname"], spec["topic"], spec["deadLetterTopic"]) == (
        "fast",
        "raw",
        "raw-dead",
    )
    assert spec["routes"]["rules"] == [
        {
            "match": '(event.type.startsWith("dev.cumulo.raw.") || event.subject.endsWith(".csv"))'
            ' && !(event.source == "/test")',
            "path": "/dapr/events",
        }
    ]
    assert rich["Subscription", "enrich-external"]["spec"]["pubsubname"] == "shared-pubsub"
    assert rich["Subscription", "enrich-fast"]["scopes"] == ["enrich"]


def test_delivery_policies_become_a_resiliency(rich):
    resiliency = rich["Resiliency", "enrich"]["spec"]
    retries = resiliency["policies"]["retries"]
    assert retries["retry-fast"] == {"policy": "constant", "duration": "2s", "maxRetries": 5}
    assert retries["retry-stream"] == {
        "policy": "exponential",
        "maxInterval": "300s",
        "maxRetries": 3,
    }
    assert resiliency["policies"]["timeouts"]["timeout-fast"] == "30s"
    assert (
        resiliency["targets"]["components"]["shared-pubsub"]["inbound"]["retry"] == "retry-external"
    )


def test_a_training_function_is_a_scaled_job_on_gpus(rich):
    spec = rich["ScaledJob", "train"]["spec"]
    job = spec["jobTargetRef"]
    assert (job["activeDeadlineSeconds"], job["backoffLimit"]) == (7200, 0)  # the bus retries
    assert spec["maxReplicaCount"] == 3
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert spec["triggers"] == [
        {
            "type": "kafka",
            "metadata": {
                "bootstrapServers": "kafka-0.kafka:9092,kafka-1.kafka:9092",
                "consumerGroup": "trigger/train-0",  # what `cumulo job` reads
                "topic": "datasets",
                "lagThreshold": "1",
            },
        }
    ]


def test_buses_become_dapr_components(rich):
    kafka = rich["Component", "default"]["spec"]
    assert kafka["type"] == "pubsub.kafka"
    assert {m["name"]: m["value"] for m in kafka["metadata"]} == {
        "brokers": "kafka-0.kafka:9092,kafka-1.kafka:9092",
        "authType": "none",
    }
    redis = {m["name"]: m for m in rich["Component", "fast"]["spec"]["metadata"]}
    assert redis["redisHost"]["value"] == "redis.data:6380"
    assert redis["redisPassword"] == {
        "name": "redisPassword",
        "secretKeyRef": {"name": "cumulo-bus-fast", "key": "password"},
    }
    nats = {m["name"]: m["value"] for m in rich["Component", "stream"]["spec"]["metadata"]}
    assert nats == {"natsURL": "nats://nats.data:4222", "streamName": "ML"}
    assert ("Component", "external") not in rich
    auth = rich["TriggerAuthentication", "cumulo-bus-fast"]["spec"]["secretTargetRef"]
    assert {(a["parameter"], a["key"]) for a in auth} == {
        ("username", "username"),
        ("password", "password"),
    }


def test_no_secret_value_is_ever_rendered(rich):
    text = to_yaml(rich.values())
    assert "s3cr3t-bus-password" not in text
    workloads = [o for o in rich.values() if o["kind"] in ("ScaledJob", "Deployment")]
    env = {e["name"]: e for o in workloads for e in _container(o)["env"]}
    assert env["WANDB_API_KEY"] == {
        "name": "WANDB_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "api-key"}},
    }
    for name in ("GITHUB_WEBHOOK_SECRET", "HOOK_TOKEN", "S3_CREDS_ACCESS", "S3_CREDS_SECRET"):
        assert set(env[name]) == {"name", "valueFrom"}


def _container(workload: dict) -> dict:
    spec = workload["spec"]
    return spec.get("jobTargetRef", spec)["template"]["spec"]["containers"][0]


def test_a_cron_source_is_a_cron_job_publishing_one_tick(rich):
    spec = rich["CronJob", "hourly"]["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == (
        "0 * * * *",
        "Europe/Paris",
        "Forbid",
    )
    assert spec["startingDeadlineSeconds"] == 60  # missed: skip
    command = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == [
        "cumulo", "publish", "dev.cumulo.tick", "--data", '{"window": "1h"}',
        "--source", "/cumulo/sources/hourly", "--topic", "datasets", "--dir", "/app",
    ]  # fmt: skip


def test_other_sources_run_as_deployments_and_webhooks_get_services(rich):
    for name in ("pushes", "hook", "landing", "orders"):
        container = rich["Deployment", name]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == [
            "cumulo", "source", "run", name, "--dir", "/app", "--host", "0.0.0.0",
        ]  # fmt: skip
        assert container["image"] == "registry.example.com/ml/rich:latest"
    assert {n for k, n in rich if k == "Service"} == {"predict", "pushes", "hook"}


def test_only_the_deploy_function_may_touch_the_api():
    objects = render(ROOT / "examples" / "ml-pipeline")
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    assert accounts["ml-pipeline"]["automountServiceAccountToken"] is False
    role = next(o for o in objects if o["kind"] == "Role")
    assert role["rules"] == [
        {
            "apiGroups": ["serving.knative.dev"],
            "resources": ["services"],
            "verbs": ["get", "list", "watch", "create", "update", "patch"],
        }
    ]
    deploy = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "deploy"
    )
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "ml-pipeline-deployer"


def test_bad_options_are_all_reported_at_once():
    options = RenderOptions(
        namespace="Bad_NS",
        image_registry="https://registry",
        bus_url="sqlite:///x.db",
        canary={"predict": Canary("predict-v1", 120)},
    )
    with pytest.raises(ManifestError) as caught:
        render(RICH, options)
    paths = sorted(p.path for p in caught.value.problems)
    assert paths == ["busUrl", "canary.predict", "canary.predict", "imageRegistry", "namespace"]
    assert "a canary needs a revision" in str(caught.value)


def test_a_bus_no_cluster_can_reach_is_a_problem():
    with pytest.raises(ManifestError, match=r"EventBus/default:spec.url: .*--bus-url"):
        render(ROOT / "examples" / "ml-pipeline", RenderOptions())


def test_what_a_cluster_cannot_do_is_reported(tmp_path):
    (tmp_path / "cumulo.yaml").write_text(
        "apiVersion: cumulo.dev/v1alpha1\nkind: EventSource\nmetadata: {name: tick}\n"
        "spec: {cron: {schedule: '*/5 * * * * *', missed: fire-all}, sink: {bus: other}}\n"
        "---\napiVersion: cumulo.dev/v1alpha1\nkind: EventBus\nmetadata: {name: other}\n"
        "spec: {url: 'redis://r:6379'}\n"
    )
    with pytest.raises(ManifestError) as caught:
        render(
            tmp_path, RenderOptions(bus_url=BUS, canary={"nope": Canary("x-1", 5)}, revision="r1")
        )
    paths = {(p.file, p.path) for p in caught.value.problems}
    assert paths == {
        ("EventSource/tick", "spec.cron.missed"),
        ("EventSource/tick", "spec.cron.schedule"),
        ("EventSource/tick", "spec.sink.bus"),
        ("options", "canary.nope"),
    }


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([], None),
        (
            [Filter(exact={"type": "a", "source": "s"})],
            '(event.source == "s" && event.type == "a")',
        ),
        ([Filter(exact={"cumulosource": "x"})], None),  # CEL cannot see extensions: widened
        ([Filter(any=[Filter(exact={"type": "a"}), Filter(exact={"myext": "b"})])], None),
        (
            [Filter(all=[Filter(exact={"type": "a"}), Filter(exact={"myext": "b"})])],
            '(event.type == "a")',
        ),
        ([Filter(not_=Filter(suffix={"type": ".x"}))], '!(event.type.endsWith(".x"))'),
    ],
)
def test_filters_become_cel_rules_widened_never_narrowed(filters, expected):
    assert filter_expression(filters) == expected


def test_the_cli_prints_the_objects_as_yaml():
    result = CliRunner().invoke(
        app,
        ["manifests", str(ROOT / "examples" / "hello"), "--bus-url", BUS, "--namespace", "demo"],
    )
    assert result.exit_code == 0, result.output
    objects = list(yaml.safe_load_all(result.stdout))
    assert {o["metadata"].get("namespace", "demo") for o in objects} == {"demo"}
    assert ("Service", "hello") in {(o["kind"], o["metadata"]["name"]) for o in objects}


def test_the_cli_says_what_is_wrong_with_its_options():
    result = CliRunner().invoke(
        app, ["manifests", str(ROOT / "examples" / "hello"), "--image-registry", "http://x"]
    )
    assert result.exit_code == 2
    assert "options:imageRegistry" in result.output


def test_a_job_scaler_watches_the_names_cumulo_job_reads_on_each_broker():
    from cumulo.events.bus.names import group_name
    from cumulo.manifests.brokers import broker

    group = "trigger/train-0"
    assert broker("b", "redis://r:6379").pulled_names("default", group) == ("default", group)
    assert broker("b", "kafka://k:9092?prefix=ml").pulled_names("default", group) == (
        "ml.default",
        "ml.trigger/train-0",
    )
    topic, consumer = broker("b", "nats://n:4222?prefix=ml").pulled_names("default", group)
    assert (topic, consumer) == ("default", "trigger~2Ftrain-0")
    assert group_name(consumer) == group


def _commands(objects: list[dict]) -> list[list[str]]:
    """The command of every container in the rendered objects."""
    found = []
    for o in objects:
        spec = o.get("spec", {})
        pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
        found += [c["command"] for c in pod.get("containers", []) if "command" in c]
    return found


@pytest.mark.parametrize("project", PROJECTS)
def test_every_server_in_a_pod_listens_on_all_interfaces(project):
    servers = [c for c in _commands(PROJECTS[project]()) if c[1] in ("worker", "source")]
    assert servers, "the project renders workers or sources"
    for command in servers:  # `cumulo worker` and `cumulo source run` default to 127.0.0.1
        assert command[-2:] == ["--host", "0.0.0.0"], command


def test_only_a_public_function_is_exposed_outside_the_cluster(rich):
    public = rich["Service", "predict"]["metadata"]["labels"]  # access: public
    assert "networking.knative.dev/visibility" not in public
    hello = next(o for o in render(ROOT / "examples" / "hello") if o["kind"] == "Service")
    labels = hello["metadata"]["labels"]  # access: token, the default
    assert labels["networking.knative.dev/visibility"] == "cluster-local"
    assert object_problems(hello, CRDS) == []


def test_a_secret_named_by_its_variable_alone_is_a_secret_reference(rich):
    container = rich["Service", "predict"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["MODEL_SIGNING_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "model-signing-key", "key": "model-signing-key"}
    }


def test_self_hosted_and_cluster_dapr_say_the_same_for_each_trigger(rich):
    """One renderer: a trigger's routes, topic, dead letters and retry policy are the same
    whether the embedded platform's sidecar or the cluster's Subscription delivers it."""
    from cumulo.runtimes.dapr import resiliency, subscription

    project = load_project(RICH)
    triggers = project.all_triggers()
    compared = 0
    for trigger in triggers.values():
        cluster = rich.get(("Subscription", trigger.name))
        if cluster is None:
            continue  # not a Dapr-delivered trigger in this rendering
        pubsub = cluster["spec"]["pubsubname"]
        binding = trigger.spec.model_copy(update={"bus": pubsub})
        local = subscription(trigger.name, binding, route="/dapr/events")
        assert local["spec"] == cluster["spec"], trigger.name
        cluster_policies = rich["Resiliency", trigger.spec.function]["spec"]["policies"]
        local_policies = resiliency("r", [binding])["spec"]["policies"]
        assert list(local_policies["retries"].values()) == [
            cluster_policies["retries"][f"retry-{trigger.spec.bus}"]
        ], trigger.name
        compared += 1
    assert compared >= 3
