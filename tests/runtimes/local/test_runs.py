"""The record of job runs in ``runs.db``: what ``cumulo runs`` and the dashboard read."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from cumulo.runtimes.local.runs import RunStore
from cumulo.runtimes.local.state_files import RUN_ID, run_log


@pytest.fixture
def runs(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def test_a_started_run_is_running_with_its_own_log_folder(runs: RunStore, tmp_path: Path) -> None:
    run = runs.start("train", "e-1", "dataset.ready", trace="a" * 32)

    assert (run.function, run.event_id, run.event_type, run.trace) == (
        "train",
        "e-1",
        "dataset.ready",
        "a" * 32,
    )
    assert (run.status, run.finished, run.exit_code, run.error, run.duration) == (
        "running",
        None,
        None,
        None,
        None,
    )
    assert abs(run.started - time.time()) < 60
    assert Path(run.log) == tmp_path / "runs" / run.id / "log.txt"
    assert Path(run.log).parent.is_dir()


def test_a_run_id_is_one_the_log_commands_accept(runs: RunStore, tmp_path: Path) -> None:
    run = runs.start("train", "e-1", "dataset.ready")

    assert RUN_ID.fullmatch(run.id)
    assert run_log(tmp_path, run.id) == Path(run.log).resolve()


def test_run_ids_are_unique_within_the_same_second(runs: RunStore) -> None:
    ids = {runs.start("train", f"e-{n}", "t").id for n in range(20)}

    assert len(ids) == 20


def test_finishing_a_run_records_status_exit_code_error_and_duration(runs: RunStore) -> None:
    run = runs.start("train", "e-1", "dataset.ready")

    runs.finish(run.id, "failed", 1, "ValueError: boom")

    done = runs.get(run.id)
    assert (done.status, done.exit_code, done.error) == ("failed", 1, "ValueError: boom")
    assert done.finished is not None and done.duration is not None
    assert 0 <= done.duration < 60


def test_runs_are_listed_newest_first_per_function_and_limited(runs: RunStore) -> None:
    started = [runs.start(fn, f"e-{n}", "t") for n, fn in enumerate(["a", "b", "a", "a"])]

    assert [run.id for run in runs.list()] == [run.id for run in reversed(started)]
    assert [run.event_id for run in runs.list("a")] == ["e-3", "e-2", "e-0"]
    assert [run.event_id for run in runs.list("a", limit=2)] == ["e-3", "e-2"]
    assert runs.list("nobody") == []


def test_counts_are_of_finished_runs_by_function_and_status(runs: RunStore) -> None:
    outcomes = [("a", "succeeded"), ("a", "succeeded"), ("a", "failed"), ("b", "timed-out")]
    for function, status in outcomes:
        runs.finish(runs.start(function, "e", "t").id, status, 0, None)
    runs.start("b", "e", "t")  # still running: not counted

    assert runs.counts() == {("a", "succeeded"): 2, ("a", "failed"): 1, ("b", "timed-out"): 1}


def test_a_store_reopened_on_the_same_file_sees_the_same_runs(
    runs: RunStore, tmp_path: Path
) -> None:
    run = runs.start("train", "e-1", "t")
    runs.finish(run.id, "succeeded", 0, None)

    again = RunStore(tmp_path / "runs.db")

    assert again.get(run.id) == runs.get(run.id)


def test_a_runs_db_from_before_traces_gains_the_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, function TEXT NOT NULL, event_id TEXT NOT NULL,"
            " event_type TEXT NOT NULL, status TEXT NOT NULL, started REAL NOT NULL, finished REAL,"
            " exit_code INTEGER, error TEXT, log TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO runs VALUES ('old-1', 'train', 'e', 't', 'succeeded', 1.0, 2.0, 0, NULL, 'l')"
        )
    db.close()

    runs = RunStore(path)

    old = runs.get("old-1")
    assert (old.status, old.duration, old.trace) == ("succeeded", 1.0, None)
    assert runs.start("train", "e-2", "t", trace="b" * 32).trace == "b" * 32
