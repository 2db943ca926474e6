"""The README's journey on examples/hello: events chain through functions, HTTP answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.platform import cloudevent, wait_for

HELLO = Path(__file__).parents[2] / "examples" / "hello"


def test_an_event_reaches_a_function_and_its_reply_the_next(platform_factory):
    platform = platform_factory(HELLO)
    answer = platform.publish(
        [cloudevent("dev.cumulo.example.greeting.requested", {"name": "Ada"}, id="greet-1")]
    )
    assert answer.status == 202, answer.body
    assert answer.json()["accepted"] == 1

    wait_for(lambda: "recorded: Hello, Ada!" in platform.log("record"), what="record's log")
    made = [
        m["event"]
        for m in platform.events("default")
        if m["event"]["type"] == "dev.cumulo.example.greeting.made"
    ]
    assert len(made) == 1
    assert made[0]["source"] == "/cumulo/functions/greet"
    assert made[0]["data"] == {"greeting": "Hello, Ada!"}


def test_http_function_answers_at_its_gateway_path(platform_factory):
    platform = platform_factory(HELLO)
    assert platform.function("hello")["replicas"] == []  # scaled to zero

    answer = platform.request("GET", "/fn/hello?name=Grace")  # held through the cold start

    assert answer.status == 200
    assert answer.json() == {"message": "Hello, Grace!"}
    assert answer.headers["content-type"] == "application/json"
    assert len(platform.function("hello")["replicas"]) == 1


def test_cli_publish_and_invoke(platform_factory):
    platform = platform_factory(HELLO)
    env_state = {"CUMULO_STATE_DIR": str(platform.state)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        import os

        return subprocess.run(
            [sys.executable, "-m", "cumulo", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **env_state},
            timeout=60,
        )

    published = cli(
        "publish",
        "dev.cumulo.example.greeting.requested",
        "--data",
        '{"name": "Linus"}',
        "--dir",
        str(HELLO),
    )
    assert published.returncode == 0, published.stderr
    wait_for(lambda: "recorded: Hello, Linus!" in platform.log("record"), what="record's log")

    invoked = cli("invoke", "hello", "--method", "GET", "--dir", str(HELLO))
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout) == {"message": "Hello, world!"}

    events = cli("events", "--dir", str(HELLO))
    assert "dev.cumulo.example.greeting.made" in events.stdout


def test_python_publish(platform_factory):
    import cumulo

    platform = platform_factory(HELLO)
    from cumulo.client import Client
    from cumulo.config import Settings

    client = Client(HELLO, Settings(state_dir=platform.state))
    event = client.publish("dev.cumulo.example.greeting.requested", {"name": "Barbara"})
    assert event.id
    assert cumulo.publish is not None
    wait_for(lambda: "recorded: Hello, Barbara!" in platform.log("record"), what="record's log")


def test_sigterm_stops_every_part_in_order(platform_factory):
    platform = platform_factory(HELLO)
    assert platform.request("GET", "/fn/hello").status == 200  # a worker is running
    assert (platform.state / "gateway.json").exists()
    assert platform.stop() == 0  # not killed by the signal: the platform stopped itself
    assert not (platform.state / "gateway.json").exists()  # removed on the way out
    assert "Traceback" not in platform.output()
