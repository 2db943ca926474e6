"""Loading ``module:attr`` targets and telling their signature."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.errors import TargetError
from cumulo.events.event import Event
from cumulo.runtimes.worker import detect_signature, load_target
from tests.runtimes.worker import ff_functions, job_functions

HERE = Path(__file__).parent


def test_loads_from_the_source_dir() -> None:
    assert load_target("job_functions:train", HERE).__name__ == "train"


def test_loads_dotted_attributes() -> None:
    assert load_target("json:JSONDecoder.decode").__name__ == "decode"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nocolon", "must look like 'module:function'"),
        (
            "no_such_module_anywhere:f",
            "cannot import module 'no_such_module_anywhere'.*ModuleNotFoundError",
        ),
        ("json:nope", "has no attribute 'nope'"),
        ("job_functions:NOT_CALLABLE", "is a int, not a callable"),
    ],
)
def test_clear_errors(target: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        load_target(target, HERE)


def test_the_import_error_is_included(tmp_path: Path) -> None:
    (tmp_path / "broken_module_for_test.py").write_text("import missing_dependency_xyz\n")
    with pytest.raises(TargetError, match="No module named 'missing_dependency_xyz'"):
        load_target("broken_module_for_test:f", tmp_path)


def test_signature_explicit_first() -> None:
    assert detect_signature(ff_functions.ff_echo, "cloudevent") == "cloudevent"
    with pytest.raises(TargetError):
        detect_signature(ff_functions.ff_echo, "pubsub")


def test_signature_from_functions_framework_decorators() -> None:
    assert detect_signature(ff_functions.ff_echo) == "http"
    assert detect_signature(ff_functions.ff_receive) == "cloudevent"


def test_signature_from_an_event_annotation() -> None:
    assert detect_signature(job_functions.train) == "cloudevent"

    def takes_event(event: Event) -> None: ...

    assert detect_signature(takes_event) == "cloudevent"


def test_signature_defaults_to_http() -> None:
    assert detect_signature(lambda request: "ok") == "http"
