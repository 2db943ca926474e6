"""The `cumulo` command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def cumulo(*args: str, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if state is not None:
        env["CUMULO_STATE_DIR"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "cumulo", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_validate_reports_every_mistake_as_file_path_message():
    result = cumulo("validate", "examples/invalid")

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("examples/")]
    assert len(lines) == 10
    assert (
        "examples/invalid/cumulo.yaml:Function/train.spec.scale.max: "
        "Input should be greater than or equal to 1" in lines
    )
    assert "10 problem(s) found" in result.stderr


def test_validate_accepts_a_good_project():
    result = cumulo("validate", "examples/hello")
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout


def test_publish_without_a_platform_waits_on_the_bus(tmp_path):
    published = cumulo(
        "publish", "test.offline", "--data", '{"n": 1}', "--dir", "examples/hello", state=tmp_path
    )
    assert published.returncode == 0, published.stderr

    listed = cumulo("events", "--dir", "examples/hello", state=tmp_path)

    assert listed.returncode == 0, listed.stderr
    assert "test.offline" in listed.stdout and '{"n": 1}' in listed.stdout


def test_bad_json_data_is_refused_before_anything_is_published(tmp_path):
    result = cumulo(
        "publish", "test.x", "--data", "{nope", "--dir", "examples/hello", state=tmp_path
    )
    assert result.returncode == 2
    assert "--data is not valid JSON" in result.stderr
    assert not (tmp_path / "bus.db").exists()


def test_commands_that_need_the_platform_say_so(tmp_path):
    result = cumulo("status", "--dir", "examples/hello", state=tmp_path)
    assert result.returncode == 1
    assert "no platform is running" in result.stderr


HELLO = {
    "cumulo.yaml": "apiVersion: cumulo.dev/v1alpha1\nkind: Function\nmetadata: {name: hello}\n"
    "spec: {handler: 'main:hello'}\n",
    "main.py": "def hello(request):\n    return 'hello'\n",
}
SECRET = "aws_secret_access_key=TOP-SECRET-VALUE"


def hello_project(tmp_path: Path) -> Path:
    """A one-function project; its state folder is ``tmp_path/state``."""
    project = tmp_path / "project"
    project.mkdir()
    for name, text in HELLO.items():
        (project / name).write_text(text)
    (tmp_path / "state" / "logs").mkdir(parents=True)
    (tmp_path / "state" / "runs").mkdir()
    return project


def refused(result: subprocess.CompletedProcess[str], tmp_path: Path, rule: str) -> None:
    """Exit 2, the rule named, and neither the planted secret nor a resolved path shown."""
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and rule in result.stderr, result.stderr
    output = result.stdout + result.stderr
    assert "TOP-SECRET" not in output
    assert str(tmp_path) not in output.replace("\n", "")


def test_logs_of_a_name_that_climbs_out_of_the_state_folder_are_refused(tmp_path):
    project = hello_project(tmp_path)
    (tmp_path / "secret.log").write_text(SECRET)  # STATE/logs/../../secret.log
    result = cumulo("logs", "../../secret", "--dir", str(project), state=tmp_path / "state")
    refused(result, tmp_path, "no such function '../../secret' (the project has: hello)")


def test_logs_of_a_run_id_that_climbs_out_of_the_state_folder_are_refused(tmp_path):
    project = hello_project(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "log.txt").write_text(SECRET)  # STATE/runs/../../x/log.txt
    result = cumulo(
        "logs", "hello", "--run", "../../x", "--dir", str(project), state=tmp_path / "state"
    )
    refused(result, tmp_path, "a run id is 1-64 letters, digits, '-' or '_'")


def test_a_run_log_linked_to_a_file_outside_the_state_folder_is_refused(tmp_path):
    project = hello_project(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "log.txt").write_text(SECRET)
    (tmp_path / "state" / "runs" / "planted").symlink_to(tmp_path / "x")
    result = cumulo(
        "logs", "hello", "--run", "planted", "--dir", str(project), state=tmp_path / "state"
    )
    refused(result, tmp_path, "the log of run 'planted' would lie outside the state folder")


def test_logs_of_an_unknown_function_say_so_without_a_path(tmp_path):
    project = hello_project(tmp_path)
    result = cumulo("logs", "nope", "--dir", str(project), state=tmp_path / "state")
    refused(result, tmp_path, "no such function 'nope'")
    runs = cumulo("runs", "--function", "nope", "--dir", str(project), state=tmp_path / "state")
    refused(runs, tmp_path, "no such function 'nope'")


def test_logs_of_a_function_and_of_a_run_inside_the_state_folder_are_printed(tmp_path):
    project = hello_project(tmp_path)
    state = tmp_path / "state"
    (state / "logs" / "hello.log").write_text("worker said hello\n")
    (state / "runs" / "20261122-101500-a1b2c3").mkdir()
    (state / "runs" / "20261122-101500-a1b2c3" / "log.txt").write_text("run said hello\n")

    function_log = cumulo("logs", "hello", "--dir", str(project), state=state)
    run_log = cumulo(
        "logs", "hello", "--run", "20261122-101500-a1b2c3", "--dir", str(project), state=state
    )
    missing = cumulo(
        "logs", "hello", "--run", "20261122-101500-ffffff", "--dir", str(project), state=state
    )

    assert (function_log.returncode, function_log.stdout) == (0, "worker said hello\n")
    assert (run_log.returncode, run_log.stdout) == (0, "run said hello\n")
    assert missing.returncode == 1
    assert "no log for run '20261122-101500-ffffff'" in missing.stderr
    assert str(tmp_path) not in missing.stderr
