"""Rendering specs to Kubernetes objects (Knative, KEDA, Dapr), and validating them.

Renderers are pure functions returning plain dicts; :mod:`.schemas` checks them
against the CRDs their projects publish. The ``kubernetes`` client is imported
only under this package and ``cumulo.runtimes``.
"""

from cumulo.manifests.knative import canary_traffic, knative_service
from cumulo.manifests.schemas import crd_schema, manifest_problems, validate_manifest

__all__ = [
    "canary_traffic",
    "crd_schema",
    "knative_service",
    "manifest_problems",
    "validate_manifest",
]
