"""A client of the OCI distribution API (``/v2/``): blobs, manifests, auth.

Sync and dependency-free (``urllib``). Authentication follows the registry's
``401`` challenge: ``Basic`` sends the credentials; ``Bearer`` fetches a token
from the challenge's ``realm`` (with the credentials, if any, as Basic) for its
``service`` and ``scope`` and retries, as docker does. Failures become
:class:`~cumulo.errors.RegistryError` naming the registry and repository.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from cumulo.builders.oci import INDEXES, MANIFESTS, Descriptor, sha256
from cumulo.builders.reference import ImageRef, is_loopback
from cumulo.errors import ImageNotFoundError, RegistryAuthError, RegistryError

ACCEPT = ", ".join((*MANIFESTS, *INDEXES))
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # followed by hand: a blob redirect must not carry our Authorization


class RegistryClient:
    """One registry (``host[:port]``), with optional credentials."""

    def __init__(
        self,
        registry: str,
        *,
        username: str | None = None,
        password: str | None = None,
        insecure: bool | None = None,
        timeout: float = 120.0,
    ):
        self.registry = registry
        plain = is_loopback(registry) if insecure is None else insecure
        self.base = f"{'http' if plain else 'https'}://{registry}"
        self.credentials = (username, password) if username is not None else None
        self.timeout = timeout
        self._tokens: dict[str, str] = {}
        self._opener = urllib.request.build_opener(_NoRedirect)

    # --- blobs ---------------------------------------------------------------------

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self._call("HEAD", repository, f"blobs/{digest}", ok=(200, 404))
        return response.status == 200

    def push_blob(self, repository: str, data: bytes, digest: str | None = None) -> bool:
        """Upload a blob unless the repository has it: ``True`` when it was uploaded."""
        digest = digest or sha256(data)
        if self.has_blob(repository, digest):
            return False
        started = self._call("POST", repository, "blobs/uploads/", ok=(202,))
        location = self._absolute(started.headers.get("location", ""))
        joiner = "&" if "?" in location else "?"
        url = f"{location}{joiner}digest={urllib.parse.quote(digest)}"
        headers = {"Content-Type": "application/octet-stream"}
        self._call("PUT", repository, url=url, data=data, headers=headers, ok=(201,))
        return True

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Ask for a blob of another repository of this registry: ``True`` when mounted."""
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        response = self._call("POST", repository, f"blobs/uploads/?{query}", ok=(201, 202))
        return response.status == 201

    def get_blob(self, repository: str, digest: str) -> bytes:
        response = self._call("GET", repository, f"blobs/{digest}", ok=(200, 307, 302))
        if response.status in (302, 307):  # storage elsewhere: fetch without our headers
            response = self._send("GET", response.headers["location"], None, {})
        if sha256(response.body) != digest:
            raise RegistryError(f"blob {digest} arrived corrupted", **self._where(repository))
        return response.body

    # --- manifests -------------------------------------------------------------------

    def push_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """Put a manifest under a tag (or digest); returns its digest."""
        headers = {"Content-Type": media_type}
        response = self._call(
            "PUT", repository, f"manifests/{reference}", data=body, headers=headers, ok=(201,)
        )
        return response.headers.get("docker-content-digest") or sha256(body)

    def get_manifest(
        self, ref: ImageRef, platform: str = "linux/amd64"
    ) -> tuple[dict[str, Any], str]:
        """An image manifest and its digest; an index is resolved to ``platform``'s image."""
        response = self._call(
            "GET", ref.repository, f"manifests/{ref.reference}", headers={"Accept": ACCEPT}
        )
        document = json.loads(response.body)
        kind = document.get("mediaType") or response.headers.get("content-type", "")
        if kind in INDEXES:
            chosen = pick_platform(document, platform, self._where(ref.repository))
            return self.get_manifest(ref.with_digest(chosen), platform)
        return document, response.headers.get("docker-content-digest") or sha256(response.body)

    def inspect(self, ref: ImageRef) -> str:
        """The digest of the manifest a tag (or digest) names."""
        response = self._call(
            "HEAD", ref.repository, f"manifests/{ref.reference}", headers={"Accept": ACCEPT}
        )
        digest = response.headers.get("docker-content-digest")
        return digest or self.get_manifest(ref)[1]

    def get_config(self, ref: ImageRef) -> tuple[dict[str, Any], dict[str, Any]]:
        """An image's manifest and its config document."""
        manifest, _ = self.get_manifest(ref)
        config = Descriptor.of(manifest["config"])
        return manifest, json.loads(self.get_blob(ref.repository, config.digest))

    # --- HTTP and auth ----------------------------------------------------------------

    def _call(
        self,
        method: str,
        repository: str,
        path: str = "",
        *,
        url: str | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        target = url or f"{self.base}/v2/{repository}/{path}"
        headers = dict(headers or {})
        response = self._send(method, target, data, {**headers, **self._auth(repository)})
        if response.status == 401:
            self._answer(response.headers.get("www-authenticate", ""), repository)
            response = self._send(method, target, data, {**headers, **self._auth(repository)})
        if response.status not in ok:
            raise self._error(method, target, response, repository)
        return response

    def _send(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> Response:
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as reply:
                return Response(reply.status, _lower(reply.headers), reply.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, _lower(e.headers), e.read())
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise RegistryError(
                f"cannot reach {self.base}: {reason}", registry=self.registry
            ) from e

    def _auth(self, repository: str) -> dict[str, str]:
        if repository in self._tokens:
            return {"Authorization": self._tokens[repository]}
        return {}

    def _answer(self, challenge: str, repository: str) -> None:
        scheme, _, params = challenge.partition(" ")
        where = self._where(repository)
        if scheme.lower() == "basic":
            if not self.credentials:
                raise RegistryAuthError("needs a username and password", **where, status=401)
            self._tokens[repository] = "Basic " + _basic(*self.credentials)
        elif scheme.lower() == "bearer":
            self._tokens[repository] = "Bearer " + self._token(
                dict(_CHALLENGE.findall(params)), where
            )
        else:
            raise RegistryAuthError(
                f"unsupported auth challenge {challenge!r}", **where, status=401
            )

    def _token(self, challenge: dict[str, str], where: dict[str, str]) -> str:
        """The Bearer token dance: ask the realm for a token for this service and scope."""
        scope = challenge.get("scope") or f"repository:{where['repository']}:pull,push"
        query = urllib.parse.urlencode({"service": challenge.get("service", ""), "scope": scope})
        headers = (
            {"Authorization": "Basic " + _basic(*self.credentials)} if self.credentials else {}
        )
        response = self._send("GET", f"{challenge.get('realm', '')}?{query}", None, headers)
        if response.status != 200:
            raise RegistryAuthError(
                f"token service refused: HTTP {response.status}", **where, status=response.status
            )
        answer = json.loads(response.body)
        token = answer.get("token") or answer.get("access_token")
        if not token:
            raise RegistryAuthError("token service answered without a token", **where, status=401)
        return str(token)

    def _error(self, method: str, url: str, response: Response, repository: str) -> RegistryError:
        detail = _detail(response.body) or f"HTTP {response.status}"
        message = f"{method} {urllib.parse.urlsplit(url).path}: {detail}"
        where = {**self._where(repository), "status": response.status}
        if response.status in (401, 403):
            return RegistryAuthError(message, **where)
        if response.status == 404:
            return ImageNotFoundError(message, **where)
        return RegistryError(message, **where)

    def _where(self, repository: str) -> dict[str, Any]:
        return {"registry": self.registry, "repository": repository}

    def _absolute(self, location: str) -> str:
        return location if "://" in location else self.base + location


def pick_platform(index: dict[str, Any], platform: str, where: dict[str, Any]) -> str:
    """The digest of ``platform``'s manifest in an image index."""
    os_name, _, arch = platform.partition("/")
    for item in index.get("manifests", []):
        wanted = item.get("platform", {})
        if wanted.get("os") == os_name and wanted.get("architecture") == arch:
            return str(item["digest"])
    raise ImageNotFoundError(f"no {platform} image in the index", **where)


def _basic(username: str | None, password: str | None) -> str:
    return base64.b64encode(f"{username}:{password or ''}".encode()).decode()


def _lower(headers: Any) -> dict[str, str]:
    return {key.lower(): value for key, value in (headers or {}).items()}


def _detail(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or []
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200].strip()
    return "; ".join(f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors)
