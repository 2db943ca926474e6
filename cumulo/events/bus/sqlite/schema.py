"""The tables of a bus file, and the version this Cumulo writes."""

from __future__ import annotations

from cumulo.errors import BusError
from cumulo.events.bus.sqlite.writer import Txn

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    offset INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after trim
    topic TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    published_at REAL NOT NULL, body BLOB NOT NULL  -- CloudEvents JSON format
);
CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic, offset);
CREATE TABLE IF NOT EXISTS dedup (
    topic TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL,
    offset INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (topic, source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_time ON dedup (at);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY, topic TEXT NOT NULL, cursor INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS groups_by_topic ON groups (topic);
CREATE TABLE IF NOT EXISTS deliveries (
    grp TEXT NOT NULL, offset INTEGER NOT NULL, attempts INTEGER NOT NULL,
    due REAL NOT NULL, leased INTEGER NOT NULL, error TEXT, PRIMARY KEY (grp, offset)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_due ON deliveries (grp, due)
"""


def create_schema(txn: Txn) -> None:
    """Create the tables a new file lacks; a file from a newer Cumulo is refused."""
    (version,) = txn.conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise BusError(f"bus schema version {version} is newer than this Cumulo understands")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            txn.conn.execute(statement)
    txn.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
