"""sqlite3's errors in Cumulo's terms: a locked, missing or full file is unavailable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cumulo.errors import BusError, BusUnavailableError

UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
    }
)


def translate(error: BaseException, path: Path) -> BaseException:
    """sqlite3 errors become Cumulo's; anything else (a filter raising) passes through."""
    if not isinstance(error, sqlite3.Error):
        return error
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    if code in UNAVAILABLE_CODES:
        translated: BusError = BusUnavailableError(f"sqlite bus: {error}", address=str(path))
    else:
        translated = BusError(f"sqlite bus {path}: {error}")
    translated.__cause__ = error
    return translated


def transaction_failed(error: BaseException, path: Path) -> BaseException:
    """What each caller of a lost transaction gets: Cumulo's error, never a bare one."""
    translated = translate(error, path)
    if translated is error:
        translated = BusError(f"sqlite bus {path}: transaction failed: {error!r}")
        translated.__cause__ = error
    return translated
