"""Real git repositories for the poll tests: a bare remote and a clone that pushes to it."""

from __future__ import annotations

import subprocess
from pathlib import Path

IDENTITY = ["-c", "user.name=Cumulo Tests", "-c", "user.email=tests@cumulo.invalid"]


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


class Remote:
    """A bare repository at ``bare`` and a working clone at ``work``."""

    def __init__(self, root: Path):
        self.bare = root / "remote.git"
        self.work = root / "work"
        root.mkdir(parents=True, exist_ok=True)
        git("init", "--bare", "--initial-branch=main", str(self.bare), cwd=root)
        git("clone", str(self.bare), str(self.work), cwd=root)
        git("checkout", "-B", "main", cwd=self.work)

    def push(self, message: str, branch: str = "main") -> str:
        """Commit a change on ``branch`` and push it; return the new commit."""
        git("checkout", "-B", branch, cwd=self.work)
        with (self.work / "history.txt").open("a") as history:
            history.write(message + "\n")
        git("add", "history.txt", cwd=self.work)
        git("commit", "-m", message, cwd=self.work)
        git("push", "origin", branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)
