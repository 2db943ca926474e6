"""Cumulo: serverless, event-driven functions for the machine-learning lifecycle.

import functions_framework, cumulo

@cumulo.function(triggers=[cumulo.on(type="dev.cumulo.dataset.ready")], mode="job")
@functions_framework.cloud_event
def train(event): ...
"""

from cumulo.client import Client, publish
from cumulo.errors import CumuloError, PermanentError, Retry
from cumulo.events.event import Event, new_event
from cumulo.registry import Registry, function, on

__version__ = "0.1.0"

__all__ = [
    "Client",
    "CumuloError",
    "Event",
    "PermanentError",
    "Registry",
    "Retry",
    "__version__",
    "function",
    "new_event",
    "on",
    "publish",
]
