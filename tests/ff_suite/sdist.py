"""Fetch the source distribution of the installed functions-framework and find its tests.

The sdist is downloaded once with pip (`--no-binary :all:` so pip takes the sdist, not the
wheel, which has no tests) and unpacked under ~/.cache/cumulo-ff/ (or $CUMULO_FF_CACHE);
later runs reuse the unpacked folder. Unpacking goes to a temporary folder first and is then
renamed into place, so a run that is interrupted never leaves half a tree to be reused.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DISTRIBUTION = "functions-framework"
_UNPACKED_PREFIX = "functions_framework-"


def installed_version() -> str:
    """The functions-framework version installed next to Cumulo."""
    return importlib.metadata.version(DISTRIBUTION)


def cache_root() -> Path:
    """Where sdists are kept between runs."""
    configured = os.environ.get("CUMULO_FF_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "cumulo-ff"


def sdist_tests_folder(version: str | None = None) -> Path:
    """The `tests/` folder of the functions-framework sdist, downloaded when not cached."""
    version = version or installed_version()
    unpacked = cache_root() / f"{_UNPACKED_PREFIX}{version}"
    if not (unpacked / "tests").is_dir():
        _download_and_unpack(version, unpacked)
    return unpacked / "tests"


def _download_and_unpack(version: str, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
        archive = _download(version, Path(scratch))
        staging = Path(scratch) / "unpacked"
        _unpack(archive, staging)
        top = _single_top_folder(staging)
        if destination.exists():  # an older, incomplete copy
            shutil.rmtree(destination, ignore_errors=True)
        try:
            top.rename(destination)
        except OSError:
            if not (destination / "tests").is_dir():  # not a concurrent run that won
                raise


def _download(version: str, folder: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-binary",
        ":all:",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        f"{DISTRIBUTION}=={version}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip download of {DISTRIBUTION}=={version} failed:\n{done.stderr}")
    archives = sorted(folder.glob("*.tar.gz"))
    if len(archives) != 1:
        raise RuntimeError(f"expected one sdist in {folder}, found {archives}")
    return archives[0]


def _unpack(archive: Path, folder: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")


def _single_top_folder(folder: Path) -> Path:
    entries = list(folder.iterdir())
    if len(entries) != 1 or not entries[0].is_dir():
        raise RuntimeError(f"unexpected sdist layout in {folder}: {entries}")
    return entries[0]
