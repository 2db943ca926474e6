"""A broker that goes away under `cumulo up`: 503 with Retry-After, nothing lost, resumed after."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.e2e.conftest import write_project
from tests.e2e.platform import cloudevent, wait_for
from tests.servers.redis import redis_broker, redis_url

FUNCTIONS = """
import functions_framework

@functions_framework.cloud_event
def record(event):
    print(f"got {event['id']}", flush=True)
"""

SPEC = """
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: record}
spec:
  handler: main:record
  triggers: [{filters: [{exact: {type: test.happened}}]}]
"""


def test_redis_down_gives_503_then_everything_accepted_is_delivered(platform_factory, tmp_path):
    redis = redis_broker(tmp_path / "redis")  # our own: this test stops it
    redis.start()
    address = f"127.0.0.1:{redis.port}"
    project = write_project(tmp_path / "project", {"main.py": FUNCTIONS, "cumulo.yaml": SPEC})
    platform = platform_factory(project, env={"CUMULO_BUS_URL": redis_url(redis)})
    try:
        assert platform.publish([cloudevent("test.happened", id="before")]).status == 202
        wait_for(lambda: "got before" in platform.log("record"), what="the first delivery")

        redis.stop()
        refused = platform.publish([cloudevent("test.happened", id="during")])
        assert refused.status == 503
        assert refused.headers["retry-after"]
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert address in refused.json()["detail"]  # which broker, and where

        cli = subprocess.run(
            [sys.executable, "-m", "cumulo", "publish", "test.happened", "--dir", str(project)],
            env={**os.environ, "CUMULO_STATE_DIR": str(platform.state)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 1
        assert "503" in cli.stderr and address in cli.stderr

        redis.start()  # same port, same append-only file
        accepted = wait_for(
            lambda: platform.publish([cloudevent("test.happened", id="after")]).status == 202,
            timeout=30,
            what="the gateway accepting again",
        )
        assert accepted
        wait_for(lambda: "got after" in platform.log("record"), timeout=30, what="delivery resumed")
        assert "got during" not in platform.log("record")  # refused means not accepted
        assert platform.log("record").count("got before") == 1
    finally:
        platform.stop()
        redis.stop()
