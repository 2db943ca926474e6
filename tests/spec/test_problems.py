"""Mistakes in YAML projects, each reported as ``file:path: message``, all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.errors import Problem, SpecError
from cumulo.spec import load_project, validate_project
from tests.spec.conftest import WriteProject

HEADER = "apiVersion: cumulo.dev/v1alpha1\n"


def problems_of(root: Path, modules: tuple[str, ...] = ()) -> list[str]:
    return [str(p) for p in validate_project(root, modules)]


def function(name: str, spec: str = "{handler: 'json:dumps'}") -> str:
    return f"{HEADER}kind: Function\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def trigger(name: str, spec: str) -> str:
    return f"{HEADER}kind: Trigger\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def source(name: str, spec: str) -> str:
    return f"{HEADER}kind: EventSource\nmetadata: {{name: {name}}}\nspec: {spec}\n"


# --- one resource at a time ----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "{handler: 'json:dumps', scale: {max: 0}}",
            "Function/train.spec.scale.max: Input should be greater than or equal to 1",
        ),
        (
            "{handler: 'json:dumps', scale: {min: 5, max: 2}}",
            "Function/train.spec.scale: min (5) is larger than max (2)",
        ),
        (
            "{handler: 'json:dumps', timout: 5m}",
            "Function/train.spec.timout: unknown key 'timout' (did you mean 'timeout'?)",
        ),
        (
            "{handler: 'json:dumps', scale: {idleTimeuot: 5m}}",
            "Function/train.spec.scale.idleTimeuot: unknown key 'idleTimeuot' "
            "(did you mean 'idleTimeout'?)",
        ),
        (
            "{handler: 'json:dumps', timeout: soon}",
            "Function/train.spec.timeout: 'soon' is not a duration "
            "(use seconds, '30s', '5m', '2h', 'PT1M')",
        ),
        (
            "{handler: 'json:dumps', mode: batch}",
            "Function/train.spec.mode: Input should be 'service' or 'job'",
        ),
        (
            "{handler: train.py}",
            "Function/train.spec.handler: 'train.py' is not 'module:attribute' (e.g. 'main:train')",
        ),
        ("{mode: job}", "Function/train.spec.handler: Field required"),
        (
            "{handler: 'json:dumps', triggers: [{filters: [{prefix: {type: ''}}]}]}",
            "Function/train.spec.triggers[0].filters[0].prefix: the value for 'type' must not be empty",
        ),
        (
            "{handler: 'json:dumps', triggers: [{filters: [{all: [{exact: {a: b}}, {nott: {}}]}]}]}",
            "Function/train.spec.triggers[0].filters[0].all[1].nott: unknown key 'nott' (did you mean 'not'?)",
        ),
        (
            "{handler: 'json:dumps', triggers: [{delivery: {backoffPolicy: fibonacci}}]}",
            "Function/train.spec.triggers[0].delivery.backoffPolicy: "
            "Input should be 'linear' or 'exponential'",
        ),
        (
            "{handler: 'json:dumps', env: {EPOCHS: 10}}",
            "Function/train.spec.env.EPOCHS: Input should be a valid string",
        ),
    ],
)
def test_function_mistakes(write_project: WriteProject, spec: str, expected: str) -> None:
    root = write_project({"cumulo.yaml": function("train", spec)})
    assert problems_of(root) == [f"project/cumulo.yaml:{expected}"]


def test_invalid_name_is_located_by_document(write_project: WriteProject) -> None:
    root = write_project({"cumulo.yaml": function("ok") + "---\n" + function("Train_Model")})
    assert problems_of(root) == [
        "project/cumulo.yaml:Function/Train_Model.metadata.name: 'Train_Model' is not a "
        "DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending "
        "with a letter or digit)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kind: Function\nmetadata: {name: f}\nspec: {handler: 'json:dumps'}\n",
            "Function/f.apiVersion: Field required (use 'cumulo.dev/v1alpha1')",
        ),
        (
            "apiVersion: v1\nkind: Function\nmetadata: {name: f}\n",
            "Function/f.apiVersion: unsupported apiVersion 'v1' (use 'cumulo.dev/v1alpha1')",
        ),
        (
            f"{HEADER}kind: Service\nmetadata: {{name: f}}\n",
            "document[0].kind: unknown kind 'Service' "
            "(one of Function, EventSource, EventBus, Trigger)",
        ),
        (
            f"{HEADER}metadata: {{name: f}}\n",
            "document[0].kind: Field required (one of Function, EventSource, EventBus, Trigger)",
        ),
        (
            f"{HEADER}kind: Function\nspec: {{handler: 'json:dumps'}}\n",
            "document[0].metadata: Field required",
        ),
        (f"{HEADER}kind: Function\nmetadata: {{}}\n", "document[0].metadata.name: Field required"),
        (
            "- just\n- a list\n",
            "document[0]: a resource must be a mapping (apiVersion, kind, metadata, spec), not list",
        ),
    ],
)
def test_document_mistakes(write_project: WriteProject, text: str, expected: str) -> None:
    root = write_project({"cumulo.yaml": text})
    assert problems_of(root)[0] == f"project/cumulo.yaml:{expected}"


def test_document_index_counts_documents_in_the_file(write_project: WriteProject) -> None:
    text = function("a") + "---\n" + function("b") + "---\n" + f"{HEADER}kind: Nope\n"
    assert problems_of(write_project({"cumulo.yaml": text})) == [
        "project/cumulo.yaml:document[2].kind: unknown kind 'Nope' "
        "(one of Function, EventSource, EventBus, Trigger)"
    ]


# --- YAML syntax ---------------------------------------------------------------------------


def test_yaml_syntax_errors_give_line_and_column(write_project: WriteProject) -> None:
    text = function("first") + "---\n" + "kind: Function\nmetadata:\n  name: x\n   bad: indent\n"
    root = write_project({"cumulo.yaml": text, "other.yaml": function("second")})
    assert problems_of(root) == [
        "project/cumulo.yaml:9:7: invalid YAML: mapping values are not allowed here"
    ]
    with pytest.raises(SpecError):
        load_project(root)


def test_duplicate_yaml_keys_are_mistakes(write_project: WriteProject) -> None:
    text = function("f", "\n  handler: 'json:dumps'\n  mode: job\n  mode: service")
    assert problems_of(write_project({"cumulo.yaml": text})) == [
        "project/cumulo.yaml:7:3: invalid YAML: while constructing a mapping; "
        "found duplicate key 'mode'"
    ]


# --- across resources ------------------------------------------------------------------


def test_duplicate_names_per_kind(write_project: WriteProject) -> None:
    root = write_project(
        {
            "a.yaml": function("train") + "---\n" + trigger("train", "{function: train}"),
            "b.yaml": function("train", "{handler: 'json:loads'}"),
        }
    )
    assert problems_of(root) == [
        "project/b.yaml:Function/train.metadata.name: duplicate Function name 'train' "
        "(first declared at project/a.yaml:Function/train)"
    ]


def test_inline_and_standalone_triggers_share_names(write_project: WriteProject) -> None:
    spec = "{handler: 'json:dumps', triggers: [{name: on-data}, {}]}"
    text = function("train", spec) + "---\n" + trigger("train-1", "{function: train}")
    assert problems_of(write_project({"cumulo.yaml": text})) == [
        "project/cumulo.yaml:Trigger/train-1.metadata.name: duplicate Trigger name 'train-1' "
        "(first declared at project/cumulo.yaml:Function/train.spec.triggers[1])"
    ]


def test_unknown_function_and_bus(write_project: WriteProject) -> None:
    text = (
        function("train", "{handler: 'json:dumps', triggers: [{bus: fast}]}")
        + "---\n"
        + trigger("t", "{function: trian, bus: slow}")
    )
    assert problems_of(write_project({"cumulo.yaml": text})) == [
        "project/cumulo.yaml:Function/train.spec.triggers[0].bus: unknown bus 'fast'",
        "project/cumulo.yaml:Trigger/t.spec.function: unknown function 'trian' "
        "(did you mean 'train'?)",
        "project/cumulo.yaml:Trigger/t.spec.bus: unknown bus 'slow'",
    ]


def test_source_sinks_must_exist(write_project: WriteProject) -> None:
    text = source("hook", "{webhook: {path: /gh}, sink: {bus: events, function: deploy}}")
    assert problems_of(write_project({"cumulo.yaml": text})) == [
        "project/cumulo.yaml:EventSource/hook.spec.sink.bus: unknown bus 'events'",
        "project/cumulo.yaml:EventSource/hook.spec.sink.function: unknown function 'deploy'",
    ]


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        (
            "{schedule: '*/5 * * *'}",
            ".schedule: cannot parse cron schedule '*/5 * * *': "
            "Exactly 5, 6 or 7 columns has to be specified for iterator expression.",
        ),
        ("{schedule: '0 0 31 2 *'}", ".schedule: '0 0 31 2 *' never fires"),
        (
            "{schedule: '@daily', timezone: Europe/Pariss}",
            ".timezone: unknown time zone 'Europe/Pariss' (did you mean 'Europe/Paris'?)",
        ),
        (
            "{schedule: '@daily', timezone: Mars/Olympus}",
            ".timezone: unknown time zone 'Mars/Olympus'",
        ),
    ],
)
def test_cron_mistakes(write_project: WriteProject, cron: str, expected: str) -> None:
    root = write_project({"cumulo.yaml": source("tick", f"{{cron: {cron}}}")})
    assert problems_of(root) == [f"project/cumulo.yaml:EventSource/tick.spec.cron{expected}"]


def test_handler_modules_are_found_without_running_them(write_project: WriteProject) -> None:
    package_init = "import pathlib\npathlib.Path('ran.txt').write_text('ran')\n"
    text = "---\n".join(
        [
            function("a", "{handler: 'json:dumps'}"),
            function("b", "{handler: 'pipeline.steps:train'}"),
            function("c", "{handler: 'pipeline.missing:train'}"),
            function("d", "{handler: 'nowhere:train'}"),
            function("e", "{handler: 'json.nope:x'}"),
        ]
    )
    root = write_project({"cumulo.yaml": text})
    (root / "pipeline").mkdir()
    (root / "pipeline" / "__init__.py").write_text(package_init)
    (root / "pipeline" / "steps.py").write_text(package_init)
    assert problems_of(root) == [
        "project/cumulo.yaml:Function/c.spec.handler: cannot find module 'pipeline.missing'",
        "project/cumulo.yaml:Function/d.spec.handler: cannot find module 'nowhere'",
        "project/cumulo.yaml:Function/e.spec.handler: cannot find module 'json.nope'",
    ]
    assert not (Path.cwd() / "ran.txt").exists()


# --- many at once ---------------------------------------------------------------------------


def test_every_mistake_is_reported_at_once(write_project: WriteProject) -> None:
    root = write_project(
        {
            "functions.yaml": "---\n".join(
                [
                    function("train", "{handler: 'main:train', scale: {max: 0}}"),
                    function("evaluate", "{handler: 'evaluation:run', triggers: [{bus: pipline}]}"),
                    "apiVersion: v2\nkind: Function\nmetadata: {name: old}\n",
                ]
            ),
            "triggers.yaml": trigger("t", "{function: evalute}"),
            "broken.yaml": "a: [1, 2\n",
        }
    )
    problems = validate_project(root)
    assert [str(p) for p in problems] == [
        "project/broken.yaml:2:1: invalid YAML: while parsing a flow sequence; "
        "expected ',' or ']', but got '<stream end>'",
        "project/functions.yaml:Function/train.spec.scale.max: Input should be greater than or equal to 1",
        "project/functions.yaml:Function/old.apiVersion: unsupported apiVersion 'v2' "
        "(use 'cumulo.dev/v1alpha1')",
        "project/functions.yaml:Function/evaluate.spec.handler: cannot find module 'evaluation'",
        "project/functions.yaml:Function/evaluate.spec.triggers[0].bus: unknown bus 'pipline'",
        "project/triggers.yaml:Trigger/t.spec.function: unknown function 'evalute' "
        "(did you mean 'evaluate'?)",
    ]
    with pytest.raises(SpecError) as raised:
        load_project(root)
    assert raised.value.problems == problems
    assert str(raised.value).splitlines() == [str(p) for p in problems]
    assert problems[1] == Problem(
        "project/functions.yaml",
        "Function/train.spec.scale.max",
        "Input should be greater than or equal to 1",
    )


# --- nothing to load ---------------------------------------------------------------------------


def test_missing_and_empty_projects(write_project: WriteProject) -> None:
    empty = write_project({"notes.txt": "nothing"}, "empty")
    assert problems_of(empty) == [
        "empty: no *.yaml or *.yml files, no main.py and no modules: nothing to load"
    ]
    assert problems_of(Path("absent")) == ["absent: no such file or folder"]


def test_files_outside_the_working_directory_are_absolute(
    write_project: WriteProject, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = write_project({"cumulo.yaml": function("f", "{handler: 'json:dumps', mode: x}")})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    [problem] = validate_project(root)
    assert problem.file == str(root / "cumulo.yaml")


# --- the example project with mistakes ----------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def test_the_invalid_example_reports_every_mistake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert problems_of(Path("examples/invalid")) == [
        "examples/invalid/cumulo.yaml:Function/train.spec.scale.max: "
        "Input should be greater than or equal to 1",
        "examples/invalid/cumulo.yaml:Function/deploy.spec.timout: "
        "unknown key 'timout' (did you mean 'timeout'?)",
        "examples/invalid/main.py:predict.scale: min (3) is larger than max (1)",
        "examples/invalid/main.py:evaluate_candidate.name: duplicate Function name 'evaluate' "
        "(first declared at examples/invalid/cumulo.yaml:Function/evaluate)",
        "examples/invalid/cumulo.yaml:Function/evaluate.spec.handler: "
        "cannot find module 'evaluation'",
        "examples/invalid/cumulo.yaml:Function/evaluate.spec.triggers[0].bus: "
        "unknown bus 'pipline' (did you mean 'pipeline'?)",
        "examples/invalid/cumulo.yaml:Trigger/alert-on-failure.spec.function: "
        "unknown function 'alrt' (did you mean 'alert'?)",
        "examples/invalid/sources.yaml:EventSource/nightly-retrain.spec.cron.schedule: "
        "cannot parse cron schedule '0 3 * * 8': [0 3 * * 8] is not acceptable, out of range",
        "examples/invalid/sources.yaml:EventSource/nightly-retrain.spec.cron.timezone: "
        "unknown time zone 'Europe/Pariss' (did you mean 'Europe/Paris'?)",
        "examples/invalid/sources.yaml:EventSource/uploads.spec.sink.function: "
        "unknown function 'predictor'",
    ]
