"""``torch_mlp``: a small multi-layer perceptron, trained with PyTorch on the GPU when there is one.

Training needs PyTorch (``pip install 'cumulo[torch]'``); it is imported only
then. The trained weights are kept as NumPy arrays, so the fitted model
predicts, and pickles with joblib, on machines without PyTorch or a GPU (the
``predict`` function, for one).

Hyperparameters: ``hidden_layers`` (default ``[64, 32]``), ``epochs`` (50),
``learning_rate`` (0.001), ``batch_size`` (64), ``weight_decay`` (0), ``device``
(default ``cuda`` when available, else ``cpu``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cumulo.extras import from_extra, require

with from_extra("ml", needed_by=__name__):
    import numpy as np

from cumulo.errors import MLError
from cumulo.functions.modelfile import Task

Progress = Callable[[float, str], None]


class MLPSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden_layers: tuple[int, ...] = Field(default=(64, 32), min_length=1)
    epochs: int = Field(default=50, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=64, ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    device: str | None = None


class TorchMLP:
    """An MLP classifier (softmax over the classes seen) or regressor (standardized target)."""

    def __init__(self, task: Task, settings: MLPSettings | None = None, *, seed: int = 0):
        self.task = task
        self.settings = settings or MLPSettings()
        self.seed = seed
        self.layers_: list[tuple[np.ndarray, np.ndarray]] = []
        self.x_mean_ = self.x_scale_ = np.zeros(0)
        self.classes_: np.ndarray | None = None
        self.y_mean_, self.y_scale_ = 0.0, 1.0
        self.device_: str | None = None

    @classmethod
    def build(cls, task: Task, hyperparameters: dict[str, Any], *, seed: int = 0) -> TorchMLP:
        """Check the hyperparameters and that PyTorch is installed, before any data is read."""
        try:
            settings = MLPSettings.model_validate(hyperparameters)
        except ValidationError as e:
            problems = "; ".join(f"{_where(error)}: {error['msg']}" for error in e.errors())
            known = ", ".join(MLPSettings.model_fields)
            raise MLError(f"estimator 'torch_mlp': {problems} (known: {known})") from e
        import_torch()
        return cls(task, settings, seed=seed)

    # --- training (PyTorch) ------------------------------------------------------

    def fit(self, x: np.ndarray, y: np.ndarray, progress: Progress | None = None) -> TorchMLP:
        torch = import_torch()
        torch.manual_seed(self.seed)
        device = torch.device(
            self.settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
        )
        self.device_ = str(device)
        inputs = torch.as_tensor(self._scale_x(x, fit=True), dtype=torch.float32, device=device)
        targets = torch.as_tensor(self._encode_y(y), device=device)
        outputs = len(self.classes_) if self.classes_ is not None else 1
        network = self._network(torch, x.shape[1], outputs).to(device)
        self._train(torch, network, inputs, targets, progress)
        linears = [m for m in network if isinstance(m, torch.nn.Linear)]
        self.layers_ = [
            (m.weight.detach().cpu().numpy(), m.bias.detach().cpu().numpy()) for m in linears
        ]
        return self

    def _network(self, torch: Any, inputs: int, outputs: int) -> Any:
        modules: list[Any] = []
        for width in self.settings.hidden_layers:
            modules += [torch.nn.Linear(inputs, width), torch.nn.ReLU()]
            inputs = width
        return torch.nn.Sequential(*modules, torch.nn.Linear(inputs, outputs))

    def _train(self, torch: Any, network: Any, inputs: Any, targets: Any, progress: Any) -> None:
        s = self.settings
        optimizer = torch.optim.Adam(
            network.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay
        )
        classify = self.classes_ is not None
        loss_fn = torch.nn.CrossEntropyLoss() if classify else torch.nn.MSELoss()
        shuffler = torch.Generator().manual_seed(self.seed)
        for epoch in range(1, s.epochs + 1):
            order = torch.randperm(len(inputs), generator=shuffler).to(inputs.device)
            total = 0.0
            for start in range(0, len(inputs), s.batch_size):
                batch = order[start : start + s.batch_size]
                optimizer.zero_grad()
                predicted = network(inputs[batch])
                loss = loss_fn(predicted if classify else predicted.squeeze(1), targets[batch])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            if progress is not None:
                message = (
                    f"epoch {epoch}/{s.epochs}, loss {total / len(inputs):.4f} on {self.device_}"
                )
                progress(epoch / s.epochs, message)

    def _scale_x(self, x: np.ndarray, *, fit: bool = False) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if fit:
            self.x_mean_ = x.mean(axis=0)
            scale = x.std(axis=0)
            self.x_scale_ = np.where(scale > 0, scale, 1.0)
        return (x - self.x_mean_) / self.x_scale_

    def _encode_y(self, y: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            self.classes_, codes = np.unique(y, return_inverse=True)
            return codes.astype(np.int64)
        values = np.asarray(y, dtype=float)
        self.y_mean_ = float(values.mean())
        self.y_scale_ = float(values.std()) or 1.0
        return ((values - self.y_mean_) / self.y_scale_).astype(np.float32)

    # --- prediction (NumPy only) ---------------------------------------------------

    def predict(self, rows: Any) -> np.ndarray:
        """Predictions for a 2-D array of rows: class labels, or values."""
        if not self.layers_:
            raise MLError("torch_mlp: predict called before fit")
        hidden = self._scale_x(rows)
        for weight, bias in self.layers_[:-1]:
            hidden = np.maximum(hidden @ weight.T + bias, 0.0)
        weight, bias = self.layers_[-1]
        output = hidden @ weight.T + bias
        if self.classes_ is not None:
            return np.asarray(self.classes_[np.argmax(output, axis=1)])
        return np.asarray(output[:, 0] * self.y_scale_ + self.y_mean_)


def _where(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"]) or "hyperparameters"


def import_torch() -> Any:
    """PyTorch, or a :class:`~cumulo.errors.MissingExtraError` that says how to install it."""
    return require("torch", "torch", needed_by="estimator 'torch_mlp'")
