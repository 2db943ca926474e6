"""What an alert says, and where it goes: a Slack-compatible webhook, an SMTP relay, the log.

:func:`render` turns an event into a :class:`Message`: a failed run's error
and log tail, a rejected model's metrics against the champion's, a drifted
model's features, or any other event's attributes and data.

Each channel is a params model (``kind: webhook | smtp | log``) that can
``send`` a :class:`Message`. A channel that cannot deliver *now* (refused
connection, timeout, HTTP 5xx or 429, an SMTP error) raises
:class:`~cumulo.errors.AlertDeliveryError`; one that will never accept it
(HTTP 4xx, recipients refused with a 5xx reply) raises
:class:`~cumulo.errors.PermanentError`. Both name the channel by
:attr:`name`, which shows where it points without its secrets (a webhook
URL's path is shortened: Slack puts the token there).

SMTP authentication is not supported yet: mail goes to a relay that accepts
it unauthenticated (optionally over STARTTLS).
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Annotated, Any, Literal, NoReturn
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cumulo.errors import AlertDeliveryError, PermanentError
from cumulo.events.event import Event
from cumulo.events.lineage import MODEL_DRIFTED, MODEL_REJECTED, RUN_FAILED
from cumulo.spec.models import Duration

LOG_TAIL_CHARS = 2500
DATA_CHARS = 2000
SLACK_SECTION_LIMIT = 3000  # characters in one Slack section block
SLACK_HEADER_LIMIT = 150


@dataclass(frozen=True)
class Message:
    """An alert: a one-line ``title`` and a plain-text ``text`` (may hold ``` code blocks)."""

    title: str
    text: str

    @property
    def full(self) -> str:
        return f"{self.title}\n\n{self.text}" if self.text else self.title


# --- what an alert says ---------------------------------------------------------


def render(event: Event, *, repeats: int = 0) -> Message:
    """The alert for ``event`` (``repeats``: earlier occurrences that were not paged)."""
    data = event.data if isinstance(event.data, dict) else {}
    message = RENDERERS.get(event.type, _generic)(event, data)
    extra = [_lineage_line(data.get("lineage"))]
    if repeats:
        extra.append(f"_{repeats} more occurrence(s) in the previous window were not paged._")
    text = "\n".join([message.text, *(line for line in extra if line)])
    return Message(" ".join(message.title.split()), text.strip())  # one line: a Subject


def _run_failed(event: Event, data: dict[str, Any]) -> Message:
    function, error = data.get("function", "?"), data.get("errorType") or "Error"
    lines = [
        f"{error}: {data.get('message', '')}".rstrip(": "),
        *_fields(
            ("Function", function),
            ("Run", data.get("run")),
            ("Event", " ".join(str(v) for v in (data.get("eventType"), data.get("event")) if v)),
            ("Attempt", data.get("attempt")),
        ),
    ]
    tail = str(data.get("logTail") or "").strip("\n")
    if tail:
        tail = tail if len(tail) <= LOG_TAIL_CHARS else "…" + tail[-LOG_TAIL_CHARS:]
        lines += ["Log tail:", f"```\n{tail}\n```"]
    return Message(f"Run failed: {function} ({error})", "\n".join(lines))


def _model_rejected(event: Event, data: dict[str, Any]) -> Message:
    model, version, metric = data.get("model", "?"), data.get("version"), data.get("metric")
    candidate = (data.get("candidate") or {}).get("metrics") or {}
    champion = data.get("champion") or {}
    lines = _fields(("Reason", data.get("reason")), ("Metric", metric))
    if metric:
        lines.append(f"Candidate v{version}: {metric} = {candidate.get(metric)}")
        if champion:
            score = (champion.get("metrics") or {}).get(metric)
            lines.append(f"Champion v{champion.get('version')}: {metric} = {score}")
    return Message(f"Model rejected: {model} v{version}", "\n".join(lines))


def _model_drifted(event: Event, data: dict[str, Any]) -> Message:
    model, psi = data.get("model", "?"), data.get("psi") or {}
    lines = _fields(("Dataset", data.get("dataset")), ("Threshold (PSI)", data.get("threshold")))
    lines.append("Drifted features:")
    for feature in data.get("drifted") or []:
        lines.append(f"• {feature}: PSI {psi.get(feature, '?')}")
    return Message(f"Model drifted: {model} v{data.get('version')}", "\n".join(lines))


def _generic(event: Event, data: dict[str, Any]) -> Message:
    title = f"{event.type}: {event.subject}" if event.subject else event.type
    lines = _fields(("Source", event.source), ("Subject", event.subject), ("Event", event.id))
    if event.data is not None and not isinstance(event.data, bytes):
        body = json.dumps(event.data, indent=2, default=str)
        body = body if len(body) <= DATA_CHARS else body[:DATA_CHARS] + "\n…"
        lines.append(f"```\n{body}\n```")
    return Message(title, "\n".join(lines))


RENDERERS: dict[str, Callable[[Event, dict[str, Any]], Message]] = {
    RUN_FAILED: _run_failed,
    MODEL_REJECTED: _model_rejected,
    MODEL_DRIFTED: _model_drifted,
}


def _fields(*pairs: tuple[str, Any]) -> list[str]:
    return [f"{label}: {value}" for label, value in pairs if value not in (None, "")]


def _lineage_line(lineage: Any) -> str:
    if not isinstance(lineage, dict) or not lineage:
        return ""
    return "Lineage: " + ", ".join(f"{key}={value}" for key, value in lineage.items())


# --- where it goes -----------------------------------------------------------


class _Channel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    kind: str

    @property
    def name(self) -> str:
        """How messages and logs name the channel (no secrets)."""
        raise NotImplementedError

    @property
    def key(self) -> str:
        """A stable identity for the alert state (a hash: the config may hold secrets)."""
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]
        return f"{self.kind}:{digest}"

    def send(self, message: Message) -> None:
        raise NotImplementedError


class LogChannel(_Channel):
    """A line on the function's standard output, which is its run log."""

    kind: Literal["log"] = "log"

    @property
    def name(self) -> str:
        return "log"

    def send(self, message: Message) -> None:
        print(f"ALERT {message.title}\n{message.text}", flush=True)


class WebhookChannel(_Channel):
    """A JSON POST that Slack incoming webhooks (and Mattermost, Rocket.Chat…) accept."""

    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = {}
    timeout: Duration = 10.0

    @property
    def name(self) -> str:
        return f"webhook {shown_url(self.url)}"

    def send(self, message: Message) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(slack_body(message)).encode(),
            headers={"Content-Type": "application/json", **self.headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as e:
            e.close()  # it holds the response's socket
            reason = f"{self.name} answered HTTP {e.code} {e.reason}"
            if 400 <= e.code < 500 and e.code not in (408, 429):
                raise PermanentError(reason) from e
            raise AlertDeliveryError(reason) from e
        except (urllib.error.URLError, OSError) as e:
            why = getattr(e, "reason", e)
            raise AlertDeliveryError(f"{self.name} could not be reached: {why}") from e


class SmtpChannel(_Channel):
    """An email through an SMTP relay (no authentication; STARTTLS if asked)."""

    kind: Literal["smtp"]
    host: str
    port: int = Field(default=25, ge=1, le=65535)
    sender: str
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    timeout: Duration = 10.0

    @property
    def name(self) -> str:
        return f"smtp {self.host}:{self.port}"

    def send(self, message: Message) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                smtp.send_message(self.email(message))
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            self._refused(f"refused the recipients {e.recipients}", min(codes), e)
        except smtplib.SMTPSenderRefused as e:
            self._refused(f"refused the sender {self.sender}: {e.smtp_error!r}", e.smtp_code, e)
        except (smtplib.SMTPException, OSError) as e:
            raise AlertDeliveryError(f"{self.name} could not take the mail: {e}") from e

    def email(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = message.title
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail.set_content(message.text or message.title)
        return mail

    def _refused(self, what: str, code: int, error: Exception) -> NoReturn:
        reason = f"{self.name} {what}"
        if code >= 500:
            raise PermanentError(reason) from error
        raise AlertDeliveryError(reason) from error


Channel = Annotated[LogChannel | WebhookChannel | SmtpChannel, Field(discriminator="kind")]


def slack_body(message: Message) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: ``text`` (the whole message) and ``blocks`` to show it."""
    return {
        "text": message.full,
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _cut(message.title, SLACK_HEADER_LIMIT)},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(message.text or " ", SLACK_SECTION_LIMIT)},
            },
        ],
    }


def shown_url(url: str) -> str:
    """A URL fit for logs: no credentials or query, and only the first path segment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    segments = [s for s in parts.path.split("/") if s]
    path = "/" + segments[0] + ("/…" if len(segments) > 1 else "") if segments else ""
    return f"{parts.scheme}://{netloc}{path}"


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, closing a code block the cut left open."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 5] + "…"
    return cut + "\n```" if cut.count("```") % 2 else cut
