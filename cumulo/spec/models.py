"""Resource models: Function, EventSource, EventBus and Trigger.

Each resource has the Kubernetes shape ``apiVersion / kind / metadata / spec``.
YAML uses camelCase keys; Python uses snake_case; both are accepted on input.
Unknown keys are mistakes, never silently ignored.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

API_VERSION: Final = "cumulo.dev/v1alpha1"
# The ``pattern=`` strings below go to pydantic, whose default Rust regex engine
# reads ``$`` as the very end of the text (no final newline slips through). Patterns
# used here with Python's ``re`` are matched with ``fullmatch`` instead: Python's
# ``$`` also matches before a final newline.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"  # a DNS-1123 label
HANDLER_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
ATTRIBUTE_NAME_PATTERN = re.compile(r"[a-z0-9]{1,20}")  # a CloudEvents attribute name
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # an environment variable name

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
# ``P[nD][T[nH][nM][nS]]`` with at least one part, and a time part after any ``T``
# (the lookaheads: ``P`` and ``PT`` are no durations).
_ISO_DURATION = re.compile(
    r"P(?=\d|T)(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """Seconds from ``30``, ``"30s"``, ``"5m"``, ``"250ms"``, ``"1d"`` or ISO 8601 ``"PT1M30S"``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value  # let pydantic report the type error
    if isinstance(value, (int, float)):
        return float(value)
    if m := _DURATION.fullmatch(value):
        return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    text = value.strip()
    if m := _ISO_DURATION.fullmatch(text):
        hours = float(m["d"] or 0) * 24 + float(m["h"] or 0)
        return hours * 3600 + float(m["m"] or 0) * 60 + float(m["s"] or 0)
    if text.endswith("T") and (text == "PT" or _ISO_DURATION.fullmatch(text[:-1])):
        raise ValueError(
            f"{value!r} is not a duration (ISO 8601 needs a time after 'T': 'PT1M', 'P1DT2H')"
        )
    raise ValueError(f"{value!r} is not a duration (use seconds, '30s', '5m', '2h', 'PT1M')")


def refuse_boolean(value: Any) -> Any:
    """Raise ``ValueError`` for a bool (YAML's ``yes``/``no``), which is no number of seconds.

    pydantic's lax float would read ``True`` as 1.0: ``timeout: yes`` must be an error.
    """
    if isinstance(value, bool):
        raise ValueError(
            f"{str(value).lower()} (a YAML boolean: yes/no, true/false) is not a duration"
            " (use seconds, '30s', '5m', '2h', 'PT1M')"
        )
    return value


def check_attribute_names(attributes: dict[str, str]) -> None:
    """Raise ``ValueError`` unless every key is a CloudEvents attribute name."""
    for name in attributes:
        if not ATTRIBUTE_NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"'{name}' is not a CloudEvents attribute name (1-20 lowercase letters or digits)"
            )


