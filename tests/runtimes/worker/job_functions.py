"""Functions that job tests load by ``module:attr``, from this folder."""

from __future__ import annotations

from cumulo.errors import PermanentError, Retry
from cumulo.events.event import Event


def train(event: Event) -> object:
    match event.type:
        case "retry":
            raise Retry("GPU busy", delay=4)
        case "permanent":
            raise PermanentError("bad hyperparameters")
        case "crash":
            raise RuntimeError("out of memory")
    return {"type": "model.trained", "data": {"epochs": event.data["epochs"]}}


async def train_async(event: Event) -> object:
    return train(event)


def http_job(request):
    if request.headers.get("ce-type") == "fail":
        return "nope", 503, {"Retry-After": "9"}
    return {"seen": request.headers.get("ce-id")}


NOT_CALLABLE = 42
