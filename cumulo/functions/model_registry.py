"""The model registry: versions of each model, their stage, metrics, params and lineage.

One SQLite file (``STATE_DIR/models.db``) shared by every worker process. A
model has at most one *champion*, the version ``predict`` serves. Promoting a
version archives the old champion and records the hand-over, so ``rollback``
knows where to return.

Stages: ``candidate`` (trained, not judged yet), ``champion``, ``archived``
(was champion), ``rejected`` (lost its evaluation).
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel

from cumulo.errors import ModelNotFoundError, NoChampionError
from cumulo.functions.transactions import create_store, write_transaction

Stage = Literal["candidate", "champion", "archived", "rejected"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    stage TEXT NOT NULL,
    artifact TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    params TEXT NOT NULL DEFAULT '{}',
    lineage TEXT NOT NULL DEFAULT '{}',
    note TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS promotions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    previous INTEGER,
    at REAL NOT NULL,
    why TEXT NOT NULL            -- promote or rollback
);
"""


class ModelVersion(BaseModel):
    name: str
    version: int
    stage: Stage
    artifact: str
    metrics: dict[str, float] = {}
    params: dict[str, Any] = {}
    lineage: dict[str, Any] = {}
    note: str | None = None
    created: float
    updated: float


def _row_to_version(row: sqlite3.Row) -> ModelVersion:
    fields = dict(row)
    for key in ("metrics", "params", "lineage"):
        fields[key] = json.loads(fields[key])
    return ModelVersion.model_validate(fields)


class ModelRegistry:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        create_store(self.path, SCHEMA)

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self.path)

    # --- writing -------------------------------------------------------------

    def register(
        self,
        name: str,
        artifact: str,
        *,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Add the next version of ``name`` as a candidate."""
        now = time.time()
        with self._transaction() as db:
            (latest,) = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM versions WHERE name = ?", (name,)
            ).fetchone()
            version = latest + 1
            db.execute(
                "INSERT INTO versions (name, version, stage, artifact, metrics, params, lineage,"
                " created, updated) VALUES (?, ?, 'candidate', ?, ?, ?, ?, ?, ?)",
                (name, version, artifact, *_json(metrics, params, lineage), now, now),
            )
        return self.get(name, version)

    def record_metrics(self, name: str, version: int, metrics: dict[str, float]) -> ModelVersion:
        """Merge metrics into a version's (evaluation adds holdout metrics)."""
        current = self.get(name, version)
        merged = json.dumps({**current.metrics, **metrics})
        with self._transaction() as db:
            db.execute(
                "UPDATE versions SET metrics = ?, updated = ? WHERE name = ? AND version = ?",
                (merged, time.time(), name, version),
            )
        return self.get(name, version)

    def reject(self, name: str, version: int, note: str) -> ModelVersion:
        with self._transaction() as db:
            self._set_stage(db, name, version, "rejected", note)
        return self.get(name, version)

    def promote(self, name: str, version: int, *, why: str = "promote") -> ModelVersion:
        """Make ``version`` the champion; the old champion is archived."""
        with self._transaction() as db:
            self._require(db, name, version)
            previous = self._champion_version(db, name)
            if previous == version:
                return self.get(name, version)
            if previous is not None:
                self._set_stage(db, name, previous, "archived")
            self._set_stage(db, name, version, "champion")
            db.execute(
                "INSERT INTO promotions (name, version, previous, at, why) VALUES (?, ?, ?, ?, ?)",
                (name, version, previous, time.time(), why),
            )
        return self.get(name, version)

    def rollback(self, name: str) -> ModelVersion:
        """Return to the champion before the current one."""
        with self._transaction() as db:
            current = self._champion_version(db, name)
            row = db.execute(
                "SELECT previous FROM promotions WHERE name = ? AND version = ?"
                " ORDER BY rowid DESC LIMIT 1",
                (name, current),
            ).fetchone()
        if current is None or row is None or row["previous"] is None:
            raise NoChampionError(f"model {name!r} has no earlier champion to roll back to")
        return self.promote(name, row["previous"], why="rollback")

    # --- reading -------------------------------------------------------------

    def get(self, name: str, version: int) -> ModelVersion:
        with self._transaction() as db:
            return _row_to_version(self._require(db, name, version))

    def champion(self, name: str) -> ModelVersion | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT * FROM versions WHERE name = ? AND stage = 'champion'", (name,)
            ).fetchone()
        return _row_to_version(row) if row else None

    def champion_version(self, name: str) -> int | None:
        """The champion's version number alone: cheap enough to ask on every request."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            row = db.execute(
                "SELECT version FROM versions WHERE name = ? AND stage = 'champion'", (name,)
            ).fetchone()
        finally:
            db.close()
        return row[0] if row else None

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        query, args = "SELECT * FROM versions", tuple[str, ...]()
        if name is not None:
            query, args = query + " WHERE name = ?", (name,)
        with self._transaction() as db:
            rows = db.execute(query + " ORDER BY name, version", args).fetchall()
        return [_row_to_version(row) for row in rows]

    def history(self, name: str) -> list[dict[str, Any]]:
        """Promotions and rollbacks of a model, oldest first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT version, previous, at, why FROM promotions WHERE name = ? ORDER BY rowid",
                (name,),
            ).fetchall()
        return [dict(row) for row in rows]

    # --- helpers -------------------------------------------------------------

    def _require(self, db: sqlite3.Connection, name: str, version: int) -> sqlite3.Row:
        row = db.execute(
            "SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        if row is None:
            raise ModelNotFoundError(f"model {name!r} has no version {version}")
        return cast(sqlite3.Row, row)

    def _champion_version(self, db: sqlite3.Connection, name: str) -> int | None:
        row = db.execute(
            "SELECT version FROM versions WHERE name = ? AND stage = 'champion'", (name,)
        ).fetchone()
        return row[0] if row else None

    def _set_stage(
        self, db: sqlite3.Connection, name: str, version: int, stage: Stage, note: str | None = None
    ) -> None:
        self._require(db, name, version)
        db.execute(
            "UPDATE versions SET stage = ?, note = COALESCE(?, note), updated = ?"
            " WHERE name = ? AND version = ?",
            (stage, note, time.time(), name, version),
        )


def _json(*values: dict[str, Any] | None) -> tuple[str, ...]:
    return tuple(json.dumps(value or {}) for value in values)


def model_catalog(path: Path) -> list[dict[str, Any]]:
    """Every model in the registry at ``path``: its versions (stage, metrics, lineage) and
    promotion history, as the dashboard shows them (none when there is no registry yet)."""
    if not path.exists():
        return []
    registry = ModelRegistry(path)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for version in registry.versions():
        by_name.setdefault(version.name, []).append(version.model_dump())
    return [
        {"name": name, "versions": versions, "history": registry.history(name)}
        for name, versions in by_name.items()
    ]
