"""Error translation: real sqlite3 errors become BusUnavailableError or BusError; others pass."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cumulo.errors import BusError, BusUnavailableError
from cumulo.events.bus.sqlite.errors import transaction_failed, translate


def caught(action: object) -> sqlite3.Error:
    """The sqlite3 error ``action()`` raises."""
    with pytest.raises(sqlite3.Error) as error:
        action()  # type: ignore[operator]
    return error.value


def test_a_file_locked_by_another_connection_is_unavailable_at_its_path(tmp_path: Path):
    path = tmp_path / "bus.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    error = caught(lambda: other.execute("BEGIN IMMEDIATE"))
    translated = translate(error, path)
    assert isinstance(translated, BusUnavailableError)
    assert translated.address == str(path) and translated.__cause__ is error
    holder.close()
    other.close()


def test_a_file_that_cannot_be_opened_or_written_is_unavailable(tmp_path: Path):
    missing = tmp_path / "no-such-folder" / "bus.db"
    unopened = caught(lambda: sqlite3.connect(missing))
    assert isinstance(translate(unopened, missing), BusUnavailableError)
    path = tmp_path / "bus.db"
    sqlite3.connect(path).close()
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    error = caught(lambda: read_only.execute("CREATE TABLE t (x)"))
    assert isinstance(translate(error, path), BusUnavailableError)
    read_only.close()


def test_an_extended_code_counts_by_its_primary_code(tmp_path: Path):
    path = tmp_path / "bus.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    path.rename(tmp_path / "moved.db")  # the file moved under an open connection
    error = caught(lambda: conn.execute("INSERT INTO t VALUES (1)"))
    assert error.sqlite_errorcode == sqlite3.SQLITE_READONLY_DBMOVED
    assert isinstance(translate(error, path), BusUnavailableError)
    conn.close()


def test_other_sqlite_errors_are_bus_errors_naming_the_file(tmp_path: Path):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    error = caught(lambda: conn.execute("INSERT INTO t VALUES (1)"))
    translated = translate(error, tmp_path / "bus.db")
    assert type(translated) is BusError and str(tmp_path / "bus.db") in str(translated)
    assert translated.__cause__ is error


def test_an_error_that_is_not_sqlites_passes_through_unchanged(tmp_path: Path):
    error = ZeroDivisionError("a trigger filter divided by zero")
    assert translate(error, tmp_path / "bus.db") is error


def test_a_lost_transaction_always_gives_a_bus_error(tmp_path: Path):
    error = ZeroDivisionError("boom")
    failed = transaction_failed(error, tmp_path / "bus.db")
    assert isinstance(failed, BusError) and failed.__cause__ is error
    assert "transaction failed" in str(failed)
    # each caller of a lost transaction gets an exception of its own
    assert transaction_failed(error, tmp_path / "bus.db") is not failed
