"""The git poll provider against real bare repositories and real pushes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cumulo.errors import SourceError
from cumulo.events.sources.git_poll import GitPoller, ls_remote
from cumulo.runtimes.local.checkpoints import SqliteCheckpoints
from cumulo.spec.models import EventSource
from tests.events.sources.gitrepo import Remote


def poll_source(repository: Path, **spec) -> EventSource:
    git = {"provider": "poll", "repository": str(repository), "interval": "50ms", **spec}
    return EventSource.model_validate({"metadata": {"name": "poller"}, "spec": {"git": git}})


@pytest.fixture
def checkpoints(tmp_path: Path):
    store = SqliteCheckpoints(tmp_path / "checkpoints.db")
    yield store
    store.close()


async def test_a_restart_announces_what_was_pushed_while_down_and_nothing_again(
    tmp_path, recorder, checkpoints
):
    remote = Remote(tmp_path / "git")
    a = remote.push("A")
    first = GitPoller(poll_source(remote.bare), recorder, checkpoints)
    assert await first.poll_once() == 1
    assert await first.poll_once() == 0  # nothing moved

    b = remote.push("B")  # while no poller runs
    restarted = SqliteCheckpoints(tmp_path / "checkpoints.db")  # what a new process opens
    second = GitPoller(poll_source(remote.bare), recorder, restarted)
    assert await second.poll_once() == 1
    assert await second.poll_once() == 0
    restarted.close()

    announced = [(e.subject, e.data["commit"], e.data["before"]) for e in recorder.events]
    assert announced == [("main", a, "0" * 40), ("main", b, a)]
    event = recorder.events[1]
    assert event.type == "dev.cumulo.git.push"
    assert event.source == str(remote.bare)
    assert event.id == f"main@{b}"


async def test_only_matching_branches_are_watched(tmp_path, recorder, checkpoints):
    remote = Remote(tmp_path / "git")
    remote.push("main work")
    release = remote.push("a release", branch="release/1.0")
    remote.push("an experiment", branch="experiment")
    poller = GitPoller(poll_source(remote.bare, branches=["release/*"]), recorder, checkpoints)
    await poller.poll_once()
    assert [(e.subject, e.data["commit"]) for e in recorder.events] == [("release/1.0", release)]


async def test_an_unreachable_repository_is_a_source_error_naming_it(
    tmp_path, recorder, checkpoints
):
    missing = tmp_path / "nowhere.git"
    with pytest.raises(SourceError, match=r"nowhere\.git"):
        await ls_remote(str(missing))
    poller = GitPoller(poll_source(missing), recorder, checkpoints)
    task = asyncio.create_task(poller.run())
    while poller.stats.errors < 2:  # it keeps trying
        await asyncio.sleep(0.02)
    task.cancel()
    assert recorder.events == []


def test_poll_needs_a_repository_and_no_paths():
    with pytest.raises(ValueError, match="needs a repository"):
        EventSource.model_validate(
            {"metadata": {"name": "p"}, "spec": {"git": {"provider": "poll"}}}
        )
    with pytest.raises(ValueError, match="webhook providers only"):
        poll_source(Path("/x"), paths=["src/*"])
