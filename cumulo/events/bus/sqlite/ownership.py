"""Who owns a bus file's leases: the process holding an ``flock`` on ``<file>.lock``."""

from __future__ import annotations

import os
from pathlib import Path

from cumulo.errors import BusUnavailableError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: every bus counts as the owner
    fcntl = None  # type: ignore[assignment]


class OwnerLock:
    """An ``flock`` on ``<bus file>.lock``: the holder owns the file's leases.

    The kernel drops the lock when its process dies, even by ``kill -9``.
    """

    def __init__(self, path: Path):
        self.path = path
        self.held = False
        self._fd: int | None = None

    @classmethod
    def beside(cls, bus_file: Path) -> OwnerLock:
        """The lock of ``bus_file``: the same name with ``.lock`` added."""
        return cls(bus_file.with_name(bus_file.name + ".lock"))

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; whether this process now owns the leases."""
        if fcntl is None:  # pragma: no cover - no flock (Windows): assume one process per file
            self.held = True
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise BusUnavailableError(
                f"cannot open the owner lock: {e}", address=str(self.path)
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd, self.held = fd, True
        return True

    def release(self) -> None:
        """Give the leases up (a lock not held is left alone)."""
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
        self._fd, self.held = None, False
