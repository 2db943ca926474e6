"""``@function`` and ``on()``: the registry, and the decorator route of project loading."""

from __future__ import annotations

import sys

import pytest

from cumulo.errors import SpecError
from cumulo.registry import Registry, default_registry, function, on, use_registry
from cumulo.spec import (
    Delivery,
    Filter,
    Resources,
    Scale,
    TriggerBinding,
    load_project,
    validate_project,
)
from tests.spec.conftest import WriteProject


def train_model(event: object) -> None:
    """A module-level target, so that its handler is importable."""


def serve(request: object) -> str:
    return "ok"


# --- the registry ----------------------------------------------------------------------


def test_function_records_and_returns_the_target_unchanged() -> None:
    registry = Registry()
    assert function(registry=registry)(train_model) is train_model
    [declared] = registry.functions().values()
    assert declared.name == "train-model"
    assert declared.spec.handler == "tests.spec.test_decorators:train_model"
    assert declared.spec.signature is None
    assert len(registry) == 1 and next(iter(registry)).target is train_model


def test_function_without_parentheses() -> None:
    registry = Registry()
    with use_registry(registry):
        assert function(serve) is serve
    assert list(registry.functions()) == ["serve"]


def test_function_options_accept_dicts_models_and_duration_strings() -> None:
    from_dicts, from_models = Registry(), Registry()
    function(
        "trainer",
        mode="job",
        scale={"max": 2, "idle_timeout": "5m"},
        resources={"gpu": 1},
        timeout="2h",
        emits=["dev.cumulo.model.trained"],
        env={"EPOCHS": "3"},
        signature="cloudevent",
        registry=from_dicts,
    )(train_model)
    function(
        "trainer",
        mode="job",
        scale=Scale(max=2, idle_timeout=300),
        resources=Resources(gpu=1),
        timeout=7200,
        emits=("dev.cumulo.model.trained",),
        env={"EPOCHS": "3"},
        signature="cloudevent",
        registry=from_models,
    )(train_model)
    assert from_dicts.functions() == from_models.functions()
    spec = from_dicts.functions()["trainer"].spec
    assert (spec.timeout, spec.scale.idle_timeout, spec.signature) == (7200.0, 300.0, "cloudevent")


def test_registry_reports_mistakes_and_duplicates() -> None:
    registry = Registry()
    function("same", scale={"min": 3, "max": 1}, registry=registry)(train_model)
    function("same", registry=registry)(serve)
    function("same", registry=registry)(train_model)
    with pytest.raises(SpecError) as raised:
        registry.functions()
    here = "tests/spec/test_decorators.py"
    assert [str(p) for p in raised.value.problems] == [
        f"{here}:train_model.scale: min (3) is larger than max (1)",
        f"{here}:train_model.name: duplicate Function name 'same' (first declared at {here}:serve)",
    ]


def test_use_registry_swaps_the_default_and_restores_it() -> None:
    process_default = default_registry()
    outer, inner = Registry(), Registry()
    with use_registry(outer):
        assert default_registry() is outer
        with use_registry(inner):
            function(serve)
        assert default_registry() is outer
    assert default_registry() is process_default
    assert len(inner) == 1 and len(outer) == 0


# --- on() ---------------------------------------------------------------------------------


def test_on_is_an_exact_filter_on_the_attributes_given() -> None:
    binding = on("com.shop.order.created", source="/shop", region="eu", bus="orders")
    assert binding == TriggerBinding(
        bus="orders",
        filter={
            "attributes": {"type": "com.shop.order.created", "source": "/shop", "region": "eu"}
        },
    )


def test_on_takes_dialects_delivery_dedup_and_a_name() -> None:
    binding = on(
        filters=[Filter(prefix={"type": "com.shop."}), {"not": {"exact": {"region": "cn"}}}],
        delivery={"retries": 1, "backoff_policy": "linear"},
        dedup={"window": "1m"},
        name="shop-events",
        topic="orders",
    )
    assert binding.filter is None and len(binding.filters) == 2
    assert binding.delivery == Delivery(retries=1, backoff_policy="linear")
    assert binding.dedup is not None and binding.dedup.window == 60.0
    assert (binding.name, binding.topic) == ("shop-events", "orders")
    assert on() == TriggerBinding()


# --- the decorator route of load_project -----------------------------------------------------

