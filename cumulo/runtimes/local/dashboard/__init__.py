"""The web dashboard of ``cumulo up``: ``/ui/`` pages and the ``/api/`` JSON they read."""

from cumulo.runtimes.local.dashboard.api import DashboardData
from cumulo.runtimes.local.dashboard.app import Dashboard

__all__ = ["Dashboard", "DashboardData"]
