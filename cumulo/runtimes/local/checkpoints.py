"""Small durable key/value checkpoints for sources (the last cron tick fired, ...)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class SqliteCheckpoints:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS checkpoints (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )

    def load(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM checkpoints WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def save(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO checkpoints (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        self.db.close()
