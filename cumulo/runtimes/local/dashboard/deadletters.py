"""Dead-lettered events, why they died, and redrive.

A dead letter carries its reason as ``cumulo*`` extensions
(:mod:`cumulo.events.delivery`). *Redrive* publishes the original event again
to the topic of the trigger that gave up: the reason extensions are stripped
and ``id``/``source`` are kept, so the function sees the very event it failed
on. The bus would take a (``source``, ``id``) it has seen within its dedup
window for a duplicate and keep only the first, so redrive publishes with
dedup off. Every trigger on that topic whose filters match sees it again.

Redrive is idempotent per dead letter: the first redrive of (bus, topic,
offset) is recorded in ``STATE_DIR/dashboard.db``; asking again answers with
the offset of that first redrive and publishes nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cumulo.events import delivery
from cumulo.events.bus.base import Bus, Message
from cumulo.events.event import Event
from cumulo.runtimes.local.wiring import message_json

REASON_EXTENSIONS = (
    delivery.ERROR_TYPE,
    delivery.ERROR_MESSAGE,
    delivery.ATTEMPTS,
    delivery.DESTINATION,
    delivery.TRIGGER,
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS redrives (
    bus TEXT NOT NULL, topic TEXT NOT NULL, offset INTEGER NOT NULL,
    target TEXT NOT NULL, new_offset INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (bus, topic, offset)
);
"""


def reason(event: Event) -> dict[str, Any]:
    """Why an event was dead-lettered, from its extensions."""
    attributes = event.attributes
    attempts = attributes.get(delivery.ATTEMPTS)
    return {
        "errorType": attributes.get(delivery.ERROR_TYPE),
        "message": attributes.get(delivery.ERROR_MESSAGE),
        "attempts": int(str(attempts)) if str(attempts or "").isdigit() else None,
        "destination": attributes.get(delivery.DESTINATION),
        "trigger": attributes.get(delivery.TRIGGER),
    }


def original(event: Event) -> Event:
    """The event as it was before it was dead-lettered."""
    return event.with_attributes(**dict.fromkeys(REASON_EXTENSIONS))


@dataclass(frozen=True)
class Redrive:
    offset: int  # the dead letter's
    topic: str  # where it went again
    new_offset: int
    at: float
    already: bool = False

    def json(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "topic": self.topic,
            "newOffset": self.new_offset,
            "at": self.at,
            "alreadyRedriven": self.already,
        }


class RedriveLog:
    """Which dead letters were redriven (one process writes: the platform's)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = asyncio.Lock()
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def done(self, bus: str, topic: str) -> dict[int, Redrive]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT offset, target, new_offset, at FROM redrives WHERE bus = ? AND topic = ?",
                (bus, topic),
            ).fetchall()
        return {
            offset: Redrive(offset, target, new_offset, at, already=True)
            for offset, target, new_offset, at in rows
        }

    def record(self, bus: str, topic: str, redrive: Redrive) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO redrives VALUES (?, ?, ?, ?, ?, ?)",
                (bus, topic, redrive.offset, redrive.topic, redrive.new_offset, redrive.at),
            )

    async def redrive(
        self, bus_name: str, bus: Bus, topic: str, message: Message, target: str
    ) -> Redrive:
        """Publish ``message``'s original event to ``target`` once; later calls answer the first."""
        async with self._lock:
            done = await asyncio.to_thread(self.done, bus_name, topic)
            if message.offset in done:
                return done[message.offset]
            [new_offset] = await bus.publish(target, [original(message.event)], dedup=False)
            result = Redrive(message.offset, target, new_offset, time.time())
            await asyncio.to_thread(self.record, bus_name, topic, result)
            return result


def dead_letter_json(message: Message, redriven: Redrive | None) -> dict[str, Any]:
    return {
        **message_json(message),
        "reason": reason(message.event),
        "redrive": redriven.json() if redriven else None,
    }
