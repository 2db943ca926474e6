"""What an ML capability function needs from its platform, in one object.

::

    ctx = FunctionContext.current()
    params = ctx.params(TrainParams, event)      # spec.params; data.params may set a few
    ctx.models.register(...)                     # the model registry
    ctx.artifacts.put(key, path)                 # the artifact store
    ctx.publish(event)                           # progress while the run goes on

Everything comes from :class:`~cumulo.config.FunctionSettings`, which
``cumulo up`` (or a cluster Deployment) fills in; tests build one directly.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cumulo.config import FunctionSettings, Settings
from cumulo.context import current_run_id
from cumulo.errors import CumuloError, PermanentError
from cumulo.events.event import Event
from cumulo.functions.artifacts import ArtifactStore, LocalFile, artifact_store, local_copy
from cumulo.functions.capabilities import merge_params
from cumulo.functions.model_registry import ModelRegistry

P = TypeVar("P", bound=BaseModel)
log = logging.getLogger("cumulo.functions")


class FunctionContext:
    def __init__(self, settings: FunctionSettings):
        self.settings = settings

    @classmethod
    def current(cls) -> FunctionContext:
        """The context described by this process's settings."""
        return cls(FunctionSettings())

    @property
    def name(self) -> str:
        return self.settings.function

    @property
    def run_id(self) -> str | None:
        return current_run_id()

    @functools.cached_property
    def models(self) -> ModelRegistry:
        return ModelRegistry(self.settings.models_path)

    @functools.cached_property
    def artifacts(self) -> ArtifactStore:
        return artifact_store(self.settings.artifacts, endpoint_url=self.settings.s3_endpoint_url)

    def fetch(self, uri: str) -> LocalFile:
        """A local copy of a dataset or artifact URI; relative paths are the project's."""
        cache = self.settings.state_dir / "cache"
        if "://" not in uri and not Path(uri).is_absolute():
            uri = str(self.settings.project_dir / uri)
        return local_copy(uri, cache, endpoint_url=self.settings.s3_endpoint_url)

    def params(self, model: type[P], event: Any = None) -> P:
        """The function's params, with what ``data.params`` of the event may choose on top.

        An event may set only the fields ``model`` marks event-settable
        (:mod:`.capabilities`). A mistake is a :class:`PermanentError`:
        retrying cannot fix it.
        """
        chosen = event_data(event).get("params")
        given = merge_params(
            model, self.settings.params, chosen if isinstance(chosen, Mapping) else {}
        )
        try:
            return model.model_validate(given)
        except ValidationError as e:
            raise PermanentError(f"{self.name or 'function'} params: {e}") from e

    def publish(self, event: Event) -> None:
        """Publish an event now (not when the function returns); best effort.

        Used for progress: a run that cannot report progress still runs.
        """
        from cumulo.client import Client  # the client is above this layer

        try:
            Client(settings=Settings(state_dir=self.settings.state_dir)).publish_events([event])
        except (CumuloError, OSError) as e:
            log.warning("could not publish %s: %s", event.type, e)


def event_data(event: Any) -> dict[str, Any]:
    """The JSON object an event carries (a CloudEvent SDK object or an :class:`Event`)."""
    data = getattr(event, "data", None)
    return data if isinstance(data, dict) else {}


def event_attributes(event: Any) -> dict[str, Any]:
    """The context attributes of a CloudEvent SDK object or an :class:`Event`."""
    if isinstance(event, Event):
        return dict(event.attributes)
    return dict(event.get_attributes()) if hasattr(event, "get_attributes") else {}


def as_event(event: Any) -> Event:
    """An :class:`Event` from whatever the function was given."""
    if isinstance(event, Event):
        return event
    return Event(event_attributes(event), getattr(event, "data", None))


def data_path(settings: FunctionSettings, *parts: str) -> Path:
    """A path under the state directory for a function's own files."""
    path = settings.state_dir.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
