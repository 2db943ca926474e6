"""``pip install cumulo`` with no extras: the quickstart runs, and a missing extra is named.

The bare venv is real: ``pip install`` of a copy of this source tree into a
fresh venv, without extras. It is cached per source-tree hash under
``~/.cache/cumulo-bare`` (``$XDG_CACHE_HOME``), and its dependencies come from
a wheelhouse cached there per dependency list: once both are built, a changed
source tree is installed with ``--no-index``, downloading nothing.

Measured on a two-core machine (2026-12-02), making the venv: 16 s with
nothing cached (pip's own cache off), 11-15 s for a changed source tree (the
wheelhouse cached; no network needed), nothing with the venv cached. The three
tests that use it then take about 4 s.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cumulo.errors import MissingExtraError, PermanentError
from cumulo.extras import EXTRAS, HANDLER_MODULE_EXTRAS, from_extra, installed, require
from cumulo.runtimes.local.wiring import missing_extras
from cumulo.spec import load_project

REPO = Path(__file__).resolve().parents[1]
PACKAGED = ("pyproject.toml", "README.md", "cumulo")  # what `pip install .` reads
KEEP_VENVS = 3  # source trees whose venv stays cached (other checkouts, branches)
HOST = "127.0.0.1"
BARE_TIMEOUT = 180  # per test; the slowest measured (cold: 16 s + 4 s), with a slow network's room

REDIS_BUS = """\
---
apiVersion: cumulo.dev/v1alpha1
kind: EventBus
metadata: {name: default}
spec: {url: "redis://127.0.0.1:6390/0"}
"""
REDIS_HINT = "redis:// needs the redis client: pip install 'cumulo[redis]'"

MISSING_EXTRAS_PROJECT = (
    """\
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: train}
spec: {handler: "cumulo.functions.train:train", mode: job}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: tx}
spec:
  kafka: {brokers: ["127.0.0.1:9092"], topics: [transactions]}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: uploads}
spec:
  s3: {bucket: datasets, mode: poll, endpoint: "http://127.0.0.1:9000"}
"""
    + REDIS_BUS
)


# --- the contract, in this venv ------------------------------------------------------


def test_every_extra_of_pyproject_is_described() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = set(pyproject["project"]["optional-dependencies"]) - {"dev", "bench"}  # tools
    assert {extra.name for extra in EXTRAS} == declared
    assert set(HANDLER_MODULE_EXTRAS.values()) <= declared


def test_a_missing_library_is_named_by_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if the redis client were not installed
    with pytest.raises(MissingExtraError) as raised, from_extra("redis", needed_by="redis://"):
        import redis  # noqa: F401
    assert str(raised.value) == REDIS_HINT
    assert (raised.value.extra, raised.value.needed_by) == ("redis", "redis://")
    assert isinstance(raised.value, PermanentError)  # a function needing it dead-letters at once
    assert not installed("redis")


def test_a_missing_module_of_cumulo_is_a_bug_not_an_extra() -> None:
    with pytest.raises(ModuleNotFoundError, match=r"cumulo\.no_such_module"):
        require("cumulo.no_such_module", "ml", needed_by="nothing")


def test_up_names_every_missing_extra_where_the_spec_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cumulo.yaml").write_text(MISSING_EXTRAS_PROJECT)
    project = load_project(tmp_path)
    for module in ("redis", "confluent_kafka", "boto3", "sklearn"):
        monkeypatch.setitem(sys.modules, module, None)
    assert [str(problem) for problem in missing_extras(project)] == [
        f"EventBus/default:spec.url: {REDIS_HINT}",
        "EventSource/tx:spec.kafka: a Kafka source needs the Kafka client (confluent-kafka):"
        " pip install 'cumulo[kafka]'",
        "EventSource/uploads:spec.s3.mode: S3 poll mode needs the S3 client (boto3):"
        " pip install 'cumulo[s3]'",
        "Function/train:spec.handler: cumulo.functions.train needs the ML libraries"
        " (scikit-learn, pandas, pyarrow, joblib): pip install 'cumulo[ml]'",
    ]


# --- a real bare install ---------------------------------------------------------------


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cumulo-bare"


def digest(parts: Iterator[bytes]) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(len(part).to_bytes(8, "big") + part)
    return sha.hexdigest()[:16]


def packaged_files() -> Iterator[Path]:
    for name in PACKAGED:
        path = REPO / name
        if path.is_file():
            yield path
            continue
        for file in sorted(path.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                yield file


def tree_hash() -> str:
    """What `pip install .` would install: every packaged file's path and bytes."""
    files = list(packaged_files())
    return digest(p for f in files for p in (str(f.relative_to(REPO)).encode(), f.read_bytes()))


