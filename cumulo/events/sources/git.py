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
are answered 202 with a ``note`` and publish nothing. A delivery whose id,
or whose body, was seen before is published once (see
:mod:`cumulo.events.sources.webhook`): a push body names one push, so the same
body under a new delivery id is a replay. A body whose fields have the wrong
types is refused naming the field (``commits[0]: must be an object``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fnmatch import fnmatchcase

from cumulo.errors import InvalidEventError
from cumulo.events.event import Event, new_event
from cumulo.events.sources import SOURCE_EXTENSION
from cumulo.events.sources.cron import Publish
from cumulo.events.sources.payloads import Payload, parse
from cumulo.events.sources.signatures import Headers, verifier
from cumulo.events.sources.webhook import (
    Delivery,
    DeliveryLog,
    HttpSource,
    Mapped,
    body_key,
    load_json,
    unique,
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
WEB_URL_KEYS = ("html_url", "web_url", "homepage")


# --- the payload, as far as a push event reads it -----------------------------------


class Repository(Payload):
    """GitHub/Gitea ``repository``, GitLab ``project`` (and its older ``repository``)."""

    html_url: str | None = None
    web_url: str | None = None
    homepage: str | None = None
    url: str | None = None
    clone_url: str | None = None
    git_url: str | None = None
    ssh_url: str | None = None
    git_http_url: str | None = None
    git_ssh_url: str | None = None
    http_url: str | None = None
    full_name: str | None = None
    path_with_namespace: str | None = None

    def names(self) -> set[str]:
        """Every name the repository goes by (URLs, ``owner/name``), normalised."""
        return {_normal(v) for v in self.model_dump().values() if isinstance(v, str)}

    def web_address(self) -> str | None:
        """The repository's web page (what events name as their ``source``)."""
        return next((u for k in WEB_URL_KEYS if (u := getattr(self, k))), None)


class Person(Payload):
    login: str | None = None
    username: str | None = None
    name: str | None = None


class Commit(Payload):
    added: list[str] | None = None
    modified: list[str] | None = None
    removed: list[str] | None = None


class PushPayload(Payload):
    ref: str | None = None
    after: str | None = None
    before: str | None = None
    repository: Repository | None = None
    project: Repository | None = None
    pusher: Person | None = None
    user_username: str | None = None
    user_name: str | None = None
    commits: list[Commit] | None = None


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


def _repositories(provider: str, payload: PushPayload) -> list[Repository]:
    wanted = (
        (payload.project, payload.repository) if provider == "gitlab" else (payload.repository,)
    )
    return [repo for repo in wanted if repo is not None]


def _pusher(provider: str, payload: PushPayload) -> str | None:
    if provider == "gitlab":
        return payload.user_username or payload.user_name
    pusher = payload.pusher or Person()
    return pusher.login or pusher.username or pusher.name or None


def _changed_paths(commits: list[Commit] | None) -> list[str]:
    paths: dict[str, None] = {}
    for commit in commits or []:
        for changed in (commit.added, commit.modified, commit.removed):
            paths.update(dict.fromkeys(changed or []))
    return list(paths)


def parse_push(provider: str, body: object) -> Push:
    """The push a provider's delivery body describes; :class:`InvalidEventError` if none."""
    if not isinstance(body, dict):
        raise InvalidEventError([f"a push delivery is a JSON object, not {type(body).__name__}"])
    payload = parse(PushPayload, body)
    repos = _repositories(provider, payload)
    url = next((u for repo in repos if (u := repo.web_address())), None)
    ref, after = payload.ref, payload.after
    if ref is None or after is None or url is None:
        found = {"ref": ref, "after": after, "repository (its web URL)": url}
        raise InvalidEventError(
            [f"the push delivery has no {k}" for k, v in found.items() if v is None]
        )
    return Push(
        provider=provider,
        repository=url,
        names=frozenset(name for repo in repos for name in repo.names()),
        ref=ref,
        before=payload.before,
        commit=after,
        pusher=_pusher(provider, payload),
        changed_paths=_changed_paths(payload.commits),
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
        super().__init__(source, publish, deliveries, verify, spec.max_body_bytes)
        self.spec = spec
        self.type = source.spec.type or DEFAULT_TYPE

    def map(self, delivery: Delivery) -> Mapped:
        kind = delivery.headers.get(HEADERS[self.spec.provider][0], "push")
        if kind not in PUSH_EVENTS:
            return Mapped([], note=f"'{kind}' deliveries are not pushes: nothing published")
        push = parse_push(self.spec.provider, load_json(delivery.body, "the delivery"))
        if note := self.left_out(push):
            return Mapped([], note=note)
        id = delivery_id(self.spec.provider, delivery.headers, delivery.body)
        return Mapped([self.event_for(push, id)], keys=unique(id, body_key(delivery.body)))

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
