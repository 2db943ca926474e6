"""The `cumulo` command in-process (typer's runner): the commands that need no running platform.

Each test writes a small project into a temporary folder and points the state
folder (``CUMULO_STATE_DIR``) there too, so what a command writes can be read back
with the same parts Cumulo itself uses (the SQLite bus, the run store).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cumulo.cli import app
from cumulo.client import Client
from cumulo.runtimes.local.runs import RunStore

runner = CliRunner(env={"COLUMNS": "200"})

HELLO_YAML = """
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: hello}
spec: {handler: 'main:hello', signature: http}
"""
HELLO_MAIN = "def hello(request):\n    return 'hello'\n"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder of its own; no token or bus from the caller's environment."""
    folder = tmp_path / "state"
    monkeypatch.setenv("CUMULO_STATE_DIR", str(folder))
    for name in ("CUMULO_API_TOKEN", "CUMULO_PUBLISH_TOKEN", "CUMULO_BUS_URL"):
        monkeypatch.delenv(name, raising=False)
    return folder


def write_project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture
def hello(tmp_path: Path, state: Path) -> Path:
    return write_project(tmp_path / "hello", {"cumulo.yaml": HELLO_YAML, "main.py": HELLO_MAIN})


def cumulo(*args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


# --- validate ------------------------------------------------------------------------------


def test_validate_accepts_a_good_project(hello: Path) -> None:
    """A project without mistakes exits 0 and says it is valid."""
    result = cumulo("validate", hello)

    assert result.exit_code == 0, result.output
    assert "is valid" in result.stdout


def test_validate_prints_each_problem_and_counts_them(tmp_path: Path, state: Path) -> None:
    """Every mistake is one `file:path: message` line on stderr; the exit code is 1."""
    bad = """
    apiVersion: cumulo.dev/v1alpha1
    kind: Function
    metadata: {name: train}
    spec: {handler: 'main:train', scale: {max: 0}, timout: 5}
    """
    project = write_project(
        tmp_path / "bad", {"cumulo.yaml": bad, "main.py": "def train(e): ...\n"}
    )

    result = cumulo("validate", project)

    assert result.exit_code == 1
    assert "Function/train.spec.scale.max" in result.stderr
    assert "unknown key 'timout' (did you mean 'timeout'?)" in result.stderr
    assert "2 problem(s) found" in result.stderr


def test_validate_of_a_missing_folder_says_so(tmp_path: Path, state: Path) -> None:
    """A folder that does not exist is a problem, not a crash."""
    result = cumulo("validate", tmp_path / "nowhere")

    assert result.exit_code == 1
    assert "no such file or folder" in result.stderr


# --- publish and events, offline ------------------------------------------------------------


def test_publish_offline_lands_on_the_bus_and_events_lists_it(hello: Path, state: Path) -> None:
    """Without `cumulo up`, publish writes to the project's bus; `events` reads it back."""
    published = cumulo(
        "publish", "test.ping", "--data", '{"n": 7}', "--subject", "s1", "--dir", hello
    )
    assert published.exit_code == 0, published.output
    assert "published test.ping" in published.stdout

    listed = cumulo("events", "--dir", hello)

    assert listed.exit_code == 0, listed.output
    assert "test.ping" in listed.stdout
    assert '{"n": 7}' in listed.stdout
    assert (state / "bus.db").exists()


def test_events_limit_shows_only_the_latest(hello: Path) -> None:
    """`--limit N` lists the N newest events of the topic."""
    for n in range(3):
        assert cumulo("publish", f"test.n{n}", "--dir", hello).exit_code == 0

    listed = cumulo("events", "--limit", "1", "--dir", hello)

    assert listed.exit_code == 0, listed.output
    assert "test.n2" in listed.stdout
    assert "test.n0" not in listed.stdout and "test.n1" not in listed.stdout


def test_events_of_another_topic_are_kept_apart(hello: Path) -> None:
    """An event published to topic `other` is not listed for the default topic."""
    assert cumulo("publish", "test.elsewhere", "--topic", "other", "--dir", hello).exit_code == 0

    default = cumulo("events", "--dir", hello)
    other = cumulo("events", "--topic", "other", "--dir", hello)

    assert "test.elsewhere" not in default.stdout
    assert "test.elsewhere" in other.stdout


def test_bad_json_data_exits_2_and_publishes_nothing(hello: Path, state: Path) -> None:
    """Invalid `--data` is a usage error found before the bus is opened."""
    result = cumulo("publish", "test.x", "--data", "{nope", "--dir", hello)

    assert result.exit_code == 2
    assert "--data is not valid JSON" in result.stderr
    assert not (state / "bus.db").exists()


def test_publish_to_a_project_with_mistakes_exits_2(tmp_path: Path, state: Path) -> None:
    """Publishing offline loads the project to find its bus: its mistakes are a usage error."""
    project = write_project(tmp_path / "broken", {"cumulo.yaml": "kind: Nope\n"})

    result = cumulo("publish", "test.x", "--dir", project)

    assert result.exit_code == 2
    assert "unknown kind 'Nope'" in result.stderr


def test_publish_follow_gives_up_after_its_timeout(hello: Path) -> None:
    """`--follow --timeout` exits 1 when nothing ends the ML chain in time."""
    result = cumulo("publish", "test.start", "--follow", "--timeout", "0.2", "--dir", hello)

    assert result.exit_code == 1
    assert "published test.start" in result.stdout
    assert "nothing ended the watch within 0.2s" in result.stderr


def test_watch_gives_up_after_its_timeout(hello: Path) -> None:
    """`cumulo watch --until T --timeout` exits 1 when no event of type T arrives."""
    result = cumulo("watch", "--until", "never.happens", "--timeout", "0.2", "--dir", hello)

    assert result.exit_code == 1
    assert "nothing ended the watch" in result.stderr


# --- commands that need the platform -----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("invoke", "hello", "--data", '{"a": 1}'),
        ("invoke", "hello", "--type", "test.call"),
        ("replay", "--topic", "default", "--from-offset", "1"),
    ],
)
def test_commands_that_need_the_platform_say_it_is_not_running(
    hello: Path, args: tuple[str, ...]
) -> None:
    """Without `cumulo up` these exit 1 naming the way to start it."""
    result = cumulo(*args, "--dir", hello)

    assert result.exit_code == 1
    assert "no platform is running" in result.stderr
    assert "cumulo up" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--trigger", "t", "--topic", "default", "--from-offset", "1"),
        ("--topic", "default"),
        ("--topic", "default", "--from-offset", "1", "--from-time", "2026-01-01T00:00:00"),
    ],
)
def test_replay_needs_one_target_and_one_start(hello: Path, args: tuple[str, ...]) -> None:
    """Replay takes exactly one of --trigger/--topic and one of --from-offset/--from-time."""
    result = cumulo("replay", *args, "--dir", hello)

    assert result.exit_code == 2
    assert "give one of --trigger/--topic and one of --from-offset/--from-time" in result.stderr


