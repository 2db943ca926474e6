"""How webhook deliveries are authenticated: signatures and tokens over the raw body.

Every check runs on the bytes as received, before anything parses them, and
compares in constant time (:func:`hmac.compare_digest`). No signature or token
is :class:`MissingSignatureError` (401), a wrong one :class:`BadSignatureError`
(403), a signed timestamp too far from now :class:`StaleDeliveryError` (401).
The messages name the header, never the secret nor what was sent.

=====================  ==========================  ======================================
scheme                 header                      value
=====================  ==========================  ======================================
``github``             ``X-Hub-Signature-256``     ``sha256=<hex HMAC-SHA256(secret, body)>``
``gitea``              ``X-Gitea-Signature``       ``<hex HMAC-SHA256(secret, body)>``
``gitlab``             ``X-Gitlab-Token``          the secret itself
``bearer``             ``Authorization``           ``Bearer <secret>``
``hmac``               ``X-Cumulo-Signature``      ``sha256=<hex HMAC-SHA256(secret, body)>``
``standard-webhooks``  ``webhook-signature``       ``v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>``
=====================  ==========================  ======================================

Standard Webhooks (https://www.standardwebhooks.com) also send ``webhook-id``
and ``webhook-timestamp`` (Unix seconds); both are signed. The secret is
``whsec_<base64 key>``; the header may list several space-separated signatures
(during a key rotation), and one ``v1`` match is enough.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping

from cumulo.errors import BadSignatureError, MissingSignatureError, SourceError, StaleDeliveryError

Headers = Mapping[str, str]
Verify = Callable[[Headers, bytes], None]

SIGNATURE_HEADER = "X-Cumulo-Signature"
STANDARD_PREFIX = "whsec_"
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
BODY_SIGNED = frozenset({"github", "gitea", "hmac"})
"""Schemes whose signature covers the body: the same signed bytes twice are a replay."""


def hmac_sha256(secret: str, body: bytes) -> str:
    """The lower-case hex HMAC-SHA256 of ``body`` under ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def header(headers: Headers, name: str) -> str:
    """The (lower-cased) header ``name``; :class:`MissingSignatureError` if absent or empty."""
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise MissingSignatureError(f"the delivery has no {name} header")
    return value


def _same(given: str, expected: str, name: str) -> None:
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise BadSignatureError(f"the {name} header does not match the source's secret")


def verify_prefixed(headers: Headers, body: bytes, secret: str, name: str) -> None:
    """``name: sha256=<hex>`` (GitHub's ``X-Hub-Signature-256``, Cumulo's own)."""
    scheme, _, digest = header(headers, name).partition("=")
    if scheme != "sha256" or not digest:
        raise BadSignatureError(f"the {name} header is not 'sha256=<hex digest>'")
    _same(digest.lower(), hmac_sha256(secret, body), name)


def verify_github(headers: Headers, body: bytes, secret: str) -> None:
    verify_prefixed(headers, body, secret, "X-Hub-Signature-256")


def verify_hmac(headers: Headers, body: bytes, secret: str) -> None:
    verify_prefixed(headers, body, secret, SIGNATURE_HEADER)


def verify_gitea(headers: Headers, body: bytes, secret: str) -> None:
    name = "X-Gitea-Signature"
    _same(header(headers, name).lower(), hmac_sha256(secret, body), name)


def verify_gitlab(headers: Headers, body: bytes, secret: str) -> None:
    name = "X-Gitlab-Token"
    _same(header(headers, name), secret, name)


def verify_bearer(headers: Headers, body: bytes, secret: str) -> None:
    scheme, _, token = header(headers, "Authorization").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BadSignatureError("the Authorization header is not 'Bearer <token>'")
    _same(token.strip(), secret, "Authorization")


SCHEMES: dict[str, Callable[[Headers, bytes, str], None]] = {
    "github": verify_github,
    "gitea": verify_gitea,
    "gitlab": verify_gitlab,
    "bearer": verify_bearer,
    "hmac": verify_hmac,
}


# --- Standard Webhooks -------------------------------------------------------------


def standard_key(secret: str, source: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; :class:`SourceError` if it is not one."""
    problem = f"source '{source}': a standard-webhooks secret is 'whsec_<base64 key>'"
    try:
        key = base64.b64decode(secret.removeprefix(STANDARD_PREFIX), validate=True)
    except (binascii.Error, ValueError) as e:
        raise SourceError(problem) from e
    if not key:
        raise SourceError(problem)
    return key


def standard_signature(key: bytes, message: str, timestamp: str, body: bytes) -> str:
    """The base64 ``v1`` signature of one Standard Webhooks message."""
    signed = f"{message}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_standard(
    headers: Headers,
    body: bytes,
    key: bytes,
    tolerance: float,
    now: Callable[[], float] = time.time,
) -> None:
    """A Standard Webhooks delivery: a matching ``v1`` signature, a timestamp within ``tolerance``."""
    message = header(headers, "webhook-id")
    timestamp = header(headers, "webhook-timestamp")
    signatures = header(headers, "webhook-signature")
    if not _UNIX_SECONDS.fullmatch(timestamp):
        raise BadSignatureError("the webhook-timestamp header is not a Unix time in seconds")
    expected = standard_signature(key, message, timestamp, body).encode()
    offered = [s.partition(",") for s in signatures.split()]
    if not any(v == "v1" and hmac.compare_digest(s.encode(), expected) for v, _, s in offered):
        raise BadSignatureError("no v1 signature in the webhook-signature header matches")
    skew = now() - int(timestamp)
    if abs(skew) > tolerance:
        when = "old" if skew > 0 else "in the future"
        raise StaleDeliveryError(
            f"the webhook-timestamp is {abs(skew):.0f}s {when}, outside the source's"
            f" tolerance of {tolerance:g}s"
        )


# --- choosing one ----------------------------------------------------------------------


def accept_all(headers: Headers, body: bytes) -> None:
    """The check of a source with no secret: every delivery passes."""


def verifier(
    scheme: str, secret: str | None, *, source: str = "", tolerance: float = 300.0
) -> Verify:
    """A check for ``scheme`` (``none``, or no secret, accepts every delivery)."""
    if scheme == "none" or secret is None:
        return accept_all
    if scheme == "standard-webhooks":
        key = standard_key(secret, source)
        return lambda headers, body: verify_standard(headers, body, key, tolerance)
    check = SCHEMES[scheme]
    return lambda headers, body: check(headers, body, secret)
