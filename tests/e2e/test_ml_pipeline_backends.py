"""examples/ml-pipeline runs unchanged on every broker: only the EventBus URL changes."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.test_ml_pipeline import (
    chain_event,
    copy_example,
    dataset_ready,
    holdout_rows,
    predict,
)
from tests.events.bus.conftest import flush_redis
from tests.servers.kafka import kafka_url
from tests.servers.nats import nats_url
from tests.servers.redis import redis_url


@pytest.fixture(params=["redis", "nats", "kafka"])
def bus_url(request: pytest.FixtureRequest) -> str:
    name = f"ml{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        url = redis_url(request.getfixturevalue("redis_server"), db=39)
        flush_redis(url)
        return url
    if request.param == "nats":
        return nats_url(request.getfixturevalue("nats_server"), prefix=name.upper())
    return kafka_url(request.getfixturevalue("kafka_server"), prefix=name)


def test_the_chain_runs_on_a_broker(platform_factory, tmp_path, bus_url):
    project = copy_example(tmp_path)
    platform = platform_factory(project, env={"CUMULO_BUS_URL": bus_url})

    dataset_ready(platform, "data/small.csv", id="small")
    deployed = chain_event(platform, "dev.cumulo.model.deployed", "small")
    assert deployed["data"]["version"] == 1
    assert predict(platform, holdout_rows(project))["version"] == 1

    dataset_ready(platform, "data/broken.csv", id="broken")
    failed = chain_event(platform, "dev.cumulo.run.failed", "broken")
    assert "no column 'target'" in failed["data"]["message"]
