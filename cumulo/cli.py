"""The ``cumulo`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import traceback
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from cumulo.client import Client, GatewayError
from cumulo.cluster_cli import register as register_cluster_commands
from cumulo.config import Settings
from cumulo.errors import (
    CumuloError,
    FunctionNotFoundError,
    MissingExtraError,
    SpecError,
    StatePathError,
)
from cumulo.events.event import new_event, to_json
from cumulo.models_cli import app as models_app

app = typer.Typer(
    help="Serverless, event-driven functions for the ML lifecycle.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models_app, name="models")
console = Console()
errors = Console(stderr=True)

ProjectDir = Annotated[Path, typer.Argument(help="Project folder (or one YAML file).")]
DirOption = Annotated[Path, typer.Option("--dir", "-d", help="Project folder.")]
Modules = Annotated[list[str], typer.Option("--module", "-m", help="Extra Python modules to load.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def failure(error: CumuloError) -> typer.Exit:
    """:func:`fail` for one of our errors: exit 2 for a usage problem (the spec, a missing
    extra), 1 for anything that went wrong while running."""
    return fail(str(error), 2 if isinstance(error, (SpecError, MissingExtraError)) else 1)


def parse_json(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise fail(f"{option} is not valid JSON: {e}", 2) from e


@app.command()
def validate(project: ProjectDir = Path("."), module: Modules = []) -> None:  # noqa: B006
    """Check a project's specs; print every mistake as file:path: message."""
    from cumulo.spec import validate_project

    problems = validate_project(project, modules=module)
    for problem in problems:
        errors.print(str(problem), highlight=False, soft_wrap=True)
    if problems:
        raise fail(f"{len(problems)} problem(s) found")
    console.print(f"[green]ok[/green]: {project} is valid")


@app.command()
def up(
    project: ProjectDir = Path("."),
    host: Annotated[str | None, typer.Option(help="Gateway address.")] = None,
    port: Annotated[int | None, typer.Option(help="Gateway port (0 picks one).")] = None,
    module: Modules = [],  # noqa: B006
    reload: Annotated[
        bool, typer.Option(help="Apply saved changes to the project's code and YAML.")
    ] = True,
) -> None:
    """Run a project on this machine: bus, gateway, dispatchers, sources and workers."""
    import uvloop

    from cumulo.functions.model_registry import model_catalog
    from cumulo.runtimes.local.platform import Platform
    from cumulo.spec import load_project

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings().model_copy(update=overrides)
    logging.basicConfig(
        level=settings.log_level,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=errors, show_path=False)],
    )
    try:
        loaded = load_project(project, modules=module)
    except SpecError as e:
        raise fail(str(e), 2) from e
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            platform = Platform(
                loaded, settings, model_catalog=model_catalog, modules=module, reload=reload
            )
            runner.run(platform.run(on_ready=print_ready))
        except CumuloError as e:
            raise failure(e) from e


def print_ready(platform: Any) -> None:
    console.print(f"[bold green]cumulo[/bold green] is up at [bold]{platform.url}[/bold]")
    for name, host in platform.hosts.items():
        mode = host.function.spec.mode
        console.print(f"  function [cyan]{name}[/cyan] ({mode})  {platform.url}/fn/{name}")
    for delivering in platform.deliveries:
        trigger = delivering.trigger
        console.print(f"  trigger  [magenta]{trigger.name}[/magenta] → {trigger.spec.function}")
    for name in platform.webhooks:
        console.print(f"  source   [yellow]{name}[/yellow]  POST {platform.url}/sources/{name}")
    console.print(f"  dashboard {platform.url}/ui/")
    console.print(f"  events   POST {platform.url}/events   (Ctrl-C stops)")


