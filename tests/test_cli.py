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
    return subprocess.run([sys.executable, "-m", "cumulo", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60)


def test_validate_reports_every_mistake_as_file_path_message():
    result = cumulo("validate", "examples/invalid")

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("examples/")]
    assert len(lines) == 10
    assert "examples/invalid/cumulo.yaml:Function/train.spec.scale.max: " \
           "Input should be greater than or equal to 1" in lines
    assert "10 problem(s) found" in result.stderr


def test_validate_accepts_a_good_project():
    result = cumulo("validate", "examples/hello")
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout


def test_publish_without_a_platform_waits_on_the_bus(tmp_path):
    published = cumulo("publish", "test.offline", "--data", '{"n": 1}', "--dir",
                       "examples/hello", state=tmp_path)
    assert published.returncode == 0, published.stderr

    listed = cumulo("events", "--dir", "examples/hello", state=tmp_path)

    assert listed.returncode == 0, listed.stderr
    assert "test.offline" in listed.stdout and '{"n": 1}' in listed.stdout


def test_bad_json_data_is_refused_before_anything_is_published(tmp_path):
    result = cumulo("publish", "test.x", "--data", "{nope", "--dir", "examples/hello",
                    state=tmp_path)
    assert result.returncode == 2
    assert "--data is not valid JSON" in result.stderr
    assert not (tmp_path / "bus.db").exists()


def test_commands_that_need_the_platform_say_so(tmp_path):
    result = cumulo("status", "--dir", "examples/hello", state=tmp_path)
    assert result.returncode == 1
    assert "no platform is running" in result.stderr
