"""Loading valid projects from YAML: kinds, folders, inline triggers, the YAML round trip."""

from __future__ import annotations

from pathlib import Path

import yaml

from cumulo.spec import (
    EventBus,
    Function,
    Metadata,
    Project,
    load_project,
    validate_project,
)
from cumulo.spec.project import implicit_default_bus
from tests.spec.conftest import WriteProject

PIPELINE = """
    apiVersion: cumulo.dev/v1alpha1
    kind: EventBus
    metadata: {name: pipeline}
    spec: {url: "redis://localhost:6379/0", retention: 1d}
    ---
    apiVersion: cumulo.dev/v1alpha1
    kind: Function
    metadata:
      name: train
      labels: {team: ml}
    spec:
      handler: main:train
      signature: cloudevent
      mode: job
      timeout: 2h
      scale: {max: 2, idleTimeout: 5m}
      resources: {cpu: "4", memory: 16Gi, gpu: 1}
      env: {EPOCHS: "10"}
      secrets: [{name: registry, key: token, env: REGISTRY_TOKEN}]
      emits: [dev.cumulo.model.trained]
      build: {requirements: requirements.txt, baseImage: "python:3.12-slim"}
      triggers:
        - bus: pipeline
          filter: {attributes: {type: dev.cumulo.dataset.ready}}
          delivery: {retries: 5, backoffPolicy: linear, backoffDelay: PT10S}
        - name: retrain-on-push
          filters:
            - all:
                - prefix: {type: dev.cumulo.git.}
                - not: {suffix: {subject: .md}}
    ---
    apiVersion: cumulo.dev/v1alpha1
    kind: Function
    metadata: {name: evaluate}
    spec: {handler: "main:evaluate"}
    ---
    apiVersion: cumulo.dev/v1alpha1
    kind: Trigger
    metadata: {name: evaluate-trained}
    spec:
      function: evaluate
      bus: pipeline
      filter: {attributes: {type: dev.cumulo.model.trained, team: ""}}
      dedup: {key: [source, id, subject], window: 1h}
    ---
    apiVersion: cumulo.dev/v1alpha1
    kind: EventSource
    metadata: {name: nightly}
    spec:
      cron: {schedule: "0 3 * * *", timezone: Europe/Paris, data: {full: true}}
      type: dev.cumulo.dataset.ready
      sink: {bus: pipeline}
    ---
    apiVersion: cumulo.dev/v1alpha1
    kind: EventSource
    metadata: {name: uploads}
    spec:
      s3: {bucket: datasets, suffix: .parquet}
      sink: {function: train}
"""

MAIN = """
    def train(event):
        return None


    def evaluate(event):
        return None
"""


def pipeline(write_project: WriteProject, folder: str = "project") -> Path:
    return write_project({"cumulo.yaml": PIPELINE, "main.py": MAIN}, folder)


def test_loads_every_kind(write_project: WriteProject) -> None:
    project = load_project(pipeline(write_project))
    assert list(project.functions) == ["train", "evaluate"]
    assert list(project.sources) == ["nightly", "uploads"]
    assert set(project.buses) == {"pipeline", "default"}
    train = project.functions["train"].spec
    assert (train.mode, train.timeout, train.scale.idle_timeout) == ("job", 7200.0, 300.0)
    assert train.resources.gpu == 1 and train.build.base_image == "python:3.12-slim"
    assert project.buses["pipeline"].spec.retention == 86400.0
    assert project.sources["nightly"].spec.kind == "cron"
    assert project.sources["uploads"].spec.sink.function == "train"


def test_inline_triggers_become_trigger_resources(write_project: WriteProject) -> None:
    project = load_project(pipeline(write_project))
    assert list(project.triggers) == ["train-0", "retrain-on-push", "evaluate-trained"]
    first = project.triggers["train-0"]
    assert (first.spec.function, first.spec.bus) == ("train", "pipeline")
    assert first.spec.delivery.backoff_delay == 10.0
    assert first.spec.filter == {"attributes": {"type": "dev.cumulo.dataset.ready"}}
    assert [t.name for t in project.triggers_for("train")] == ["train-0", "retrain-on-push"]
    assert [t.name for t in project.triggers_for("evaluate")] == ["evaluate-trained"]
    assert project.triggers_for("nobody") == []


