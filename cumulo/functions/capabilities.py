"""What a platform function may touch: its spec grants it, an event only chooses within it.

::

    class TrainParams(BaseModel):
        model: str                                                   # the spec's alone
        seed: int = Field(default=0, json_schema_extra=EVENT_SETTABLE)  # an event may set it

- **Params.** An event's ``data.params`` may set only the fields its params
  model marks :data:`EVENT_SETTABLE`. Every other field, and every field added
  later without the mark, is set by the function's spec only: an event that
  tries is refused (``data.params.cloneUrl: set by the function's spec only``).
- **Data roots.** Datasets are read only under the project folder, the
  artifact store and the roots the spec declares in ``params.dataRoots``
  (folders, relative to the project, or ``s3://bucket[/prefix]``). Symlinks and
  ``..`` are resolved before the check.
- **Platform paths.** What a function's failure says names ``STATE_DIR`` and
  ``PROJECT_DIR``, never the platform's absolute folders
  (:func:`hides_platform_paths`).

Every refusal is a :class:`~cumulo.errors.CapabilityError` (permanent: the
event is dead-lettered, a ``/fn`` caller gets a 422) that names the rule.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar, cast

from pydantic import BaseModel
from pydantic.json_schema import JsonDict

from cumulo.config import FunctionSettings
from cumulo.errors import ArtifactError, CapabilityError, CumuloError, PermanentError, Retry

EVENT_SETTABLE_KEY: Final = "x-cumulo-event-settable"
EVENT_SETTABLE: Final[JsonDict] = {EVENT_SETTABLE_KEY: True}
DATA_ROOTS_RULE: Final = (
    "dataset URI outside the allowed data roots (project folder, artifact store, params.dataRoots)"
)
DATA_ROOTS_HELP: Final = (
    "Where else datasets may be read: folders (relative to the project) or s3://bucket/prefix."
)
S3: Final = "s3://"

P = ParamSpec("P")
R = TypeVar("R")


# --- params: the spec's, and what an event may choose -----------------------


def event_settable(model: type[BaseModel]) -> list[str]:
    """The params (as spelled in YAML) an event's ``data.params`` may set."""
    return sorted(
        info.alias or name
        for name, info in model.model_fields.items()
        if isinstance(info.json_schema_extra, dict)
        and info.json_schema_extra.get(EVENT_SETTABLE_KEY)
    )


def merge_params(
    model: type[BaseModel], spec: Mapping[str, Any], chosen: Mapping[str, Any]
) -> dict[str, Any]:
    """The spec's params with what an event chose on top; a spec-only choice is refused.

    Keys the model does not know are passed on for the model to judge.
    """
    spelled = _spellings(model)
    allowed = set(event_settable(model))
    for key in chosen:
        if key in spelled and spelled[key] not in allowed:
            may = ", ".join(sorted(allowed)) or "none"
            raise CapabilityError(
                f"data.params.{spelled[key]}: set by the function's spec only "
                f"(an event's data.params may set: {may})"
            )
    overridden = {spelled.get(key, key) for key in chosen}
    merged = {k: v for k, v in spec.items() if spelled.get(k, k) not in overridden}
    return merged | {spelled.get(key, key): value for key, value in chosen.items()}


def _spellings(model: type[BaseModel]) -> dict[str, str]:
    """Each way a field may be spelled (its name, its alias) → its alias."""
    spelled: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        spelled[name] = spelled[alias] = alias
    return spelled


# --- data roots -------------------------------------------------------------


