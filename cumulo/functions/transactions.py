"""SQLite state files shared by the ML functions' processes (the model registry, alerts).

:func:`create_store` makes the file once, in WAL mode, with its schema, however
many processes race to it. :func:`write_transaction` then takes the write lock
up front (``BEGIN IMMEDIATE``), so concurrent writers queue (up to the busy
timeout) instead of failing half-way through a read-then-write.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_SECONDS = 30


def create_store(path: Path, schema: str) -> None:
    """Create the tables of ``schema`` (``IF NOT EXISTS``) in a WAL-mode file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _use_wal(path)
    with write_transaction(path) as db:  # not executescript(): it would commit at once
        for statement in schema.split(";"):
            if statement.strip():
                db.execute(statement)


def _use_wal(path: Path) -> None:
    """Switch the file to WAL (it stays so); the switch takes no busy timeout: retry it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    finally:
        db.close()


@contextmanager
def write_transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection inside ``BEGIN IMMEDIATE``: committed on exit, rolled back on an error."""
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()