def test_the_default_bus_always_exists(write_project: WriteProject) -> None:
    project = load_project(pipeline(write_project))
    assert project.buses["default"] == implicit_default_bus()
    assert Project(Path(".")).buses == {"default": implicit_default_bus()}


def test_a_declared_default_bus_replaces_the_implicit_one(write_project: WriteProject) -> None:
    root = write_project(
        {
            "bus.yaml": """
                apiVersion: cumulo.dev/v1alpha1
                kind: EventBus
                metadata: {name: default}
                spec: {url: "nats://localhost:4222"}
            """
        }
    )
    assert load_project(root).buses["default"].spec.url == "nats://localhost:4222"


def test_project_root_is_the_folder(write_project: WriteProject) -> None:
    root = pipeline(write_project)
    assert load_project(root).root == root
    assert load_project(root / "cumulo.yaml").root == root
    assert load_project("project").root == root  # relative to the working directory


def document(kind: str, name: str, spec: str = "") -> str:
    text = f"apiVersion: cumulo.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\n"
    return text + (f"spec: {spec}\n" if spec else "")


def test_folder_loads_yaml_and_yml_files_in_name_order(write_project: WriteProject) -> None:
    root = write_project(
        {
            "b.yml": document("EventBus", "second"),
            "a.yaml": document("EventBus", "first") + "---\n" + document("EventBus", "third"),
            "c.yaml.bak": document("EventBus", "ignored-backup"),
            ".hidden.yaml": document("EventBus", "ignored-hidden"),
            "notes.txt": "not yaml",
        }
    )
    (root / "nested").mkdir()
    (root / "nested" / "d.yaml").write_text(document("EventBus", "ignored-nested"))
    assert list(load_project(root).buses) == ["first", "third", "second", "default"]


def test_a_single_file_loads_only_that_file(write_project: WriteProject) -> None:
    root = write_project(
        {"one.yaml": document("EventBus", "one"), "two.yaml": document("EventBus", "two")}
    )
    project = load_project(root / "two.yaml")
    assert (project.root, list(project.buses)) == (root, ["two", "default"])


def test_empty_documents_are_skipped(write_project: WriteProject) -> None:
    text = "---\n# only a comment\n---\n" + document("EventBus", "solo") + "---\n"
    root = write_project({"cumulo.yaml": text})
    assert list(load_project(root).buses) == ["solo", "default"]


def test_snake_case_keys_are_accepted_too(write_project: WriteProject) -> None:
    camel = write_project(
        {"f.yaml": document("Function", "f", "{handler: json:dumps, scale: {idleTimeout: 1m}}")},
        "camel",
    )
    snake = write_project(
        {"f.yaml": document("Function", "f", "{handler: json:dumps, scale: {idle_timeout: 60}}")},
        "snake",
    )
    assert load_project(camel).functions == load_project(snake).functions


def test_a_valid_project_has_no_problems(write_project: WriteProject) -> None:
    assert validate_project(pipeline(write_project)) == []


# --- YAML round trip ------------------------------------------------------------------


def test_to_yaml_round_trips(write_project: WriteProject) -> None:
    original = load_project(pipeline(write_project))
    copy_root = write_project({"main.py": MAIN, "all.yaml": original.to_yaml()}, "copy")
    copy = load_project(copy_root)
    assert copy.functions == original.functions
    assert copy.sources == original.sources
    assert copy.buses == original.buses
    assert copy.triggers == original.triggers


