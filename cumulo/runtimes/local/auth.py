"""Bearer-token protection of the gateway's admin and ingest routes.

With ``CUMULO_API_TOKEN`` set, ``/api/*``, ``/metrics`` and ``/events`` need
``Authorization: Bearer <token>``; anything else gets ``401`` problem+json with
``WWW-Authenticate: Bearer``. A function's own endpoint (``/fn/*``), webhook
sources (``/sources/*``, which check their own signatures) and ``/healthz``
stay public. Without a token, nothing is protected.
"""

from __future__ import annotations

import hmac

from cumulo.runtimes.worker import contract
from cumulo.runtimes.worker.asgi import Receive, Scope, Send, send_response

PROTECTED_PREFIXES = ("/api/",)
PROTECTED_PATHS = frozenset({"/api", "/metrics", "/events"})
REALM = 'Bearer realm="cumulo"'


def is_protected(path: str) -> bool:
    return path in PROTECTED_PATHS or path.startswith(PROTECTED_PREFIXES)


def bearer_token(scope: Scope) -> bytes | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else None
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
        given = bearer_token(scope)
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
