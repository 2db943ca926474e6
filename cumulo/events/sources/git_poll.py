"""The git source's ``poll`` provider: ``git ls-remote`` every ``interval``.

For each branch matching the source's ``branches`` (all when none), a head
commit that differs from the last one announced is published as
``dev.cumulo.git.push`` with ``source`` = the repository, ``subject`` = the
branch, ``id`` = ``<branch>@<commit>`` and ``data`` = ``{repository, branch,
commit, before, provider: "poll"}``. The last commit announced per branch is a
checkpoint, saved only once the event is on the bus: a restart does not
announce a commit again, and does announce one pushed while it was down. A
branch seen for the first time is announced with ``before`` =
``0000…`` (as GitHub reports a new branch).

Anything ``git`` can reach works (a path, ``file://``, ``https://``, ``ssh://``);
git never prompts for credentials here: it fails, the failure is logged and
counted, and the next poll tries again.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from dataclasses import dataclass

from cumulo.errors import BusError, SourceError
from cumulo.events.event import Event, new_event
from cumulo.events.sources import SOURCE_EXTENSION
from cumulo.events.sources.cron import Checkpoints, Publish
from cumulo.events.sources.git import BRANCH_PREFIX, DEFAULT_TYPE, NO_COMMIT, matches
from cumulo.spec.models import EventSource

log = logging.getLogger("cumulo.sources")

LS_REMOTE_TIMEOUT = 60.0
GIT = ("git", "-c", "core.askPass=false", "-c", "credential.helper=")


@dataclass
class PollStats:
    polls: int = 0
    published: int = 0
    errors: int = 0


def parse_heads(output: str) -> dict[str, str]:
    """``{branch: commit}`` from ``git ls-remote --heads`` output."""
    heads = {}
    for line in output.splitlines():
        commit, _, ref = line.partition("\t")
        if ref.startswith(BRANCH_PREFIX):
            heads[ref.removeprefix(BRANCH_PREFIX)] = commit
    return heads


async def ls_remote(repository: str) -> dict[str, str]:
    """The branch heads of ``repository``; :class:`SourceError` when git cannot say."""
    try:
        process = await asyncio.create_subprocess_exec(
            *GIT,
            "ls-remote",
            "--heads",
            repository,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as e:
        raise SourceError(f"cannot run git: {e}") from e
    try:
        out, err = await asyncio.wait_for(process.communicate(), LS_REMOTE_TIMEOUT)
    except TimeoutError as e:
        process.kill()
        await process.wait()
        raise SourceError(f"git ls-remote {repository} took over {LS_REMOTE_TIMEOUT:g}s") from e
    if process.returncode != 0:
        reason = err.decode(errors="replace").strip()
        raise SourceError(f"git ls-remote {repository} failed: {reason}")
    return parse_heads(out.decode(errors="replace"))


class GitPoller:
    kind = "git"

    def __init__(self, source: EventSource, publish: Publish, checkpoints: Checkpoints):
        spec = source.spec.git
        assert spec is not None and spec.repository
        self.name = source.name
        self.repository = spec.repository
        self.branches = spec.branches
        self.interval = spec.interval
        self.type = source.spec.type or DEFAULT_TYPE
        self.publish = publish
        self.checkpoints = checkpoints
        self.stats = PollStats()

    def _key(self, branch: str) -> str:
        return f"git/{self.name}/{branch}"

    def event_for(self, branch: str, commit: str, before: str | None) -> Event:
        data = {
            "repository": self.repository,
            "branch": branch,
            "commit": commit,
            "before": before or NO_COMMIT,
            "provider": "poll",
        }
        return new_event(
            self.type,
            self.repository,
            data,
            id=f"{branch}@{commit}",
            subject=branch,
            **{SOURCE_EXTENSION: self.name},
        )

    def changes(self, heads: dict[str, str]) -> list[Event]:
        """An event for each watched branch whose head moved since it was last announced."""
        events = []
        for branch, commit in sorted(heads.items()):
            before = self.checkpoints.load(self._key(branch))
            if matches(branch, self.branches) and before != commit:
                events.append(self.event_for(branch, commit, before))
        return events

    async def poll_once(self) -> int:
        """Look once; publish what moved; return how many events were published."""
        self.stats.polls += 1
        events = self.changes(await ls_remote(self.repository))
        if events:
            await self.publish(events)
            for event in events:
                self.checkpoints.save(self._key(event.subject), event.data["commit"])
            self.stats.published += len(events)
            log.info("source %s: %d branch(es) moved", self.name, len(events))
        return len(events)

    async def run(self) -> None:
        """Poll every ``interval`` until cancelled; a failed poll is logged and retried."""
        while True:
            try:
                await self.poll_once()
            except (SourceError, BusError) as e:
                self.stats.errors += 1
                log.warning("source %s: %s", self.name, e)
            await asyncio.sleep(self.interval)
