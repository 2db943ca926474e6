"""The one hypothesis budget of the fuzz suites: bounded, deterministic, no example database."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def fuzz(examples: int) -> settings:
    """``examples`` examples, the same ones on every run (CI sees what a developer saw)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
