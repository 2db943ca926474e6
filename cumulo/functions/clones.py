"""What ``build_image`` may clone, how it clones, and what of a clone it may build.

::

    params:
      cloneUrl: https://git.example.com/shop/app.git    # always this repository, or
      repositories:                                      # the event's data.repository, if listed:
        - https://git.example.com/shop/                  #   a prefix (ends with "/")
        - /srv/git/models.git                            #   or one URL / path exactly

With neither declared nothing is cloned (``source: project`` still builds the
project folder). The event only chooses among what the spec allows. URLs and
refs that could be read as git options (a leading ``-``), ``..`` segments,
percent-escapes, whitespace and control characters are refused; a ref is a
commit SHA or a plain branch or tag name.

git runs with only the URL's own protocol allowed (``GIT_ALLOW_PROTOCOL``), no
terminal prompts, no hooks, no redirects, symlinks checked out as plain files,
and objects checked on the way in. Nothing of a clone is imported or run: its
functions come from its YAML, and :mod:`.clone_plans` keeps its build inside
the clone.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from cumulo.errors import BuildError, CapabilityError, PermanentError

CLONE_RULE: Final = (
    "build_image clones only repositories its spec names (params.cloneUrl, params.repositories)"
)
SCHEMES: Final = ("https", "http", "ssh", "git", "file")
SCP_LIKE: Final = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^:]*")  # git@host:org/repo.git
REF: Final = re.compile(r"[A-Za-z0-9._/-]{1,200}")
UNSAFE: Final = re.compile(r"[\x00-\x20\x7f%\\?#]")
MAX_URL: Final = 2048
GIT_TIMEOUT_S: Final = 600.0


def clone_url(clone: str | None, repositories: Sequence[str], asked: object) -> str:
    """The URL to clone: the spec's ``cloneUrl``, else ``asked`` if the allow-list has it."""
    url = clone or asked
    if not isinstance(url, str) or not url:
        raise PermanentError("build_image: the event names no repository (data.repository)")
    if not is_safe_url(url):
        raise CapabilityError(f"data.repository: not a plain git URL or path; {CLONE_RULE}")
    if clone is None and not any(_allows(pattern, url) for pattern in repositories):
        raise CapabilityError(f"data.repository: not allow-listed; {CLONE_RULE}")
    return url


def is_safe_url(url: str) -> bool:
    """A URL git reads as a URL (never an option), without escapes or ``..`` segments."""
    if len(url) > MAX_URL or url.startswith("-") or UNSAFE.search(url):
        return False
    if any(part in (".", "..") for part in url.split("/")[1:]):
        return False
    return protocol(url) is not None


def protocol(url: str) -> str | None:
    """The git protocol ``url`` speaks (``file`` for a local path), or None if none allowed."""
    if url.startswith("/"):
        return "file"
    if "://" in url:
        scheme = urlsplit(url).scheme
        return scheme if scheme in SCHEMES else None
    return "ssh" if SCP_LIKE.fullmatch(url) else None


def _allows(pattern: str, url: str) -> bool:
    """An entry ending in ``/`` allows what is below it; any other entry, itself."""
    if pattern.endswith("/"):
        return url.startswith(pattern) and len(url) > len(pattern)
    return url.rstrip("/") == pattern.rstrip("/")


def checked_ref(ref: object) -> str:
    """A commit SHA or a plain branch or tag name; else refused."""
    text = str(ref)
    parts = text.split("/")
    plain = (
        REF.fullmatch(text) is not None
        and not text.startswith("-")
        and ".." not in text
        and all(part and not part.startswith(".") and not part.endswith(".lock") for part in parts)
    )
    if not plain:
        raise CapabilityError("data.commit / data.branch: a commit SHA or a plain branch name")
    return text


def folder_name(url: str) -> str:
    """The repository's name (``shop`` of ``…/shop.git``), as a safe folder name."""
    last = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    return re.sub(r"[^A-Za-z0-9._-]", "-", last).lstrip(".-") or "project"


def clone_at(url: str, ref: str, folder: Path) -> None:
    """``folder`` holds ``url`` checked out at ``ref`` (a clone already there is reused)."""
    allowed = protocol(url)
    assert allowed is not None  # clone_url checked it
    if not (folder / ".git").exists():
        local = ["--no-local"] if allowed == "file" else []
        git(allowed, "clone", "--quiet", "--no-checkout", *local, "--", url, str(folder))
    commit = resolve(allowed, folder, ref)
    git(allowed, "-C", str(folder), "checkout", "--quiet", "--force", "--detach", commit)


def resolve(allowed: str, folder: Path, ref: str) -> str:
    """The commit ``ref`` names in the clone: itself, a local or a remote branch, a tag."""
    for name in (ref, f"origin/{ref}"):
        try:
            return git(allowed, "-C", str(folder), "rev-parse", "--verify", "--quiet",
                       "--end-of-options", f"{name}^{{commit}}")  # fmt: skip
        except BuildError:
            continue
    raise PermanentError(f"build_image: the repository has no commit or branch {ref!r}")


def git(allowed: str, *args: str) -> str:
    """Run git with the hardening above; its output, or a :class:`BuildError`."""
    command = [*git_environment(allowed), "git", *GIT_CONFIG, *args]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:g}s") from e
    if done.returncode != 0:
        raise BuildError(
            f"git {_verb(args)} failed: {(done.stderr or done.stdout).strip()[-1000:]}"
        )
    return done.stdout.strip()


def git_environment(allowed: str) -> list[str]:
    """``env NAME=value …``: set for git alone (this process's environment is left as it is)."""
    return [
        "env", "GIT_TERMINAL_PROMPT=0", f"GIT_ALLOW_PROTOCOL={allowed}", "GIT_CONFIG_NOSYSTEM=1",
        "GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false",
    ]  # fmt: skip


GIT_CONFIG: Final = (
    "-c", "core.hooksPath=/dev/null", "-c", "core.symlinks=false", "-c", "core.fsmonitor=false",
    "-c", "http.followRedirects=false", "-c", "transfer.fsckObjects=true",
    "-c", "submodule.recurse=false", "-c", "credential.interactive=never",
    "-c", "core.sshCommand=ssh -o BatchMode=yes",
)  # fmt: skip


def _verb(args: Sequence[str]) -> str:
    return next((a for a in args if not a.startswith("-") and "/" not in a), "command")
