"""The ML lifecycle's event types, and the lineage every event in a chain carries.

A chain starts with a dataset (``dataset.ready``), a schedule or an image
(``image.built``) and runs train → evaluate → deploy. Each capability copies
the lineage of the event it received into the events it emits and adds what it
learned (run id, model version), so a deployed model can say which data, commit
and image it came from: ``cumulo models show NAME VERSION``.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from cumulo.events.event import Event, new_event

PREFIX: Final = "dev.cumulo."
DATASET_READY: Final = "dev.cumulo.dataset.ready"
IMAGE_BUILT: Final = "dev.cumulo.image.built"
MODEL_TRAINED: Final = "dev.cumulo.model.trained"
MODEL_EVALUATED: Final = "dev.cumulo.model.evaluated"
MODEL_REJECTED: Final = "dev.cumulo.model.rejected"
MODEL_DEPLOYED: Final = "dev.cumulo.model.deployed"
MODEL_DRIFTED: Final = "dev.cumulo.model.drifted"
RUN_PROGRESS: Final = "dev.cumulo.run.progress"
RUN_FAILED: Final = "dev.cumulo.run.failed"
CRON_TICK: Final = "dev.cumulo.cron.tick"

# Keys of an event's data that name where the chain started.
_DATA_KEYS = {
    "uri": "dataset_uri",
    "datasetUri": "dataset_uri",
    "version": "dataset_version",
    "etag": "dataset_version",
    "commit": "git_commit",
    "digest": "image_digest",
}


class Lineage(BaseModel):
    """Where a model came from. Every field is optional: a chain knows what it knows."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    dataset_uri: str | None = None
    dataset_hash: str | None = None
    dataset_version: str | None = None
    git_commit: str | None = None
    image_digest: str | None = None
    run_id: str | None = None
    model: str | None = None
    model_version: int | None = None
    trigger_event: str | None = None  # the id of the event that started the chain

    @classmethod
    def of(cls, event: Event) -> Lineage:
        """The lineage an event carries in ``data.lineage``, else what its data names."""
        data = event.data if isinstance(event.data, dict) else {}
        carried = data.get("lineage")
        if isinstance(carried, dict):
            return cls.model_validate(carried)
        if event.type == RUN_FAILED or not data:
            return cls(trigger_event=event.id)
        found: dict[str, Any] = {
            field: str(data[key]) for key, field in _DATA_KEYS.items() if data.get(key)
        }
        return cls(trigger_event=event.id, **found)

    def with_(self, **changes: Any) -> Lineage:
        """A copy with some fields set (``None`` values are ignored)."""
        given = {key: value for key, value in changes.items() if value is not None}
        return self.model_copy(update=given)

    def dump(self) -> dict[str, Any]:
        """The JSON form (camelCase, unknown fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True)


def lineage_event(
    type: str, function: str, data: dict[str, Any], lineage: Lineage, *, subject: str | None = None
) -> Event:
    """An event of the ML chain: ``data`` plus its lineage, sourced from the function."""
    return new_event(
        type,
        f"/cumulo/functions/{function or 'local'}",
        {**data, "lineage": lineage.dump()},
        subject=subject,
    )