Duration = Annotated[
    float, BeforeValidator(parse_duration), BeforeValidator(refuse_boolean), Field(ge=0)
]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Model(BaseModel):
    """Base of every spec model: camelCase aliases, unknown keys forbidden."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# --- shared pieces ----------------------------------------------------------


class Metadata(Model):
    name: Name
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class Filter(Model):
    """One Knative filter dialect expression; exactly one field is set.

    ``exact``/``prefix``/``suffix`` map CloudEvent attribute names (extensions
    included) to values; ``all``/``any`` nest filters; ``not`` negates one.
    """

    exact: dict[str, str] | None = None
    prefix: dict[str, str] | None = None
    suffix: dict[str, str] | None = None
    all: list[Filter] | None = None
    any: list[Filter] | None = None
    not_: Filter | None = Field(default=None, alias="not")

    @field_validator("exact", "prefix", "suffix")
    @classmethod
    def _attribute_values(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            if not value:
                raise ValueError("needs at least one attribute")
            check_attribute_names(value)
            if empty := [name for name, text in value.items() if not text]:
                raise ValueError(f"the value for '{empty[0]}' must not be empty")
        return value

    @field_validator("all", "any")
    @classmethod
    def _some_filters(cls, value: list[Filter] | None) -> list[Filter] | None:
        if value is not None and not value:
            raise ValueError("needs at least one filter")
        return value

    @model_validator(mode="after")
    def _one_dialect(self) -> Filter:
        set_fields = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(set_fields) != 1:
            raise ValueError("a filter needs exactly one of exact, prefix, suffix, all, any, not")
        return self


class Delivery(Model):
    """How a trigger retries and where failures go (Knative's ``delivery``)."""

    retries: int = Field(default=3, ge=0, description="Retries after the first attempt.")
    backoff_policy: Literal["linear", "exponential"] = "exponential"
    backoff_delay: Duration = 1.0
    max_backoff: Duration = 300.0
    timeout: Duration | None = Field(
        default=None, description="Per attempt; default: the function's."
    )
    dead_letter_topic: str = "dead-letter"
    max_event_age: Duration | None = None


class Dedup(Model):
    """Consumer-side dedup: skip an event whose key this trigger saw within the window."""

    key: list[str] = ["source", "id"]
    window: Duration = 600.0


class TriggerBinding(Model):
    """A trigger written inline under a function (the function is implied)."""

    name: Name | None = None
    bus: Name = "default"
    topic: str = "default"
    filter: dict[str, dict[str, str]] | None = Field(
        default=None, description="Knative's classic ``filter.attributes`` (exact match)."
    )
    filters: list[Filter] = Field(default=[], description="Knative's dialects, ANDed together.")
    delivery: Delivery = Delivery()
    dedup: Dedup | None = None

    @field_validator("filter")
    @classmethod
    def _classic_filter(
        cls, value: dict[str, dict[str, str]] | None
    ) -> dict[str, dict[str, str]] | None:
        if value is not None:
            if unknown := sorted(set(value) - {"attributes"}):
                raise ValueError(
                    f"unknown key '{unknown[0]}' (the classic filter has 'attributes')"
                )
            check_attribute_names(value.get("attributes", {}))
        return value


# --- Function -----------------------------------------------------------------


class Scale(Model):
    min: int = Field(default=0, ge=0)
    max: int = Field(default=4, ge=1)
    concurrency: int = Field(default=16, ge=1, description="In-flight events per worker.")
    idle_timeout: Duration = 60.0

    @model_validator(mode="after")
    def _min_le_max(self) -> Scale:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        return self


class Resources(Model):
    cpu: str | None = None
    memory: str | None = None
    gpu: int = Field(default=0, ge=0)


class Build(Model):
    builder: Literal["auto", "oci", "buildah", "kaniko", "buildpacks"] = "auto"
    context: str = "."
    requirements: str | None = None
    base_image: str = "python:3.11-slim"


class SecretRef(Model):
    """A secret kept outside the spec: a Kubernetes Secret ``name``/``key``, read locally
    from the environment variable ``env`` (default: ``NAME_KEY`` upper-cased, ``-`` → ``_``).

    ``{env: VAR}`` alone is enough: the Secret's name is then ``VAR`` lower-cased
    with ``_`` → ``-`` (``MODEL_TOKEN`` → ``model-token``).
    """

    name: str
    key: str | None = None
    env: str | None = Field(default=None, pattern=ENV_NAME_PATTERN)

    @model_validator(mode="before")
    @classmethod
    def _name_from_env(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") is None:
            if not isinstance(data.get("env"), str):
                raise ValueError("a secret needs a name (a Kubernetes Secret), an env, or both")
            data = {**data, "name": data["env"].lower().replace("_", "-")}
        return data

    @property
    def variable(self) -> str:
        """The environment variable that holds the secret's value."""
        if self.env:
            return self.env
        words = [self.name, self.key] if self.key else [self.name]
        return re.sub(r"[^A-Za-z0-9]", "_", "_".join(words)).upper()


class FunctionSpec(Model):
    handler: str = Field(pattern=HANDLER_PATTERN, description="module:attr")
    signature: Literal["http", "cloudevent", "event", "typed"] | None = Field(
        default=None, description="Default: what the functions-framework decorator says, else http."
    )
    mode: Literal["service", "job"] = "service"
    triggers: list[TriggerBinding] = []
    emits: list[str] = []
    scale: Scale = Scale()
    resources: Resources = Resources()
    timeout: Duration = 300.0
    env: dict[str, str] = {}
    params: dict[str, Any] = Field(
        default={}, description="Settings the function reads (CUMULO_PARAMS): hyper-parameters."
    )
    secrets: list[SecretRef] = []
    build: Build = Build()
    access: Literal["token", "public"] = Field(
        default="token",
        description="/fn/<name> with CUMULO_API_TOKEN set: needs the token, or is public.",
    )


# --- EventSource ----------------------------------------------------------------


class CronSource(Model):
    schedule: str
    timezone: str = "UTC"
    missed: Literal["skip", "fire-once", "fire-all"] = Field(
        default="fire-once", description="Ticks missed while down: none, the latest, or each."
    )
    data: Any = None


class KafkaTLS(Model):
    """Files of PEM certificates, as the source's container sees them."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class KafkaSASL(Model):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: str
    password: SecretRef


class KafkaSource(Model):
    brokers: list[str]
    topics: list[str]
    group: str | None = Field(default=None, description="Default: cumulo-source-<name>.")
    start: Literal["earliest", "latest"] = "latest"
    tls: KafkaTLS | None = None
    sasl: KafkaSASL | None = None


class S3Source(Model):
    """Objects created in a bucket: pushed notifications, or a poll of any S3 API.

    Credentials for ``poll``: ``accessKey`` and ``secretKey`` secret references,
    else boto3's own chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    ``AWS_PROFILE``, instance roles, ...).
    """

    bucket: str
    endpoint: str | None = None
    prefix: str = ""
    suffix: str = ""
    mode: Literal["notification", "poll"] = "notification"
    token: SecretRef | None = Field(
        default=None, description="notification: the bearer token deliveries must carry."
    )
    interval: Duration = Field(default=60.0, gt=0, description="poll: how often to list.")
    since: datetime | None = Field(
        default=None, description="poll: on first start, announce objects modified since."
    )
    region: str | None = None
    access_key: SecretRef | None = None
    secret_key: SecretRef | None = None
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> S3Source:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("accessKey and secretKey go together (or neither: boto3's chain)")
        return self


class GitSource(Model):
    provider: Literal["github", "gitlab", "gitea", "poll"] = "github"
    repository: str | None = Field(
        default=None, description="Polled (poll), or the only repository accepted (webhooks)."
    )
    branches: list[str] = Field(default=[], description="Glob patterns; empty: every branch.")
    paths: list[str] = Field(default=[], description="Glob patterns over the changed paths.")
    secret: SecretRef | None = Field(
        default=None, description="The webhook's signing secret (GitLab: its token)."
    )
    interval: Duration = Field(default=60.0, gt=0, description="How often poll runs ls-remote.")
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)

    @model_validator(mode="after")
    def _poll_needs_repository(self) -> GitSource:
        if self.provider == "poll" and not self.repository:
            raise ValueError("provider 'poll' needs a repository to poll")
        if self.provider == "poll" and self.paths:
            raise ValueError("paths filter pushes by changed files: webhook providers only")
        return self


class WebhookSource(Model):
    path: str = "/"
    auth: Literal["none", "bearer", "hmac", "standard-webhooks"] = "none"
    secret: SecretRef | None = Field(
        default=None, description="The bearer token, HMAC key, or Standard Webhooks whsec_ key."
    )
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    tolerance: Duration = Field(
        default=300.0, gt=0, description="standard-webhooks: how far webhook-timestamp may be off."
    )

    @model_validator(mode="after")
    def _auth_needs_secret(self) -> WebhookSource:
        if self.auth != "none" and self.secret is None:
            raise ValueError(f"auth '{self.auth}' needs a secret")
        return self


class Sink(Model):
    bus: Name = "default"
    topic: str = "default"
    function: Name | None = Field(default=None, description="Deliver straight to a function.")


_SOURCE_KINDS = ("cron", "kafka", "s3", "git", "webhook")


class EventSourceSpec(Model):
    cron: CronSource | None = None
    kafka: KafkaSource | None = None
    s3: S3Source | None = None
    git: GitSource | None = None
    webhook: WebhookSource | None = None
    type: str | None = Field(default=None, description="CloudEvent type of what it emits.")
    sink: Sink = Sink()
    dedup_window: Duration = Field(
        default=7 * 86400.0,
        gt=0,
        description="HTTP sources: how long delivery ids and signed bodies are remembered.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> EventSourceSpec:
        kinds = [k for k in _SOURCE_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"an event source needs exactly one of {', '.join(_SOURCE_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in _SOURCE_KINDS if getattr(self, k) is not None)


# --- EventBus and Trigger --------------------------------------------------------


class EventBusSpec(Model):
    url: str | None = Field(
        default=None, description="Backend by scheme; default: SQLite in the state directory."
    )
    dedup_window: Duration = 600.0
    retention: Duration = 7 * 86400.0


class TriggerSpec(TriggerBinding):
    function: Name


# --- resources -------------------------------------------------------------------


class Resource(Model):
    api_version: Literal["cumulo.dev/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    metadata: Metadata

    @property
    def name(self) -> str:
        return self.metadata.name


class Function(Resource):
    kind: Literal["Function"] = "Function"
    spec: FunctionSpec


class EventSource(Resource):
    kind: Literal["EventSource"] = "EventSource"
    spec: EventSourceSpec


class EventBus(Resource):
    kind: Literal["EventBus"] = "EventBus"
    spec: EventBusSpec = EventBusSpec()


class Trigger(Resource):
    kind: Literal["Trigger"] = "Trigger"
    spec: TriggerSpec


KINDS: dict[str, type[Resource]] = {
    cls.model_fields["kind"].default: cls for cls in (Function, EventSource, EventBus, Trigger)
}
