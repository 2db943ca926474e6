"""One Kubernetes API server: kubeconfig, discovery, and the few requests ``cumulo deploy`` makes.

::

    cluster = Cluster.connect(Path("~/.kube/config"), context="kind-ml")
    service = cluster.resource("serving.knative.dev/v1", "Service")
    live = cluster.apply(service, obj, dry_run=True)   # server-side apply

Every object, core or custom, goes through the same raw requests (paths come
from discovery), so a CRD-defined kind needs nothing special. Library errors
are translated here: a bad kubeconfig is :class:`KubeconfigError`, a server
that cannot be reached :class:`ClusterUnreachableError`, a refusal a
:class:`ClusterRequestError` naming the object and the server's causes.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cumulo.errors import (
    ClusterAuthError,
    ClusterForbiddenError,
    ClusterRequestError,
    ClusterUnreachableError,
    KindNotServedError,
    KubeconfigError,
    ObjectInvalidError,
)
from cumulo.extras import from_extra

FIELD_MANAGER = "cumulo"
APPLY_PATCH = "application/apply-patch+yaml"
TIMEOUT = (5.0, 30.0)  # connect, read
PROVIDERS = {"serving.knative.dev": "Knative Serving", "keda.sh": "KEDA", "dapr.io": "Dapr"}
# "failed to create typed patch object (ns/name; gvk): .spec.x: expected numeric, got string"
TYPED_PATCH = re.compile(r"^failed to create typed patch object \([^)]*\): \.?([^:]+): (.*)$", re.S)
ERRORS = {401: ClusterAuthError, 403: ClusterForbiddenError, 400: ObjectInvalidError,
          422: ObjectInvalidError}  # fmt: skip


@dataclass(frozen=True)
class Resource:
    """Where a kind lives on the server: its plural and whether it is namespaced."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            prefix += f"/namespaces/{namespace}"
        return f"{prefix}/{self.plural}/{name}" if name else f"{prefix}/{self.plural}"


class Cluster:
    """A ``kubernetes.client.ApiClient`` used for raw JSON requests."""

    def __init__(self, api_client: Any, *, timeout: tuple[float, float] = TIMEOUT):
        self.api = api_client
        self.timeout = timeout
        self._kinds: dict[str, dict[str, Resource]] = {}

    @classmethod
    def connect(cls, kubeconfig: Path | None = None, context: str | None = None) -> Cluster:
        """From a kubeconfig file (default: ``$KUBECONFIG``, else ``~/.kube/config``)."""
        with from_extra("kubernetes", needed_by="talking to a cluster"):
            from kubernetes import client, config
        configuration = client.Configuration()
        where = str(kubeconfig) if kubeconfig else "the default kubeconfig"
        try:
            config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (TypeError, AttributeError, KeyError) as e:  # YAML, but not a kubeconfig
            raise KubeconfigError(f"{where}: not a kubeconfig ({type(e).__name__}: {e})") from e
        except Exception as e:  # ConfigException, OSError, YAML errors alike
            raise KubeconfigError(f"{where}: {e}") from e
        configuration.retries = 1
        return cls(client.ApiClient(configuration))

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- discovery -----------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Resource:
        """The resource serving ``kind``; :class:`KindNotServedError` when there is none."""
        found = self.served(api_version).get(kind)
        if found is None:
            group = api_version.rpartition("/")[0]
            hint = f" (is {PROVIDERS[group]} installed?)" if group in PROVIDERS else ""
            raise KindNotServedError(
                f"the API server at {self.server} serves no {kind} in {api_version}{hint}"
            )
        return found

    def served(self, api_version: str) -> dict[str, Resource]:
        """Every kind ``api_version`` serves (none when the group/version is unknown)."""
        if api_version not in self._kinds:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self.request("GET", path, missing_ok=True) or {}
            self._kinds[api_version] = {
                r["kind"]: Resource(api_version, r["kind"], r["name"], r["namespaced"])
                for r in listing.get("resources", [])
                if "/" not in r["name"]
            }
        return self._kinds[api_version]

    # --- objects -------------------------------------------------------------------

    def apply(
        self, resource: Resource, obj: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` as field manager ``cumulo``, taking over conflicts."""
        meta = obj["metadata"]
        query = [("fieldManager", FIELD_MANAGER), ("force", "true"), ("fieldValidation", "Strict")]
        return cast(
            dict[str, Any],
            self.request(
                "PATCH",
                resource.path(meta.get("namespace"), meta["name"]),
                query=query + _dry_run(dry_run),
                body=dict(obj),
                content_type=APPLY_PATCH,
                obj=f"{obj['kind']}/{meta['name']}",
            ),
        )

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live object, or ``None`` when there is none."""
        found = self.request("GET", resource.path(namespace, name), missing_ok=True)
        return cast(dict[str, Any] | None, found)

    def list(
        self, resource: Resource, namespace: str | None, selector: str
    ) -> list[dict[str, Any]]:
        """Objects matching a label selector (each with its apiVersion and kind filled in)."""
        listing = self.request(
            "GET", resource.path(namespace), query=[("labelSelector", selector)], missing_ok=True
        )
        items = (listing or {}).get("items", [])
        return [{"apiVersion": resource.api_version, "kind": resource.kind, **i} for i in items]

    def delete(
        self, resource: Resource, namespace: str | None, name: str, *, dry_run: bool = False
    ) -> None:
        """Delete one object (dependents in the background); gone already is fine."""
        query = [("propagationPolicy", "Background"), *_dry_run(dry_run)]
        path = resource.path(namespace, name)
        self.request("DELETE", path, query=query, missing_ok=True, obj=f"{resource.kind}/{name}")

    # --- transport -----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        body: Any = None,
        content_type: str | None = None,
        obj: str = "",
        missing_ok: bool = False,
    ) -> Any:
        """A JSON request; ``None`` for a 404 when ``missing_ok``."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        status, data = self._send(method, path, list(query), headers, body)
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            raise request_error(status, data, obj)
        return json.loads(data) if data else {}

    def _send(
        self, method: str, path: str, query: builtins.list[Any], headers: dict[str, str], body: Any
    ) -> tuple[int, bytes]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        params = self.api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )  # fmt: skip
        try:
            response = self.api.call_api(*params, _request_timeout=self.timeout)
            return response.status, response.read()
        except (HTTPError, OSError, ApiException) as e:
            reason = getattr(e, "reason", None) or e
            raise ClusterUnreachableError(
                f"cannot reach the API server at {self.server}: {reason}"
            ) from e


def _dry_run(dry_run: bool) -> list[tuple[str, str]]:
    return [("dryRun", "All")] if dry_run else []


def request_error(status: int, data: bytes, obj: str) -> ClusterRequestError:
    """The server's ``Status`` as an own error: its causes, else its message."""
    try:
        body = json.loads(data)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    causes = tuple(_cause(c) for c in (body.get("details") or {}).get("causes") or [])
    text = data.decode(errors="replace").strip()[:500]
    message = "; ".join(causes) or body.get("message") or text or f"HTTP {status}"
    error = ERRORS.get(status, ClusterRequestError)
    typed = TYPED_PATCH.match(message)
    if typed:  # server-side apply reports a field of the wrong type as a 500
        message, error = f"{typed.group(1)}: {typed.group(2)}", ObjectInvalidError
    return error(message, obj=obj, status=status, causes=causes)


def _cause(cause: Mapping[str, Any]) -> str:
    field, message = cause.get("field"), cause.get("message", cause.get("reason", ""))
    return f"{field}: {message}" if field else str(message)
