"""Fixtures for the ML functions: a context in tmp_path and real datasets on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cloudevents.http import CloudEvent
from sklearn.datasets import make_classification, make_regression

from cumulo.config import FunctionSettings
from cumulo.events.event import Event
from cumulo.events.lineage import DATASET_READY
from cumulo.functions.context import FunctionContext


class RecordingContext(FunctionContext):
    """A real context whose immediate publishes (progress) are recorded instead of sent."""

    def __init__(self, settings: FunctionSettings):
        super().__init__(settings)
        self.published: list[Event] = []

    def publish(self, event: Event) -> None:
        self.published.append(event)


MakeContext = Callable[..., RecordingContext]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """The function's project folder: tmp_path, so that the datasets below are inside it."""
    return tmp_path


@pytest.fixture
def make_ctx(state_dir: Path, project_dir: Path) -> MakeContext:
    """``make_ctx("train", model="m")``: a context for a function with those params."""

    def make(function: str = "train", **params: Any) -> RecordingContext:
        settings = FunctionSettings(
            function=function, state_dir=state_dir, project_dir=project_dir, params=params
        )
        return RecordingContext(settings)

    return make


def classification_frame(n_samples: int = 400, seed: int = 7) -> pd.DataFrame:
    x, y = make_classification(
        n_samples=n_samples, n_features=8, n_informative=5, n_redundant=1, random_state=seed
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["target"] = y
    return frame


def regression_frame(n_samples: int = 300, seed: int = 3) -> pd.DataFrame:
    x, y = make_regression(n_samples=n_samples, n_features=5, noise=5.0, random_state=seed)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    frame["price"] = y
    return frame


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def csv_dataset(data_dir: Path) -> Path:
    path = data_dir / "classes.csv"
    classification_frame().to_csv(path, index=False)
    return path


@pytest.fixture
def parquet_dataset(data_dir: Path) -> Path:
    path = data_dir / "classes.parquet"
    classification_frame().to_parquet(path, index=False)
    return path


@pytest.fixture
def regression_dataset(data_dir: Path) -> Path:
    path = data_dir / "prices.parquet"
    regression_frame().to_parquet(path, index=False)
    return path


def cloud_event(type: str = DATASET_READY, data: Any = None, **attributes: Any) -> CloudEvent:
    """A CloudEvent SDK object, as functions-framework hands one to a function."""
    return CloudEvent({"type": type, "source": "/tests", **attributes}, data)
