"""Push deliveries of GitHub, GitLab and Gitea (their real payloads) mapped to CloudEvents."""

from __future__ import annotations

import json

import pytest

from cumulo.errors import InvalidEventError
from cumulo.events.sources.git import GitWebhookSource, parse_push
from cumulo.events.sources.webhook import Delivery
from cumulo.spec.models import EventSource
from tests.events.sources.conftest import payload, sign


def git_source(**spec) -> EventSource:
    return EventSource.model_validate({"metadata": {"name": "repo"}, "spec": {"git": spec}})


def test_github_push_maps_repository_branch_commit_and_changed_paths():
    push = parse_push("github", json.loads(payload("github")))
    assert push.repository == "https://github.com/binkkatal/sample_app"
    assert push.branch == "master"
    assert push.commit == "fd489864e7642b48eaad6e3f155c10e46810ec72"
    assert push.before == "737d38c599c1b2991664dfc6155d6bf516fcce36"
    assert push.changed_paths == [".razorops.yaml", "app/controllers/application_controller.rb"]


def test_gitlab_and_gitea_pushes_map_too():
    lab = parse_push("gitlab", json.loads(payload("gitlab")))
    assert lab.repository == "http://example.com/mike/diaspora"
    assert (lab.branch, lab.commit) == ("master", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7")
    assert lab.pusher == "John Smith"  # no user_username in this payload: user_name
    assert "CHANGELOG" in lab.changed_paths and len(set(lab.changed_paths)) == len(
        lab.changed_paths
    )
    tea = parse_push("gitea", json.loads(payload("gitea")))
    assert tea.repository == "http://localhost:3000/example/example"
    assert (tea.changed_paths, tea.before) == (["example"], "0" * 40)


def test_a_body_that_is_no_push_says_what_is_missing():
    with pytest.raises(InvalidEventError) as raised:
        parse_push("github", {"zen": "Keep it logically awesome."})
    assert "ref" in str(raised.value) and "repository" in str(raised.value)
    with pytest.raises(InvalidEventError, match="JSON object"):
        parse_push("github", [1, 2])


async def test_signed_github_push_publishes_one_event(recorder, deliveries):
    body = payload("github")
    source = GitWebhookSource(git_source(provider="github"), recorder, deliveries, "s")
    headers = {
        "x-github-event": "push",
        "x-github-delivery": "d-1",
        "x-hub-signature-256": "sha256=" + sign("s", body),
    }
    reply = await source.handle(Delivery(headers, body))
    again = await source.handle(Delivery(headers, body))

    assert reply.body == {"accepted": 1, "ids": ["d-1"]}
    assert again.body["duplicate"] is True
    [event] = recorder.events
    assert event.type == "dev.cumulo.git.push"
    assert event.source == "https://github.com/binkkatal/sample_app"
    assert (event.subject, event.attributes["cumulosource"]) == ("master", "repo")
    assert event.data["provider"] == "github"
    assert event.data["pusher"] == "binkkatal"


async def test_gitlab_without_an_event_uuid_is_identified_by_its_body(recorder, deliveries):
    body = payload("gitlab")
    source = GitWebhookSource(git_source(provider="gitlab"), recorder, deliveries, "tok")
    headers = {"x-gitlab-event": "Push Hook", "x-gitlab-token": "tok"}
    await source.handle(Delivery(headers, body))
    await source.handle(Delivery(headers, body))
    [event] = recorder.events
    assert len(event.id) == 64


@pytest.mark.parametrize(
    ("spec", "note"),
    [
        ({"branches": ["main", "release/*"]}, "branch 'master' matches none"),
        ({"paths": ["docs/**"]}, "no changed path matches"),
        ({"repository": "https://github.com/someone/else"}, "not https://github.com/someone/else"),
    ],
)
async def test_filters_leave_pushes_out_with_a_note(recorder, deliveries, spec, note):
    source = GitWebhookSource(git_source(provider="gitea", **spec), recorder, deliveries, None)
    reply = await source.handle(Delivery({"x-gitea-event": "push"}, payload("gitea")))
    assert reply.status == 202
    assert note in reply.body["note"]
    assert recorder.events == []
    assert source.stats.ignored == 1


async def test_filters_that_match_keep_the_push(recorder, deliveries):
    spec = {
        "branches": ["mast*"],
        "paths": ["app/**/*.rb"],
        "repository": "git@github.com:binkkatal/sample_app.git",
    }
    source = GitWebhookSource(git_source(provider="github", **spec), recorder, deliveries, None)
    await source.handle(Delivery({"x-github-event": "push"}, payload("github")))
    assert len(recorder.events) == 1


async def test_a_ping_is_answered_and_not_published(recorder, deliveries):
    source = GitWebhookSource(git_source(provider="github"), recorder, deliveries, None)
    reply = await source.handle(Delivery({"x-github-event": "ping"}, b"{}"))
    assert reply.status == 202 and "'ping'" in reply.body["note"]
    assert recorder.events == []


def changed(provider: str, change) -> dict:
    body = json.loads(payload(provider))
    change(body)
    return body


@pytest.mark.parametrize(
    ("provider", "change", "problem"),
    [
        ("github", lambda p: p.update(commits=["x"]), r"commits\[0\]: must be an object"),
        ("gitlab", lambda p: p.update(commits=[1]), r"commits\[0\]: must be an object"),
        ("github", lambda p: p.update(commits={}), r"commits: must be an array"),
        (
            "github",
            lambda p: p["commits"][0].update(added="a.txt"),
            r"commits\[0\]\.added: must be",
        ),
        ("gitea", lambda p: p["commits"][0].update(modified=[3]), r"commits\[0\]\.modified\[0\]"),
        ("github", lambda p: p.update(pusher=7), r"pusher: must be an object"),
        ("github", lambda p: p["pusher"].update(name=[]), r"pusher\.name: must be a string"),
        ("github", lambda p: p.update(ref=5), r"ref: must be a string"),
        ("github", lambda p: p.update(before={}), r"before: must be a string"),
        ("github", lambda p: p.update(repository="x"), r"repository: must be an object"),
        ("gitlab", lambda p: p["project"].update(web_url=1), r"project\.web_url: must be a string"),
        ("gitlab", lambda p: p.update(user_name=False), r"user_name: must be a string"),
    ],
)
def test_wrong_types_are_invalid_and_name_the_field(provider, change, problem):
    with pytest.raises(InvalidEventError, match=problem) as raised:
        parse_push(provider, changed(provider, change))
    assert len(raised.value.problems) == 1


def test_many_wrong_fields_are_listed_up_to_a_limit():
    with pytest.raises(InvalidEventError) as raised:
        parse_push("github", changed("github", lambda p: p.update(commits=[1] * 50)))
    assert raised.value.problems[:2] == [
        "commits[0]: must be an object",
        "commits[1]: must be an object",
    ]
    assert raised.value.problems[-1] == "... and 40 more"


async def test_the_same_body_under_a_new_delivery_id_is_a_replay(recorder, deliveries):
    body = payload("github")
    source = GitWebhookSource(git_source(provider="github"), recorder, deliveries, "s")
    signed = {"x-github-event": "push", "x-hub-signature-256": "sha256=" + sign("s", body)}
    first = await source.handle(Delivery({**signed, "x-github-delivery": "d-1"}, body))
    replay = await source.handle(Delivery({**signed, "x-github-delivery": "d-2"}, body))
    unlabelled = await source.handle(Delivery(signed, body))

    assert first.body["accepted"] == 1
    for again in (replay, unlabelled):
        assert again.status == 202 and again.body["duplicate"] is True
        assert again.body["note"].startswith("replayed delivery: the same body was published at")
    assert [e.id for e in recorder.events] == ["d-1"]
    assert (source.stats.duplicates, source.stats.replays) == (2, 2)
