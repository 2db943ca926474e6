"""Declare functions in Python: ``@function`` and ``on()``, kept in an explicit ``Registry``.

::

    import functions_framework
    from cumulo.registry import function, on

    @function(triggers=[on("dev.cumulo.model.trained")], mode="job", scale={"max": 2})
    @functions_framework.cloud_event
    def evaluate(event): ...

A declaration becomes the same :class:`~cumulo.spec.models.Function` that the
equivalent YAML gives. Decorators record into ``registry=`` or the current
default registry (kopf's ``OperatorRegistry`` pattern, not a module-level
dict); :func:`use_registry` swaps the default while a project is loaded.
The ``Function`` is built when read, not at decoration time, so the
functions-framework signature is found whichever decorator comes first, and a
mistake is reported by ``cumulo validate`` instead of failing the import.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from pydantic import ValidationError

from cumulo.errors import Problem, SpecError
from cumulo.spec.models import (
    Dedup,
    Delivery,
    Filter,
    Function,
    Resources,
    Scale,
    TriggerBinding,
)
from cumulo.spec.problems import Located, Origin, display_path

F = TypeVar("F", bound=Callable[..., Any])
_FRAMEWORK_REGISTRY = "functions_framework._function_registry"
_FRAMEWORK_SIGNATURES = ("http", "cloudevent", "event", "typed")


@dataclass(frozen=True)
class Declaration:
    """One use of ``@function``: the Python callable and the spec fields it was given."""

    target: Callable[..., Any]
    name: str
    options: Mapping[str, Any]

    @property
    def handler(self) -> str:
        """``module:qualname`` of the target."""
        return f"{self.target.__module__}:{self.target.__qualname__}"

    @property
    def source_file(self) -> str:
        """The file the target is defined in (under any ``functools.wraps`` wrappers)."""
        code = getattr(inspect.unwrap(self.target), "__code__", None)
        if code is not None:
            return str(code.co_filename)
        module = sys.modules.get(self.target.__module__)
        return str(getattr(module, "__file__", None) or self.target.__module__)

    def signature(self) -> str | None:
        """The signature given, else what functions-framework recorded, else ``None``."""
        given: str | None = self.options.get("signature")
        if given is not None:
            return given
        framework = sys.modules.get(_FRAMEWORK_REGISTRY)  # not imported: not used
        recorded = getattr(framework, "REGISTRY_MAP", {}).get(self.target.__name__)
        return recorded if recorded in _FRAMEWORK_SIGNATURES else None

    def to_function(self) -> Function:
        """The Function resource; raises :class:`pydantic.ValidationError` on mistakes."""
        spec = {**self.options, "handler": self.handler, "signature": self.signature()}
        return Function.model_validate({"metadata": {"name": self.name}, "spec": spec})


class Registry:
    """The functions declared with ``@function``, in declaration order."""

    def __init__(self) -> None:
        self._declarations: list[Declaration] = []

    def declare(self, declaration: Declaration) -> None:
        """Record one declaration."""
        self._declarations.append(declaration)

    @property
    def declarations(self) -> tuple[Declaration, ...]:
        return tuple(self._declarations)

    def __len__(self) -> int:
        return len(self._declarations)

    def __iter__(self) -> Iterator[Declaration]:
        return iter(self.declarations)

    def functions(self) -> dict[str, Function]:
        """The declared functions by name; raises :class:`~cumulo.errors.SpecError`."""
        from cumulo.spec.checks import duplicate_names  # cumulo.spec imports this module

        located, problems = resolve_declarations(self.declarations)
        if problems := problems + duplicate_names(located):
            raise SpecError(problems)
        return {item.resource.name: cast(Function, item.resource) for item in located}


@functools.cache
def _process_registry() -> Registry:
    return Registry()


_current_registry: ContextVar[Registry | None] = ContextVar("cumulo_registry", default=None)


def default_registry() -> Registry:
    """The registry decorators use when given none: the active one, else the process's."""
    active = _current_registry.get()
    return active if active is not None else _process_registry()


@contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the default within the block (per thread and task)."""
    token = _current_registry.set(registry)
    try:
        yield registry
    finally:
        _current_registry.reset(token)


def function(
    name: str | Callable[..., Any] | None = None,
    *,
    triggers: Sequence[TriggerBinding | Mapping[str, Any]] = (),
    emits: Sequence[str] = (),
    mode: Literal["service", "job"] = "service",
    scale: Scale | Mapping[str, Any] | None = None,
    timeout: float | str | None = None,
    signature: Literal["http", "cloudevent", "event", "typed"] | None = None,
    env: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    resources: Resources | Mapping[str, Any] | None = None,
    access: Literal["token", "public"] | None = None,
    registry: Registry | None = None,
) -> Any:
    """Declare the decorated callable as a Cumulo Function; returns it unchanged.

    ``name`` defaults to the callable's name with ``_`` made ``-``. Works above
    or below ``@functions_framework.http`` / ``.cloud_event``, with or without
    parentheses. ``access="public"`` lets ``/fn/<name>`` be called without the
    gateway's API token (default ``"token"``: it needs it when one is set).
    """
    if callable(name):  # used bare: @function
        return function(registry=registry)(name)
    options = _spec_options(
        triggers=list(triggers),
        emits=list(emits),
        mode=mode,
        scale=scale,
        timeout=timeout,
        signature=signature,
        env=dict(env) if env is not None else None,
        params=dict(params) if params is not None else None,
        resources=resources,
        access=access,
    )
    target_registry = registry if registry is not None else default_registry()

    def decorate(target: F) -> F:
        resource_name = name or target.__name__.replace("_", "-")
        target_registry.declare(Declaration(target, resource_name, options))
        return target

    return decorate


def _spec_options(**options: Any) -> dict[str, Any]:
    """The FunctionSpec fields that were given (``None`` means "the default")."""
    return {key: value for key, value in options.items() if value is not None}


def on(
    type: str | None = None,
    *,
    source: str | None = None,
    subject: str | None = None,
    filters: Sequence[Filter | Mapping[str, Any]] = (),
    bus: str = "default",
    topic: str = "default",
    delivery: Delivery | Mapping[str, Any] | None = None,
    dedup: Dedup | Mapping[str, Any] | None = None,
    name: str | None = None,
    **attributes: str,
) -> TriggerBinding:
    """An inline trigger: exact match on the attributes given, ANDed with ``filters``.

    ``on("com.example.created", source="/orders", region="eu")`` is
    ``filter: {attributes: {type: ..., source: ..., region: eu}}`` in YAML.
    """
    exact = {"type": type, "source": source, "subject": subject, **attributes}
    fields: dict[str, Any] = {
        "name": name,
        "bus": bus,
        "topic": topic,
        "filters": list(filters),
        "delivery": delivery,
        "dedup": dedup,
    }
    if exact := {key: value for key, value in exact.items() if value is not None}:
        fields["filter"] = {"attributes": exact}
    return TriggerBinding.model_validate(_spec_options(**fields))


def resolve_declarations(
    declarations: Iterable[Declaration],
) -> tuple[list[Located], list[Problem]]:
    """Build each declaration's Function, located at ``file:qualname``."""
    located: list[Located] = []
    problems: list[Problem] = []
    for declaration in declarations:
        origin = Origin(
            display_path(declaration.source_file), declaration.target.__qualname__, embedded=True
        )
        try:
            located.append(Located(declaration.to_function(), origin))
        except ValidationError as e:
            problems.extend(origin.problems(e))
    return located, problems
