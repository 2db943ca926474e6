"""Run functions-framework's own tests against one server and collect each case's outcome.

A run folder holds ff's ``tests/*.py`` copied unchanged, the samples as
``tests/test_functions/``, the test data as ``tests/test_data/``, the shim as ``ff_shim.py``
and a ``pytest.ini`` of its own, so none of Cumulo's pytest settings (filterwarnings=error,
strict markers, its timeout) apply. pytest runs in a subprocess with that folder as its working
directory (ff's tests find their samples from ``Path.cwd()`` and from ``__file__``) and
$CUMULO_FF_SERVER naming the server; the outcomes come from its JUnit XML.

By hand, from the repository root::

    .venv/bin/python -m tests.ff_suite.runner [ff|cumulo|both]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.ff_suite import sdist

HERE = Path(__file__).resolve().parent
SAMPLES = HERE / "samples"
TEST_DATA = HERE / "test_data"
SHIM = HERE / "shim.py"
SERVERS = ("ff", "cumulo")
RUN_TIMEOUT_SECONDS = 1500
# Each ff test gets this long; test_timeouts' cases and the start of a server take seconds.
CASE_TIMEOUT_SECONDS = 90
_PYTEST_INI = f"""\
[pytest]
asyncio_default_fixture_loop_scope = function
timeout = {CASE_TIMEOUT_SECONDS}
junit_family = xunit1
"""
# Variables of an enclosing pytest run that would change how the inner one behaves.
_OUTER_PYTEST_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST")


def prepare_run_folder(ff_tests: Path, folder: Path) -> Path:
    """Lay out `folder` for one run; returns it."""
    tests = folder / "tests"
    tests.mkdir(parents=True)
    for test_module in sorted(ff_tests.glob("*.py")):
        shutil.copy2(test_module, tests / test_module.name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(SAMPLES, tests / "test_functions", ignore=skip)
    shutil.copytree(TEST_DATA, tests / "test_data", ignore=skip)
    shutil.copy2(SHIM, folder / "ff_shim.py")
    (folder / "pytest.ini").write_text(_PYTEST_INI)
    return folder


def run_suite(server: str, ff_tests: Path, folder: Path) -> dict[str, str]:
    """Run ff's tests in a fresh `folder` against `server`; {nodeid: outcome}."""
    if server not in SERVERS:
        raise ValueError(f"server must be one of {SERVERS}, not {server!r}")
    prepare_run_folder(ff_tests, folder)
    junit = folder / "junit.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        "pytest.ini",
        "--rootdir",
        ".",
        "-p",
        "no:cacheprovider",
        "-p",
        "ff_shim",
        "--continue-on-collection-errors",
        f"--junitxml={junit.name}",
        "--basetemp=basetemp",  # not the shared /tmp/pytest-of-* of an enclosing run
        "-q",
        "-rfE",
        "tests",
    ]
    env = {k: v for k, v in os.environ.items() if k not in _OUTER_PYTEST_ENV}
    env["CUMULO_FF_SERVER"] = server
    log = folder / "pytest.log"
    with log.open("w") as out:
        subprocess.run(
            command,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
    if not junit.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"the {server} run wrote no JUnit report; its log ends:\n{tail}")
    return outcomes_from_junit(junit)


def outcomes_from_junit(junit: Path) -> dict[str, str]:
    """{nodeid: passed | failed | error | skipped} from an xunit1 JUnit report."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        nodeid = _nodeid(case)
        outcome = _outcome(case)
        if outcomes.get(nodeid, "passed") == "passed":  # an error in teardown outranks a pass
            outcomes[nodeid] = outcome
    return outcomes


def _nodeid(case: ET.Element) -> str:
    file = case.get("file") or ""
    classname = case.get("classname") or ""
    name = case.get("name") or ""
    if not classname:  # a module that failed to import: name is its dotted path
        return file or name.replace(".", "/") + ".py"
    module = file.removesuffix(".py").replace("/", ".")
    inner = classname[len(module) :].strip(".") if classname.startswith(module) else ""
    parts = [file, *inner.split(".")] if inner else [file]
    return "::".join([*parts, name])


def _outcome(case: ET.Element) -> str:
    for child, outcome in (("error", "error"), ("failure", "failed"), ("skipped", "skipped")):
        if case.find(child) is not None:
            return outcome
    return "passed"


def passed(outcomes: dict[str, str]) -> set[str]:
    return {nodeid for nodeid, outcome in outcomes.items() if outcome == "passed"}


def print_table(results: dict[str, dict[str, str]], seconds: dict[str, float]) -> None:
    print(f"{'server':<8} {'total':>6} {'passed':>7} {'seconds':>8}")
    for server, outcomes in results.items():
        print(f"{server:<8} {len(outcomes):>6} {len(passed(outcomes)):>7} {seconds[server]:>8.0f}")
    if "ff" in results and "cumulo" in results:
        behind = sorted(passed(results["ff"]) - passed(results["cumulo"]))
        print(f"\npassing on ff but not on cumulo ({len(behind)}):")
        for nodeid in behind:
            print(f"  {results['cumulo'].get(nodeid, 'missing'):<8} {nodeid}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", nargs="?", default="both", choices=[*SERVERS, "both"])
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    args = parser.parse_args(argv)
    ff_tests = sdist.sdist_tests_folder()
    servers = SERVERS if args.server == "both" else (args.server,)
    scratch = Path(tempfile.mkdtemp(prefix="cumulo-ff-"))
    results: dict[str, dict[str, str]] = {}
    seconds: dict[str, float] = {}
    try:
        for server in servers:
            started = time.monotonic()
            results[server] = run_suite(server, ff_tests, scratch / server)
            seconds[server] = time.monotonic() - started
    finally:
        if args.keep:
            print(f"run folders kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print_table(results, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
