"""Fixtures for real servers (tests/servers/) are available to every test."""

pytest_plugins = [
    "tests.servers.minio",
    "tests.servers.redis",
    "tests.servers.nats",
    "tests.servers.kafka",
    "tests.servers.dapr",
    "tests.servers.mail",
    "tests.servers.registry",
    "tests.servers.kube",
]
