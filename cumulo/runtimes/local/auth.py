"""Bearer-token protection of the gateway's admin and ingest routes.

With ``CUMULO_API_TOKEN`` set, ``/api/*``, ``/metrics`` and ``/events`` need
``Authorization: Bearer <token>``; anything else gets ``401`` problem+json with
``WWW-Authenticate: Bearer``. A function's own endpoint (``/fn/*``), webhook
sources (``/sources/*``, which check their own signatures) and ``/healthz``
stay public. Without a token, nothing is protected.

The dashboard (``/ui/``) needs the token too. A browser sends it once as
``/ui/?token=<token>``; the page answers with an ``HttpOnly``,
``SameSite=Strict`` cookie that then authorises ``/ui/*`` and ``/api/*``. A
cookie alone does not authorise a change (anything but GET/HEAD): that also
needs the ``X-Cumulo-UI`` header, which no cross-site form can send.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from cumulo.runtimes.worker import contract
from cumulo.runtimes.worker.asgi import Receive, Scope, Send, send_response

PROTECTED_PREFIXES = ("/api/", "/ui/")
PROTECTED_PATHS = frozenset({"/api", "/metrics", "/events", "/ui"})
REALM = 'Bearer realm="cumulo"'
COOKIE = "cumulo_token"
UI_HEADER = b"x-cumulo-ui"


def is_protected(path: str) -> bool:
    return path in PROTECTED_PATHS or path.startswith(PROTECTED_PREFIXES)


def bearer_token(scope: Scope) -> bytes | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else None
    return None


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == wanted:
            return bytes(value)
    return None


def cookie_token(scope: Scope) -> bytes | None:
    """The dashboard's cookie, for reads, or for changes that carry ``X-Cumulo-UI``."""
    if scope.get("method") not in ("GET", "HEAD") and _header(scope, UI_HEADER) is None:
        return None
    for part in (_header(scope, b"cookie") or b"").split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name == COOKIE.encode():
            return value.strip(b'"')
    return None


def query_token(scope: Scope) -> bytes | None:
    """``?token=`` on a dashboard page (which turns it into the cookie)."""
    if not scope["path"].startswith("/ui"):
        return None
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
    return next((value.encode() for name, value in query if name == "token"), None)


def given_token(scope: Scope) -> bytes | None:
    for token in (bearer_token(scope), query_token(scope), cookie_token(scope)):
        if token is not None:
            return token
    return None


class BearerAuth:
    """ASGI middleware: the gateway's protected routes need the API token."""

    def __init__(self, app, token: str | None):
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or not is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = given_token(scope)
        if given is not None and hmac.compare_digest(given, self.token):
            await self.app(scope, receive, send)
            return
        await self._refuse(send, given is None)

    async def _refuse(self, send: Send, missing: bool) -> None:
        detail = "this route needs 'Authorization: Bearer <token>'"
        challenge = REALM if missing else REALM + ', error="invalid_token"'
        if not missing:
            detail = "the bearer token is not the platform's API token"
        response = contract.problem(401, "unauthorized", "Unauthorized", detail, "GatewayError")
        headers = [*response.headers, (b"www-authenticate", challenge.encode())]
        await send_response(send, response.status, headers, response.body)
