"""The web dashboard of ``cumulo up``: ``/ui/`` pages and the ``/api/`` JSON they read."""

from cumulo.runtimes.local.dashboard.app import Dashboard

__all__ = ["Dashboard"]
