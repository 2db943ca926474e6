"""Handlers of the ``invalid`` example. Intentionally wrong (see README.md)."""

import functions_framework

from cumulo.registry import function, on


@functions_framework.cloud_event
def train(event):
    """Train a model on the dataset the event names."""


@functions_framework.cloud_event
def deploy(event):
    """Deploy an evaluated model."""


@functions_framework.cloud_event
def alert(event):
    """Tell someone that a step failed."""


@function(name="evaluate", triggers=[on("dev.cumulo.model.trained", bus="pipeline")])
@functions_framework.cloud_event
def evaluate_candidate(event):
    """Evaluate a freshly trained model (but ``evaluate`` is declared in cumulo.yaml too)."""


@function(scale={"min": 3, "max": 1}, timeout="30s")
@functions_framework.http
def predict(request):
    """Serve predictions."""
    return {"label": "cat"}
