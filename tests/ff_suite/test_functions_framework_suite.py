"""functions-framework's own tests pass on `cumulo worker` wherever they pass on its own server.

The tests of the installed functions-framework's sdist run unchanged twice, each request over
real HTTP (see shim.py): once against functions-framework's own server, the oracle, and once
against `cumulo worker`. Every case the oracle passes must pass on Cumulo too, but for the few
in EXCLUDED, each with its reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ff_suite import runner, sdist

# Measured: functions-framework 3.10.2's server passes 279 of 287 cases here. The 8 others are
# in-process checks no server can satisfy (a monkeypatched id generator, a Starlette instance
# from create_app, a reloader stub, a signature type the CLI refuses) and the Docker samples.
ORACLE_PASSES_AT_LEAST = 270

# nodeid -> why Cumulo's worker is not held to functions-framework's answer for it.
EXCLUDED: dict[str, str] = {}

# Both runs, measured: about 60 s (ff) and 90 s (cumulo), 150 s in all, on a 2-core machine
# shared with other work; the limit leaves room for a slower or busier machine.
SUITE_TIMEOUT_SECONDS = 1200


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    ff_tests = sdist.sdist_tests_folder()
    scratch: Path = tmp_path_factory.mktemp("ff-suite")
    return {
        server: runner.run_suite(server, ff_tests, scratch / server) for server in runner.SERVERS
    }


@pytest.mark.timeout(SUITE_TIMEOUT_SECONDS)
def test_functions_framework_server_passes_its_own_suite(
    outcomes: dict[str, dict[str, str]],
) -> None:
    oracle = runner.passed(outcomes["ff"])
    assert len(oracle) >= ORACLE_PASSES_AT_LEAST, (
        f"functions-framework's server passed only {len(oracle)} of {len(outcomes['ff'])} "
        "cases: the harness or the samples are broken, not Cumulo"
    )


@pytest.mark.timeout(SUITE_TIMEOUT_SECONDS)
def test_cumulo_worker_passes_what_functions_framework_passes(
    outcomes: dict[str, dict[str, str]],
) -> None:
    oracle, cumulo = outcomes["ff"], outcomes["cumulo"]
    stale = sorted(set(EXCLUDED) - set(oracle))
    assert not stale, f"EXCLUDED names cases the suite no longer has: {stale}"
    behind = sorted(
        f"{cumulo.get(nodeid, 'missing'):<8} {nodeid}"
        for nodeid in runner.passed(oracle) - runner.passed(cumulo)
        if nodeid not in EXCLUDED
    )
    assert not behind, (
        f"{len(behind)} cases pass on functions-framework's server but not on cumulo worker "
        "(details: .venv/bin/python -m tests.ff_suite.runner both --keep):\n" + "\n".join(behind)
    )