@app.command()
def worker(
    target: Annotated[
        str,
        typer.Option(
            envvar="FUNCTION_TARGET",
            help="The function: module:attr (from the --source folder), or a function name "
            "(from the --source file, as functions-framework takes it).",
        ),
    ],
    source: Annotated[
        Path | None,
        typer.Option(
            envvar="FUNCTION_SOURCE", help="Folder (module:attr) or file (default main.py)."
        ),
    ] = None,
    signature: Annotated[
        str | None,
        typer.Option(
            "--signature-type",
            "--signature",
            envvar="FUNCTION_SIGNATURE_TYPE",
            help="http, cloudevent, event or typed (a functions-framework decorator wins).",
        ),
    ] = None,
    asgi: Annotated[
        bool,
        typer.Option(envvar="FUNCTION_USE_ASGI", help="Serve as functions-framework's ASGI mode."),
    ] = False,
    name: Annotated[str | None, typer.Option(help="Function name.")] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; a container passes 0.0.0.0.")
    ] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Default: $PORT, else 8080.")] = None,
    concurrency: Annotated[int, typer.Option(min=1)] = 16,
) -> None:
    """Host one function over HTTP: the entrypoint of a function's container.

    Takes functions-framework's command line too: `cumulo worker --target f --source main.py`.
    """
    from functions_framework.exceptions import FunctionsFrameworkException

    from cumulo.config import WorkerSettings
    from cumulo.runtimes.worker.app import build_app
    from cumulo.runtimes.worker.serve import serve

    loaded = load_worker_function(target, source)
    settings = WorkerSettings()
    try:
        app_: Any = build_app(
            loaded,
            signature=typing.cast(Any, signature),
            name=name or loaded.target,
            concurrency=concurrency,
            asgi=asgi,
        )
    except (CumuloError, FunctionsFrameworkException) as e:
        raise fail(f"{type(e).__name__}: {e}", 2) from e
    if settings.app_api_token:  # Dapr's sidecar sends it on every callback
        from cumulo.runtimes.worker.dapr import DaprTokenCheck

        app_ = DaprTokenCheck(app_, settings.app_api_token)
    serve(app_, host=host, port=port if port is not None else settings.port)


def load_worker_function(target: str, source: Path | None) -> Any:
    """The worker's function; a clear error line (and the user's traceback) when it fails."""
    from functions_framework.exceptions import FunctionsFrameworkException

    from cumulo.runtimes.worker.target import load_function

    try:
        return load_function(target, source)
    except (CumuloError, FunctionsFrameworkException) as e:
        raise fail(f"{type(e).__name__}: {e}", 2) from e
    except Exception as e:  # the user's module failed to import: show where
        traceback.print_exception(e)
        raise fail(f"{type(e).__name__}: {e}", 2) from e


@app.command()
def job(
    target: Annotated[str, typer.Option(help="The function, as module:attr.")],
    name: Annotated[str, typer.Option(help="The job function's name in the project.")],
    source: Annotated[Path, typer.Option(help="Folder to import the module from.")] = Path("."),
    project: DirOption = Path("."),
) -> None:
    """Deliver one waiting event to a job function, then exit: a KEDA ScaledJob's pod."""
    from cumulo.runtimes.job_pod import job_pod_main
    from cumulo.runtimes.worker.target import load_target
    from cumulo.spec import load_project

    try:
        loaded = load_project(project)
        if name not in loaded.functions:
            raise fail(f"{project}: no function named {name!r}", 2)
        code = job_pod_main(loaded, name, load_target(target, source), Settings())
    except SpecError as e:
        raise fail(str(e), 2) from e
    except CumuloError as e:
        raise failure(e) from e
    raise typer.Exit(code)


@app.command()
def publish(
    type: Annotated[str, typer.Argument(help="CloudEvent type.")],
    data: Annotated[str | None, typer.Option(help="JSON data.")] = None,
    source: Annotated[str, typer.Option()] = "/cumulo/cli",
    subject: Annotated[str | None, typer.Option()] = None,
    topic: Annotated[str, typer.Option()] = "default",
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Then follow the ML chain it starts until deployed, rejected or failed.",
        ),
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --follow: give up after this.")
    ] = None,
    project: DirOption = Path("."),
) -> None:
    """Publish one event (through the gateway, or straight to the bus when not up)."""
    client = Client(project)
    try:
        start = last_offset(client, topic) if follow else 0
        event = client.publish(
            type, parse_json(data, "--data"), source=source, subject=subject, topic=topic
        )
    except CumuloError as e:
        raise failure(e) from e
    console.print(f"published {event.type} [dim]id={event.id}[/dim]")
    if follow:
        from cumulo.watch import CHAIN_ENDS, Watch

        follow_events(client, Watch(console, CHAIN_ENDS, chain=event.id), topic, start, timeout)


