"""A trigger's filters and delivery policy as Dapr reads them: a CEL rule and a retry policy.

One translation for both places a Dapr subscription is made: the rendered
cluster objects (:mod:`cumulo.manifests.dapr`) and the embedded platform's
self-hosted sidecars (:mod:`cumulo.runtimes.dapr`).
"""

from __future__ import annotations

import json
from typing import Any

from cumulo.spec import Delivery, Filter

CEL_ATTRIBUTES = frozenset(
    {"id", "source", "type", "subject", "specversion", "time", "datacontenttype"}
)


def filter_expression(filters: list[Filter]) -> str | None:
    """The CEL rule of filters ANDed together; ``None``: everything matches."""
    parts = [text for text in (_cel(f) for f in filters) if text is not None]
    return " && ".join(parts) if len(parts) > 1 else (parts[0] if parts else None)


def _cel(node: Filter) -> str | None:
    """One filter as CEL; ``None`` stands for ``true`` (also for what CEL cannot see)."""
    if node.all is not None:
        parts = [text for text in (_cel(f) for f in node.all) if text is not None]
        return "(" + " && ".join(parts) + ")" if parts else None
    if node.any is not None:
        branches = [_cel(f) for f in node.any]
        if any(text is None for text in branches):
            return None
        return "(" + " || ".join(p for p in branches if p) + ")"
    if node.not_ is not None:
        inner = _cel(node.not_)
        # negating a widened rule would narrow it: only an exact translation is negated
        return None if inner is None or not _exact(node.not_) else f"!({inner})"
    return _attributes(node)


def _exact(node: Filter) -> bool:
    """Whether the node's CEL says exactly what it does (nothing in it was widened)."""
    if node.all is not None:
        return all(_exact(f) for f in node.all)
    if node.any is not None:
        return all(_exact(f) for f in node.any)
    if node.not_ is not None:
        return _exact(node.not_)
    return _attributes(node) is not None


def _attributes(node: Filter) -> str | None:
    forms = {
        "exact": "event.{} == {}",
        "prefix": "event.{}.startsWith({})",
        "suffix": "event.{}.endsWith({})",
    }
    for dialect, form in forms.items():
        values = getattr(node, dialect)
        if values is None:
            continue
        if not set(values) <= CEL_ATTRIBUTES:
            return None
        parts = [form.format(name, json.dumps(text)) for name, text in sorted(values.items())]
        return parts[0] if len(parts) == 1 else "(" + " && ".join(parts) + ")"
    return None


def retry_policy(delivery: Delivery) -> dict[str, Any]:
    """A trigger's delivery policy as a Dapr retry policy (see the module docstring)."""
    if delivery.backoff_policy == "exponential":
        return {
            "policy": "exponential",
            "maxInterval": duration(delivery.max_backoff),
            "maxRetries": delivery.retries,
        }
    return {
        "policy": "constant",
        "duration": duration(delivery.backoff_delay),
        "maxRetries": delivery.retries,
    }


def duration(seconds: float) -> str:
    """A Go duration: ``5s``, ``250ms``."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"
