"""functions-framework's process conventions, which functions rely on.

- ``FUNCTION_TARGET`` and ``FUNCTION_SIGNATURE_TYPE`` are set to what the worker serves.
- ``LOG_EXECUTION_ID`` (``true``, ``1``, ``yes``…) turns on execution-id
  logging: what the function prints, and every log record, becomes one JSON
  line carrying ``logging.googleapis.com/labels.execution_id`` (and the span id
  of ``X-Cloud-Trace-Context``); see :mod:`cumulo.runtimes.worker.execution`.
- Legacy mode, when ``ENTRY_POINT`` is set (Google Cloud Functions' Python 3.7
  runtime): ``FUNCTION_NAME`` (``K_SERVICE``, else the target) and
  ``FUNCTION_TRIGGER_TYPE`` are set, what the function prints to stdout and
  stderr becomes JSON lines with ``severity`` INFO and ERROR, and an http
  function returning ``None`` answers 200 ``OK``.

:func:`before_import` runs before the user's module is imported (it may log at
import time), :func:`after_load` once its signature is known.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import sys
from typing import TextIO

TRUTHY = ("y", "yes", "t", "true", "on", "1")


def execution_id_logging() -> bool:
    return os.environ.get("LOG_EXECUTION_ID") in TRUTHY


def legacy_mode() -> bool:
    return bool(os.environ.get("ENTRY_POINT"))


def before_import(target: str) -> None:
    """Set up what the module may already use while it is imported."""
    os.environ["FUNCTION_TARGET"] = target
    if execution_id_logging():
        _log_with_execution_ids()
    if legacy_mode():
        os.environ["FUNCTION_NAME"] = os.environ.get("K_SERVICE", target)
        _log_with_severities()


def after_load(signature: str) -> None:
    os.environ["FUNCTION_SIGNATURE_TYPE"] = signature
    if legacy_mode():
        os.environ["FUNCTION_TRIGGER_TYPE"] = signature


def _log_with_execution_ids() -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,  # the worker's own loggers keep logging
            "handlers": {
                "execution": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://functions_framework.execution_id.logging_stream",
                }
            },
            "root": {"level": "WARNING", "handlers": ["execution"]},
        }
    )


class SeverityStream(io.TextIOWrapper):
    """A text stream writing each write as ``{"severity": …, "message": …}`` to another."""

    def __init__(self, severity: str, out: TextIO):
        super().__init__(io.BytesIO(), encoding=out.encoding)
        self.severity = severity
        self.out = out

    def write(self, text: str) -> int:
        return self.out.write(
            json.dumps({"severity": self.severity, "message": text.rstrip("\n")}) + "\n"
        )

    def flush(self) -> None:
        self.out.flush()


def _log_with_severities() -> None:
    err = sys.stderr
    sys.stdout = SeverityStream("INFO", err)
    sys.stderr = SeverityStream("ERROR", err)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    info = logging.StreamHandler(sys.stdout)
    info.addFilter(lambda record: record.levelno <= logging.INFO)
    root.addHandler(info)
    warnings = logging.StreamHandler(sys.stderr)
    warnings.setLevel(logging.WARNING)
    root.addHandler(warnings)
