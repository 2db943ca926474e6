"""Files a command or a request names in the state folder: only where they belong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cumulo.errors import FunctionNotFoundError, StatePathError
from cumulo.runtimes.local.state_files import function_log, inside, recorded_run_log, run_log

FUNCTIONS = ("train", "evaluate")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    (tmp_path / "state" / "logs").mkdir(parents=True)
    (tmp_path / "state" / "runs").mkdir()
    return tmp_path / "state"


def test_a_functions_log_is_in_the_logs_folder(state: Path) -> None:
    assert function_log(state, "train", FUNCTIONS) == (state / "logs" / "train.log").resolve()


@pytest.mark.parametrize("name", ["predict", "../train", "train/../../x", ""])
def test_only_a_function_the_project_has_has_a_log(state: Path, name: str) -> None:
    with pytest.raises(FunctionNotFoundError) as refused:
        function_log(state, name, FUNCTIONS)

    assert str(refused.value) == f"no such function '{name}' (the project has: evaluate, train)"


def test_a_project_without_functions_says_so(state: Path) -> None:
    with pytest.raises(FunctionNotFoundError, match=r"\(the project has: none\)"):
        function_log(state, "train", ())


def test_a_log_that_links_out_of_the_state_folder_is_refused_without_its_path(
    state: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not a log")
    os.symlink(secret, state / "logs" / "train.log")

    with pytest.raises(StatePathError) as refused:
        function_log(state, "train", FUNCTIONS)

    assert (
        str(refused.value)
        == "the log of function 'train' would lie outside the state folder: refused"
    )
    assert str(tmp_path) not in str(refused.value)


def test_a_runs_log_is_in_its_run_folder(state: Path) -> None:
    run = "20261122-101500-a1b2c3"

    assert run_log(state, run) == (state / "runs" / run / "log.txt").resolve()


@pytest.mark.parametrize(
    "run", ["../../etc", "a/b", "", "-leading-dash", "x" * 65, "run id", ".hidden", "run\nx"]
)
def test_a_run_id_not_shaped_like_one_is_refused(state: Path, run: str) -> None:
    with pytest.raises(StatePathError, match="a run id is 1-64 letters, digits"):
        run_log(state, run)


def test_a_run_id_with_a_trailing_newline_is_refused(state: Path) -> None:
    with pytest.raises(StatePathError, match="a run id is 1-64 letters, digits"):
        run_log(state, "run\n")


def test_the_longest_run_id_is_accepted(state: Path) -> None:
    assert run_log(state, "r" * 64).parent.name == "r" * 64


def test_a_run_folder_linked_out_of_the_state_folder_is_refused(
    state: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", state / "runs" / "escaped")

    with pytest.raises(StatePathError, match="the log of run 'escaped' would lie outside"):
        run_log(state, "escaped")


def test_a_recorded_log_is_used_only_inside_the_runs_folder(state: Path, tmp_path: Path) -> None:
    recorded = state / "runs" / "r-1" / "log.txt"

    assert recorded_run_log(state, str(recorded)) == recorded.resolve()
    assert recorded_run_log(state, str(state / "logs" / "train.log")) is None  # not under runs/
    assert recorded_run_log(state, str(tmp_path / "elsewhere.txt")) is None
    assert recorded_run_log(state, str(state / "runs" / ".." / ".." / "x")) is None


def test_inside_resolves_what_it_accepts(state: Path) -> None:
    assert inside(state, state / "logs" / ".." / "runs", "it") == (state / "runs").resolve()
    with pytest.raises(StatePathError, match=r"^it would lie outside the state folder: refused$"):
        inside(state, state / "..", "it")
