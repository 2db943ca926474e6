"""The trainers ``train`` can use, by name, and the metrics ``evaluate`` judges them by.

==================== ======================================= ======================================
name                 classification                          regression
==================== ======================================= ======================================
random_forest        RandomForestClassifier                  RandomForestRegressor
gradient_boosting    GradientBoostingClassifier              GradientBoostingRegressor
logistic_regression  LogisticRegression                      —
linear               —                                       LinearRegression
torch_mlp            :class:`~.torch_mlp.TorchMLP` (PyTorch, on the GPU when there is one)
==================== ======================================= ======================================

Hyperparameters are the estimator's own keyword arguments; an unknown one is an
:class:`~cumulo.errors.MLError` that lists the known ones. scikit-learn and
PyTorch are imported only when a trainer is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

from cumulo.extras import from_extra, require

with from_extra("ml", needed_by=__name__):
    import numpy as np

from cumulo.errors import MLError
from cumulo.functions.modelfile import Task

Progress = Callable[[float, str], None]
"""Called while a model trains: the fraction of the fit done (0 to 1), and what happened."""

Direction = Literal["maximize", "minimize"]

TORCH_MLP: Final = "torch_mlp"
SKLEARN: Final = MappingProxyType(
    {
        "classification": MappingProxyType(
            {
                "random_forest": "sklearn.ensemble:RandomForestClassifier",
                "gradient_boosting": "sklearn.ensemble:GradientBoostingClassifier",
                "logistic_regression": "sklearn.linear_model:LogisticRegression",
            }
        ),
        "regression": MappingProxyType(
            {
                "random_forest": "sklearn.ensemble:RandomForestRegressor",
                "gradient_boosting": "sklearn.ensemble:GradientBoostingRegressor",
                "linear": "sklearn.linear_model:LinearRegression",
            }
        ),
    }
)
METRICS: Final = MappingProxyType(
    {"classification": ("accuracy", "f1_macro"), "regression": ("rmse", "mae", "r2")}
)
MINIMIZED: Final = frozenset({"rmse", "mae"})


def estimator_names(task: Task) -> list[str]:
    return [*SKLEARN[task], TORCH_MLP]


@dataclass
class Trainer:
    """An unfitted estimator and how to fit it while reporting progress."""

    name: str
    framework: str  # "sklearn" or "torch": recorded in the model bundle
    estimator: Any

    def fit(self, x: np.ndarray, y: np.ndarray, progress: Progress | None = None) -> Any:
        """Fit on ``x``, ``y``; returns the fitted estimator (it has ``predict(rows)``)."""
        report = progress or _ignore
        report(0.0, f"fitting {self.name} on {len(x)} rows")
        if self.framework == "torch":
            return self.estimator.fit(x, y, progress=report)
        try:
            self.estimator.fit(x, y)
        except (ValueError, TypeError) as e:  # bad hyperparameter values, or data it cannot fit
            raise MLError(f"estimator {self.name!r} cannot be fitted: {e}") from e
        report(1.0, f"fitted {self.name}")
        return self.estimator


def build_trainer(
    task: Task, name: str, hyperparameters: Mapping[str, Any] | None = None, *, seed: int = 0
) -> Trainer:
    """The trainer ``name`` for ``task``, built with ``hyperparameters``."""
    given = dict(hyperparameters or {})
    if task not in SKLEARN:
        raise MLError(f"unknown task {task!r}; known: {', '.join(SKLEARN)}")
    if name == TORCH_MLP:
        from cumulo.functions.torch_mlp import TorchMLP

        return Trainer(name, "torch", TorchMLP.build(task, given, seed=seed))
    if name not in SKLEARN[task]:
        known = ", ".join(estimator_names(task))
        raise MLError(f"unknown {task} estimator {name!r}; known: {known}")
    return Trainer(name, "sklearn", _sklearn_estimator(SKLEARN[task][name], name, given, seed))


def _sklearn_estimator(path: str, name: str, given: dict[str, Any], seed: int) -> Any:
    cls = _sklearn_class(path, name)
    known = cls().get_params()
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise MLError(
            f"estimator {name!r} ({cls.__name__}) has no hyperparameter"
            f" {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
        )
    if "random_state" in known:
        given.setdefault("random_state", seed)
    return cls(**given)


def _sklearn_class(path: str, name: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(require(module, "ml", needed_by=f"estimator {name!r}"), attr)


# --- metrics -------------------------------------------------------------------


def compute_metrics(task: Task, y_true: Any, y_pred: Any) -> dict[str, float]:
    """The holdout metrics of a task: accuracy and f1_macro, or rmse, mae and r2."""
    with from_extra("ml", needed_by="computing metrics"):
        from sklearn import metrics

    if task == "classification":
        return {
            "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
            "f1_macro": float(metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        }
    truth, predicted = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted))),
        "mae": float(metrics.mean_absolute_error(truth, predicted)),
        "r2": float(metrics.r2_score(truth, predicted)) if len(truth) > 1 else 0.0,
    }


def default_metric(task: Task) -> str:
    """The metric evaluation uses when none is given: accuracy, or rmse for regression."""
    return METRICS[task][0]


def metric_direction(metric: str) -> Direction:
    """Errors (rmse, mae) are minimized; scores are maximized."""
    return "minimize" if metric in MINIMIZED else "maximize"


def _ignore(fraction: float, message: str) -> None:
    return None
