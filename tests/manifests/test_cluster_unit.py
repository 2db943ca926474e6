"""The cluster side without a cluster: API paths, the server's refusals, kubeconfig mistakes,
an unreachable server, what a deploy reports, and how live objects' conditions read.

Everything here runs offline. What needs a real API server (applying, pruning,
deleting) is covered by the tests that start one (``tests/servers/kube.py``); these
check the parts that decide what a user is told.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cumulo.cli import app
from cumulo.errors import (
    ClusterAuthError,
    ClusterForbiddenError,
    ClusterRequestError,
    ClusterUnreachableError,
    KubeconfigError,
    ObjectInvalidError,
)
from cumulo.manifests.apply import Change, Target, _action
from cumulo.manifests.cluster import Cluster, Resource, request_error
from cumulo.manifests.options import RenderOptions
from cumulo.manifests.status import NO_CONDITIONS, Condition, object_status
from cumulo.spec import Project
from cumulo.spec.load import load_project

runner = CliRunner(env={"COLUMNS": "200"})

FUNCTION_YAML = """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: predict}
spec: {handler: 'main:predict'}
"""


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kubeconfig(path: Path, server: str, context: str = "test") -> Path:
    """A kubeconfig with one cluster, user (a token) and context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def unreachable(tmp_path: Path) -> Path:
    """A kubeconfig naming a loopback port nothing listens on."""
    return kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{closed_port()}")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CUMULO_BUS_URL", raising=False)
    root = tmp_path / "My Shop"
    root.mkdir()
    (root / "cumulo.yaml").write_text(FUNCTION_YAML)
    (root / "main.py").write_text("def predict(request):\n    return 'ok'\n")
    return root


# --- API paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "namespace", "name", "path"),
    [
        (Resource("v1", "Service", "services", True), "ml", "web", "/api/v1/namespaces/ml/services/web"),
        (Resource("v1", "Namespace", "namespaces", False), "ml", "ml", "/api/v1/namespaces/ml"),
        (Resource("apps/v1", "Deployment", "deployments", True), "ml", None, "/apis/apps/v1/namespaces/ml/deployments"),
        (Resource("keda.sh/v1alpha1", "ScaledJob", "scaledjobs", True), None, None, "/apis/keda.sh/v1alpha1/scaledjobs"),
    ],
)  # fmt: skip
def test_resource_paths_follow_the_kubernetes_api_layout(
    resource: Resource, namespace: str | None, name: str | None, path: str
) -> None:
    """Core kinds live under /api/v1, groups under /apis/<group>/<version>; cluster-scoped
    kinds ignore the namespace."""
    assert resource.path(namespace, name) == path


def test_a_resource_knows_its_group() -> None:
    """The API group is the apiVersion before the slash; core v1 has none."""
    assert Resource("serving.knative.dev/v1", "Service", "services", True).group == (
        "serving.knative.dev"
    )
    assert Resource("v1", "Service", "services", True).group == ""


# --- the server's refusals -------------------------------------------------------------------------


def status_body(message: str, causes: list[dict[str, str]] | None = None) -> bytes:
    body: dict[str, Any] = {"kind": "Status", "status": "Failure", "message": message}
    if causes is not None:
        body["details"] = {"causes": causes}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, ClusterAuthError),
        (403, ClusterForbiddenError),
        (400, ObjectInvalidError),
        (422, ObjectInvalidError),
        (409, ClusterRequestError),
        (500, ClusterRequestError),
    ],
)
def test_refusals_become_the_error_of_their_status(status: int, kind: type) -> None:
    """401, 403 and 400/422 have errors of their own; other statuses are the base error."""
    error = request_error(status, status_body("no"), "Deployment/web")

    assert type(error) is kind
    assert error.status == status
    assert str(error) == "Deployment/web: no"


def test_causes_are_the_message_each_with_its_field() -> None:
    """A 422's causes (field: message) are listed, in order, instead of the summary."""
    causes = [
        {"field": "spec.replicas", "message": "must be greater than or equal to 0"},
        {"reason": "FieldValueRequired"},
    ]
    error = request_error(422, status_body("Deployment is invalid", causes), "Deployment/web")

    assert error.causes == (
        "spec.replicas: must be greater than or equal to 0",
        "FieldValueRequired",
    )
    assert str(error) == (
        "Deployment/web: spec.replicas: must be greater than or equal to 0; FieldValueRequired"
    )


