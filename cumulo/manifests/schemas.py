"""Validating rendered objects against the schemas their CustomResourceDefinitions publish.

::

    schema = crd_schema(Path("crds/knative-serving/service.yaml"), "v1")
    validate_manifest(service, schema)        # SpecError listing every problem

A CRD's ``openAPIV3Schema`` is nearly JSON Schema: the ``x-kubernetes-*``
keywords are dropped (``int-or-string`` fields already carry an ``anyOf``).
One thing is made stricter than the API server: an object whose schema lists
its ``properties`` (and does not preserve unknown fields) refuses others,
because the server would silently prune a misspelt field, and a pruned field
is a bug in what Cumulo rendered. ``jsonschema`` is imported only here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cumulo.errors import Problem, SpecError

KUBE_PREFIX = "x-kubernetes-"
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"


def crd_schema(path: Path | str, version: str) -> dict[str, Any]:
    """The JSON Schema of one served version of the CRD in ``path``."""
    return _crd_schema(str(Path(path).resolve()), version)


@functools.lru_cache(maxsize=32)
def _crd_schema(path: str, version: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        crd = yaml.safe_load(file)
    for entry in crd.get("spec", {}).get("versions", []):
        if entry.get("name") == version:
            return json_schema(entry["schema"]["openAPIV3Schema"])
    names = [entry.get("name") for entry in crd.get("spec", {}).get("versions", [])]
    raise SpecError([Problem(path, "spec.versions", f"no version {version!r} (has {names})")])


def json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAPI v3 structural schema as plain JSON Schema (see the module docstring)."""
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith(KUBE_PREFIX):
            continue
        if key in ("properties", "patternProperties"):
            value = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            value = json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            value = [json_schema(sub) for sub in value]
        converted[key] = value
    closed = "properties" in node and not node.get(PRESERVE_UNKNOWN)
    if closed and "additionalProperties" not in node:
        converted["additionalProperties"] = False
    return converted


def manifest_problems(manifest: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Problem]:
    """Every way ``manifest`` breaks ``schema``, each located as ``Kind/name`` and a path."""
    try:
        import jsonschema
    except ModuleNotFoundError as e:  # a dev/cluster dependency, not needed to run functions
        raise SpecError(
            [
                Problem(
                    "cumulo", "", "validating manifests needs 'jsonschema': pip install jsonschema"
                )
            ]
        ) from e
    validator = jsonschema.Draft7Validator(schema)
    where = _object_name(manifest)
    errors = sorted(validator.iter_errors(manifest), key=lambda error: list(error.absolute_path))
    return [Problem(where, _json_path(error.absolute_path), error.message) for error in errors]


def validate_manifest(manifest: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Raise :class:`SpecError` with every problem, if ``manifest`` breaks ``schema``."""
    problems = manifest_problems(manifest, schema)
    if problems:
        raise SpecError(problems)


def _object_name(manifest: Mapping[str, Any]) -> str:
    metadata = manifest.get("metadata")
    name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
    return f"{manifest.get('kind', '?')}/{name}"


def _json_path(parts: Any) -> str:
    """``spec.template.spec.containers[0].image`` from jsonschema's path parts."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --- Kubernetes' own objects, and choosing the schema for any object ---------------

CRD_FILES = {
    ("serving.knative.dev", "Service"): "knative-serving/service.yaml",
    ("keda.sh", "ScaledObject"): "keda/keda.sh_scaledobjects.yaml",
    ("keda.sh", "ScaledJob"): "keda/keda.sh_scaledjobs.yaml",
    ("keda.sh", "TriggerAuthentication"): "keda/keda.sh_triggerauthentications.yaml",
    ("dapr.io", "Component"): "dapr/components.yaml",
    ("dapr.io", "Subscription"): "dapr/subscription.yaml",
    ("dapr.io", "Resiliency"): "dapr/resiliency.yaml",
}


def core_problems(manifest: Mapping[str, Any], kubernetes_version: str = "1.30") -> list[Problem]:
    """Every way a core object (Deployment, Service, CronJob, Role, ...) breaks Kubernetes' schema.

    Uses the OpenAPI schemas ``kubernetes-validate`` bundles (strict: unknown
    fields are problems), offline.
    """
    try:
        import jsonschema
        from kubernetes_validate import utils
    except ModuleNotFoundError as e:
        hint = (
            "validating core objects needs 'kubernetes-validate': pip install kubernetes-validate"
        )
        raise SpecError([Problem("cumulo", "", hint)]) from e
    schema, definitions = _core_schema(utils, manifest, kubernetes_version)
    registry = utils.Resource.from_contents(definitions) @ (
        utils.Resource.from_contents(schema) @ utils.Registry()
    )
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    where = _object_name(manifest)
    errors = sorted(validator.iter_errors(manifest), key=lambda error: list(error.absolute_path))
    return [Problem(where, _json_path(error.absolute_path), error.message) for error in errors]


def _core_schema(utils: Any, manifest: Mapping[str, Any], version: str) -> tuple[Any, Any]:
    group_version = str(manifest.get("apiVersion", ""))
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", group_version)  # apps/v1 → apps-v1
    known = [v for v in utils.all_versions() if utils.major_minor(v) <= utils.major_minor(version)]
    folder = f"kubernetes-json-schema/v{known[-1]}-local-strict"
    name = f"{folder}/{str(manifest.get('kind', '')).lower()}-{api}.json"
    try:
        return utils.schema_contents(name, version), utils.schema_contents(
            f"{folder}/_definitions.json", version
        )
    except FileNotFoundError as e:
        where = _object_name(manifest)
        raise SpecError([Problem(where, "apiVersion", f"no schema for {group_version}")]) from e


def object_problems(
    manifest: Mapping[str, Any], crds: Path | str, kubernetes_version: str = "1.30"
) -> list[Problem]:
    """Check any rendered object: custom resources against the CRDs in ``crds``, the rest
    against Kubernetes' own schema."""
    group_version = str(manifest.get("apiVersion", ""))
    group, _, version = group_version.rpartition("/")
    path = CRD_FILES.get((group, str(manifest.get("kind"))))
    if path is not None:
        return manifest_problems(manifest, crd_schema(Path(crds) / path, version))
    if "." in group and not group.endswith(".k8s.io"):
        where = _object_name(manifest)
        return [Problem(where, "apiVersion", f"no CRD known for {group_version}")]
    return core_problems(manifest, kubernetes_version)
