"""Finding the user's function (``module:attr``) and how it wants to be called."""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from cumulo.errors import TargetError
from cumulo.events.event import Event

Signature = Literal["http", "cloudevent"]
SIGNATURES: tuple[Signature, ...] = ("http", "cloudevent")


def load_target(target: str, source_dir: Path | None = None) -> Callable[..., Any]:
    """Import ``module:attr`` (``source_dir`` first on ``sys.path``) and return the callable.

    Raises :class:`TargetError` saying what went wrong, the import error included.
    """
    module_name, _, attr_path = target.partition(":")
    if not module_name or not attr_path:
        raise TargetError(f"target {target!r} must look like 'module:function'")
    if source_dir is not None and str(source_dir) not in sys.path:
        sys.path.insert(0, str(source_dir))
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        where = f" from {source_dir}" if source_dir is not None else ""
        raise TargetError(
            f"cannot import module {module_name!r}{where}: {type(e).__name__}: {e}"
        ) from e
    return _resolve(module, target, attr_path)


def _resolve(module: Any, target: str, attr_path: str) -> Callable[..., Any]:
    value = module
    for part in attr_path.split("."):
        if not hasattr(value, part):
            raise TargetError(f"{target!r}: module {module.__name__!r} has no attribute {part!r}")
        value = getattr(value, part)
    if not callable(value):
        raise TargetError(f"{target!r} is a {type(value).__name__}, not a callable")
    return value


def detect_signature(fn: Callable[..., Any], explicit: str | None = None) -> Signature:
    """How ``fn`` is called: ``explicit`` if given, else what a functions-framework
    decorator registered, else cloudevent when its argument is annotated as an
    :class:`Event`, else http."""
    if explicit is not None:
        if explicit not in SIGNATURES:
            raise TargetError(f"signature {explicit!r} is not one of {', '.join(SIGNATURES)}")
        return typing.cast(Signature, explicit)
    from functions_framework import _function_registry

    registered = _function_registry.REGISTRY_MAP.get(getattr(fn, "__name__", ""))
    if registered in SIGNATURES:
        return typing.cast(Signature, registered)
    return "cloudevent" if accepts_native_event(fn) else "http"


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` returns a coroutine (a coroutine function or async ``__call__``)."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = type(fn).__dict__.get("__call__")  # a callable object's own __call__
    return call is not None and inspect.iscoroutinefunction(call)


def uses_asgi_request(fn: Callable[..., Any]) -> bool:
    """Whether an http function wants a Starlette request (``async def`` or ``@aio.http``)."""
    from functions_framework import _function_registry

    return is_async_callable(fn) or getattr(fn, "__name__", "") in _function_registry.ASGI_FUNCTIONS


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
