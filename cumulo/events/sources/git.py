"""The git source: push webhooks from GitHub, GitLab and Gitea become ``dev.cumulo.git.push``.

=================  =========================================================
attribute          value
=================  =========================================================
``type``           ``dev.cumulo.git.push`` (or the source's ``type``)
``source``         the repository's web URL (GitHub/Gitea ``html_url``,
                   GitLab ``project.web_url``)
``subject``        the branch (``refs/heads/main`` → ``main``)
``id``             the delivery id: ``X-GitHub-Delivery``, ``X-Gitea-Delivery``,
                   ``X-Gitlab-Event-UUID``, else the SHA-256 of the body
``cumulosource``   the EventSource's name
``data``           ``{repository, branch, commit, before, pusher,
                   changedPaths, provider}``
=================  =========================================================

``changedPaths`` is every path added, modified or removed across the push's
commits, once each, in order. Deliveries that are not branch pushes (GitHub's
``ping``, tags, branch deletions), pushes of another ``repository`` than the
source's, and pushes whose branch or changed paths match none of the source's
``branches`` / ``paths`` glob patterns (``fnmatch``: ``*`` also matches ``/``)
are answered 202 with a ``note`` and publish nothing. A delivery id seen
before is published once (see :mod:`cumulo.events.sources.webhook`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from cumulo.errors import InvalidEventError
from cumulo.events.event import Event, new_event
from cumulo.events.sources.cron import Publish
from cumulo.events.sources.webhook import (
    SOURCE_EXTENSION,
    Delivery,
    DeliveryLog,
    Headers,
    HttpSource,
    Mapped,
    load_json,
    verifier,
)
from cumulo.spec.models import EventSource

DEFAULT_TYPE = "dev.cumulo.git.push"
BRANCH_PREFIX = "refs/heads/"
NO_COMMIT = "0" * 40

# provider: (event header, delivery id header)
HEADERS = {
    "github": ("x-github-event", "x-github-delivery"),
    "gitea": ("x-gitea-event", "x-gitea-delivery"),
    "gitlab": ("x-gitlab-event", "x-gitlab-event-uuid"),
}
PUSH_EVENTS = {"push", "Push Hook"}
REPOSITORY_KEYS = (
    "html_url",
    "web_url",
    "homepage",
    "url",
    "clone_url",
    "git_url",
    "ssh_url",
    "git_http_url",
    "git_ssh_url",
    "http_url",
    "full_name",
    "path_with_namespace",
)


@dataclass(frozen=True)
class Push:
    provider: str
    repository: str
    names: frozenset[str]
    ref: str
    before: str | None
    commit: str
    pusher: str | None
    changed_paths: list[str]

    @property
    def branch(self) -> str:
        return self.ref.removeprefix(BRANCH_PREFIX)


def matches(value: str, patterns: list[str]) -> bool:
    """Whether ``value`` matches one of the glob ``patterns`` (none: everything)."""
    return not patterns or any(fnmatchcase(value, pattern) for pattern in patterns)


def _normal(url: str) -> str:
    return url.strip().rstrip("/").removesuffix(".git").lower()


def _repositories(provider: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    wanted = ("project", "repository") if provider == "gitlab" else ("repository",)
    return [payload[key] for key in wanted if isinstance(payload.get(key), dict)]


def _pusher(provider: str, payload: dict[str, Any]) -> str | None:
    if provider == "gitlab":
        return payload.get("user_username") or payload.get("user_name")
    pusher = payload.get("pusher") or {}
    return pusher.get("login") or pusher.get("username") or pusher.get("name") or None


def _changed_paths(commits: Any) -> list[str]:
    paths: dict[str, None] = {}
    for commit in commits if isinstance(commits, list) else []:
        for key in ("added", "modified", "removed"):
            paths.update(dict.fromkeys(p for p in commit.get(key) or [] if isinstance(p, str)))
    return list(paths)


def parse_push(provider: str, payload: Any) -> Push:
    """The push a provider's delivery body describes; :class:`InvalidEventError` if none."""
    if not isinstance(payload, dict):
        raise InvalidEventError([f"a push delivery is a JSON object, not {type(payload).__name__}"])
    missing = [k for k in ("ref", "after") if not isinstance(payload.get(k), str)]
    repos = _repositories(provider, payload)
    names = {v for repo in repos for k in REPOSITORY_KEYS if isinstance(v := repo.get(k), str)}
    url = next(
        (
            r.get(k)
            for r in repos
            for k in ("html_url", "web_url", "homepage")
            if isinstance(r.get(k), str)
        ),
        None,
    )
    if url is None:
        missing.append("repository (its web URL)")
    if missing:
        raise InvalidEventError([f"the push delivery has no {m}" for m in missing])
    return Push(
        provider=provider,
        repository=str(url),
        names=frozenset(_normal(n) for n in names),
        ref=payload["ref"],
        before=payload.get("before"),
        commit=payload["after"],
        pusher=_pusher(provider, payload),
        changed_paths=_changed_paths(payload.get("commits")),
    )


def delivery_id(provider: str, headers: Headers, body: bytes) -> str:
    return headers.get(HEADERS[provider][1]) or hashlib.sha256(body).hexdigest()


class GitWebhookSource(HttpSource):
    """Push webhooks of one provider (``github``, ``gitlab`` or ``gitea``)."""

    kind = "git"

    def __init__(
        self, source: EventSource, publish: Publish, deliveries: DeliveryLog, secret: str | None
    ):
        spec = source.spec.git
        assert spec is not None and spec.provider in HEADERS
        verify = verifier(spec.provider, secret)
        super().__init__(source.name, publish, deliveries, verify, spec.max_body_bytes)
        self.spec = spec
        self.type = source.spec.type or DEFAULT_TYPE

    def map(self, delivery: Delivery) -> Mapped:
        kind = delivery.headers.get(HEADERS[self.spec.provider][0], "push")
        if kind not in PUSH_EVENTS:
            return Mapped([], note=f"'{kind}' deliveries are not pushes: nothing published")
        push = parse_push(self.spec.provider, load_json(delivery.body, "the delivery"))
        if note := self.left_out(push):
            return Mapped([], note=note)
        event = self.event_for(
            push, delivery_id(self.spec.provider, delivery.headers, delivery.body)
        )
        return Mapped([event], key=event.id)

    def left_out(self, push: Push) -> str:
        """Why the source's filters leave this push out ('' when they keep it)."""
        spec = self.spec
        if not push.ref.startswith(BRANCH_PREFIX):
            return f"'{push.ref}' is not a branch: nothing published"
        if push.commit == NO_COMMIT:
            return f"branch '{push.branch}' was deleted: nothing published"
        if spec.repository and _normal(spec.repository) not in push.names:
            return f"the push is to {push.repository}, not {spec.repository}: nothing published"
        if not matches(push.branch, spec.branches):
            return f"branch '{push.branch}' matches none of {spec.branches}: nothing published"
        if spec.paths and not any(matches(p, spec.paths) for p in push.changed_paths):
            return f"no changed path matches {spec.paths}: nothing published"
        return ""

    def event_for(self, push: Push, id: str) -> Event:
        data = {
            "repository": push.repository,
            "branch": push.branch,
            "commit": push.commit,
            "before": push.before,
            "pusher": push.pusher,
            "changedPaths": push.changed_paths,
            "provider": push.provider,
        }
        return new_event(
            self.type,
            push.repository,
            data,
            id=id,
            subject=push.branch,
            **{SOURCE_EXTENSION: self.name},
        )
