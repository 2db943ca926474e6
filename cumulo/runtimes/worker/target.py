"""Finding the user's function and how it wants to be called.

Two ways to name a function, one loader:

- Cumulo's ``module:attr``, imported from a source *folder* (``cumulo up`` and
  images use this);
- functions-framework's: a bare function name and a source *file*
  (``--target f --source main.py``, or ``FUNCTION_TARGET``/``FUNCTION_SOURCE``,
  the file defaulting to ``./main.py``), so ``cumulo worker`` takes the same
  command line as ``functions-framework``.

A module that is one file is loaded from that file the way functions-framework
loads its source, so ``from .helpers import x`` works beside ``main.py``, and
it runs inside the worker's Flask app context, so ``flask.current_app`` works
at import time. Errors in the functions-framework form are functions-framework's
own exceptions, with its messages.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import flask
from functions_framework import _function_registry as registry
from functions_framework import exceptions as ff_errors

from cumulo.errors import MissingExtraError, TargetError
from cumulo.events.event import Event
from cumulo.runtimes.worker import conventions

Signature = Literal["http", "cloudevent", "event", "typed"]
SIGNATURES: tuple[Signature, ...] = ("http", "cloudevent", "event", "typed")
DEFAULT_SOURCE = "main.py"


@dataclass(frozen=True)
class LoadedFunction:
    """A user function, the name it was asked for by, and the Flask app it was imported in."""

    fn: Callable[..., Any]
    target: str  # the attribute's name: functions-framework's FUNCTION_TARGET
    source: Path  # the file or folder it came from
    flask_app: flask.Flask


def load_function(target: str, source: Path | str | None = None) -> LoadedFunction:
    """Import the function ``target`` names (either form; see the module docstring)."""
    if ":" in target:
        module_name, _, attr_path = target.partition(":")
        if not module_name or not attr_path:
            raise TargetError(f"target {target!r} must look like 'module:function'")
        folder = Path(source) if source is not None else Path(".")
        return _load_module_attr(module_name, attr_path, folder, target)
    if not target:
        raise ff_errors.InvalidConfigurationException(
            "Target is not specified (FUNCTION_TARGET environment variable not set)"
        )
    path = Path(source or os.environ.get("FUNCTION_SOURCE") or DEFAULT_SOURCE)
    if path.is_dir():
        path = path / DEFAULT_SOURCE
    return _load_function_file(target, path)


def load_target(target: str, source_dir: Path | None = None) -> Callable[..., Any]:
    """Just the callable of :func:`load_function` (jobs, tests)."""
    return load_function(target, source_dir).fn


def new_flask_app(name: str, source: Path) -> flask.Flask:
    """The app a function is imported in and served by (templates beside its source)."""
    folder = source if source.is_dir() else source.parent
    app = flask.Flask(name, template_folder=str(folder.resolve() / "templates"))
    import functions_framework

    functions_framework.errorhandler = app.errorhandler  # type: ignore[assignment]
    return app


def _load_function_file(target: str, path: Path) -> LoadedFunction:
    if not path.exists():
        raise ff_errors.MissingSourceException(
            f"File {path} that is expected to define function doesn't exist"
        )
    app = new_flask_app(target, path)
    conventions.before_import(target)
    module = _exec_file(path, app)
    if not hasattr(module, target):
        found = ", ".join(
            f"'{name}'"
            for name in dir(module)
            if isinstance(getattr(module, name), types.FunctionType)
        )
        raise ff_errors.MissingTargetException(
            f"File {path} is expected to contain a function named '{target}'. "
            f"Found: {found} instead"
        )
    fn = getattr(module, target)
    if not isinstance(fn, types.FunctionType):
        raise ff_errors.InvalidTargetTypeException(
            f"The function defined in file {path} as '{target}' needs to be of type "
            f"function. Got: invalid type {type(fn)}"
        )
    return LoadedFunction(fn, target, path, app)


def _load_module_attr(
    module_name: str, attr_path: str, folder: Path, target: str
) -> LoadedFunction:
    name = attr_path.rsplit(".", 1)[-1]
    app = new_flask_app(name, folder)
    conventions.before_import(name)
    file = folder / f"{module_name}.py"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # the project's modules before anything installed
    try:
        if "." not in module_name and file.is_file():
            module = _exec_file(file, app)
        else:
            with app.app_context():
                module = importlib.import_module(module_name)
    except MissingExtraError:
        raise  # its own message names the extra to install
    except Exception as e:
        raise TargetError(
            f"cannot import module {module_name!r} from {folder}: {type(e).__name__}: {e}"
        ) from e
    value: Any = module
    for part in attr_path.split("."):
        if not hasattr(value, part):
            raise TargetError(f"{target!r}: module {module_name!r} has no attribute {part!r}")
        value = getattr(value, part)
    if not callable(value):
        raise TargetError(f"{target!r} is a {type(value).__name__}, not a callable")
    return LoadedFunction(value, name, folder, app)


def _exec_file(path: Path, app: flask.Flask) -> types.ModuleType:
    """Load a source file as functions-framework does: a module whose folder holds its peers."""
    real = Path(os.path.realpath(path))
    spec = importlib.util.spec_from_file_location(
        real.stem, real, submodule_search_locations=[str(real.parent)]
    )
    if spec is None or spec.loader is None:
        raise TargetError(f"{path} is not a Python source file")
    module = importlib.util.module_from_spec(spec)
    if str(real.parent) not in sys.path:
        sys.path.append(str(real.parent))
    sys.modules[real.stem] = module
    with app.app_context():
        spec.loader.exec_module(module)
    return module


# --- signatures ------------------------------------------------------------------


def detect_signature(fn: Callable[..., Any], explicit: str | None = None) -> Signature:
    """How ``fn`` is called, in functions-framework's order: what its decorator
    registered, else ``explicit`` (the spec's, or ``--signature-type`` /
    ``FUNCTION_SIGNATURE_TYPE``); then Cumulo's own rule (cloudevent when its
    argument is annotated as an :class:`Event`), else http."""
    chosen = registered_signature(fn) or explicit
    if chosen is None:
        return "cloudevent" if accepts_native_event(fn) else "http"
    if chosen not in SIGNATURES:
        raise TargetError(f"signature {chosen!r} is not one of {', '.join(SIGNATURES)}")
    return chosen


def registered_signature(fn: Callable[..., Any]) -> str | None:
    """What a functions-framework decorator registered for ``fn``.

    Its registry is keyed by bare function name, so only a decorated function
    (one its decorators wrapped) is looked up: an undecorated ``train`` is not
    taken for another module's decorated ``train``.
    """
    if not hasattr(fn, "__wrapped__"):
        return None
    return registry.REGISTRY_MAP.get(getattr(fn, "__name__", ""))


def serving_signature(fn: Callable[..., Any], explicit: str | None = None) -> Signature:
    """:func:`detect_signature`, published as ``FUNCTION_SIGNATURE_TYPE`` for the function."""
    signature = detect_signature(fn, explicit)
    conventions.after_load(signature)
    return signature


def typed_input(fn: Callable[..., Any]) -> type:
    """The input type a ``@functions_framework.typed`` function registered."""
    return typing.cast(type, registry.INPUT_TYPE_MAP.get(getattr(fn, "__name__", "")))


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` returns a coroutine (a coroutine function or async ``__call__``)."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = type(fn).__dict__.get("__call__")  # a callable object's own __call__
    return call is not None and inspect.iscoroutinefunction(call)


def wants_asgi(fn: Callable[..., Any], asked: bool = False) -> bool:
    """Whether ``fn`` is served the way functions-framework's ASGI mode serves it:
    when asked (``--asgi``, ``FUNCTION_USE_ASGI``), for ``async def`` functions,
    and for functions ``@functions_framework.aio`` decorated."""
    aio = hasattr(fn, "__wrapped__") and getattr(fn, "__name__", "") in registry.ASGI_FUNCTIONS
    return asked or is_async_callable(fn) or aio


def accepts_native_event(fn: Callable[..., Any]) -> bool:
    """Whether a cloudevent function annotates its argument as a Cumulo :class:`Event`.

    Such functions get the :class:`Event` itself; all others get the SDK
    ``CloudEvent`` that functions-framework would pass, so they run unchanged.
    """
    try:
        parameter = next(iter(inspect.signature(fn).parameters.values()))
    except (StopIteration, TypeError, ValueError):
        return False
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to the text
        return parameter.annotation in ("Event", "cumulo.events.event.Event", "cumulo.Event")
    return hints.get(parameter.name) is Event
