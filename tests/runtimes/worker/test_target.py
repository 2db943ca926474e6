"""Loading ``module:attr`` targets and telling their signature."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from functions_framework import exceptions as ff_errors

from cumulo.errors import TargetError
from cumulo.events.event import Event
from cumulo.runtimes.worker import detect_signature, load_target
from cumulo.runtimes.worker.target import load_function
from tests.runtimes.worker import ff_functions, job_functions

HERE = Path(__file__).parent


def test_loads_from_the_source_dir() -> None:
    assert load_target("job_functions:train", HERE).__name__ == "train"


def test_loads_dotted_attributes() -> None:
    assert load_target("json:JSONDecoder.decode").__name__ == "decode"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (":f", "must look like 'module:function'"),
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


def test_a_decorator_wins_over_the_explicit_signature_as_in_functions_framework() -> None:
    assert detect_signature(ff_functions.ff_echo, "cloudevent") == "http"
    assert detect_signature(job_functions.train, "event") == "event"
    with pytest.raises(TargetError):
        detect_signature(job_functions.train, "pubsub")


def test_signature_from_functions_framework_decorators() -> None:
    assert detect_signature(ff_functions.ff_echo) == "http"
    assert detect_signature(ff_functions.ff_receive) == "cloudevent"


def test_signature_from_an_event_annotation() -> None:
    assert detect_signature(job_functions.train) == "cloudevent"

    def takes_event(event: Event) -> None: ...

    assert detect_signature(takes_event) == "cloudevent"


def test_signature_defaults_to_http() -> None:
    assert detect_signature(lambda request: "ok") == "http"


# --- functions-framework's form: a function name and a source file ---------------


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_name_and_a_file_load_as_functions_framework_loads_them(tmp_path: Path) -> None:
    write(tmp_path, "helpers.py", "GREETING = 'hello'\n")
    source = write(
        tmp_path,
        "ff_form_main.py",
        "import flask\nfrom .helpers import GREETING\n"
        "NAME = flask.current_app.name\n"
        "def greet(request):\n    return GREETING\n",
    )
    loaded = load_function("greet", source)
    assert loaded.fn(None) == "hello"  # a relative import beside the file
    assert loaded.target == "greet"
    assert loaded.flask_app.name == sys.modules["ff_form_main"].NAME  # current_app at import


def test_module_attr_form_allows_relative_imports_too(tmp_path: Path) -> None:
    write(tmp_path, "peer_of_relmain.py", "VALUE = 42\n")
    write(
        tmp_path, "relmain.py", "from .peer_of_relmain import VALUE\ndef f(r):\n    return VALUE\n"
    )
    assert load_target("relmain:f", tmp_path)(None) == 42


def test_the_functions_framework_form_raises_its_errors(tmp_path: Path) -> None:
    with pytest.raises(ff_errors.MissingSourceException, match="that is expected to define"):
        load_function("f", tmp_path / "absent.py")
    source = write(tmp_path, "two_functions.py", "def a(r): ...\ndef b(r): ...\nC = 3\n")
    with pytest.raises(
        ff_errors.MissingTargetException, match=r"function named 'x'\. Found: 'a', 'b' instead"
    ):
        load_function("x", source)
    with pytest.raises(ff_errors.InvalidTargetTypeException, match="as 'C' needs to be of type"):
        load_function("C", source)


def test_the_source_file_defaults_to_main_py_in_a_folder(tmp_path: Path) -> None:
    write(tmp_path, "main.py", "def hello(r):\n    return 'hi'\n")
    assert load_function("hello", tmp_path).fn(None) == "hi"
