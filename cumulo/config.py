"""Settings: the only module that reads the environment (prefix ``CUMULO_``).

Everything else receives a :class:`Settings` (or the values it needs) from its
caller; nothing writes to ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

STATE_DIR_NAME = ".cumulo"


class Settings(BaseSettings):
    """Platform settings; every field can be set as ``CUMULO_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="CUMULO_", extra="ignore")

    state_dir: Path | None = Field(
        default=None, description="Where the bus, logs and runs live (default: DIR/.cumulo)."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535, description="Gateway port; 0 picks one.")
    bus_url: str | None = Field(
        default=None, description="Default bus when the project declares none."
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # --- the edge: what one request to the gateway may carry (docs/security.md) ---
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Request line and headers together; more is refused with 431 before the"
        " body is read, and the HTTP parser never holds more than this (plus one read).",
    )
    max_headers: int = Field(
        default=100, ge=10, description="Header fields in one request; more is refused with 431."
    )
    max_batch_events: int = Field(
        default=1000,
        gt=0,
        description="Events in one batch (application/cloudevents-batch+json); more is 413.",
    )
    max_event_attributes: int = Field(
        default=64, ge=8, description="Context attributes (extensions included) of one event."
    )
    max_attribute_bytes: int = Field(
        default=4096, ge=256, description="One attribute's value, in UTF-8 bytes."
    )
    max_data_depth: int = Field(
        default=64,
        ge=1,
        le=200,
        description="How deep JSON data may nest objects and arrays (the JSON encoder stops"
        " at 254 levels, envelope included).",
    )
    max_concurrent_decodes: int = Field(
        default=1,
        gt=0,
        description="Large bodies (over 64 KiB) decoded at once, each in a worker thread; the"
        " rest wait, so the gateway's memory stays bounded and it keeps answering (decoding"
        " holds the GIL: more at once would not be faster).",
    )
    api_max_body_bytes: int = Field(
        default=64 * 1024,
        gt=0,
        description="The largest body an /api request may send (a replay is a few bytes);"
        " a larger one is refused (413) as soon as it is over, without reading the rest.",
    )
    sqlite_synchronous: str = Field(
        default="FULL", pattern="^(FULL|NORMAL|OFF)$", description="For SQLite buses."
    )
    log_level: str = "INFO"
    api_token: str | None = Field(
        default=None,
        description="When set, /api/*, /metrics, POST /events and non-public /fn/* need"
        " 'Bearer <token>'.",
    )
    publish_token: str | None = Field(
        default=None,
        description="What `cumulo up` gives its functions (with an API token set): it"
        " authorises POST /events and nothing else.",
    )
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector URL; when set, spans are exported."
    )
    daprd: Path | None = Field(
        default=None,
        description="The daprd binary for embedded dapr:// buses (default: PATH, then"
        " ~/.cache/cumulo-infra/daprd-*/daprd).",
    )
    worker_grace_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Between SIGTERM and SIGKILL when a worker is recycled (a delivery timed"
        " out), scaled down or stopped: a wedged handler cannot hold its worker longer.",
    )

    def state_path(self, project_dir: Path) -> Path:
        """The state directory for a project: the setting, or ``project_dir/.cumulo``."""
        return self.state_dir or (project_dir / STATE_DIR_NAME)


def secret(variable: str) -> str | None:
    """The value of the environment variable a spec's secret reference names (unset: None)."""
    value = os.environ.get(variable)
    return value if value else None


# What every function process gets from the platform's environment (nothing secret): what it
# takes to run Python and find the user's tools. Everything else is what its spec declares.
BASIC_VARIABLES = frozenset(
    {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR"}
)
BASIC_PREFIXES = ("LC_", "PYTHON")


def basic_environment() -> dict[str, str]:
    """The platform's values of :data:`BASIC_VARIABLES` and ``LC_*``/``PYTHON*`` variables."""
    return {
        name: value
        for name, value in os.environ.items()
        if name in BASIC_VARIABLES or name.startswith(BASIC_PREFIXES)
    }


class WorkerSettings(BaseSettings):
    """What a function's container is told by its platform (Knative sets ``PORT``)."""

    model_config = SettingsConfigDict(extra="ignore")

    port: int = Field(default=8080, ge=0, le=65535, validation_alias="PORT")
    app_api_token: str | None = Field(
        default=None,
        validation_alias="APP_API_TOKEN",
        description="Dapr's app API token: when set, /dapr/* needs it as 'dapr-api-token'.",
    )


class FunctionSettings(BaseSettings):
    """What a function learns from its platform: who it is, its params, where state lives.

    ``cumulo up`` passes these to every worker it starts; a cluster Deployment
    sets the same variables.
    """

    model_config = SettingsConfigDict(env_prefix="CUMULO_", extra="ignore")

    function: str = Field(default="", description="The function's name.")
    params: dict[str, Any] = Field(default={}, description="spec.params, as JSON.")
    project_dir: Path = Field(default=Path("."), description="Relative data paths start here.")
    state_dir: Path = Field(default=Path(STATE_DIR_NAME), description="The platform's state.")
    models_db: Path | None = Field(default=None, description="Default: STATE_DIR/models.db.")
    artifacts_url: str | None = Field(
        default=None, description="A folder or s3://bucket/prefix; default: STATE_DIR/artifacts."
    )
    s3_endpoint_url: str | None = Field(default=None, description="For S3-compatible stores.")

    @property
    def models_path(self) -> Path:
        return self.models_db or self.state_dir / "models.db"

    @property
    def artifacts(self) -> str:
        return self.artifacts_url or str(self.state_dir / "artifacts")
