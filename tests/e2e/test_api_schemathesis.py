"""schemathesis over ``/api/openapi.json`` against a live ``cumulo up``: 0 failures of any check.

The project is examples/hello (an HTTP function, two cloudevent functions on
triggers, a cron source) plus a signed webhook source, with the API token
set. schemathesis runs every phase (examples, coverage, fuzzing, stateful)
with every check, 50 examples per operation and a fixed seed; its
``schemathesis.toml`` (below) makes half the generated names real ones (the
functions, the source, the triggers, the topics), so requests reach the
handlers instead of stopping at a 404.

One thing is configured away, for a reason the document cannot fix:
``/fn/*`` is the user's function's own endpoint. What it accepts is the
function's business (a cloudevent function takes only a POSTed CloudEvent,
an HTTP function may treat DELETE as it likes), so the checks that assume the
document knows which requests succeed (``positive_data_acceptance``,
``allow_header_conformance``, ``use_after_free``,
``ensure_resource_availability``) do not apply there. Every other check runs
on ``/fn/*`` too: no 5xx from the platform, statuses and content types as
documented, the token enforced.

``POST /events`` runs as a test of its own, so its result stays with the
ingest path it checks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cumulo.runtimes.local.openapi import document
from tests.e2e.conftest import write_project
from tests.e2e.platform import RunningPlatform

HELLO = Path(__file__).parents[2] / "examples" / "hello"
TOKEN = "schemathesis-token"
HOOKS = """
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: hooks}
spec:
  webhook: {auth: hmac, secret: {env: HOOKS_SECRET}}
  type: dev.cumulo.example.hook
"""
CONFIG = """\
checks.enabled = true  # every check, as `--checks all`, so /fn/* below can opt out of four

[dictionaries.names]
values = ["hello", "greet", "record", "heartbeat", "hooks"]
[dictionaries.topics]
values = ["default", "dead-letter"]
[dictionaries.triggers]
values = ["greet-0", "record-0", "heartbeat-0"]

[parameters]
"path.name" = { dictionary = "names", probability = 0.5 }
"query.topic" = { dictionary = "topics", probability = 0.5 }
"body.topic" = { dictionary = "topics", probability = 0.5 }
"body.trigger" = { dictionary = "triggers", probability = 0.5 }

# A user's function decides what it accepts: see this test's docstring.
[[operations]]
include-path-regex = "^/fn/"
checks.positive_data_acceptance.enabled = false
checks.allow_header_conformance.enabled = false
checks.use_after_free.enabled = false
checks.ensure_resource_availability.enabled = false
"""
EXAMPLES = "50"
SEED = "20261201"
RUN_LIMIT = 200  # seconds for one schemathesis run; ~60 s on 2 busy cores

pytestmark = pytest.mark.timeout(RUN_LIMIT + 60)


@pytest.fixture
def platform(platform_factory, tmp_path: Path) -> RunningPlatform:
    files = {
        "main.py": (HELLO / "main.py").read_text(),
        "cumulo.yaml": (HELLO / "cumulo.yaml").read_text() + HOOKS,
    }
    project = write_project(tmp_path / "hello", files)
    return platform_factory(project, env={"CUMULO_API_TOKEN": TOKEN, "HOOKS_SECRET": "s3cret"})


def schemathesis(platform: RunningPlatform, folder: Path, *filters: str) -> str:
    """Run ``st run`` over the live document; its output, after asserting 0 failures."""
    folder.mkdir(exist_ok=True)
    (folder / "schemathesis.toml").write_text(CONFIG)
    command = [
        str(Path(sys.executable).parent / "st"), "run", f"{platform.url}/api/openapi.json",
        "--max-examples", EXAMPLES, "--seed", SEED, "--workers", "1",
        "--header", f"Authorization: Bearer {TOKEN}", "--request-timeout", "20",
        "--report", "junit", "--report-dir", str(folder / "report"), *filters,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, timeout=RUN_LIMIT, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20_000:]
    assert re.search(r"(\d+) generated, \1 passed", output), output[-5_000:]  # every case passed
    return output


def operations(*, but: tuple[str, ...]) -> int:
    paths = document()["paths"]
    return sum(len(item) for path, item in paths.items() if path not in but)


def test_the_whole_api_but_ingest_has_no_failures(platform: RunningPlatform, tmp_path: Path):
    output = schemathesis(platform, tmp_path / "api", "--exclude-path", "/events")
    # Every operation is tested but ingest (the next test) and the document schemathesis reads.
    tested = operations(but=("/events", "/api/openapi.json"))
    assert f"Tested: {tested}" in output, output[-5_000:]


def test_ingest_has_no_failures(platform: RunningPlatform, tmp_path: Path):
    output = schemathesis(platform, tmp_path / "ingest", "--include-path", "/events")
    assert "Tested: 1" in output, output[-5_000:]