def dependencies_hash() -> str:
    """The dependency list, the build requirements and the interpreter they are built for."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    needs = [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]
    return digest(s.encode() for s in [sys.implementation.cache_tag, sys.platform, *needs])


def copy_tree(target: Path) -> Path:
    """The packaged files in ``target``, so that building leaves the checkout untouched."""
    for file in packaged_files():
        destination = target / file.relative_to(REPO)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, destination)
    return target


def pip(python: Path | str, *args: str) -> None:
    command = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BARE_TIMEOUT)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"


def wheelhouse(root: Path, tree: Path) -> Path:
    """Wheels of every dependency and of the build backend; built once per dependency list."""
    house = root / f"wheels-{dependencies_hash()}"
    if (house / "complete").exists():
        return house
    shutil.rmtree(house, ignore_errors=True)
    pip(sys.executable, "wheel", "--quiet", "--wheel-dir", str(house), str(tree), "setuptools>=68")
    for own in house.glob("cumulo-*.whl"):
        own.unlink()  # built from the tree at install time, never from here
    (house / "complete").touch()
    prune(root, "wheels-*", keep=1, besides=house)
    return house


def prune(root: Path, pattern: str, *, keep: int, besides: Path) -> None:
    """Remove all but the ``keep`` newest folders matching ``pattern`` (``besides`` stays)."""
    others = sorted(
        (p for p in root.glob(pattern) if p != besides), key=lambda p: p.stat().st_mtime
    )
    for old in others[: max(0, len(others) - keep + 1)]:
        shutil.rmtree(old, ignore_errors=True)


def build_venv(venv: Path, root: Path, scratch: Path) -> None:
    tree = copy_tree(scratch / "src")
    house = wheelhouse(root, tree)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip(
        venv / "bin" / "python",
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        str(house),
        str(tree),
    )
    (venv / "complete").touch()


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a venv holding ``pip install <this tree>``, no extras."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"venv-{tree_hash()}"
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others reuse its venv
        if not (venv / "complete").exists():
            build_venv(venv, root, tmp_path_factory.mktemp("bare-build"))
            prune(root, "venv-*", keep=KEEP_VENVS, besides=venv)
    os.utime(venv)  # recently used: pruned last
    return venv / "bin"


def bare_env(bin_dir: Path) -> dict[str, str]:
    """A shell with the bare venv first on PATH, none of this session's settings."""
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "LANG": "C.UTF-8",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def run(
    bin_dir: Path, cwd: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "cumulo"), *args],
        cwd=cwd,
        env=bare_env(bin_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    with LOOPBACK.open(request, timeout=60) as response:
        return response.status, response.read()


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Up:
    """``cumulo up examples/hello --port PORT`` in the background, as the README starts it."""

    def __init__(self, bin_dir: Path, cwd: Path, project: str):
        self.port = free_port()
        self.out, self.err = cwd / "up.out", cwd / "up.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [str(bin_dir / "cumulo"), "up", project, "--port", str(self.port)],
                cwd=cwd,
                env=bare_env(bin_dir),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.url = f"http://{HOST}:{self.port}"

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait_until_up(self) -> None:
        def up() -> bool:
            assert self.process.poll() is None, f"cumulo up exited:\n{self.output()}"
            return f"cumulo is up at {self.url}" in self.output()

        wait_for(up, "cumulo is up")

    def stop(self) -> int:
        """Ctrl-C, as the README says; kill -9 the group only if it does not end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    """A folder holding ``examples/hello``, to run the README's commands from."""
    shutil.copytree(REPO / "examples" / "hello", tmp_path / "examples" / "hello")
    return tmp_path


@pytest.mark.timeout(BARE_TIMEOUT)
def test_every_module_imports_or_names_its_extra(bare: Path) -> None:
    script = """
import importlib, json, pkgutil, cumulo
from cumulo.errors import MissingExtraError
seen = {}
for info in pkgutil.walk_packages(cumulo.__path__, "cumulo."):
    if info.name == "cumulo.__main__":
        continue
    try:
        importlib.import_module(info.name)
        seen[info.name] = None
    except MissingExtraError as e:
        seen[info.name] = e.extra
print(json.dumps(seen))
"""
    done = subprocess.run(
        [str(bare / "python"), "-c", script],
        env=bare_env(bare),
        cwd=bare,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr  # a ModuleNotFoundError ends the script
    seen = json.loads(done.stdout)
    assert seen["cumulo.cli"] is None and seen["cumulo.runtimes.local.platform"] is None
    for module, extra in HANDLER_MODULE_EXTRAS.items():
        assert seen[module] == extra, module
    assert {extra for extra in seen.values() if extra} == {"ml", "redis", "nats", "kafka", "dapr"}


@pytest.mark.timeout(BARE_TIMEOUT)
def test_the_quickstart_runs_on_a_bare_install(bare: Path, hello: Path) -> None:
    up = Up(bare, hello, "examples/hello")
    try:
        up.wait_until_up()
        status, body = http("GET", f"{up.url}/fn/hello?name=Ada")
        assert (status, body.strip()) == (200, b'{"message":"Hello, Ada!"}')  # as the README
        status, body = http(
            "POST", f"{up.url}/fn/hello?name=Bo", b"{}", {"Content-Type": "application/json"}
        )
        assert (status, json.loads(body)) == (200, {"message": "Hello, Bo!"})

        published = run(
            bare,
            hello,
            "publish",
            "dev.cumulo.example.greeting.requested",
            "--data",
            '{"name": "Ada"}',
            "--dir",
            "examples/hello",
        )
        assert published.returncode == 0, published.stderr
        assert "published dev.cumulo.example.greeting.requested" in published.stdout
        wait_for(lambda: "recorded: Hello, Ada!" in record_log(bare, hello), "record's log")

        event = {
            "specversion": "1.0",
            "id": "bare-1",
            "source": "/tests/bare",
            "type": "dev.cumulo.example.greeting.requested",
            "data": {"name": "Grace"},
        }
        status, _ = http(
            "POST",
            f"{up.url}/events",
            json.dumps(event).encode(),
            {"Content-Type": "application/cloudevents+json"},
        )
        assert status == 202
        wait_for(lambda: "recorded: Hello, Grace!" in record_log(bare, hello), "record's log")
    finally:
        code = up.stop()
    assert code == 0, up.output()
    assert "Traceback" not in up.output()


def record_log(bare: Path, cwd: Path) -> str:
    return run(bare, cwd, "logs", "record", "--dir", "examples/hello").stdout


@pytest.mark.timeout(BARE_TIMEOUT)
def test_a_project_asking_for_a_missing_extra_is_told_which_to_install(
    bare: Path, hello: Path
) -> None:
    project = hello / "examples" / "hello"
    (project / "cumulo.yaml").write_text((project / "cumulo.yaml").read_text() + REDIS_BUS)
    up = Up(bare, hello, "examples/hello")
    try:
        code = up.process.wait(60)
    finally:
        up.stop()
    assert code != 0
    assert up.out.read_text() == ""
    assert up.err.read_text().splitlines() == [f"error: EventBus/default:spec.url: {REDIS_HINT}"]
    assert not (project / ".cumulo").exists()  # stopped before anything started
