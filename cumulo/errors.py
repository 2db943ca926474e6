"""Every exception Cumulo raises, in one tree.

Library errors are translated where they enter Cumulo (``except
sqlite3.OperationalError as e: raise BusUnavailableError(...) from e``), so
callers only ever need to catch what is defined here.
"""

from __future__ import annotations

from dataclasses import dataclass


class CumuloError(Exception):
    """Base class of every error Cumulo raises."""


# --- what a function raises to steer delivery ------------------------------


class Retry(CumuloError):
    """Raised by a function: deliver this event again, after ``delay`` seconds.

    Without a delay the trigger's backoff policy decides when.
    """

    def __init__(self, message: str = "retry requested", *, delay: float | None = None):
        super().__init__(message)
        self.delay = delay


class PermanentError(CumuloError):
    """Raised by a function: this event can never succeed; dead-letter it now."""


class CapabilityError(PermanentError):
    """An event asked for something the function's spec does not grant (a param, a clone, data).

    The message names the rule that refused; it never echoes file contents or
    the platform's own paths.
    """


class MissingExtraError(PermanentError):
    """What was asked for needs an optional part of Cumulo that is not installed.

    The message names the extra (``redis:// needs the redis client: pip install
    'cumulo[redis]'``); :mod:`cumulo.extras` makes every one. It is a
    :class:`PermanentError` because retrying an event cannot install anything:
    a function that needs the extra dead-letters the event at once, with this reason.
    """

    def __init__(self, message: str, *, extra: str, needed_by: str):
        super().__init__(message)
        self.extra, self.needed_by = extra, needed_by


# --- specs -----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One mistake in a spec, located as ``file:path``."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class SpecError(CumuloError):
    """A project's specs have mistakes; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ManifestError(SpecError):
    """A project cannot be rendered to Kubernetes objects: every reason, as problems."""


class TargetError(CumuloError):
    """A function target (``module:attr``) cannot be imported or is not callable."""


# --- events ----------------------------------------------------------------


class InvalidEventError(CumuloError):
    """A payload is not a valid CloudEvent; ``problems`` says every reason."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class UnsupportedMediaTypeError(InvalidEventError):
    """The Content-Type names an event format Cumulo does not read."""


class PayloadTooLargeError(InvalidEventError):
    """A body is larger than the configured limit."""


class EncodingError(InvalidEventError):
    """An event cannot be put in a wire format (binary-mode headers, the JSON format).

    Raised while sending an event on; for one already accepted, the dispatcher
    retries it by the trigger's policy and then dead-letters it with this reason.
    """


# --- the HTTP API -------------------------------------------------------------


class InvalidRequestError(CumuloError):
    """An ``/api`` request's query, path or body breaks a rule; ``problems`` names each one.

    Each problem is ``{"field", "in", "rule", "message"}``: where it is, the rule it
    breaks (pydantic's error type, e.g. ``int_parsing``) and what that means.
    """

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in self.problems))


# --- event sources -----------------------------------------------------------


class SourceError(CumuloError):
    """An event source could not start or run."""


class SecretNotSetError(SourceError):
    """A source needs a secret whose environment variable is not set."""

    def __init__(self, source: str, variable: str):
        super().__init__(
            f"source '{source}' needs its secret: set the environment variable {variable}"
        )
        self.variable = variable


class WebhookRejectedError(CumuloError):
    """A webhook delivery failed authentication; ``status`` is 401 (missing) or 403 (wrong)."""

    status = 403
    slug = "bad-signature"


class MissingSignatureError(WebhookRejectedError):
    """The delivery carries no signature or token at all."""

    status = 401
    slug = "missing-signature"


class BadSignatureError(WebhookRejectedError):
    """The delivery's signature or token does not match the source's secret."""


class StaleDeliveryError(WebhookRejectedError):
    """A signed timestamp (Standard Webhooks' ``webhook-timestamp``) is outside the tolerance."""

    status = 401
    slug = "timestamp-out-of-tolerance"


# --- the bus ---------------------------------------------------------------


class BusError(CumuloError):
    """The event bus failed."""


