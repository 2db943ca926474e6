"""Job mode: run one event to completion in this process and write down what happened.

The local supervisor forks one job per training event. :func:`job_main` loads
the target, reads the event (CloudEvents JSON format), runs it and writes the
outcome as JSON (:func:`~cumulo.runtimes.worker.outcome.outcome_to_dict`) to
``result_path``, atomically. Its return value is the exit code: 0 success, 75
retry (``EX_TEMPFAIL``), 1 failure.

Any other signature (http, event, typed) gets the event as a binary-mode POST
to ``/`` through the same app the worker serves (asking for problem+json errors), and its response is read with the
worker's own contract (:func:`~cumulo.runtimes.worker.contract.outcome_from_response`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from cumulo.context import running
from cumulo.errors import InvalidEventError, TargetError
from cumulo.events.cloudevent import binary_http
from cumulo.events.event import Event, from_json
from cumulo.events.outcome import Failure, Outcome, RetryLater, Success
from cumulo.runtimes.worker.app import build_app
from cumulo.runtimes.worker.asgi import Message, encode_headers
from cumulo.runtimes.worker.contract import PROBLEM_JSON, outcome_from_response
from cumulo.runtimes.worker.outcome import invoke_cloudevent, outcome_to_dict
from cumulo.runtimes.worker.target import LoadedFunction, detect_signature, load_function

EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_RETRY = 75


def run_job(
    fn: Callable[..., Any] | LoadedFunction, *, signature: str | None, name: str, event: Event
) -> Outcome:
    """Run ``fn`` on ``event`` here, to completion."""
    bare = fn.fn if isinstance(fn, LoadedFunction) else fn
    kind = detect_signature(bare, signature)
    if kind == "cloudevent":
        return invoke_cloudevent(bare, event, name=name)
    return asyncio.run(_post_to_function(fn, kind, name, event))


async def _post_to_function(
    fn: Callable[..., Any] | LoadedFunction, signature: str, name: str, event: Event
) -> Outcome:
    app = build_app(fn, signature=signature, name=name, concurrency=1)  # type: ignore[arg-type]
    headers, body = binary_http(event)  # an http function reads the ce-* headers
    headers["accept"] = PROBLEM_JSON
    try:
        status, response_headers, response_body = await call_asgi(app, "POST", "/", headers, body)
    finally:
        app.close()
    return outcome_from_response(status, response_headers, response_body)


async def call_asgi(
    app: Any, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Make one HTTP request to an ASGI app in this process."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": encode_headers(headers),
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    response_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
    return start["status"], response_headers, b"".join(m.get("body", b"") for m in sent[1:])


def exit_code(outcome: Outcome) -> int:
    if isinstance(outcome, Success):
        return EXIT_SUCCESS
    return EXIT_RETRY if isinstance(outcome, RetryLater) else EXIT_FAILURE


def job_main(
    target: str | Callable[..., Any] | LoadedFunction,
    source_dir: Path | None = None,
    *,
    event_path: Path,
    result_path: Path,
    name: str,
    signature: str | None = None,
    run_id: str | None = None,
) -> int:
    """Run the event in ``event_path`` through ``target``; write the outcome; the exit code.

    ``target`` is ``module:attr`` (imported from ``source_dir``) or the function itself;
    ``run_id`` is what :func:`cumulo.context.current_run_id` answers inside it.
    """
    try:
        fn = load_function(target, source_dir) if isinstance(target, str) else target
        event = from_json(Path(event_path).read_bytes())
        with running(run_id):
            outcome = run_job(fn, signature=signature, name=name, event=event)
    except TargetError as e:
        outcome = Failure(type(e).__name__, str(e), permanent=False)
    except InvalidEventError as e:
        outcome = Failure(type(e).__name__, f"{event_path}: {e}", permanent=True)
    except OSError as e:
        outcome = Failure(type(e).__name__, f"cannot read the event: {e}", permanent=False)
    write_result(Path(result_path), outcome)
    return exit_code(outcome)


def write_result(path: Path, outcome: Outcome) -> None:
    """Write the outcome as JSON, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as file:
        file.write(orjson.dumps(outcome_to_dict(outcome)))
    os.replace(temporary, path)
