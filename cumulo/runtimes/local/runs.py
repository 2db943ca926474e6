"""The record of job runs: one row per run, its status and where its log is."""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,          -- running, succeeded, failed, retrying, timed-out
    started REAL NOT NULL,
    finished REAL,
    exit_code INTEGER,
    error TEXT,
    log TEXT NOT NULL,
    trace TEXT                     -- the trace id of the event that started the run
);
CREATE INDEX IF NOT EXISTS runs_by_function ON runs (function, started);
"""


@dataclass(frozen=True)
class Run:
    id: str
    function: str
    event_id: str
    event_type: str
    status: str
    started: float
    finished: float | None
    exit_code: int | None
    error: str | None
    log: str
    trace: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


class RunStore:
    """Runs in ``state/runs.db``. Writes are rare (one per job), so plain sqlite3 suffices."""

    def __init__(self, path: Path):
        self.path = path
        self.dir = path.parent / "runs"
        with self._connect() as db:
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            if "trace" not in columns:  # a runs.db from before traces
                db.execute("ALTER TABLE runs ADD COLUMN trace TEXT")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def start(self, function: str, event_id: str, event_type: str, trace: str | None = None) -> Run:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        (self.dir / run_id).mkdir(parents=True, exist_ok=True)
        log = str(self.dir / run_id / "log.txt")
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs"
                " (id, function, event_id, event_type, status, started, log, trace)"
                " VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
                (run_id, function, event_id, event_type, time.time(), log, trace),
            )
        return self.get(run_id)

    def finish(self, run_id: str, status: str, exit_code: int | None, error: str | None) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ?, exit_code = ?, error = ? WHERE id = ?",
                (status, time.time(), exit_code, error, run_id),
            )

    def get(self, run_id: str) -> Run:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return Run(*row)

    def counts(self) -> dict[tuple[str, str], int]:
        """How many finished runs there are, by (function, status)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT function, status, count(*) FROM runs"
                " WHERE status != 'running' GROUP BY function, status"
            ).fetchall()
        return {(function, status): count for function, status, count in rows}

    def list(self, function: str | None = None, limit: int = 50) -> list[Run]:
        query = "SELECT * FROM runs"
        params: tuple[object, ...] = ()
        if function:
            query += " WHERE function = ?"
            params = (function,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY started DESC LIMIT ?", (*params, limit))
            return [Run(*row) for row in rows.fetchall()]