class BusUnavailableError(BusError):
    """The bus (or the broker behind it) cannot be reached right now."""

    def __init__(self, message: str, *, address: str = ""):
        super().__init__(f"{message} ({address})" if address else message)
        self.address = address


class UnknownBackendError(BusError):
    """No bus backend is registered for a URL scheme (a missing extra: MissingExtraError)."""


class BusOperationUnsupportedError(BusError):
    """The backend cannot do this faithfully (the dapr bus delivers by push: no fetch, no lease)."""


class InvalidReplayError(BusError, ValueError):
    """A replay does not name exactly one target (group or topic) and one starting point."""


class ReplayOutOfRangeError(InvalidReplayError):
    """A replay starts outside its topic: an offset past the topic's end, or a time to come."""


# --- runtimes --------------------------------------------------------------


class RuntimeFailure(CumuloError):
    """The local runtime could not do what was asked."""


class WorkerStartError(RuntimeFailure):
    """A worker process could not be started."""


class ReloadError(RuntimeFailure):
    """A function's changed code or the project's changed spec does not load; the old keeps serving."""


class FunctionNotFoundError(RuntimeFailure):
    """No function of that name is deployed."""


class PlatformNotRunningError(RuntimeFailure):
    """The command needs ``cumulo up`` running, and it is not."""


class StatePathError(RuntimeFailure):
    """A name or id from a command or a request would point outside the state folder.

    The message names the rule; it never shows the resolved path.
    """


# --- the ML lifecycle -------------------------------------------------------------


class MLError(CumuloError):
    """Base of the errors raised by the ML capability functions."""


class ModelNotFoundError(MLError):
    """No such model, or no such version of it."""


class NoChampionError(MLError):
    """The model has no champion (nothing was promoted, or rollback has nowhere to go)."""


class DatasetError(MLError):
    """A dataset could not be read, or it does not have what training needs."""


class ArtifactError(MLError):
    """An artifact could not be stored or fetched."""


class AlertDeliveryError(MLError):
    """An alert channel refused the alert or could not be reached."""


# --- builders ---------------------------------------------------------------------


class BuildError(CumuloError):
    """A function's image could not be built."""


class BuilderNotFoundError(BuildError):
    """No builder is registered under that name."""


class BuildToolError(BuildError):
    """An external build tool (pip, buildah) failed; the message ends with its output."""


class RegistryError(BuildError):
    """An OCI registry refused or failed a request; says which registry and repository."""

    def __init__(self, message: str, *, registry: str = "", repository: str = "", status: int = 0):
        where = "/".join(part for part in (registry, repository) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.registry, self.repository, self.status = registry, repository, status


class RegistryAuthError(RegistryError):
    """The registry wants credentials that were not given, or refused the ones given."""


class ImageNotFoundError(RegistryError):
    """No such manifest or blob in the repository."""


# --- clusters (Kubernetes) --------------------------------------------------------


class ClusterError(CumuloError):
    """Talking to a Kubernetes API server failed."""


class KubeconfigError(ClusterError):
    """The kubeconfig is missing or unreadable, or names no usable context."""


class ClusterUnreachableError(ClusterError):
    """The API server cannot be reached (connection refused, timeout, TLS); says which."""


class KindNotServedError(ClusterError):
    """The cluster serves no such apiVersion/kind (its CRD is not installed)."""


class ClusterRequestError(ClusterError):
    """The API server refused a request; ``obj`` is ``Kind/name``, ``causes`` the server's."""

    def __init__(
        self, message: str, *, obj: str = "", status: int = 0, causes: tuple[str, ...] = ()
    ):
        super().__init__(f"{obj}: {message}" if obj else message)
        self.obj, self.status, self.causes = obj, status, causes


class ClusterAuthError(ClusterRequestError):
    """The API server did not accept the credentials (401)."""


class ClusterForbiddenError(ClusterRequestError):
    """The credentials may not do this (403)."""


class ObjectInvalidError(ClusterRequestError):
    """The API server rejected an object as invalid (422, or 400 for unknown fields)."""