def test_to_yaml_is_camel_case_without_defaults(write_project: WriteProject) -> None:
    documents = list(yaml.safe_load_all(load_project(pipeline(write_project)).to_yaml()))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in documents]
    assert kinds == [
        ("Function", "train"),
        ("Function", "evaluate"),
        ("EventSource", "nightly"),
        ("EventSource", "uploads"),
        ("EventBus", "pipeline"),
        ("Trigger", "evaluate-trained"),  # inline triggers stay inline; no implicit bus
    ]
    train = documents[0]
    assert train["apiVersion"] == "cumulo.dev/v1alpha1"
    assert train["spec"]["scale"] == {"max": 2, "idleTimeout": 300.0}
    assert train["spec"]["build"] == {
        "requirements": "requirements.txt",
        "baseImage": "python:3.12-slim",
    }
    assert train["spec"]["triggers"][1]["filters"][0]["all"][1] == {
        "not": {"suffix": {"subject": ".md"}}
    }
    assert documents[1] == {
        "apiVersion": "cumulo.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "evaluate"},
        "spec": {"handler": "main:evaluate"},
    }


def test_to_yaml_of_models_built_in_python() -> None:
    project = Project(
        Path("."),
        functions={"f": Function(metadata=Metadata(name="f"), spec={"handler": "m:f"})},
        buses={"default": EventBus(metadata=Metadata(name="default"), spec={"url": "redis://r"})},
    )
    documents = list(yaml.safe_load_all(project.to_yaml()))
    assert documents[1] == {
        "apiVersion": "cumulo.dev/v1alpha1",
        "kind": "EventBus",
        "metadata": {"name": "default"},
        "spec": {"url": "redis://r"},
    }


SECRETS = """
    apiVersion: cumulo.dev/v1alpha1
    kind: Function
    metadata: {name: train}
    spec:
      handler: main:train
      secrets:
        - {env: MODEL_STORE_TOKEN}
        - {name: registry, key: token}
        - {name: wandb, env: WANDB_KEY}
"""


def test_a_secret_can_be_named_by_its_variable_alone(write_project: WriteProject) -> None:
    root = write_project({"cumulo.yaml": SECRETS, "main.py": MAIN})
    assert validate_project(root) == []
    secrets = load_project(root).functions["train"].spec.secrets
    assert [(s.variable, s.name, s.key) for s in secrets] == [
        ("MODEL_STORE_TOKEN", "model-store-token", None),  # the Secret's name follows env
        ("REGISTRY_TOKEN", "registry", "token"),
        ("WANDB_KEY", "wandb", None),
    ]


def test_a_secret_needs_a_name_or_a_variable(write_project: WriteProject) -> None:
    text = SECRETS.replace("{env: MODEL_STORE_TOKEN}", "{key: token}")
    root = write_project({"cumulo.yaml": text, "main.py": MAIN})
    [problem] = validate_project(root)
    assert str(problem).startswith("project/cumulo.yaml:Function/train.spec.secrets[0]")
    assert "a secret needs a name (a Kubernetes Secret), an env, or both" in str(problem)


def test_access_defaults_to_the_token_and_can_be_public(write_project: WriteProject) -> None:
    text = SECRETS + "      access: public\n"
    root = write_project({"cumulo.yaml": text, "main.py": MAIN})
    assert load_project(root).functions["train"].spec.access == "public"
    assert load_project(pipeline(write_project, "other")).functions["train"].spec.access == "token"
    wrong = write_project({"cumulo.yaml": SECRETS + "      access: open\n", "main.py": MAIN}, "x")
    [problem] = validate_project(wrong)
    assert "Function/train.spec.access: Input should be 'token' or 'public'" in str(problem)


def test_the_decorator_declares_access_too(write_project: WriteProject) -> None:
    main = """
        import cumulo

        @cumulo.function(access="public")
        def predict(request):
            return "ok"

        @cumulo.function
        def train(request):
            return "ok"
    """
    functions = load_project(write_project({"main.py": main})).functions
    assert (functions["predict"].spec.access, functions["train"].spec.access) == ("public", "token")
