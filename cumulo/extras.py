"""Optional parts of Cumulo: which extra brings which library, and one way to ask for it.

``pip install cumulo`` runs the embedded platform on its own; a broker client,
the ML libraries, the Kubernetes client and the rest come with an extra
(``pip install 'cumulo[redis]'``). Every import of one goes through
:func:`from_extra`, so a missing one is a :class:`~cumulo.errors.MissingExtraError`
that names the extra, never a ``ModuleNotFoundError``::

    with from_extra("redis", needed_by="redis://"):
        import redis.asyncio as aioredis

:func:`installed` answers without importing anything, for checks made before
a project starts.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType, ModuleType

from cumulo.errors import MissingExtraError

OWN_PACKAGE = "cumulo"


@dataclass(frozen=True, slots=True)
class Extra:
    """One extra of ``pyproject.toml``: what it brings, and the modules that show it is there."""

    name: str
    what: str
    modules: tuple[str, ...]


EXTRAS: tuple[Extra, ...] = (
    Extra(
        "ml",
        "the ML libraries (scikit-learn, pandas, pyarrow, joblib)",
        ("sklearn", "pandas", "pyarrow", "joblib"),
    ),
    Extra("torch", "PyTorch", ("torch",)),
    Extra("s3", "the S3 client (boto3)", ("boto3",)),
    Extra("redis", "the redis client", ("redis",)),
    Extra("nats", "the NATS client (nats-py)", ("nats",)),
    Extra("kafka", "the Kafka client (confluent-kafka)", ("confluent_kafka",)),
    Extra("dapr", "the Dapr SDK (dapr, grpcio)", ("dapr", "grpc")),
    Extra("kubernetes", "the Kubernetes client", ("kubernetes",)),
    Extra(
        "otel",
        "OpenTelemetry (its SDK and OTLP/HTTP exporter)",
        ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"),
    ),
)

# Cumulo's own handler modules that need an extra, so that a project naming one
# is told before it starts (a module is found by name here, never imported).
HANDLER_MODULE_EXTRAS: Mapping[str, str] = MappingProxyType(
    {
        "cumulo.functions.train": "ml",
        "cumulo.functions.evaluate": "ml",
        "cumulo.functions.predict": "ml",
        "cumulo.functions.drift": "ml",
    }
)


def extra_named(name: str) -> Extra:
    """The extra called ``name``; one this table does not list is described by its name."""
    for extra in EXTRAS:
        if extra.name == name:
            return extra
    return Extra(name, f"the '{name}' extra", ())


def missing(extra: str, *, needed_by: str) -> MissingExtraError:
    """The error saying that ``needed_by`` needs ``extra``: ``X needs Y: pip install ...``."""
    message = f"{needed_by} needs {extra_named(extra).what}: pip install 'cumulo[{extra}]'"
    return MissingExtraError(message, extra=extra, needed_by=needed_by)


def _is_own(module: str | None) -> bool:
    """Whether a module that could not be found is one of Cumulo's own (a bug, not an extra)."""
    return module is not None and (module == OWN_PACKAGE or module.startswith(OWN_PACKAGE + "."))


@contextmanager
def from_extra(extra: str, *, needed_by: str) -> Iterator[None]:
    """Imports made inside this block come from ``extra``; a missing one raises MissingExtraError.

    ``needed_by`` says who asks, as the message's subject (``redis://``,
    ``estimator 'torch_mlp'``). A missing module of Cumulo's own is not an
    extra's and goes through unchanged.
    """
    try:
        yield
    except ModuleNotFoundError as e:
        if _is_own(e.name):
            raise
        raise missing(extra, needed_by=needed_by) from e


def require(module: str, extra: str, *, needed_by: str) -> ModuleType:
    """``module``, imported; :class:`MissingExtraError` naming ``extra`` when it is not there."""
    with from_extra(extra, needed_by=needed_by):
        return importlib.import_module(module)


def installed(extra: str) -> bool:
    """Whether every module that shows ``extra`` can be found (nothing is imported but parents)."""
    return all(_findable(module) for module in extra_named(extra).modules)


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a module without spec
        return False
