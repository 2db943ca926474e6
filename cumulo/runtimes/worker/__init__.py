"""The worker: the function host, the same HTTP server in every place a function runs.

``cumulo worker --target module:attr`` runs :func:`serve` on :func:`build_app`;
the local supervisor forks it on pre-bound sockets, Knative and a Dapr sidecar
talk to it in a container, and :func:`job_main` runs one event to completion.
The HTTP response contract is in :mod:`cumulo.runtimes.worker.contract`.
"""

from cumulo.events.outcome import Failure, Outcome, RetryLater, Success
from cumulo.runtimes.worker.app import HEALTH_ROUTE, WorkerApp, build_app
from cumulo.runtimes.worker.contract import outcome_from_response
from cumulo.runtimes.worker.job import EXIT_FAILURE, EXIT_RETRY, EXIT_SUCCESS, job_main, run_job
from cumulo.runtimes.worker.outcome import (
    CloudEventInvoker,
    function_source,
    invoke_cloudevent,
    outcome_from_dict,
    outcome_to_dict,
)
from cumulo.runtimes.worker.serve import make_server, serve
from cumulo.runtimes.worker.target import Signature, detect_signature, load_target

__all__ = [
    "EXIT_FAILURE",
    "EXIT_RETRY",
    "EXIT_SUCCESS",
    "HEALTH_ROUTE",
    "CloudEventInvoker",
    "Failure",
    "Outcome",
    "RetryLater",
    "Signature",
    "Success",
    "WorkerApp",
    "build_app",
    "detect_signature",
    "function_source",
    "invoke_cloudevent",
    "job_main",
    "load_target",
    "make_server",
    "outcome_from_dict",
    "outcome_from_response",
    "outcome_to_dict",
    "run_job",
    "serve",
]