def test_invoke_with_bad_json_exits_2(hello: Path) -> None:
    """The body is checked before the gateway is looked for."""
    result = cumulo("invoke", "hello", "--data", "[1,", "--dir", hello)

    assert result.exit_code == 2
    assert "--data is not valid JSON" in result.stderr


# --- manifests ------------------------------------------------------------------------------------


def test_manifests_prints_a_knative_service_for_an_http_function(hello: Path) -> None:
    """`cumulo manifests` renders YAML documents; an HTTP function is a Knative Service."""
    result = cumulo(
        "manifests", hello, "--bus-url", "redis://redis:6379", "--image-registry", "reg.local:5000"
    )

    assert result.exit_code == 0, result.output
    assert "kind: Service" in result.stdout
    assert "apiVersion: serving.knative.dev/v1" in result.stdout
    assert "image: reg.local:5000/hello-hello:latest" in result.stdout


def test_manifests_takes_the_bus_url_from_the_environment(
    hello: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --bus-url, CUMULO_BUS_URL is the default bus's URL in the cluster."""
    monkeypatch.setenv("CUMULO_BUS_URL", "nats://nats:4222")
    project = write_project(
        hello,
        {
            "source.yaml": """
            apiVersion: cumulo.dev/v1alpha1
            kind: EventSource
            metadata: {name: hook}
            spec: {webhook: {path: /in}}
            """
        },
    )

    result = cumulo("manifests", project)

    assert result.exit_code == 0, result.output
    assert "pubsub.jetstream" in result.stdout
    assert "nats://nats:4222" in result.stdout


def test_manifests_with_bad_options_exit_2_naming_each(hello: Path) -> None:
    """Options a cluster would refuse are all reported, as `options:<field>`."""
    result = cumulo("manifests", hello, "--namespace", "Not_A_Label", "--bus-url", "sqlite://x")

    assert result.exit_code == 2
    assert "options:namespace" in result.stderr
    assert "options:busUrl" in result.stderr


# --- runs and logs ------------------------------------------------------------------------------


def test_runs_before_any_run_says_so(hello: Path) -> None:
    """No runs.db yet: a friendly line, exit 0."""
    result = cumulo("runs", "--dir", hello)

    assert result.exit_code == 0
    assert "no runs yet" in result.stdout


def test_runs_lists_recorded_runs_with_status_and_error(hello: Path, state: Path) -> None:
    """Runs recorded in runs.db are listed with their status, duration and error."""
    state.mkdir(parents=True)
    store = RunStore(state / "runs.db")
    done = store.start("hello", "ev-1", "test.go")
    store.finish(done.id, "failed", 1, "ValueError: dataset has no column 'target'")
    running = store.start("hello", "ev-2", "test.go")

    result = cumulo("runs", "--dir", hello)

    assert result.exit_code == 0, result.output
    assert done.id in result.stdout and running.id in result.stdout
    assert "failed" in result.stdout and "running" in result.stdout
    assert "dataset has no column" in result.stdout


def test_runs_of_an_unknown_function_exit_2(hello: Path) -> None:
    """`--function` must name a function of the project."""
    result = cumulo("runs", "--function", "nope", "--dir", hello)

    assert result.exit_code == 2
    assert "no such function 'nope'" in result.stderr
    assert "hello" in result.stderr


def test_logs_of_a_function_that_has_not_run(hello: Path) -> None:
    """A known function without a log file yet: exit 1 saying it has not run."""
    result = cumulo("logs", "hello", "--dir", hello)

    assert result.exit_code == 1
    assert "it has not run yet" in result.stderr


def test_logs_print_the_function_log(hello: Path, state: Path) -> None:
    """The function's log file is printed as it is."""
    (state / "logs").mkdir(parents=True)
    (state / "logs" / "hello.log").write_text("line one\nline two\n")

    result = cumulo("logs", "hello", "--dir", hello)

    assert result.exit_code == 0
    assert result.stdout == "line one\nline two\n"


def test_logs_of_a_run_print_its_log(hello: Path, state: Path) -> None:
    """`--run ID` prints that run's log."""
    state.mkdir(parents=True)
    run = RunStore(state / "runs.db").start("hello", "ev", "test.go")
    Path(run.log).write_text("epoch 1 loss 0.3\n")

    result = cumulo("logs", "hello", "--run", run.id, "--dir", hello)

    assert result.exit_code == 0, result.output
    assert "epoch 1 loss 0.3" in result.stdout


@pytest.mark.parametrize("run_id", ["../../etc", "a/b", ".hidden"])
def test_logs_refuse_run_ids_that_are_not_ids(hello: Path, run_id: str) -> None:
    """A run id that could climb out of the state folder is refused with exit 2."""
    result = cumulo("logs", "hello", "--run", run_id, "--dir", hello)

    assert result.exit_code == 2
    assert "refused" in result.stderr


def test_logs_of_a_project_with_mistakes_exit_2(tmp_path: Path, state: Path) -> None:
    """The function names come from the project: its mistakes are reported, exit 2."""
    project = write_project(tmp_path / "broken", {"cumulo.yaml": "apiVersion: v9\n"})

    result = cumulo("logs", "x", "--dir", project)

    assert result.exit_code == 2
    assert "unsupported apiVersion" in result.stderr


# --- worker, job, source run, build: the failures before anything runs ---------------------------


def test_worker_with_a_missing_target_exits_2(tmp_path: Path, state: Path) -> None:
    """A target that names no function is reported in one line with exit 2."""
    write_project(tmp_path / "fn", {"main.py": HELLO_MAIN})

    result = cumulo("worker", "--target", "main:nothing_here", "--source", tmp_path / "fn")

    assert result.exit_code == 2
    assert "TargetError: 'main:nothing_here': module 'main' has no attribute 'nothing_here'" in (
        result.stderr
    )


def test_worker_whose_module_fails_to_import_shows_the_error(tmp_path: Path, state: Path) -> None:
    """The user's own import error is shown (type and message), exit 2."""
    write_project(tmp_path / "fn", {"main.py": "raise RuntimeError('no config file')\n"})

    result = cumulo("worker", "--target", "main:f", "--source", tmp_path / "fn")

    assert result.exit_code == 2
    assert "RuntimeError: no config file" in result.stderr


def test_job_of_an_unknown_function_exits_2(hello: Path) -> None:
    """`cumulo job --name` must name a function of the project."""
    result = cumulo("job", "--target", "main:hello", "--name", "ghost", "--dir", hello)

    assert result.exit_code == 2
    assert "no function named 'ghost'" in result.stderr


def test_source_run_of_an_unknown_source_names_the_known_ones(hello: Path) -> None:
    """A source name the project lacks is an error listing what it has."""
    result = cumulo("source", "run", "ghost", "--dir", hello)

    assert result.exit_code == 1
    assert "no event source 'ghost'" in result.stderr


def test_build_with_an_unknown_builder_lists_the_known_ones(hello: Path) -> None:
    """`--builder` must be a registered builder; the error lists the names."""
    result = cumulo("build", "--builder", "nope", "--dir", hello)

    assert result.exit_code == 1
    assert "no builder named 'nope'" in result.stderr
    assert "oci" in result.stderr


def test_build_of_an_unknown_function_exits_2(hello: Path) -> None:
    """Building a function the project lacks is a spec problem (exit 2)."""
    result = cumulo("build", "ghost", "--dir", hello)

    assert result.exit_code == 2
    assert "no function 'ghost'" in result.stderr
    assert "(known: hello)" in result.stderr


def test_help_lists_every_command() -> None:
    """`cumulo --help` names the commands a user reaches for."""
    result = cumulo("--help")

    assert result.exit_code == 0
    for command in ("validate", "up", "publish", "events", "manifests", "deploy", "models"):
        assert command in result.stdout


def test_published_event_keeps_its_data_as_json(hello: Path, state: Path) -> None:
    """What `publish --data` sends is the JSON value, not the text (read back from the bus)."""
    assert (
        cumulo("publish", "test.typed", "--data", '[1, "two", null]', "--dir", hello).exit_code == 0
    )

    messages = Client(hello).events()

    assert [m["event"]["data"] for m in messages] == [[1, "two", None]]
    assert messages[0]["event"]["source"] == "/cumulo/cli"
