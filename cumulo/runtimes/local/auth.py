"""Bearer-token protection of the gateway's admin and ingest routes.

With ``CUMULO_API_TOKEN`` set, ``/api/*``, ``/metrics``, ``/events`` and
every function's endpoint (``/fn/<name>/*``) need ``Authorization: Bearer
<token>``; anything else gets ``401`` problem+json with ``WWW-Authenticate:
Bearer``. A function whose spec says ``access: public`` is the exception: its
``/fn/<name>/*`` needs no token. Webhook sources (``/sources/*``, which check
their own signatures) and ``/healthz`` stay public. Without a token, nothing is
protected.

A function gets a token of its own instead (``CUMULO_PUBLISH_TOKEN``, made
anew by each ``cumulo up``): it authorises ``POST /events`` and nothing else,
so a running job can publish its progress without holding the API token.

The platform's credentials never reach a function: on ``/fn/*`` the gateway
drops an ``Authorization`` header that carries the API token and the
dashboard's cookie before the request is proxied.

The dashboard (``/ui/``) needs the token too. A browser sends it once as
``/ui/?token=<token>``; the page answers with an ``HttpOnly``,
``SameSite=Strict`` cookie that then authorises ``/ui/*`` and ``/api/*``. A
cookie alone does not authorise a change (anything but GET/HEAD): that also
needs the ``X-Cumulo-UI`` header, which no cross-site form can send.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from cumulo.runtimes.worker import contract
from cumulo.runtimes.worker.asgi import Receive, Scope, Send, send_response

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

if TYPE_CHECKING:
    from cumulo.spec.models import Function

PROTECTED_PREFIXES = ("/api/", "/ui/")
PROTECTED_PATHS = frozenset({"/api", "/metrics", "/events", "/ui"})
FUNCTIONS_PREFIX = "/fn/"
REALM = 'Bearer realm="cumulo"'
COOKIE = "cumulo_token"
UI_HEADER = b"x-cumulo-ui"
NEEDS = "'Authorization: Bearer <token>'"


def public_functions(functions: Iterable[Function]) -> frozenset[str]:
    """The names of the functions whose spec says ``access: public``."""
    return frozenset(f.name for f in functions if f.spec.access == "public")


def function_name(path: str) -> str | None:
    """The ``<name>`` of ``/fn/<name>`` or ``/fn/<name>/...`` (``""`` for ``/fn``), else None."""
    if path == FUNCTIONS_PREFIX.rstrip("/"):
        return ""
    if not path.startswith(FUNCTIONS_PREFIX):
        return None
    return path[len(FUNCTIONS_PREFIX) :].split("/", 1)[0]


def is_protected(path: str, public: Collection[str] = ()) -> bool:
    """Whether ``path`` needs the token (a function's endpoint unless it is public)."""
    name = function_name(path)
    if name is not None:
        return name not in public
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


def without_platform_credentials(scope: Scope, token: bytes) -> Scope:
    """``scope`` minus the API token's ``Authorization`` header and the dashboard's cookie."""
    headers = []
    for name, value in scope.get("headers", ()):
        lower = name.lower()
        if lower == b"authorization" and _is_bearer(value, token):
            continue
        if lower == b"cookie" and not (value := _without_cookie(value)):
            continue
        headers.append((name, value))
    return {**scope, "headers": headers}


def _is_bearer(value: bytes, token: bytes) -> bool:
    scheme, _, given = value.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token)


def _without_cookie(value: bytes) -> bytes:
    parts = [part.strip() for part in value.split(b";")]
    kept = [part for part in parts if part and part.partition(b"=")[0] != COOKIE.encode()]
    return b"; ".join(kept)


def refusal_detail(path: str, missing: bool) -> str:
    """What a 401 says: which rule wants the token (never the token itself)."""
    if not missing:
        return "the bearer token is not the platform's API token"
    name = function_name(path)
    if name is not None:
        return f"function '{name}' is not public (spec.access: token): it needs {NEEDS}"
    return f"this route needs {NEEDS}"


class BearerAuth:
    """ASGI middleware: the gateway's protected routes need the API token.

    ``public`` names the functions whose ``/fn/<name>/*`` needs no token (see
    :func:`public_functions`).
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        public: Collection[str] = (),
        publish_token: str | None = None,
    ):
        self.app = app
        self.token = token.encode() if token else None
        self.public = public  # read per request: a reload may change it
        self.publish_token = publish_token.encode() if publish_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if is_protected(path, self.public):
            given = given_token(scope)
            if given is None or not self._authorises(given, scope):
                await self._refuse(path, send, missing=given is None)
                return
        if function_name(path) is not None:
            scope = without_platform_credentials(scope, self.token)
        await self.app(scope, receive, send)

    def _authorises(self, given: bytes, scope: Scope) -> bool:
        """The API token opens every protected route; the publish token only ``POST /events``."""
        assert self.token is not None
        if hmac.compare_digest(given, self.token):
            return True
        publishing = scope["path"] == "/events" and scope.get("method") == "POST"
        return (
            publishing
            and self.publish_token is not None
            and hmac.compare_digest(given, self.publish_token)
        )

    async def _refuse(self, path: str, send: Send, *, missing: bool) -> None:
        challenge = REALM if missing else REALM + ', error="invalid_token"'
        detail = refusal_detail(path, missing)
        response = contract.problem(401, "unauthorized", "Unauthorized", detail, "GatewayError")
        headers = [*response.headers, (b"www-authenticate", challenge.encode())]
        await send_response(send, response.status, headers, response.body)
