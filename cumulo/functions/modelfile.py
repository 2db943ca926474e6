"""A trained model as one file: the estimator, its features, and a profile of its training data.

``train`` writes a :class:`ModelBundle` with :func:`save_bundle`; ``evaluate``,
``predict`` and ``drift`` read it with :func:`load_bundle`. The estimator is
anything with ``predict(rows)`` (scikit-learn's, or the PyTorch wrapper), so the
readers need not know how it was trained. The profile (per-feature histogram
of the training data) is the reference the drift check compares against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cumulo.extras import from_extra

with from_extra("ml", needed_by=__name__):
    import joblib
    import numpy as np

Task = Literal["classification", "regression"]
PROFILE_BINS = 10


@dataclass
class ModelBundle:
    estimator: Any
    features: list[str]
    target: str
    task: Task
    framework: str = "sklearn"
    profile: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def predict(self, rows: Any) -> list[Any]:
        """Predictions for a 2-D array-like whose columns are :attr:`features`, in order."""
        predictions = self.estimator.predict(np.asarray(rows, dtype=float))
        return [_plain(value) for value in predictions]


def save_bundle(bundle: ModelBundle, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(bundle, path)
    return path


def load_bundle(path: Path) -> ModelBundle:
    bundle = joblib.load(path)
    if not isinstance(bundle, ModelBundle):
        raise TypeError(f"{path} is not a Cumulo model bundle")
    return bundle


def feature_profile(columns: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per feature: histogram ``edges`` (deciles) and the ``fractions`` of rows in each bin."""
    profile = {}
    for name, values in columns.items():
        array = np.asarray(values, dtype=float)
        edges = np.unique(np.quantile(array, np.linspace(0, 1, PROFILE_BINS + 1)))
        profile[name] = {"edges": edges.tolist(), "fractions": bin_fractions(array, edges)}
    return profile


def bin_fractions(values: Any, edges: Any) -> list[float]:
    """The fraction of ``values`` in each bin of ``edges`` (outside values go to the end bins)."""
    inner = np.asarray(edges, dtype=float)[1:-1]
    counts = np.bincount(
        np.searchsorted(inner, np.asarray(values, dtype=float), side="right"),
        minlength=max(len(edges) - 1, 1),
    )
    return [float(share) for share in counts / max(counts.sum(), 1)]


def _plain(value: Any) -> Any:
    """A JSON-ready value from a NumPy scalar."""
    return value.item() if hasattr(value, "item") else value