def follow_events(
    client: Client, watching: Any, topic: str, after: int, timeout: float | None
) -> None:
    """Run a :class:`~cumulo.watch.Watch` over a topic; exit 1 on timeout."""
    try:
        done = watching.follow(
            lambda offset: client.events(topic, after=offset, limit=500), after, timeout
        )
    except CumuloError as e:
        raise failure(e) from e
    except KeyboardInterrupt:
        return
    if not done:
        raise fail(f"nothing ended the watch within {timeout:g}s")


@app.command()
def invoke(
    name: Annotated[str, typer.Argument(help="Function name.")],
    data: Annotated[str | None, typer.Option(help="JSON body or event data.")] = None,
    type: Annotated[str | None, typer.Option(help="Send a CloudEvent of this type.")] = None,
    method: Annotated[str, typer.Option()] = "POST",
    path: Annotated[str, typer.Option()] = "",
    project: DirOption = Path("."),
) -> None:
    """Call a function through the gateway and print its answer."""
    body, headers = b"", {}
    value = parse_json(data, "--data")
    if type is not None:
        event = new_event(type, "/cumulo/cli", value)
        body, headers = to_json(event), {"Content-Type": "application/cloudevents+json"}
    elif value is not None:
        body, headers = json.dumps(value).encode(), {"Content-Type": "application/json"}
    try:
        answer = Client(project).request(
            method.upper(), f"/fn/{name}/{path.lstrip('/')}", body or None, headers
        )
    except CumuloError as e:
        raise failure(e) from e
    style = "green" if answer.status < 400 else "red"
    errors.print(f"[{style}]HTTP {answer.status}[/{style}]")
    for key, value in answer.headers.items():
        if key.lower().startswith("ce-"):
            errors.print(f"[dim]{key}: {value}[/dim]")
    sys.stdout.write(answer.body.decode(errors="replace") + "\n")
    if answer.status >= 400:
        raise typer.Exit(1)


@app.command()
def events(
    topic: Annotated[str, typer.Option()] = "default",
    limit: Annotated[int, typer.Option()] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    project: DirOption = Path("."),
) -> None:
    """List the latest events on a topic (and tail it with -f)."""
    client = Client(project)
    try:
        after = last_offset(client, topic) - limit
        while True:
            batch = client.events(topic, after=max(after, 0), limit=500)
            for message in batch:
                print_event(message)
            after = batch[-1]["offset"] if batch else after
            if not follow:
                return
            time.sleep(0.5)
    except CumuloError as e:
        raise failure(e) from e
    except KeyboardInterrupt:
        return


@app.command()
def watch(
    until: Annotated[
        list[str], typer.Option(help="Stop when an event of this type arrives (repeatable).")
    ] = [],  # noqa: B006
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
    topic: Annotated[str, typer.Option()] = "default",
    project: DirOption = Path("."),
) -> None:
    """Follow the ML chain: a progress bar per training run, a line per lifecycle event."""
    from cumulo.watch import Watch

    client = Client(project)
    try:
        start = last_offset(client, topic)
    except CumuloError as e:
        raise failure(e) from e
    follow_events(client, Watch(console, until), topic, start, timeout)


def last_offset(client: Client, topic: str) -> int:
    offset, page = 0, client.events(topic, after=0, limit=1000)
    while page:
        offset = page[-1]["offset"]
        page = client.events(topic, after=offset, limit=1000)
    return offset


def print_event(message: dict[str, Any]) -> None:
    event = message["event"]
    when = time.strftime("%H:%M:%S", time.localtime(message["publishedAt"]))
    data = json.dumps(event.get("data")) if "data" in event else ""
    console.print(
        f"[dim]{message['offset']:>6} {when}[/dim] [cyan]{event['type']}[/cyan] "
        f"{event['source']} [dim]{event['id']}[/dim] {data[:120]}",
        highlight=False,
    )


