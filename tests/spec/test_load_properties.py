"""Spec loading as a parser of outside input, checked with generated documents.

A project's YAML is written by hand, so loading must turn *anything* into either a
project or a list of ``file:path: message`` problems, never an exception. And what
Cumulo writes (``Project.to_yaml``) must load back as the same project.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cumulo.errors import Problem
from cumulo.spec import API_VERSION, KINDS, Function, Trigger, load_project, validate_project

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

ROUND_TRIPS = settings(SETTINGS, max_examples=25)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
spec_keys = st.sampled_from(
    ["handler", "scale", "timeout", "triggers", "mode", "cron", "webhook", "function", "url",
     "filters", "delivery", "secrets", "sink", "env", "git", "s3", "kafka", "bogus"]
)  # fmt: skip
spec_like = st.dictionaries(spec_keys, json_values, max_size=5)


@pytest.fixture
def folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh project folder per example (below the working directory, as a user's is)."""
    base = tmp_path_factory.mktemp("load")
    monkeypatch.chdir(base)
    counter = iter(range(10**6))

    def make(files: dict[str, str]) -> Path:
        root = base / f"p{next(counter)}"
        root.mkdir()
        for name, text in files.items():
            (root / name).write_text(text)
        return root

    return make


def assert_problems(problems: list[Problem]) -> None:
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.file.endswith(".yaml") or problem.file.startswith("p")
        assert problem.message


# --- anything in, problems out --------------------------------------------------------------


@SETTINGS
@given(document=json_values)
def test_any_document_is_a_resource_or_problems(folder: Any, document: Any) -> None:
    """validate never raises; a document that is not a mapping is one problem saying so."""
    root = folder({"cumulo.yaml": yaml.safe_dump(document)})

    problems = validate_project(root)

    assert_problems(problems)
    if document is not None and not isinstance(document, dict):
        assert problems and problems[0].message.startswith("a resource must be a mapping")


@SETTINGS
@given(
    kind=st.sampled_from([*KINDS, "Other"]),
    name=st.one_of(st.text(max_size=70), st.integers(), st.none()),
    spec=spec_like,
)
def test_any_resource_shaped_document_validates_without_raising(
    folder: Any, kind: str, name: Any, spec: dict[str, Any]
) -> None:
    """Every kind, any name and any spec keys: problems located in the file, never a crash."""
    document = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    root = folder({"cumulo.yaml": yaml.safe_dump(document)})

    problems = validate_project(root)

    assert_problems(problems)
    assert all(p.file == f"{root.name}/cumulo.yaml" for p in problems)


@SETTINGS
@given(text=st.text(alphabet=string.printable, max_size=80))
def test_any_text_is_yaml_or_a_located_syntax_problem(folder: Any, text: str) -> None:
    """A file that is not YAML is a problem with a line and column, not an exception."""
    root = folder({"cumulo.yaml": text})

    problems = validate_project(root)

    assert_problems(problems)
    for problem in problems:
        if problem.message.startswith("invalid YAML"):
            line, column = problem.path.split(":")
            assert int(line) >= 1 and int(column) >= 1


# --- what Cumulo writes loads back ------------------------------------------------------------

dns_labels = st.from_regex(r"[a-z]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
attribute_names = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
values = st.text(alphabet=string.ascii_letters + string.digits + "./-", min_size=1, max_size=12)
bindings = st.fixed_dictionaries(
    {"topic": dns_labels},
    optional={
        "filter": st.dictionaries(attribute_names, values, min_size=1, max_size=3).map(
            lambda exact: {"attributes": exact}
        ),
        "filters": st.lists(
            st.dictionaries(attribute_names, values, min_size=1, max_size=2).map(
                lambda exact: {"prefix": exact}
            ),
            max_size=2,
        ),
        "delivery": st.fixed_dictionaries(
            {
                "retries": st.integers(min_value=0, max_value=9),
                "backoffPolicy": st.sampled_from(["linear", "exponential"]),
                "backoffDelay": st.sampled_from(["250ms", "2s", "1m", 3]),
            }
        ),
    },
)
functions = st.builds(
    lambda name, low, extra, timeout, mode, env, triggers: {
        "metadata": {"name": name},
        "spec": {
            "handler": "json:loads",
            "mode": mode,
            "scale": {"min": low, "max": low + extra},
            "timeout": timeout,
            "env": env,
            "triggers": triggers,
        },
    },
    dns_labels,
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=1, max_value=5),
    st.sampled_from(["30s", "5m", "PT1H", 12.5]),
    st.sampled_from(["service", "job"]),
    st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True), values, max_size=2),
    st.lists(bindings, max_size=3),
)


@ROUND_TRIPS
@given(
    declared=st.lists(functions, min_size=1, max_size=3, unique_by=lambda f: f["metadata"]["name"])
)
def test_to_yaml_loads_back_as_the_same_project(
    folder: Any, declared: list[dict[str, Any]]
) -> None:
    """Functions with inline triggers, written by Project.to_yaml, load back unchanged."""
    documents = [{"apiVersion": API_VERSION, "kind": "Function", **d} for d in declared]
    first = load_project(folder({"cumulo.yaml": yaml.safe_dump_all(documents)}))

    again = load_project(folder({"cumulo.yaml": first.to_yaml()}))

    assert again.functions == first.functions
    assert again.triggers == first.triggers
    assert set(first.functions) == {d["metadata"]["name"] for d in declared}
    inline = sum(len(d["spec"]["triggers"]) for d in declared)
    assert len(first.triggers) == inline


@ROUND_TRIPS
@given(function=functions)
def test_an_inline_trigger_is_a_trigger_of_its_function(
    folder: Any, function: dict[str, Any]
) -> None:
    """Inline bindings become Trigger resources named ``<function>-<index>`` for that function."""
    document = {"apiVersion": API_VERSION, "kind": "Function", **function}

    project = load_project(folder({"cumulo.yaml": yaml.safe_dump(document)}))

    name = function["metadata"]["name"]
    [loaded] = project.functions.values()
    assert isinstance(loaded, Function)
    expected = [f"{name}-{i}" for i in range(len(function["spec"]["triggers"]))]
    assert sorted(project.triggers) == sorted(expected)
    for index, trigger in enumerate(project.triggers_for(name)):
        assert isinstance(trigger, Trigger)
        assert trigger.spec.topic == function["spec"]["triggers"][index]["topic"]
