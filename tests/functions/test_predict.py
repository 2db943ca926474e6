"""predict: the champion served over a real worker, and switched with no request failed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from cumulo.config import FunctionSettings
from cumulo.errors import NoChampionError
from cumulo.functions import predict as predict_module
from cumulo.functions.context import FunctionContext
from cumulo.functions.model_registry import ModelRegistry
from cumulo.functions.modelfile import ModelBundle, load_bundle, save_bundle
from cumulo.functions.predict import ChampionCache, LazyServer, PredictServer, read_instances
from cumulo.runtimes.worker import build_app, make_server
from tests.runtimes.worker.conftest import Reply, Served, listening_socket

FEATURES = ["f0", "f1", "f2", "f3"]
ROWS = (
    make_classification(n_samples=20, n_features=4, n_informative=3, n_redundant=0, random_state=1)[
        0
    ]
    .round(3)
    .tolist()
)


def make_bundle(path: Path, *, flipped: bool) -> Path:
    """A small classifier; the flipped one predicts the other class, so versions differ."""
    x, y = make_classification(
        n_samples=200, n_features=4, n_informative=3, n_redundant=0, random_state=0
    )
    estimator = LogisticRegression().fit(x, 1 - y if flipped else y)
    return save_bundle(ModelBundle(estimator, FEATURES, "label", "classification"), path)


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    models = ModelRegistry(tmp_path / "models.db")
    for version, flipped in ((1, False), (2, True)):
        artifact = make_bundle(tmp_path / f"clf-{version}.joblib", flipped=flipped)
        models.register("clf", str(artifact), metrics={"accuracy": 0.9})
    return models


def expected(registry: ModelRegistry, version: int) -> list[int]:
    return load_bundle(Path(registry.get("clf", version).artifact)).predict(ROWS)


@pytest.fixture
def serve_fn() -> Iterator[Callable[..., Served]]:
    """Serve an http function in a real worker on loopback (port 0)."""
    running = []

    def start(fn: Callable[..., object]) -> Served:
        app = build_app(fn, signature="http", name="predict", concurrency=8)
        sock = listening_socket()
        server = make_server(app)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, app))
        return Served(app, sock.getsockname()[1])

    yield start
    for server, thread, app in running:
        server.should_exit = True
        thread.join(timeout=10)
        app.close()


def server_for(tmp_path: Path, **params: object) -> PredictServer:
    settings = FunctionSettings(function="predict", state_dir=tmp_path, params=params)
    return PredictServer(FunctionContext(settings))


def post(worker: Served, payload: object) -> Reply:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return worker.post({"Content-Type": "application/json"}, body)


# --- serving --------------------------------------------------------------------


def test_predicts_with_the_champion(tmp_path, registry, serve_fn):
    registry.promote("clf", 1)
    worker = serve_fn(server_for(tmp_path, model="clf"))

    reply = post(worker, {"instances": ROWS})

    assert reply.status == 200
    assert reply.json() == {"model": "clf", "version": 1, "predictions": expected(registry, 1)}


def test_rows_may_be_objects_keyed_by_feature_name(tmp_path, registry, serve_fn):
    registry.promote("clf", 2)
    worker = serve_fn(server_for(tmp_path, model="clf"))
    rows = [dict(reversed(list(zip(FEATURES, row, strict=True)))) for row in ROWS]

    reply = post(worker, {"instances": rows})

    assert reply.json()["predictions"] == expected(registry, 2)


def test_no_champion_is_503_with_retry_after(tmp_path, registry, serve_fn):
    reply = post(serve_fn(server_for(tmp_path, model="clf")), {"instances": ROWS})

    assert reply.status == 503
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["retry-after"] == "5"
    assert reply.json()["detail"] == "model 'clf' has no champion yet"
    assert reply.json()["type"] == "https://cumulo.dev/problems/no-model"


def test_a_pinned_version_is_served_whoever_is_champion(tmp_path, registry, serve_fn):
    registry.promote("clf", 1)
    reply = post(serve_fn(server_for(tmp_path, model="clf", version=2)), {"instances": ROWS})
    assert reply.json()["version"] == 2
    assert reply.json()["predictions"] == expected(registry, 2)


def test_wrong_method_is_405(tmp_path, registry, serve_fn):
    registry.promote("clf", 1)
    reply = serve_fn(server_for(tmp_path, model="clf")).request("GET", "/")
    assert reply.status == 405
    assert reply.headers["allow"] == "POST"
    assert reply.json()["status"] == 405


BAD_REQUESTS = [
    (b"{nope", "the body is not JSON: Expecting property name"),
    (b"", "the body is empty"),
    ([[1, 2, 3, 4]], 'the body must be a JSON object with "instances"'),
    ({"rows": []}, 'the body must be a JSON object with "instances"'),
    ({"instances": []}, '"instances" must be a non-empty list of rows'),
    (
        {"instances": [[1, 2, 3, 4], [1, 2, 3]]},
        "row 1 has 3 values but the model takes 4 ('f0', 'f1', 'f2', 'f3')",
    ),
    ({"instances": [{"f0": 1, "f1": 2, "f2": 3}]}, "row 0 is missing feature(s) 'f3'"),
    (
        {"instances": [{"f0": 1, "f1": 2, "f2": 3, "f3": 4, "age": 5}]},
        "row 0 has unknown feature(s) 'age'; the model takes 'f0', 'f1', 'f2', 'f3'",
    ),
    (
        {"instances": [[1, 2, 3, 4], [1, "x", 3, True]]},
        "row 1, feature 'f1': 'x' is not a number; row 1, feature 'f3': True is not a number",
    ),
    ({"instances": ["1,2,3,4"]}, "row 0 is a str; a row is a list of 4 numbers"),
    (b'{"instances": [[1, 2, 3, NaN]]}', "the body is not JSON: NaN is not a JSON number"),
]


@pytest.mark.parametrize(("payload", "detail"), BAD_REQUESTS)
def test_malformed_requests_are_400_saying_what_is_wrong(
    tmp_path, registry, serve_fn, payload, detail
):
    registry.promote("clf", 1)
    reply = post(serve_fn(server_for(tmp_path, model="clf")), payload)

    assert reply.status == 400
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["status"] == 400 and problem["title"] == "Invalid prediction request"
    assert problem["type"] == "https://cumulo.dev/problems/invalid-instances"
    assert problem["detail"].startswith(detail), problem["detail"]


def test_every_bad_row_is_reported_and_long_lists_are_cut():
    _, problems = read_instances(json.dumps({"instances": [[1]] * 12}).encode(), FEATURES)
    assert len(problems) == 12
    body, status, _ = predict_module.invalid_request(problems)
    assert status == 400
    assert json.loads(body)["detail"].endswith("; and 2 more")


def test_the_module_function_builds_its_server_from_the_platform_settings(
    tmp_path, registry, serve_fn, monkeypatch
):
    registry.promote("clf", 1)
    monkeypatch.setenv("CUMULO_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CUMULO_PARAMS", json.dumps({"model": "clf"}))
    monkeypatch.setattr(predict_module, "SERVER", LazyServer(predict_module.SERVER.factory))

    reply = post(serve_fn(predict_module.predict), {"instances": ROWS[:2]})

    assert reply.status == 200 and reply.json()["version"] == 1


def test_bad_params_are_a_500_problem(tmp_path, serve_fn, monkeypatch):
    monkeypatch.setenv("CUMULO_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CUMULO_PARAMS", json.dumps({"modle": "clf"}))
    monkeypatch.setattr(predict_module, "SERVER", LazyServer(predict_module.SERVER.factory))

    reply = post(serve_fn(predict_module.predict), {"instances": ROWS[:2]})

    assert reply.status == 500
    assert "model\n  Field required" in reply.json()["detail"]


# --- switching the champion under load ---------------------------------------------


class Load:
    """Client threads posting without pause; every reply is kept, per thread, in order."""

    def __init__(self, worker: Served, threads: int):
        self.worker = worker
        self.replies: list[list[Reply]] = [[] for _ in range(threads)]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, index: int) -> None:
        while not self.stop.is_set():
            self.replies[index].append(post(self.worker, {"instances": ROWS}))

    def wait_until_all_see(self, version: int, since: list[int], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(
                any(r.status == 200 and r.json()["version"] == version for r in replies[start:])
                for replies, start in zip(self.replies, since, strict=True)
            ):
                return
            time.sleep(0.02)
        raise AssertionError(f"not every client saw version {version}")

    def settle(self, more: int = 10, timeout: float = 20) -> None:
        """Let every client send ``more`` requests, so each phase is under real load."""
        targets = [mark + more for mark in self.marks()]
        deadline = time.monotonic() + timeout
        while any(n < t for n, t in zip(self.marks(), targets, strict=True)):
            assert time.monotonic() < deadline, "the clients stalled"
            time.sleep(0.02)

    def marks(self) -> list[int]:
        return [len(replies) for replies in self.replies]


def test_promote_and_rollback_under_load_fail_no_request(tmp_path, registry, serve_fn):
    registry.promote("clf", 1)
    load = Load(serve_fn(server_for(tmp_path, model="clf")), threads=6)
    for thread in load.threads:
        thread.start()
    try:
        load.wait_until_all_see(1, load.marks())
        load.settle()
        registry.promote("clf", 2)
        load.wait_until_all_see(2, load.marks())
        load.settle()
        registry.rollback("clf")
        load.wait_until_all_see(1, load.marks())
        load.settle()
    finally:
        load.stop.set()
        for thread in load.threads:
            thread.join(timeout=30)

    answers = {1: expected(registry, 1), 2: expected(registry, 2)}
    assert answers[1] != answers[2]
    for replies in load.replies:
        assert {r.status for r in replies} == {200}
        versions = [r.json()["version"] for r in replies]
        assert _runs(versions) == [1, 2, 1]
        assert all(r.json()["predictions"] == answers[r.json()["version"]] for r in replies)


def _runs(values: list[int]) -> list[int]:
    """[1, 1, 2, 2, 1] → [1, 2, 1]."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