DECORATED = """
    import functions_framework

    from cumulo.registry import function, on


    @function(
        "train",
        mode="job",
        triggers=[on("dev.cumulo.dataset.ready", bus="pipeline"), on(name="manual")],
        scale={"max": 2},
        timeout="2h",
        emits=["dev.cumulo.model.trained"],
    )
    @functions_framework.cloud_event
    def train(event):
        return None


    @functions_framework.http
    @function(resources={"cpu": "2"}, env={"MODEL": "latest"})
    def predict(request):
        return "cat"


    @function
    def plain_helper(payload):
        return payload
"""

EQUIVALENT_YAML = """
    apiVersion: cumulo.dev/v1alpha1
    kind: Function
    metadata: {name: train}
    spec:
      handler: main:train
      signature: cloudevent
      mode: job
      timeout: 2h
      scale: {max: 2}
      emits: [dev.cumulo.model.trained]
      triggers:
        - bus: pipeline
          filter: {attributes: {type: dev.cumulo.dataset.ready}}
        - name: manual
    ---
    apiVersion: cumulo.dev/v1alpha1
    kind: Function
    metadata: {name: predict}
    spec:
      handler: main:predict
      signature: http
      resources: {cpu: "2"}
      env: {MODEL: latest}
    ---
    apiVersion: cumulo.dev/v1alpha1
    kind: Function
    metadata: {name: plain-helper}
    spec: {handler: "main:plain_helper"}
"""

BUS = """
    apiVersion: cumulo.dev/v1alpha1
    kind: EventBus
    metadata: {name: pipeline}
"""

PLAIN_MAIN = """
    def train(event):
        return None


    def predict(request):
        return "cat"


    def plain_helper(payload):
        return payload
"""


def test_decorator_route_equals_yaml_route(write_project: WriteProject) -> None:
    decorated = load_project(write_project({"main.py": DECORATED, "bus.yaml": BUS}, "decorated"))
    declared = load_project(
        write_project(
            {"main.py": PLAIN_MAIN, "bus.yaml": BUS, "cumulo.yaml": EQUIVALENT_YAML}, "yaml"
        )
    )
    assert list(decorated.functions) == ["train", "predict", "plain-helper"]
    assert decorated.functions == declared.functions
    assert decorated.triggers == declared.triggers
    assert list(decorated.triggers) == ["train-0", "manual"]


def test_signature_comes_from_functions_framework_in_either_order(
    write_project: WriteProject,
) -> None:
    functions = load_project(write_project({"main.py": DECORATED, "bus.yaml": BUS})).functions
    assert functions["predict"].spec.handler == "main:predict"  # not functions-framework's wrapper
    assert functions["train"].spec.signature == "cloudevent"  # @function above
    assert functions["predict"].spec.signature == "http"  # @function below
    assert functions["plain-helper"].spec.signature is None


def test_yaml_and_decorators_mix_in_one_project(write_project: WriteProject) -> None:
    extra = """
        apiVersion: cumulo.dev/v1alpha1
        kind: Trigger
        metadata: {name: predict-on-upload}
        spec: {function: predict, filter: {attributes: {type: dev.cumulo.upload}}}
    """
    project = load_project(write_project({"main.py": DECORATED, "bus.yaml": BUS, "t.yaml": extra}))
    assert [t.name for t in project.triggers_for("predict")] == ["predict-on-upload"]


def test_modules_are_imported_from_the_project(write_project: WriteProject) -> None:
    steps = """
        from cumulo.registry import function


        @function(name="clean")
        def clean_data(event):
            return None
    """
    root = write_project({"bus.yaml": BUS})
    (root / "pipeline").mkdir()
    (root / "pipeline" / "__init__.py").write_text("")
    (root / "pipeline" / "steps.py").write_text(steps.replace("\n        ", "\n").lstrip())
    project = load_project(root, modules=["pipeline.steps"])
    assert project.functions["clean"].spec.handler == "pipeline.steps:clean_data"


def test_loading_leaves_the_interpreter_as_it_was(write_project: WriteProject) -> None:
    path_before, main_before = list(sys.path), sys.modules.get("main")
    root = write_project({"main.py": DECORATED, "bus.yaml": BUS})
    load_project(root)
    assert sys.path == path_before
    assert sys.modules.get("main") is main_before


