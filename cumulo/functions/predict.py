"""Online inference: an HTTP function that serves the champion of a model.

::

    - name: predict
      handler: cumulo.functions.predict:predict
      signature: http
      params: {model: iris}

``POST {"instances": [[5.1, 3.5, 1.4, 0.2], ...]}`` (or rows as objects keyed by
feature name) answers ``{"model", "version", "predictions"}``. Mistakes in the
request are ``400 application/problem+json`` (RFC 9457) saying what is wrong;
before any version is promoted the answer is ``503`` with ``Retry-After``.

The champion can change while requests flow, with no request failed or
dropped: every request asks the registry for the champion's version (one
cheap query); when it differs from the loaded one, one request loads the new
bundle under a lock while the others keep answering with the old model, then
the new one is swapped in. An answer always names the version whose model
computed it. The last two versions stay loaded, so a rollback swaps at once.
``params.version`` pins one version instead (a canary revision in a cluster).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask
import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from cumulo.errors import (
    ArtifactError,
    MLError,
    ModelNotFoundError,
    NoChampionError,
    PermanentError,
)
from cumulo.functions.context import FunctionContext
from cumulo.functions.model_registry import ModelRegistry
from cumulo.functions.modelfile import ModelBundle, load_bundle

log = logging.getLogger("cumulo.functions.predict")
PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPES = "https://cumulo.dev/problems/"  # + a slug; identifiers, not pages
RETRY_AFTER_S = 5
FAILED_LOAD_BACKOFF_S = 30.0
KEEP_LOADED = 2


class PredictParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="The registered model to serve.")
    version: int | None = Field(
        default=None, ge=1, description="Pin a version (default: champion)."
    )


@dataclass(frozen=True)
class LoadedModel:
    """A model version and its bundle: what one request predicts with, from start to end."""

    version: int
    bundle: ModelBundle


class ChampionCache:
    """The model a process serves, switched when the registry's champion changes."""

    def __init__(
        self,
        name: str,
        registry: ModelRegistry,
        fetch: Callable[[str], Path],
        *,
        pinned: int | None = None,
    ):
        self.name = name
        self.registry = registry
        self.fetch = fetch
        self.pinned = pinned
        self._current: LoadedModel | None = None
        self._recent: OrderedDict[int, ModelBundle] = OrderedDict()
        self._failed: tuple[int, float, MLError] | None = None  # a load that failed, and when
        self._lock = threading.Lock()

    def get(self) -> LoadedModel:
        """The model to answer with now (raises :class:`NoChampionError` when there is none)."""
        wanted = self.pinned or self.registry.champion_version(self.name)
        if wanted is None:
            raise NoChampionError(f"model {self.name!r} has no champion yet")
        current = self._current
        if current is not None and current.version == wanted:
            return current
        failed = self._recent_failure(wanted)
        if current is None and failed is not None:
            raise failed
        if current is not None and (failed is not None or not self._lock.acquire(False)):
            return current  # another request is loading it, or it cannot be loaded yet
        if current is None:
            self._lock.acquire()
        try:
            return self._switch(wanted)
        finally:
            self._lock.release()

    def _switch(self, wanted: int) -> LoadedModel:
        """Load ``wanted`` and make it current (the caller holds the lock)."""
        current = self._current
        if current is not None and current.version == wanted:
            return current  # loaded by the request that held the lock before us
        try:
            loaded = LoadedModel(wanted, self._bundle(wanted))
        except MLError as e:
            self._failed = (wanted, time.monotonic(), e)
            if current is None:
                raise
            log.error("%s; still serving version %d", e, current.version)
            return current
        self._current, self._failed = loaded, None
        log.info("serving model %r version %d", self.name, wanted)
        return loaded

    def _bundle(self, version: int) -> ModelBundle:
        if version in self._recent:
            self._recent.move_to_end(version)
            return self._recent[version]
        artifact = self.registry.get(self.name, version).artifact
        try:
            bundle = load_bundle(self.fetch(artifact))
        except MLError:
            raise
        except Exception as e:  # joblib/pickle raise many kinds; all mean "not loadable"
            raise ArtifactError(
                f"model {self.name!r} v{version}: cannot load {artifact}: {e}"
            ) from e
        self._recent[version] = bundle
        while len(self._recent) > KEEP_LOADED:
            self._recent.popitem(last=False)
        return bundle

    def _recent_failure(self, version: int) -> MLError | None:
        """Why ``version`` could not be loaded, if that happened lately (retried after a while)."""
        failed = self._failed
        if failed is None or failed[0] != version:
            return None
        return failed[2] if time.monotonic() - failed[1] < FAILED_LOAD_BACKOFF_S else None


