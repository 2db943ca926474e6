"""Job mode: one event, run to completion in a subprocess; the result file and the exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cumulo.errors import TargetError
from cumulo.events.event import from_envelope, new_event, to_json
from cumulo.events.outcome import Failure, RetryLater, Success
from cumulo.runtimes.worker import (
    EXIT_FAILURE,
    EXIT_RETRY,
    EXIT_SUCCESS,
    outcome_from_dict,
    outcome_to_dict,
    run_job,
)
from cumulo.runtimes.worker.job import job_main
from tests.runtimes.worker import job_functions

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
RUN_JOB = """
import sys
from pathlib import Path
from cumulo.runtimes.worker.job import job_main
target, source, event, result = sys.argv[1:5]
sys.exit(job_main(target, Path(source), event_path=Path(event), result_path=Path(result),
                  name="train"))
"""


def run_in_subprocess(tmp_path: Path, target: str, event_type: str) -> tuple[int, dict]:
    event = new_event(event_type, "/test", {"epochs": 3}, id="e-1")
    event_path, result_path = tmp_path / "event.json", tmp_path / "out" / "result.json"
    event_path.write_bytes(to_json(event))
    command = [sys.executable, "-c", RUN_JOB, target, str(HERE), str(event_path), str(result_path)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=60)
    return finished.returncode, orjson.loads(result_path.read_bytes())


@pytest.mark.parametrize("target", ["job_functions:train", "job_functions:train_async"])
def test_success_writes_the_replies(tmp_path: Path, target: str) -> None:
    code, result = run_in_subprocess(tmp_path, target, "train")
    assert code == EXIT_SUCCESS == 0
    assert result["status"] == "success"
    [reply] = [from_envelope(envelope) for envelope in result["replies"]]
    assert (reply.type, reply.data) == ("model.trained", {"epochs": 3})
    assert reply.attributes["cumulocause"] == "e-1"
    assert reply.source == "/cumulo/functions/train"


def test_retry(tmp_path: Path) -> None:
    code, result = run_in_subprocess(tmp_path, "job_functions:train", "retry")
    assert code == EXIT_RETRY == 75
    assert result == {"status": "retry", "delay": 4, "errorType": "Retry", "message": "GPU busy"}


@pytest.mark.parametrize(
    ("event_type", "error_type", "message", "permanent"),
    [
        ("permanent", "PermanentError", "bad hyperparameters", True),
        ("crash", "RuntimeError", "out of memory", False),
    ],
)
def test_failure(tmp_path: Path, event_type, error_type, message, permanent) -> None:
    code, result = run_in_subprocess(tmp_path, "job_functions:train", event_type)
    assert code == EXIT_FAILURE == 1
    expected = {"status": "failed", "errorType": error_type, "message": message}
    assert result == {**expected, "permanent": permanent}


def test_a_target_that_cannot_load_fails(tmp_path: Path) -> None:
    code, result = run_in_subprocess(tmp_path, "no_such_module:train", "train")
    assert code == EXIT_FAILURE
    assert result["errorType"] == "TargetError"
    assert "ModuleNotFoundError" in result["message"]


def test_an_unreadable_event_fails_permanently(tmp_path: Path) -> None:
    (tmp_path / "event.json").write_bytes(b'{"id": "x"}')
    code = job_main(
        job_functions.train,
        event_path=tmp_path / "event.json",
        result_path=tmp_path / "result.json",
        name="train",
    )
    result = orjson.loads((tmp_path / "result.json").read_bytes())
    assert code == EXIT_FAILURE and result["permanent"] is True
    assert "missing required attribute 'source'" in result["message"]


def test_an_http_function_as_a_job() -> None:
    event = new_event("go", "/s", None, id="e-9")
    outcome = run_job(job_functions.http_job, signature="http", name="h", event=event)
    assert outcome == Success([])
    failing = run_job(
        job_functions.http_job, signature="http", name="h", event=new_event("fail", "/s")
    )
    assert failing == RetryLater("HTTPError", "HTTP 503: nope", 9.0)


@pytest.mark.parametrize(
    "outcome",
    [
        Success([new_event("a", "/b", {"c": 1})]),
        RetryLater("Retry", "later", 1.5),
        RetryLater("Retry", "later", None),
        Failure("ValueError", "bad", permanent=False),
    ],
)
def test_outcome_json_round_trip(outcome) -> None:
    assert outcome_from_dict(orjson.loads(orjson.dumps(outcome_to_dict(outcome)))) == outcome


def test_bad_signature_is_a_target_error() -> None:
    with pytest.raises(TargetError, match="signature 'grpc'"):
        run_job(job_functions.train, signature="grpc", name="x", event=new_event("t", "/s"))