def test_each_load_imports_afresh(write_project: WriteProject) -> None:
    root = write_project({"main.py": DECORATED, "bus.yaml": BUS})
    assert "predict" in load_project(root).functions
    (root / "main.py").write_text("from cumulo.registry import function\n\nfunction(print)\n")
    assert list(load_project(root).functions) == ["print"]


def test_decorated_functions_do_not_leak_into_the_default_registry(
    write_project: WriteProject,
) -> None:
    before = len(default_registry())
    load_project(write_project({"main.py": DECORATED, "bus.yaml": BUS}))
    assert len(default_registry()) == before


# --- decorator mistakes --------------------------------------------------------------------------


def test_decorator_mistakes_name_the_module_and_function(write_project: WriteProject) -> None:
    main = """
        from cumulo.registry import function


        @function(scale={"max": 0}, timeout="soon")
        def train_model(event):
            return None


        @function("Bad_Name", triggers=[{"bus": "nowhere"}])
        def other(event):
            return None
    """
    assert [str(p) for p in validate_project(write_project({"main.py": main}))] == [
        "project/main.py:train_model.scale.max: Input should be greater than or equal to 1",
        "project/main.py:train_model.timeout: 'soon' is not a duration "
        "(use seconds, '30s', '5m', '2h', 'PT1M')",
        "project/main.py:other.name: 'Bad_Name' is not a DNS-1123 label (at most 63 lowercase "
        "letters, digits and '-', starting and ending with a letter or digit)",
    ]


def test_inline_trigger_mistakes_of_decorated_functions(write_project: WriteProject) -> None:
    main = """
        from cumulo.registry import function


        @function(triggers=[{"bus": "nowhere"}, {"bus": "default"}])
        def train(event):
            return None
    """
    assert [str(p) for p in validate_project(write_project({"main.py": main}))] == [
        "project/main.py:train.triggers[0].bus: unknown bus 'nowhere'"
    ]


def test_import_failures_give_file_and_line(write_project: WriteProject) -> None:
    main = """
        import helpers


        def train(event):
            return None
    """
    helpers = """
        X = 1
        Y = X / 0
    """
    root = write_project({"main.py": main, "helpers.py": helpers})
    assert [str(p) for p in validate_project(root)] == [
        "project/helpers.py:2: cannot import module 'main': ZeroDivisionError: division by zero"
    ]
    assert "helpers" not in sys.modules


def test_syntax_errors_and_missing_modules(write_project: WriteProject) -> None:
    root = write_project({"main.py": "def broken(:\n    pass\n"})
    assert [str(p) for p in validate_project(root, modules=["absent.module"])] == [
        "project/main.py:1: SyntaxError: invalid syntax",
        "project: cannot find module 'absent.module'",
    ]


def test_invalid_models_built_at_import_time(write_project: WriteProject) -> None:
    main = """
        from cumulo.registry import function, on


        @function(triggers=[on("x", bus="Bad_Bus")])
        def train(event):
            return None
    """
    assert [str(p) for p in validate_project(write_project({"main.py": main}))] == [
        "project/main.py:4: TriggerBinding.bus: 'Bad_Bus' is not a DNS-1123 label (at most 63 "
        "lowercase letters, digits and '-', starting and ending with a letter or digit)"
    ]


def test_a_module_that_imports_a_missing_dependency(write_project: WriteProject) -> None:
    root = write_project({"main.py": "import not_installed_anywhere\n"})
    assert [str(p) for p in validate_project(root)] == [
        "project/main.py:1: cannot import module 'main': ModuleNotFoundError: "
        "No module named 'not_installed_anywhere'"
    ]


def test_signature_given_explicitly_wins(write_project: WriteProject) -> None:
    main = """
        import functions_framework

        from cumulo.registry import function


        @function(signature="cloudevent")
        @functions_framework.http
        def hybrid(request):
            return None
    """
    functions = load_project(write_project({"main.py": main})).functions
    assert functions["hybrid"].spec.signature == "cloudevent"


def test_libraries_installed_inside_the_project_stay_imported(
    write_project: WriteProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_project({"main.py": "import vendored_lib\nimport local_helper\n"})
    (root / "local_helper.py").write_text("")
    site = root / ".venv" / "site-packages"
    site.mkdir(parents=True)
    (site / "vendored_lib.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    assert validate_project(root) == []
    assert "vendored_lib" in sys.modules  # one copy of a library for the whole process
    assert "local_helper" not in sys.modules  # the project's own modules load afresh
    del sys.modules["vendored_lib"]