class PredictServer:
    """The predict function for one model: call it with a Flask request."""

    def __init__(self, context: FunctionContext):
        self.params = context.params(PredictParams)
        self.models = ChampionCache(
            self.params.model,
            context.models,
            lambda uri: context.fetch(uri).path,
            pinned=self.params.version,
        )

    def __call__(self, request: flask.Request) -> Any:
        if request.method != "POST":
            detail = f"predict takes POST with a JSON body, not {request.method}"
            return problem(405, "", "Method Not Allowed", detail, {"Allow": "POST"})
        try:
            model = self.models.get()
        except (MLError, sqlite3.Error) as e:
            return unavailable(e)
        rows, problems = read_instances(request.get_data(), model.bundle.features)
        if problems:
            return invalid_request(problems)
        predictions = model.bundle.predict(rows)
        return {"model": self.params.model, "version": model.version, "predictions": predictions}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[str, int, dict[str, str]]:
    """An RFC 9457 problem details answer (``slug`` "": a plain HTTP error, ``about:blank``)."""
    kind = PROBLEM_TYPES + slug if slug else "about:blank"
    body = {"type": kind, "title": title, "status": status, "detail": detail, **extra}
    return json.dumps(body), status, {"Content-Type": PROBLEM_JSON, **(headers or {})}


def invalid_request(problems: list[str]) -> tuple[str, int, dict[str, str]]:
    shown = "; ".join(problems[:10])
    if len(problems) > 10:
        shown += f"; and {len(problems) - 10} more"
    return problem(
        400, "invalid-instances", "Invalid prediction request", shown, errors=problems[:100]
    )


def unavailable(error: Exception) -> tuple[str, int, dict[str, str]]:
    if isinstance(error, NoChampionError | ModelNotFoundError):
        slug, title = "no-model", "No model to serve"
    else:
        slug, title = "model-unavailable", "Model unavailable"
    detail = str(error) if isinstance(error, MLError) else f"the model registry failed: {error}"
    return problem(503, slug, title, detail, {"Retry-After": str(RETRY_AFTER_S)})


# --- reading the request ----------------------------------------------------


def read_instances(body: bytes, features: list[str]) -> tuple[list[list[float]], list[str]]:
    """The rows of ``{"instances": [...]}`` in ``features`` order, and every problem found."""
    if not body.strip():
        return [], ['the body is empty; send {"instances": [[...], ...]}']
    try:
        payload = json.loads(body, parse_constant=_no_constant)
    except ValueError as e:
        return [], [f"the body is not JSON: {e}"]
    if not isinstance(payload, dict) or "instances" not in payload:
        return [], ['the body must be a JSON object with "instances": a list of rows']
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        return [], ['"instances" must be a non-empty list of rows']
    rows, problems = [], []
    for index, row in enumerate(instances):
        values, found = read_row(index, row, features)
        rows.append(values)
        problems.extend(found)
    return rows, problems


def read_row(index: int, row: Any, features: list[str]) -> tuple[list[float], list[str]]:
    """One row (a list in feature order, or an object keyed by feature name)."""
    if isinstance(row, dict):
        missing = [name for name in features if name not in row]
        unknown = [name for name in row if name not in features]
        problems = [f"row {index} is missing feature(s) {_names(missing)}"] if missing else []
        if unknown:
            problems.append(
                f"row {index} has unknown feature(s) {_names(unknown)}; "
                f"the model takes {_names(features)}"
            )
        if problems:
            return [], problems
        values = [row[name] for name in features]
    elif isinstance(row, list):
        if len(row) != len(features):
            return [], [
                f"row {index} has {len(row)} values but the model takes {len(features)} "
                f"({_names(features)})"
            ]
        values = row
    else:
        kind = type(row).__name__
        return [], [
            f"row {index} is a {kind}; a row is a list of {len(features)} numbers "
            "or an object keyed by feature name"
        ]
    bad = [
        f"row {index}, feature {name!r}: {value!r} is not a number"
        for name, value in zip(features, values, strict=True)
        if isinstance(value, bool) or not isinstance(value, int | float)
    ]
    return values, bad


def _names(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# --- hosting -----------------------------------------------------------------


class LazyServer:
    """The process's one :class:`PredictServer`, built on first use from its settings."""

    def __init__(self, factory: Callable[[], PredictServer]):
        self.factory = factory
        self._server: PredictServer | None = None
        self._lock = threading.Lock()

    def get(self) -> PredictServer:
        if self._server is None:
            with self._lock:
                if self._server is None:
                    self._server = self.factory()
        return self._server


SERVER = LazyServer(lambda: PredictServer(FunctionContext.current()))


@functions_framework.http
def predict(request: flask.Request) -> Any:
    """Predictions from the champion of ``params.model`` (see the module docstring)."""
    try:
        server = SERVER.get()
    except PermanentError as e:  # the function's params are wrong
        return problem(500, "misconfigured", "predict is misconfigured", str(e))
    return server(request)
