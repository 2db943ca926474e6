"""build_image's clones: only what the spec allow-lists, never read as options, checked out safely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cumulo.errors import CapabilityError, PermanentError
from cumulo.functions.clones import checked_ref, clone_at, clone_url, folder_name
from tests.events.sources.gitrepo import Remote, git

ALLOWED = ["https://git.example.com/shop/", "/srv/git/models.git"]


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/shop/app.git",
        "https://git.example.com/shop/team/app",
        "/srv/git/models.git",
        "/srv/git/models.git/",
    ],
)
def test_the_allow_list_admits_its_urls_and_what_is_below_its_prefixes(url: str):
    assert clone_url(None, ALLOWED, url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/shopping/app.git",  # a prefix ends at its "/"
        "https://git.example.com/shop/",  # the prefix itself is no repository
        "https://git.example.com/shop/../admin/app.git",
        "https://git.example.com/shop/%2e%2e/admin.git",
        "http://127.0.0.1:8080/internal/admin.git",
        "/srv/git/models.git.bak",
        "/srv/git/other.git",
    ],
)
def test_anything_else_is_refused_naming_the_rule(url: str):
    with pytest.raises(CapabilityError, match=r"params.cloneUrl, params.repositories"):
        clone_url(None, ALLOWED, url)


@pytest.mark.parametrize(
    "url",
    [
        "--upload-pack=touch /tmp/owned",
        "-uhello",
        "ext::sh -c touch% /tmp/owned",
        "https://git.example.com/shop/app.git --upload-pack=x",
        "https://git.example.com/shop/a\nb",
        "fd::3",
    ],
)
def test_urls_git_could_read_as_options_or_commands_are_refused(url: str):
    with pytest.raises(CapabilityError, match="not a plain git URL or path"):
        clone_url(None, ["-", "e", "f", *ALLOWED], url)


def test_nothing_is_cloned_when_the_spec_allows_nothing():
    with pytest.raises(CapabilityError, match="not allow-listed"):
        clone_url(None, [], "https://git.example.com/shop/app.git")


def test_the_specs_clone_url_wins_over_the_events_repository():
    assert clone_url("/srv/git/app.git", [], "/srv/git/evil.git") == "/srv/git/app.git"


def test_an_event_without_a_repository_is_permanent():
    with pytest.raises(PermanentError, match="names no repository"):
        clone_url(None, ALLOWED, None)


@pytest.mark.parametrize("ref", ["main", "feature/login", "v1.2.0", "HEAD", "0123abcd" * 5])
def test_plain_refs_are_taken(ref: str):
    assert checked_ref(ref) == ref


@pytest.mark.parametrize(
    "ref", ["-x", "--upload-pack=touch x", "a..b", ".hidden", "x.lock", "a b", "", "a//b", "x/"]
)
def test_refs_that_are_options_or_odd_are_refused(ref: str):
    with pytest.raises(CapabilityError, match="a commit SHA or a plain branch name"):
        checked_ref(ref)


def test_a_folder_is_named_as_the_repository():
    assert folder_name("https://git.example.com/shop.git") == "shop"
    assert folder_name("git@git.example.com:team/shop.git") == "shop"
    assert folder_name("/srv/git/..hidden") == "hidden"


def test_a_clone_checks_out_a_branch_or_commit_with_links_as_plain_files(tmp_path: Path):
    remote = Remote(tmp_path / "remote")
    os.symlink("/etc/passwd", remote.work / "requirements.txt")
    git("add", "requirements.txt", cwd=remote.work)
    first = remote.push("first")
    second = remote.push("second")

    clone_at(str(remote.bare), first, tmp_path / "at-first")
    clone_at(str(remote.bare), "main", tmp_path / "at-main")

    assert (tmp_path / "at-first/history.txt").read_text() == "first\n"
    assert (tmp_path / "at-main/history.txt").read_text() == "first\nsecond\n"
    link = tmp_path / "at-main/requirements.txt"
    assert not link.is_symlink() and link.read_text() == "/etc/passwd"
    assert git("rev-parse", "HEAD", cwd=tmp_path / "at-main") == second


def test_a_ref_the_repository_lacks_is_permanent(tmp_path: Path):
    remote = Remote(tmp_path / "remote")
    remote.push("first")
    with pytest.raises(PermanentError, match="no commit or branch 'nope'"):
        clone_at(str(remote.bare), "nope", tmp_path / "clone")
