"""A function's environment: what its spec declares, nothing of the platform's own.

Every function process ``cumulo up`` starts (the template, the service workers
and job runs forked from it) gets exactly:

1. the basics it takes to run (:func:`cumulo.config.basic_environment`: ``PATH``,
   ``HOME``, ``LANG``, ``LC_*``, ``TZ``, ``TMPDIR``, ``PYTHON*``, ``VIRTUAL_ENV``,
   ``SSL_CERT_FILE``/``SSL_CERT_DIR``);
2. the worker's own settings (:class:`~cumulo.config.FunctionSettings`):
   ``CUMULO_FUNCTION``, ``CUMULO_PROJECT_DIR``, ``CUMULO_STATE_DIR``, ``CUMULO_PARAMS``,
   and, with an API token set, ``CUMULO_PUBLISH_TOKEN`` (it authorises
   ``POST /events`` only: :mod:`cumulo.runtimes.local.auth`);
3. its ``spec.env``, on top of those;
4. the secrets its ``spec.secrets`` names, each under its variable
   (:attr:`~cumulo.spec.models.SecretRef.variable`), read from the platform's
   environment as a cluster would mount the Secret.

Nothing else crosses: not ``CUMULO_API_TOKEN`` or any other platform setting,
not a source's secrets, not ``AWS_*`` unless the spec declares them. A rendered
cluster Deployment sets the same variables (:mod:`cumulo.manifests.workloads`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from cumulo.config import basic_environment, secret
from cumulo.spec.models import Function, SecretRef

log = logging.getLogger("cumulo.environment")


def function_environment(
    function: Function, *, project: Path, state: Path, publish_token: str | None = None
) -> dict[str, str]:
    """The whole environment of ``function``'s processes (see the module docstring)."""
    publishing = {"CUMULO_PUBLISH_TOKEN": publish_token} if publish_token else {}
    return {
        **basic_environment(),
        **worker_settings(function, project=project, state=state),
        **publishing,
        **function.spec.env,
        **declared_secrets(function.name, function.spec.secrets),
    }


def worker_settings(function: Function, *, project: Path, state: Path) -> dict[str, str]:
    """What the platform tells a function of itself (:class:`~cumulo.config.FunctionSettings`)."""
    return {
        "CUMULO_FUNCTION": function.name,
        "CUMULO_PROJECT_DIR": str(project.resolve()),
        "CUMULO_STATE_DIR": str(state.resolve()),
        "CUMULO_PARAMS": json.dumps(function.spec.params),
    }


def declared_secrets(function: str, refs: Iterable[SecretRef]) -> dict[str, str]:
    """The values of the secrets a function names; an unset one is left out (and logged)."""
    values: dict[str, str] = {}
    for ref in refs:
        value = secret(ref.variable)
        if value is None:
            log.warning("function %s: its secret %s is not set", function, ref.variable)
            continue
        values[ref.variable] = value
    return values