@app.command()
def runs(
    function: Annotated[str | None, typer.Option(help="Only this function's runs.")] = None,
    limit: Annotated[int, typer.Option()] = 20,
    project: DirOption = Path("."),
) -> None:
    """Job runs (training and other job functions), newest first."""
    from cumulo.runtimes.local.runs import RunStore
    from cumulo.runtimes.local.state_files import known_function

    if function is not None:
        try:
            known_function(function, project_functions(project))
        except FunctionNotFoundError as e:
            raise fail(escape(str(e)), 2) from e
    state = Settings().state_path(project.resolve())
    if not (state / "runs.db").exists():
        console.print("no runs yet")
        return
    table = Table("run", "function", "event", "status", "duration", "error")
    for run in RunStore(state / "runs.db").list(function, limit):
        duration = f"{run.duration:.2f}s" if run.duration is not None else "…"
        table.add_row(
            run.id, run.function, run.event_type, run.status, duration, (run.error or "")[:80]
        )
    console.print(table)


def project_functions(project: Path) -> list[str]:
    """The names of a project's functions (exit 2 when its specs have mistakes)."""
    from cumulo.spec import load_project

    try:
        return list(load_project(project).functions)
    except SpecError as e:
        raise fail(escape(str(e)), 2) from e


def log_path(project: Path, name: str, run: str | None) -> Path:
    """A function's log, or one of its runs' logs, inside the state folder (else exit 2)."""
    from cumulo.runtimes.local import state_files

    state = Settings().state_path(project.resolve())
    functions = project_functions(project)
    try:
        if run is None:
            path = state_files.function_log(state, name, functions)
        else:
            state_files.known_function(name, functions)
            path = state_files.run_log(state, run)
    except (StatePathError, FunctionNotFoundError) as e:
        raise fail(escape(str(e)), 2) from e
    if not path.exists():
        what = f"run '{run}'" if run else f"function '{name}' (it has not run yet)"
        raise fail(escape(f"no log for {what}"))
    return path


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="Function name.")],
    run: Annotated[str | None, typer.Option(help="A job run's id (see `cumulo runs`).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    project: DirOption = Path("."),
) -> None:
    """Print a function's log (its workers' output), or one job run's log."""
    path = log_path(project, name, run)
    with path.open(errors="replace") as log:
        sys.stdout.write(log.read())
        while follow:
            line = log.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.3)


@app.command()
def status(project: DirOption = Path(".")) -> None:
    """What the running platform is doing."""
    try:
        info = Client(project).status()
    except CumuloError as e:
        raise failure(e) from e
    console.print(f"[bold]cumulo[/bold] at {info['url']} (pid {info['pid']})")
    table = Table("function", "mode", "replicas", "invocations", "errors", "cold starts")
    for fn in info["functions"]:
        replicas = len(fn.get("replicas", fn.get("running", [])))
        table.add_row(
            fn["name"],
            fn["mode"],
            str(replicas),
            str(fn.get("invocations", "")),
            str(fn.get("errors", "")),
            str(fn.get("cold_starts", "")),
        )
    console.print(table)
    table = Table("trigger", "function", "delivered", "retried", "dead-lettered", "in flight")
    for t in info["triggers"]:
        table.add_row(
            t["name"],
            t["function"],
            str(t["delivered"]),
            str(t["retried"]),
            str(t["dead_lettered"]),
            str(t["inflight"]),
        )
    console.print(table)
    table = Table("source", "kind", "published", "duplicates", "ignored", "rejected")
    for src in info.get("sources", []):
        counts = [src.get(k, "") for k in ("published", "duplicates", "ignored")]
        rejected = ", ".join(f"{k} {n}" for k, n in src.get("rejected", {}).items())
        table.add_row(src["name"], src["kind"], *map(str, counts), rejected)
    console.print(table)


