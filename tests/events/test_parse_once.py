"""An event is parsed and validated once, at the edge, and stored without a second check.

The gateway reads events with the edge's rules (every rule of the spec and the
limits); the bus then stores them as they are. What did not come through the
edge (a function's reply, an event built in code, a changed copy) is still
checked by the bus before it is stored.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from cumulo.errors import InvalidEventError
from cumulo.events import event as event_module
from cumulo.events import tracing
from cumulo.events.bus.sqlite import SqliteBus
from cumulo.events.cloudevent import events_from_http
from cumulo.events.event import Event, new_event

STRUCTURED = {"content-type": "application/cloudevents+json"}
EVENT = {"specversion": "1.0", "id": "e1", "source": "/s", "type": "t", "data": {"n": 1}}


class Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.real = event_module.validate_attributes

    def __call__(self, *args: object, **kwargs: object) -> list[str]:
        self.calls += 1
        return self.real(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Counting:
    counter = Counting()
    monkeypatch.setattr(event_module, "validate_attributes", counter)
    return counter


@pytest.fixture
async def bus(tmp_path: Path):
    sqlite = SqliteBus(f"sqlite:///{tmp_path}/bus.db")
    await sqlite.start()
    yield sqlite
    await sqlite.close()


def test_what_the_edge_reads_is_checked_in_every_mode() -> None:
    structured = events_from_http(STRUCTURED, orjson.dumps(EVENT))
    batch = events_from_http({"content-type": "application/cloudevents-batch+json"},
                             orjson.dumps([EVENT, EVENT | {"id": "e2"}]))  # fmt: skip
    binary = events_from_http(
        {"ce-specversion": "1.0", "ce-id": "b", "ce-source": "/s", "ce-type": "t"}, b""
    )
    assert all(e.checked for e in structured + batch + binary)


def test_a_changed_copy_is_unchecked_but_a_new_trace_keeps_the_mark() -> None:
    [read] = events_from_http(STRUCTURED, orjson.dumps(EVENT))
    assert not read.with_attributes(subject="x").checked
    traced = tracing.ensure_trace(read)
    assert traced is not read and tracing.context_of(traced.attributes) is not None
    assert traced.checked
    assert not new_event("t", "/s").checked


async def test_an_ingested_event_is_validated_once_on_its_way_to_the_bus(
    counting: Counting, bus: SqliteBus
) -> None:
    events = events_from_http(STRUCTURED, orjson.dumps(EVENT))
    await bus.publish("default", [tracing.ensure_trace(e) for e in events])
    assert counting.calls == 1  # at the edge; not again when stored
    [stored] = await bus.read("default", after=-1, limit=1)
    assert stored.event.id == "e1" and stored.event.data == {"n": 1}


async def test_an_event_that_skipped_the_edge_is_still_checked_by_the_bus(
    counting: Counting, bus: SqliteBus
) -> None:
    bad = Event({"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "Bad": "1"})
    with pytest.raises(InvalidEventError, match="lowercase"):
        await bus.publish("default", [bad])
    assert counting.calls == 1
    assert await bus.read("default", after=-1, limit=1) == []
