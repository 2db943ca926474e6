"""``Project``: every resource of one project, checked and indexed by name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cumulo.spec.documents import dump_documents, resource_document
from cumulo.spec.models import (
    EventBus,
    EventSource,
    Filter,
    Function,
    Metadata,
    Resource,
    Trigger,
    TriggerSpec,
)

DEFAULT_BUS = "default"
SOURCE_EXTENSION = "cumulosource"  # the EventSource name, on events whose `source` is not ours


def source_uri(source_name: str) -> str:
    """The CloudEvent ``source`` attribute of the events an EventSource emits as its own."""
    return f"/cumulo/sources/{source_name}"


def sink_trigger(source: EventSource) -> Trigger | None:
    """The trigger implied by a source whose sink names a function, else ``None``.

    It matches the source's events by their ``source`` URI, or by the
    ``cumulosource`` extension (a Git push keeps the repository as its source).
    """
    sink = source.spec.sink
    if sink.function is None:
        return None
    by_uri = Filter(exact={"source": source_uri(source.name)})
    by_name = Filter(exact={SOURCE_EXTENSION: source.name})
    spec = TriggerSpec(
        function=sink.function,
        bus=sink.bus,
        topic=sink.topic,
        filters=[Filter(any=[by_uri, by_name])],
    )
    return Trigger(metadata=Metadata(name=f"{source.name}-to-{sink.function}"), spec=spec)


def implicit_default_bus() -> EventBus:
    """The bus named ``default`` that every project has, declared or not."""
    return EventBus(metadata=Metadata(name=DEFAULT_BUS))


def inline_trigger_name(function_name: str, index: int, name: str | None) -> str:
    """The name of a function's ``index``-th inline trigger: its own, or ``function-index``."""
    return name or f"{function_name}-{index}"


def inline_trigger(function: Function, index: int) -> Trigger:
    """A function's ``index``-th inline trigger binding as a Trigger resource.

    Raises :class:`pydantic.ValidationError` when the made-up name is too long
    (a function name of 62 or 63 characters).
    """
    binding = function.spec.triggers[index]
    fields = {key: value for key, value in binding if key != "name"}
    spec = TriggerSpec.model_validate({**fields, "function": function.name})
    name = inline_trigger_name(function.name, index, binding.name)
    return Trigger(metadata=Metadata(name=name), spec=spec)


def inline_triggers(function: Function) -> Iterator[Trigger]:
    """All of a function's inline trigger bindings as Trigger resources."""
    for index in range(len(function.spec.triggers)):
        yield inline_trigger(function, index)


@dataclass
class Project:
    """A project's resources by name.

    ``triggers`` holds the standalone Trigger resources and every function's
    inline triggers (see :func:`inline_triggers`); ``buses`` always holds
    ``default``.
    """

    root: Path
    functions: dict[str, Function] = field(default_factory=dict)
    sources: dict[str, EventSource] = field(default_factory=dict)
    buses: dict[str, EventBus] = field(default_factory=dict)
    triggers: dict[str, Trigger] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.buses.setdefault(DEFAULT_BUS, implicit_default_bus())

    def implied_triggers(self) -> dict[str, Trigger]:
        """The triggers of sources whose sink is a function (see :func:`sink_trigger`)."""
        implied = (sink_trigger(source) for source in self.sources.values())
        return {trigger.name: trigger for trigger in implied if trigger is not None}

    def all_triggers(self) -> dict[str, Trigger]:
        """Standalone, inline and implied triggers: everything that delivers to a function."""
        return {**self.triggers, **self.implied_triggers()}

    def triggers_for(self, function_name: str) -> list[Trigger]:
        """The triggers that deliver to a function, standalone and inline."""
        return [t for t in self.triggers.values() if t.spec.function == function_name]

    def declared_resources(self) -> Iterator[Resource]:
        """The resources as a user would declare them.

        Inline triggers stay inside their functions and an implicit ``default``
        bus is left out, so loading :meth:`to_yaml` gives this project again.
        """
        yield from self.functions.values()
        yield from self.sources.values()
        implicit = implicit_default_bus()
        yield from (bus for bus in self.buses.values() if bus != implicit)
        inline = {t.name: t for f in self.functions.values() for t in inline_triggers(f)}
        yield from (t for t in self.triggers.values() if inline.get(t.name) != t)

    def to_yaml(self) -> str:
        """Every declared resource as multi-document YAML (camelCase, defaults left out)."""
        return dump_documents(resource_document(r) for r in self.declared_resources())
