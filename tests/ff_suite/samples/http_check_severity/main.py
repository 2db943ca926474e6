"""Writes one log line, chosen by ``mode``, through logging, stdout or stderr."""

import logging
import sys

import flask


def _to_stdout(text: str) -> None:
    print(text)


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


_WRITERS = {
    "loginfo": logging.info,
    "logwarn": logging.warning,
    "logerr": logging.error,
    "logcrit": logging.critical,
    "stdout": _to_stdout,
    "stderr": _to_stderr,
}


def function(request: flask.Request) -> str:
    mode = request.get_json()["mode"]
    _WRITERS[mode](f"a line written by {mode}")
    return "OK"
