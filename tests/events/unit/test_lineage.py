"""Lineage: what an ML chain's events carry about where a model came from."""

from __future__ import annotations

from cumulo.events import lineage, tracing
from cumulo.events.event import new_event
from cumulo.events.lineage import Lineage, lineage_event

CAUSE_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_event_types_share_the_cumulo_prefix() -> None:
    types = [
        lineage.DATASET_READY,
        lineage.IMAGE_BUILT,
        lineage.MODEL_TRAINED,
        lineage.MODEL_EVALUATED,
        lineage.MODEL_REJECTED,
        lineage.MODEL_DEPLOYED,
        lineage.MODEL_DRIFTED,
        lineage.RUN_PROGRESS,
        lineage.RUN_FAILED,
        lineage.CRON_TICK,
    ]
    assert all(name.startswith(lineage.PREFIX) for name in types)
    assert len(set(types)) == len(types)


def test_a_carried_lineage_is_read_as_it_is() -> None:
    carried = {"datasetUri": "s3://data/v3", "runId": "r-1", "modelVersion": 4, "other": "x"}
    event = new_event(lineage.MODEL_TRAINED, "/fn", {"lineage": carried, "uri": "s3://ignored"})
    found = Lineage.of(event)
    assert (found.dataset_uri, found.run_id, found.model_version) == ("s3://data/v3", "r-1", 4)
    assert found.trigger_event is None  # not added: the chain already said where it started


def test_without_a_lineage_the_data_names_where_the_chain_starts() -> None:
    data = {"datasetUri": "s3://data/v3", "etag": "abc", "commit": "f00d", "digest": "sha256:1"}
    event = new_event(lineage.DATASET_READY, "/sources/s3", data)
    found = Lineage.of(event)
    assert found.dataset_uri == "s3://data/v3"
    assert found.dataset_version == "abc"
    assert found.git_commit == "f00d"
    assert found.image_digest == "sha256:1"
    assert found.trigger_event == event.id


def test_data_values_become_text_and_empty_ones_are_left_out() -> None:
    event = new_event(lineage.DATASET_READY, "/s", {"uri": "s3://d", "version": 7, "commit": ""})
    found = Lineage.of(event)
    assert found.dataset_version == "7"
    assert found.git_commit is None


def test_a_failure_notice_or_data_that_is_no_object_only_names_the_event() -> None:
    failed = new_event(lineage.RUN_FAILED, "/fn", {"uri": "s3://d"})
    assert Lineage.of(failed) == Lineage(trigger_event=failed.id)
    samples: tuple[object, ...] = (None, b"bytes", [1, 2], {})
    for data in samples:
        event = new_event(lineage.CRON_TICK, "/cron", data)
        assert Lineage.of(event) == Lineage(trigger_event=event.id)


def test_with_sets_fields_and_ignores_none() -> None:
    base = Lineage(dataset_uri="s3://d", run_id="r-1")
    changed = base.with_(run_id="r-2", model="churn", git_commit=None)
    assert (changed.dataset_uri, changed.run_id, changed.model) == ("s3://d", "r-2", "churn")
    assert base.run_id == "r-1"  # a copy


def test_dump_is_camel_case_without_empty_fields() -> None:
    dumped = Lineage(dataset_uri="s3://d", model_version=2, trigger_event="e-1").dump()
    assert dumped == {"datasetUri": "s3://d", "modelVersion": 2, "triggerEvent": "e-1"}
    assert Lineage.model_validate(dumped) == Lineage(
        dataset_uri="s3://d", model_version=2, trigger_event="e-1"
    )


def test_a_lineage_event_carries_data_lineage_and_its_functions_source() -> None:
    trail = Lineage(dataset_uri="s3://d", run_id="r-1")
    event = lineage_event(lineage.MODEL_TRAINED, "train", {"metric": 0.9}, trail, subject="m")
    assert event.type == lineage.MODEL_TRAINED
    assert event.source == "/cumulo/functions/train"
    assert event.subject == "m"
    assert event.data == {"metric": 0.9, "lineage": {"datasetUri": "s3://d", "runId": "r-1"}}
    assert Lineage.of(event) == trail


def test_a_lineage_event_without_a_function_name_is_local() -> None:
    assert lineage_event(lineage.RUN_PROGRESS, "", {}, Lineage()).source == (
        "/cumulo/functions/local"
    )


def test_a_lineage_event_made_while_handling_joins_the_trace() -> None:
    cause = new_event(lineage.DATASET_READY, "/s", traceparent=CAUSE_TRACE)
    with tracing.handling(cause):
        event = lineage_event(lineage.MODEL_TRAINED, "train", {}, Lineage.of(cause))
    assert tracing.trace_id_of(event) == "0af7651916cd43dd8448eb211c80319c"