@app.command()
def replay(
    trigger: Annotated[str | None, typer.Option(help="Replay one trigger's events.")] = None,
    topic: Annotated[str | None, typer.Option(help="Replay a topic for every trigger.")] = None,
    from_offset: Annotated[int | None, typer.Option(help="First offset to deliver again.")] = None,
    from_time: Annotated[str | None, typer.Option(help="ISO time to deliver again from.")] = None,
    project: DirOption = Path("."),
) -> None:
    """Deliver a trigger's or a topic's events again, from an offset or a time."""
    from datetime import datetime

    if (trigger is None) == (topic is None) or (from_offset is None) == (from_time is None):
        raise fail("give one of --trigger/--topic and one of --from-offset/--from-time", 2)
    given = {"trigger": trigger, "topic": topic, "fromOffset": from_offset}
    ask: dict[str, Any] = {k: v for k, v in given.items() if v is not None}  # no nulls
    if from_time is not None:
        ask["fromTime"] = datetime.fromisoformat(from_time).timestamp()
    try:
        answer = Client(project).request(
            "POST", "/api/replay", json.dumps(ask).encode(), {"Content-Type": "application/json"}
        )
        if answer.status != 200:
            raise GatewayError(answer)
    except CumuloError as e:
        raise failure(e) from e
    console.print(f"replaying {answer.json()['replayed']} event(s)")


@app.command()
def manifests(
    project: ProjectDir = Path("."),
    image_registry: Annotated[
        str | None, typer.Option(help="Images are <registry>/<project>-<function>:<tag>.")
    ] = None,
    image_tag: Annotated[str, typer.Option()] = "latest",
    namespace: Annotated[str | None, typer.Option(help="Default: the project name.")] = None,
    bus_url: Annotated[
        str | None, typer.Option(help="The default bus in the cluster (default: $CUMULO_BUS_URL).")
    ] = None,
    module: Modules = [],  # noqa: B006
) -> None:
    """Print the Kubernetes objects that run a project (Knative, KEDA, Dapr) as YAML."""
    from cumulo.manifests.options import RenderOptions
    from cumulo.manifests.render import render_project, to_yaml
    from cumulo.spec import load_project

    options = RenderOptions(
        image_registry=image_registry,
        image_tag=image_tag,
        namespace=namespace,
        bus_url=bus_url or Settings().bus_url,
    )
    try:
        objects = render_project(load_project(project, modules=module), options)
    except SpecError as e:
        raise fail(escape(str(e)), 2) from e
    sys.stdout.write(to_yaml(objects))


source_app = typer.Typer(help="Event sources.", no_args_is_help=True)
app.add_typer(source_app, name="source")


@source_app.command("run")
def source_run(
    name: Annotated[str, typer.Argument(help="The EventSource to run.")],
    project: DirOption = Path("."),
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default: $CUMULO_HOST, else 127.0.0.1)."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Default: $PORT, else 8080.")] = None,
) -> None:
    """Run one event source as its own process (a cluster Deployment's entrypoint)."""
    from cumulo.config import WorkerSettings
    from cumulo.runtimes.local import source_process
    from cumulo.spec import load_project

    chosen = port if port is not None else WorkerSettings().port
    settings = Settings()
    settings = settings.model_copy(update={"host": host or settings.host, "port": chosen})
    logging.basicConfig(level=settings.log_level, format="%(name)s: %(message)s")
    try:
        source_process.main(load_project(project), name, settings)
    except SpecError as e:
        raise fail(str(e), 2) from e
    except CumuloError as e:
        raise failure(e) from e


@app.command()
def build(
    function: Annotated[list[str] | None, typer.Argument(help="Functions (default: all).")] = None,
    project: DirOption = Path("."),
    registry: Annotated[
        str, typer.Option(help="Registry to push to: host:port/path.")
    ] = "127.0.0.1:5000",
    builder: Annotated[str | None, typer.Option(help="oci (auto), buildah.")] = None,
    tag: Annotated[str, typer.Option()] = "latest",
    base_image: Annotated[
        str | None, typer.Option(help="Instead of each function's build.baseImage.")
    ] = None,
) -> None:
    """Build functions' images and push them: prints each image and its digest."""
    from cumulo.builders.cli import run_build

    try:
        run_build(
            project,
            function or [],
            registry=registry,
            builder=builder,
            tag=tag,
            base_image=base_image,
        )
    except SpecError as e:
        raise fail(str(e), 2) from e
    except CumuloError as e:
        raise failure(e) from e


register_cluster_commands(app)  # deploy, delete, cluster-status


def main() -> None:
    app()