def test_a_wrongly_typed_field_in_a_server_side_apply_is_an_invalid_object() -> None:
    """Server-side apply reports a wrong type as a 500; it reads as the field and the reason."""
    message = (
        "failed to create typed patch object (ml/web; apps/v1, Kind=Deployment): "
        ".spec.replicas: expected numeric, got string"
    )

    error = request_error(500, status_body(message), "Deployment/web")

    assert isinstance(error, ObjectInvalidError)
    assert str(error) == "Deployment/web: spec.replicas: expected numeric, got string"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"upstream connect error", "upstream connect error"),
        (b"", "HTTP 503"),
        (b"[1, 2]", "[1, 2]"),
        (b"x" * 600, "x" * 500),
    ],
)
def test_a_body_that_is_no_status_is_quoted(body: bytes, message: str) -> None:
    """Text from a proxy is shown (cut at 500 characters); nothing at all names the status."""
    error = request_error(503, body, "")

    assert str(error) == message


# --- connecting ----------------------------------------------------------------------------------


def test_a_missing_kubeconfig_is_a_kubeconfig_error_naming_it(tmp_path: Path) -> None:
    """A kubeconfig path that does not exist is refused naming that path."""
    missing = tmp_path / "nope.yaml"

    with pytest.raises(KubeconfigError, match=r"nope\.yaml"):
        Cluster.connect(missing)


def test_yaml_that_is_not_a_kubeconfig_is_a_kubeconfig_error(tmp_path: Path) -> None:
    """A YAML file without clusters and contexts is refused as a kubeconfig, not a traceback."""
    path = tmp_path / "config"
    path.write_text("just: [a, list]\n")

    with pytest.raises(KubeconfigError, match="Invalid kube-config file") as raised:
        Cluster.connect(path)

    assert str(raised.value).startswith(str(path))


def test_an_unknown_context_is_a_kubeconfig_error(unreachable: Path) -> None:
    """A --context the kubeconfig does not define is refused naming it."""
    with pytest.raises(KubeconfigError, match="elsewhere"):
        Cluster.connect(unreachable, context="elsewhere")


def test_a_server_nothing_listens_on_is_unreachable_naming_it(unreachable: Path) -> None:
    """Discovery against a closed port is ClusterUnreachableError with the server's URL."""
    with Cluster.connect(unreachable) as cluster:
        server = cluster.server
        with pytest.raises(ClusterUnreachableError, match="cannot reach the API server") as raised:
            cluster.resource("apps/v1", "Deployment")

    assert server.startswith("https://127.0.0.1:")
    assert server in str(raised.value)


# --- what deploy and delete report -----------------------------------------------------------------


def live(version: str, **spec: Any) -> dict[str, Any]:
    metadata = {"name": "web", "namespace": "ml", "resourceVersion": version, "uid": "u-1"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def test_an_object_that_was_not_there_is_created() -> None:
    """No live object before the apply: the change is 'created'."""
    assert _action(None, live("1", replicas=1)) == "created"


def test_an_apply_that_changes_nothing_is_unchanged() -> None:
    """Same resourceVersion and content: unchanged (a second deploy changes nothing)."""
    assert _action(live("7", replicas=1), live("7", replicas=1)) == "unchanged"


def test_a_new_resource_version_or_content_is_configured() -> None:
    """A write the server recorded (new version), or a dry run whose content differs."""
    assert _action(live("7", replicas=1), live("8", replicas=1)) == "configured"
    assert _action(live("7", replicas=1), live("7", replicas=2)) == "configured"


def test_fields_the_server_changes_on_every_write_do_not_count() -> None:
    """managedFields, uid, generation and timestamps are not content."""
    before = live("7", replicas=1)
    after = live("7", replicas=1)
    after["metadata"] |= {"managedFields": [{"manager": "cumulo"}], "generation": 4, "uid": "u-2"}

    assert _action(before, after) == "unchanged"


def test_changes_read_like_kubectl() -> None:
    """A change prints as `<action> Kind/name [-n namespace] [(note)]`."""
    assert str(Change("created", "Deployment", "web", "ml")) == "created Deployment/web -n ml"
    assert str(Change("deleted", "Namespace", "ml")) == "deleted Namespace/ml"
    assert str(Change("created", "Service", "web", "ml", note="namespace is new")) == (
        "created Service/web -n ml (namespace is new)"
    )


def test_the_target_is_the_project_label_and_its_namespace(project: Path) -> None:
    """The folder name becomes a DNS label; the namespace defaults to it; options win."""
    loaded = load_project(project)

    default = Target.of(loaded)
    chosen = Target.of(loaded, RenderOptions(namespace="prod", project="shop"))

    assert (default.project, default.namespace) == ("my-shop", "my-shop")
    assert (chosen.project, chosen.namespace) == ("shop", "prod")
    assert (
        default.selector == "app.kubernetes.io/managed-by=cumulo,app.kubernetes.io/part-of=my-shop"
    )


def test_an_empty_project_folder_name_falls_back_to_cumulo(tmp_path: Path) -> None:
    """A folder whose name has no letters or digits still gives a valid label."""
    folder = tmp_path / "___"
    folder.mkdir()

    assert Target.of(Project(folder)).project == "cumulo"


# --- conditions of live objects -----------------------------------------------------------------


def test_conditions_are_shown_with_the_reason_only_when_not_true() -> None:
    """A failing condition shows its reason and message; a true one only its status."""
    obj = {
        "kind": "Service",
        "metadata": {"name": "predict", "namespace": "ml"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "RevisionMissing", "message": "no image"},
                {"type": "RoutesReady", "status": "True", "reason": "Ok", "message": "fine"},
            ]
        },
    }  # fmt: skip

    status = object_status(obj)

    assert status.ref == "Service/predict"
    assert status.namespace == "ml"
    assert status.summary == "Ready=False (RevisionMissing: no image), RoutesReady=True"


