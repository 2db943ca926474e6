"""Datasets for training and evaluation: a table read from a URI, and what it was.

``load_dataset(ctx, "s3://data/churn.parquet", roots)`` reads a CSV (``.csv``) or
Parquet (``.parquet``, ``.pq``) file named by a local path, ``file://`` or
``s3://`` URI, and says which bytes it read (:class:`DatasetInfo`: SHA-256 and
the store's version), so a model's lineage names its data exactly. Only files
under the function's data roots are read: the project folder, the artifact
store and the ``roots`` its spec declares (``params.dataRoots``; see
:class:`~cumulo.functions.capabilities.DataRoots`).

Anything wrong with the data itself is a :class:`~cumulo.errors.DatasetError`
that names the URI: retrying cannot fix it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from cumulo.extras import from_extra

with from_extra("ml", needed_by=__name__):
    import numpy as np
    import pandas as pd
    from pandas.api import types as pdtypes

from cumulo.errors import ArtifactError, DatasetError
from cumulo.functions.artifacts import S3_SCHEME, LocalFile
from cumulo.functions.capabilities import DataRoots

if TYPE_CHECKING:
    from cumulo.functions.context import FunctionContext

CSV_SUFFIXES: Final = (".csv",)
PARQUET_SUFFIXES: Final = (".parquet", ".pq")
_CHUNK = 1 << 20

Reader = Callable[[Path, str], pd.DataFrame]


@dataclass(frozen=True)
class DatasetInfo:
    """Which data was read: its URI, ``sha256:<hex>`` of the bytes, the store's version."""

    uri: str
    hash: str
    version: str | None
    rows: int
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame
    info: DatasetInfo

    def features(self, target: str) -> list[str]:
        """Every column but ``target``, in file order (``target`` must exist)."""
        self.require_columns([target])
        features = [column for column in self.frame.columns if column != target]
        if not features:
            raise DatasetError(f"dataset {self.info.uri}: no feature columns besides {target!r}")
        return features

    def require_columns(self, columns: list[str]) -> None:
        missing = [column for column in columns if column not in self.frame.columns]
        if missing:
            have = ", ".join(map(str, self.frame.columns))
            raise DatasetError(
                f"dataset {self.info.uri}: no column {_names(missing)} (has: {have})"
            )

    def xy(self, features: list[str], target: str) -> tuple[np.ndarray, np.ndarray]:
        """The feature matrix (float) and the target vector; features must be numeric, complete."""
        return xy(self.frame, features, target, self.info.uri)


def load_dataset(ctx: FunctionContext, uri: str, roots: Iterable[str] = ()) -> Dataset:
    """Read the CSV or Parquet file ``uri`` names (a path, ``file://`` or ``s3://``).

    A URI outside the data roots (the project, the artifact store, ``roots``)
    is a :class:`~cumulo.errors.CapabilityError`, whether the file exists or not.
    """
    location = DataRoots.of(ctx.settings, roots).locate(uri)
    reader = _reader(uri)
    local = _fetch(ctx, uri, location)
    frame = reader(local.path, uri)
    if frame.empty or len(frame.columns) == 0:
        raise DatasetError(f"dataset {uri}: no rows")
    info = DatasetInfo(
        uri=uri,
        hash=file_hash(local.path),
        version=local.version,
        rows=len(frame),
        columns=tuple(str(column) for column in frame.columns),
    )
    return Dataset(frame, info)


def file_hash(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def xy(
    frame: pd.DataFrame, features: list[str], target: str, uri: str
) -> tuple[np.ndarray, np.ndarray]:
    """``frame``'s features as a float matrix and its target, or a DatasetError naming ``uri``."""
    missing = [column for column in [*features, target] if column not in frame.columns]
    if missing:
        raise DatasetError(f"dataset {uri}: no column {_names(missing)}")
    not_numeric = [c for c in features if not pdtypes.is_numeric_dtype(frame[c])]
    if not_numeric:
        raise DatasetError(
            f"dataset {uri}: feature columns must be numeric; {_names(not_numeric)} are not"
        )
    incomplete = [c for c in [*features, target] if frame[c].isna().any()]
    if incomplete:
        raise DatasetError(f"dataset {uri}: missing values in {_names(incomplete)}")
    return frame[features].to_numpy(dtype=float), frame[target].to_numpy()


def split(
    frame: pd.DataFrame, holdout_fraction: float, seed: int, *, uri: str = "dataset"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A deterministic (train, holdout) split: the same ``seed`` gives the same rows."""
    if not 0 < holdout_fraction < 1:
        raise DatasetError(f"holdout fraction must be between 0 and 1, not {holdout_fraction}")
    n_holdout = round(len(frame) * holdout_fraction)
    if n_holdout < 1 or n_holdout >= len(frame):
        raise DatasetError(
            f"dataset {uri}: {len(frame)} rows are too few for a holdout of {holdout_fraction}"
        )
    order = np.random.default_rng(seed).permutation(len(frame))
    holdout = frame.iloc[np.sort(order[:n_holdout])].reset_index(drop=True)
    train = frame.iloc[np.sort(order[n_holdout:])].reset_index(drop=True)
    return train, holdout


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


# --- helpers ----------------------------------------------------------------


def _reader(uri: str) -> Reader:
    suffix = Path(urlsplit(uri).path if "://" in uri else uri).suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _read_csv
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet
    known = ", ".join((*CSV_SUFFIXES, *PARQUET_SUFFIXES))
    raise DatasetError(f"dataset {uri}: unknown format {suffix or '(no suffix)'!r}; known: {known}")


def _fetch(ctx: FunctionContext, uri: str, location: str) -> LocalFile:
    try:
        return ctx.fetch(location)
    except ArtifactError as e:
        if uri.startswith(S3_SCHEME):
            raise  # the store may be down for a while: the platform retries
        raise DatasetError(f"dataset {uri}: no such file") from e


def _read_csv(path: Path, uri: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError as e:
        raise DatasetError(f"dataset {uri}: the file is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        problem = _first_line(e).replace(str(path), uri)
        raise DatasetError(f"dataset {uri}: not readable as CSV: {problem}") from e


def _read_parquet(path: Path, uri: str) -> pd.DataFrame:
    with from_extra("ml", needed_by="a Parquet dataset"):
        import pyarrow

    try:
        return pd.read_parquet(path)
    except (pyarrow.ArrowException, OSError, ValueError) as e:
        problem = _first_line(e).replace(str(path), uri)  # the local copy is the platform's
        raise DatasetError(f"dataset {uri}: not readable as Parquet: {problem}") from e


def _names(columns: list[str]) -> str:
    return ", ".join(repr(str(column)) for column in columns)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
