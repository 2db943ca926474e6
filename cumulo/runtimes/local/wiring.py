"""How a project's resources become running parts: bus URLs, implied triggers."""

from __future__ import annotations

from pathlib import Path

from cumulo.config import Settings
from cumulo.events.sources import source_uri
from cumulo.spec import Project
from cumulo.spec.models import EventBus, Filter, Metadata, Trigger, TriggerSpec

SQLITE_PREFIX = "sqlite:///"


def bus_url(bus: EventBus, root: Path, state: Path, settings: Settings) -> str:
    """The bus's URL; the embedded default lives in the state directory.

    A relative SQLite path is relative to the project, not to where the
    command was started.
    """
    url = bus.spec.url or (settings.bus_url if bus.name == "default" else None)
    if url is None:
        return f"{SQLITE_PREFIX}{(state / 'bus.db').resolve()}"
    if url.startswith(SQLITE_PREFIX) and not url.startswith(SQLITE_PREFIX + "/"):
        return f"{SQLITE_PREFIX}{(root / url[len(SQLITE_PREFIX) :]).resolve()}"
    return url


def source_triggers(project: Project) -> dict[str, Trigger]:
    """A trigger for each source whose sink names a function directly."""
    triggers = {}
    for source in project.sources.values():
        sink = source.spec.sink
        if sink.function is None:
            continue
        name = f"{source.name}-to-{sink.function}"
        triggers[name] = Trigger(
            metadata=Metadata(name=name),
            spec=TriggerSpec(
                function=sink.function,
                bus=sink.bus,
                topic=sink.topic,
                filters=[Filter(exact={"source": source_uri(source.name)})],
            ),
        )
    return triggers
