"""Shared pieces for the source tests: the real payloads, signing, a recording sink."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from cumulo.events.event import Event
from cumulo.runtimes.local.sources import SqliteDeliveries

TESTDATA = Path(__file__).resolve().parents[3].parent / "shared" / "testdata"
WEBHOOKS = TESTDATA / "webhooks"


def payload(provider: str) -> bytes:
    name = "push.json" if provider == "github" else "push-event.json"
    return (WEBHOOKS / provider / name).read_bytes()


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Recorder:
    """A publish callable that keeps what it was given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, events: list[Event]) -> list[int]:
        self.events.extend(events)
        return list(range(len(events)))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def deliveries(tmp_path: Path):
    log = SqliteDeliveries(tmp_path / "checkpoints.db")
    yield log
    log.close()