# --- the cache itself ----------------------------------------------------------------


class SlowFetch:
    """A fetch that can be held, and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, uri: str) -> Path:
        self.calls.append(uri)
        assert self.gate.wait(10)
        return Path(uri)


def test_others_keep_the_old_model_while_one_request_loads_the_new(registry):
    registry.promote("clf", 1)
    fetch = SlowFetch()
    cache = ChampionCache("clf", registry, fetch)
    assert cache.get().version == 1
    registry.promote("clf", 2)
    fetch.gate.clear()

    loader = threading.Thread(target=cache.get)
    loader.start()
    while len(fetch.calls) < 2:
        time.sleep(0.01)
    others = [cache.get().version for _ in range(20)]  # while version 2 is still loading
    fetch.gate.set()
    loader.join(10)

    assert others == [1] * 20
    assert cache.get().version == 2
    assert len(fetch.calls) == 2  # one load per version


def test_rollback_swaps_to_the_version_still_loaded(registry):
    fetch = SlowFetch()
    cache = ChampionCache("clf", registry, fetch)
    registry.promote("clf", 1)
    cache.get()
    registry.promote("clf", 2)
    cache.get()
    registry.rollback("clf")

    assert cache.get().version == 1
    assert len(fetch.calls) == 2


def test_a_new_version_that_cannot_load_leaves_the_old_one_serving(registry, tmp_path):
    registry.promote("clf", 1)
    broken = registry.register("clf", str(tmp_path / "missing.joblib"))
    cache = ChampionCache("clf", registry, lambda uri: Path(uri))
    cache.get()
    registry.promote("clf", broken.version)

    assert cache.get().version == 1


def test_no_champion_and_nothing_loaded_raises(registry):
    with pytest.raises(NoChampionError):
        ChampionCache("clf", registry, Path).get()