def test_an_object_no_controller_looked_at_says_so() -> None:
    """An object without a status says it has no conditions yet (nothing is inferred)."""
    status = object_status({"kind": "ScaledJob", "metadata": {"name": "train"}})

    assert status.summary == NO_CONDITIONS
    assert status.namespace is None


def test_a_phase_comes_first_and_missing_fields_read_as_unknown() -> None:
    """The phase leads the summary; a condition without type or status reads '?=Unknown'."""
    obj = {
        "kind": "Namespace",
        "metadata": {"name": "ml"},
        "status": {"phase": "Terminating", "conditions": [{}]},
    }

    assert object_status(obj).summary == "phase Terminating, ?=Unknown"


def test_a_condition_without_a_reason_is_just_type_and_status() -> None:
    """Type=Status alone when there is no reason, or the condition is true."""
    assert str(Condition("Active", "False")) == "Active=False"
    assert str(Condition("Ready", "True", "Done", "all good")) == "Ready=True"


# --- the cluster commands, failing before or at the first request ---------------------------------


def test_deploy_to_an_unknown_target_exits_2(project: Path) -> None:
    """Only the kubernetes target exists: anything else is a usage error."""
    result = runner.invoke(app, ["deploy", str(project), "--target", "nomad"])

    assert result.exit_code == 2
    assert "unknown target 'nomad' (known: kubernetes)" in result.stderr


def test_deploy_of_a_project_a_cluster_cannot_run_exits_2(project: Path, unreachable: Path) -> None:
    """A consumer on the default SQLite bus cannot be rendered: exit 2 before any request."""
    trigger = (
        "apiVersion: cumulo.dev/v1alpha1\nkind: Trigger\nmetadata: {name: on-order}\n"
        "spec: {function: predict}\n"
    )
    (project / "trigger.yaml").write_text(trigger)

    result = runner.invoke(app, ["deploy", str(project), "--kubeconfig", str(unreachable)])

    assert result.exit_code == 2
    assert "EventBus/default:spec.url" in result.stderr
    assert "(or give --bus-url)" in result.stderr
    assert "cannot reach" not in result.stderr


def test_deploy_with_a_missing_kubeconfig_exits_1(project: Path, tmp_path: Path) -> None:
    """A kubeconfig that is not there is one error line naming it, exit 1."""
    result = runner.invoke(
        app,
        ["deploy", str(project), "--bus-url", "redis://redis:6379", "--kubeconfig", str(tmp_path / "none")],
    )  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr.startswith("error:")
    assert str(tmp_path / "none") in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["deploy", "--bus-url", "redis://redis:6379", "--dry-run"],
        ["delete", "--dry-run"],
        ["cluster-status"],
    ],
)
def test_cluster_commands_against_an_unreachable_server_exit_1(
    project: Path, unreachable: Path, command: list[str]
) -> None:
    """Each says it cannot reach the API server and exits 1 (not a traceback)."""
    name, *options = command
    result = runner.invoke(app, [name, str(project), *options, "--kubeconfig", str(unreachable)])

    assert result.exit_code == 1
    assert "cannot reach the API server" in result.stderr


def test_delete_of_a_project_with_mistakes_exits_2(tmp_path: Path, unreachable: Path) -> None:
    """delete loads the project first: a spec mistake is reported with exit 2."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "cumulo.yaml").write_text("apiVersion: cumulo.dev/v1alpha1\nkind: Function\n")

    result = runner.invoke(app, ["delete", str(broken), "--kubeconfig", str(unreachable)])

    assert result.exit_code == 2
    assert "metadata" in result.stderr