@dataclass(frozen=True)
class DataRoots:
    """Where a function may read datasets: local folders (resolved) and S3 prefixes."""

    project_dir: Path
    folders: tuple[Path, ...]
    prefixes: tuple[tuple[str, str], ...]  # (bucket, key prefix); "" is the whole bucket

    @classmethod
    def of(cls, settings: FunctionSettings, declared: Iterable[str] = ()) -> DataRoots:
        """The project folder, the artifact store and the ``declared`` roots."""
        project = Path(os.path.realpath(settings.project_dir))
        folders, prefixes = [project], []
        store = settings.artifacts  # relative to the working folder, as the store reads it
        for root, base in [(store, Path.cwd()), *((root, project) for root in declared)]:
            if root.startswith(S3):
                prefixes.append(_declared_bucket(root))
            else:
                folders.append(Path(os.path.realpath(base / root.removeprefix("file://"))))
        return cls(project, tuple(folders), tuple(prefixes))

    def locate(self, uri: str) -> str:
        """What to read for ``uri``: its resolved local path, or the S3 URI; else refused."""
        if uri.startswith(S3):
            return self._s3(uri)
        if "://" in uri and not uri.startswith("file://"):
            raise CapabilityError("dataset URIs are paths, file:// or s3:// URIs")
        try:
            resolved = Path(os.path.realpath(self.project_dir / uri.removeprefix("file://")))
        except (ValueError, OSError) as e:  # an embedded NUL, a loop of links
            raise CapabilityError(DATA_ROOTS_RULE) from e
        if not any(resolved.is_relative_to(folder) for folder in self.folders):
            raise CapabilityError(DATA_ROOTS_RULE)
        return str(resolved)

    def _s3(self, uri: str) -> str:
        try:
            bucket, key = _bucket_prefix(uri)
        except ArtifactError as e:
            raise CapabilityError(DATA_ROOTS_RULE) from e
        if any(part in (".", "..") for part in key.split("/")):
            raise CapabilityError(DATA_ROOTS_RULE)
        for allowed, prefix in self.prefixes:
            if bucket == allowed and (not prefix or key.startswith(f"{prefix}/")):
                return uri
        raise CapabilityError(DATA_ROOTS_RULE)


def _declared_bucket(root: str) -> tuple[str, str]:
    try:
        return _bucket_prefix(root)
    except ArtifactError as e:
        raise PermanentError(
            f"params.dataRoots: {root!r} names no bucket (s3://bucket/prefix)"
        ) from e


def _bucket_prefix(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → (``bucket``, ``some/prefix``)."""
    bucket, _, key = url.removeprefix(S3).partition("/")
    if not bucket:
        raise ArtifactError("an s3:// URL names a bucket")
    return bucket, key.strip("/")


# --- what a failure may say -------------------------------------------------


def hides_platform_paths(
    run: Callable[Concatenate[Any, P], R],
) -> Callable[Concatenate[Any, P], R]:
    """Decorate ``run(ctx, ...)``: its errors say STATE_DIR / PROJECT_DIR, not the folders."""

    def hidden(ctx: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return run(ctx, *args, **kwargs)
        except (CumuloError, OSError) as e:
            text = hide_paths(str(e), ctx.settings)
            if text == str(e):
                raise
            raise _reworded(e, text) from None

    return cast(Callable[Concatenate[Any, P], R], functools.update_wrapper(hidden, run))


def hide_paths(text: str, settings: FunctionSettings) -> str:
    """``text`` with the platform's folders replaced by their names."""
    for path, name in _platform_folders(settings):
        text = text.replace(path, name)
    return text


def _platform_folders(settings: FunctionSettings) -> list[tuple[str, str]]:
    named = [(settings.state_dir, "STATE_DIR"), (settings.project_dir, "PROJECT_DIR")]
    store = Path(settings.artifacts)
    if not settings.artifacts.startswith(S3) and not store.resolve().is_relative_to(
        settings.state_dir.resolve()
    ):
        named.append((store, "ARTIFACTS"))
    found: dict[str, str] = {}
    for path, name in named:
        for spelling in _spellings_of(path):
            found.setdefault(spelling, name)
    return sorted(found.items(), key=lambda item: -len(item[0]))  # the longest first


def _spellings_of(path: Path) -> Sequence[str]:
    spellings = {str(path.absolute()), os.path.realpath(path)}
    return [s for s in spellings if len(s) > 1]  # never "/" itself


def _reworded(error: BaseException, text: str) -> BaseException:
    """``error`` again, saying ``text``: the same type where it takes a message, else a
    :class:`PermanentError` or :class:`CumuloError` (a permanent error stays permanent)."""
    if isinstance(error, Retry):
        return Retry(text, delay=error.delay)
    if isinstance(error, OSError) and error.errno:
        return type(error)(error.errno, text.split("] ", 1)[-1])  # no second "[Errno N]"
    if type(error).__init__ is Exception.__init__:
        return type(error)(text)
    return PermanentError(text) if isinstance(error, PermanentError) else CumuloError(text)
