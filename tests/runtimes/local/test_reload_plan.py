"""What a running platform changes when the project is saved: :func:`plan_reload`."""

from __future__ import annotations

from pathlib import Path

from cumulo.runtimes.local.reload import ReloadPlan, plan_reload
from cumulo.spec import Project, load_project

FUNCTION = """
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: {name}}}
spec:
  handler: main:{handler}
  triggers: [{{filters: [{{exact: {{type: {type}}}}}]}}]
"""

CRON = """
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: nightly}
spec:
  cron: {schedule: "SCHEDULE"}
  sink: {function: a}
"""


def project(folder: Path, *functions: tuple[str, str, str], cron: str | None = None) -> Project:
    """A project of functions (name, handler, trigger type), loaded from YAML."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").touch()  # handlers are checked to be in a module (not imported here)
    text = "".join(FUNCTION.format(name=n, handler=h, type=t) for n, h, t in functions)
    if cron:
        text += CRON.replace("SCHEDULE", cron)
    (folder / "cumulo.yaml").write_text(text)
    return load_project(folder, import_modules=False)


def test_a_code_change_reloads_the_functions_that_imported_the_file(tmp_path: Path):
    old = project(tmp_path, ("a", "one", "t.a"), ("b", "two", "t.b"))
    new = project(tmp_path, ("a", "one", "t.a"), ("b", "two", "t.b"))
    helper = tmp_path / "helper.py"
    sources = {
        "a": frozenset({tmp_path / "main.py", helper}),
        "b": frozenset({tmp_path / "main.py"}),
    }

    plan = plan_reload(old, new, frozenset({helper}), sources)

    assert plan == ReloadPlan(reload=("a",))
    assert plan.summary() == "a runs its new code"


def test_a_function_whose_template_never_loaded_takes_any_code_change(tmp_path: Path):
    old = project(tmp_path, ("a", "one", "t.a"))
    plan = plan_reload(old, old, frozenset({tmp_path / "other.py"}), sources={})
    assert plan.reload == ("a",)


def test_saving_the_yaml_unchanged_changes_nothing(tmp_path: Path):
    old = project(tmp_path, ("a", "one", "t.a"), cron="0 * * * *")
    new = project(tmp_path, ("a", "one", "t.a"), cron="0 * * * *")
    plan = plan_reload(old, new, frozenset(), {"a": frozenset()})
    assert plan.empty and plan.summary() == "nothing to change"


def test_a_changed_spec_replaces_the_function_and_restarts_its_triggers(tmp_path: Path):
    old = project(tmp_path, ("a", "one", "t.a"), ("b", "two", "t.b"))
    new = project(tmp_path, ("a", "uno", "t.a"), ("b", "two", "t.b"))

    plan = plan_reload(old, new, frozenset(), {})

    assert plan.replace == ("a",) and plan.reload == ()
    assert plan.stop_triggers == plan.start_triggers == ("a-0",)  # on the new host, same group


def test_a_changed_filter_restarts_only_its_trigger(tmp_path: Path):
    old = project(tmp_path, ("a", "one", "t.a"), ("b", "two", "t.b"))
    new = project(tmp_path, ("a", "one", "t.changed"), ("b", "two", "t.b"))

    plan = plan_reload(old, new, frozenset(), {})

    assert (plan.replace, plan.stop_triggers, plan.start_triggers) == ((), ("a-0",), ("a-0",))
    assert plan.summary() == "trigger a-0 restarted"


def test_added_and_removed_functions_bring_and_take_their_triggers(tmp_path: Path):
    old = project(tmp_path, ("a", "one", "t.a"), ("b", "two", "t.b"))
    new = project(tmp_path, ("a", "one", "t.a"), ("c", "three", "t.c"))

    plan = plan_reload(old, new, frozenset(), {})

    assert (plan.add, plan.remove) == (("c",), ("b",))
    assert (plan.stop_triggers, plan.start_triggers) == (("b-0",), ("c-0",))
    assert (
        plan.summary()
        == "function c added; function b removed; trigger c-0 added; trigger b-0 removed"
    )


def test_a_changed_source_restarts(tmp_path: Path):
    old = project(tmp_path, ("a", "one", "t.a"), cron="0 * * * *")
    new = project(tmp_path, ("a", "one", "t.a"), cron="*/5 * * * *")
    plan = plan_reload(old, new, frozenset(), {})
    assert (plan.stop_sources, plan.start_sources) == (("nightly",), ("nightly",))
    assert plan.not_applied == ()


def test_a_changed_bus_is_reported_not_applied(tmp_path: Path):
    old = project(tmp_path, ("a", "one", "t.a"))
    (tmp_path / "bus.yaml").write_text(
        "apiVersion: cumulo.dev/v1alpha1\nkind: EventBus\nmetadata: {name: other}\n"
        "spec: {url: 'sqlite:///other.db'}\n"
    )
    new = load_project(tmp_path, import_modules=False)
    plan = plan_reload(old, new, frozenset(), {})
    assert plan.not_applied == ("event bus other changed: it applies at the next `cumulo up`",)
