"""``alert``: tell people when a run fails, a model is rejected or a model drifts.

Params (``spec.params`` only: the events it reports on cannot redirect it)::

    channels:                          # default: [{kind: log}]
      - {kind: webhook, url: "https://hooks.slack.com/services/…", headers: {}, timeout: 10s}
      - {kind: smtp, host: mail.internal, port: 25, sender: cumulo@example.com,
         to: [oncall@example.com], starttls: false, timeout: 10s}
      - {kind: log}
    dedupWindow: 1h                    # one page per incident per window
    rateLimit: {count: 10, per: 60s}   # at most this many pages per channel

An *incident* is the event type, what it is about (the failed function, the
model, else the subject or the source) and the error type: fifty failures of
the same training function with the same error page once per window. Events
that page nothing (a repeat within the window, or a channel over its rate
limit) are counted in the state and logged; the next page of the incident says
how many repeats went unpaged.

The state is one SQLite file, ``STATE_DIR/alerts.db``, shared by every worker
process: each page is claimed per channel in a write transaction, so two
workers never send the same incident to the same channel. A channel that
fails now raises :class:`~cumulo.errors.Retry` naming it; the channels that
delivered are not sent again when the event comes back. A channel that will
never accept the alert (HTTP 4xx) makes it a :class:`~cumulo.errors.PermanentError`.
A ``run.failed`` of the alert function itself is logged, not paged: while a
channel is down, paging it would feed on itself.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import functions_framework
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cumulo.errors import AlertDeliveryError, PermanentError, Retry
from cumulo.events.event import Event
from cumulo.events.lineage import RUN_FAILED
from cumulo.functions.channels import Channel, LogChannel, Message, render
from cumulo.functions.context import FunctionContext, as_event, data_path
from cumulo.functions.transactions import create_store, write_transaction
from cumulo.spec.models import Duration

log = logging.getLogger("cumulo.functions.alert")


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(default=10, ge=1)
    per: Duration = 60.0


def _default_channels() -> list[Channel]:
    return [LogChannel()]


class AlertParams(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    channels: list[Channel] = Field(default_factory=_default_channels, min_length=1)
    dedup_window: Duration = 3600.0
    rate_limit: RateLimit = RateLimit()


@functions_framework.cloud_event
def alert(event: Any) -> None:
    """The function: ``handler: cumulo.functions.alert:alert``."""
    send_alert(FunctionContext.current(), event)


def send_alert(ctx: FunctionContext, event: Any) -> None:
    """Page the incident ``event`` belongs to on every channel that has not had it yet."""
    params = ctx.params(AlertParams)  # not the event's data.params: it is not ours
    event = as_event(event)
    if _about_itself(ctx, event):
        return
    channels = {channel.key: channel for channel in params.channels}
    state = AlertState(
        data_path(ctx.settings, "alerts.db"),
        ctx.name,
        window=params.dedup_window,
        rate_count=params.rate_limit.count,
        rate_per=params.rate_limit.per,
    )
    claim = state.claim(incident_key(event), list(channels), event.id)
    _log_suppressed(claim, channels, params)
    if not claim.send:
        return
    errors = _deliver(state, claim, channels, render(event, repeats=claim.repeats))
    _raise_for(errors)


def _deliver(
    state: AlertState, claim: Claim, channels: dict[str, Channel], message: Message
) -> list[Exception]:
    """Send on every claimed channel; record which took it. The channels' errors."""
    sent: list[str] = []
    errors: list[Exception] = []
    try:
        for key in claim.send:
            try:
                channels[key].send(message)
            except (AlertDeliveryError, PermanentError) as e:
                errors.append(e)
            else:
                sent.append(key)
                log.info("alert %s: sent on %s", claim.key, channels[key].name)
    finally:
        state.finish(claim, sent)  # even on a crash: unsent channels are released
    return errors


def incident_key(event: Event) -> str:
    """``type|what it is about|error type``: the events that are one incident."""
    data = event.data if isinstance(event.data, dict) else {}
    about = data.get("function") or data.get("model") or event.subject or event.source
    return f"{event.type}|{about}|{data.get('errorType') or ''}"


def _about_itself(ctx: FunctionContext, event: Event) -> bool:
    """A failure of this very function is logged, not paged: paging it could loop."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.type != RUN_FAILED or not ctx.name or data.get("function") != ctx.name:
        return False
    log.warning("alert: not paging a failure of %s itself: %s", ctx.name, data.get("message"))
    return True


def _log_suppressed(claim: Claim, channels: dict[str, Channel], params: AlertParams) -> None:
    if claim.duplicate:
        log.info("alert %s: already paged in this window; suppressed", claim.key)
    for key in claim.limited:
        limit = params.rate_limit
        log.warning(
            "alert %s: %s is over its rate limit (%d per %gs); suppressed",
            claim.key,
            channels[key].name,
            limit.count,
            limit.per,
        )


def _raise_for(errors: list[Exception]) -> None:
    """Retry while any channel may still take the alert; else give up on the refusals."""
    if not errors:
        return
    reasons = "; ".join(str(error) for error in errors)
    if any(isinstance(error, AlertDeliveryError) for error in errors):
        raise Retry(f"alert not delivered: {reasons}")
    raise PermanentError(f"alert refused: {reasons}")


# --- who has been paged: STATE_DIR/alerts.db ------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    function TEXT NOT NULL,
    key TEXT NOT NULL,
    window_start REAL NOT NULL,              -- when the current dedup window opened
    last_seen REAL NOT NULL,
    window_duplicates INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,   -- events not paged: already paged in their window
    rate_limited INTEGER NOT NULL DEFAULT 0, -- pages a channel's rate limit held back
    PRIMARY KEY (function, key)
);
CREATE TABLE IF NOT EXISTS deliveries (
    function TEXT NOT NULL,
    key TEXT NOT NULL,
    window_start REAL NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,                    -- sending (claimed by event) or sent
    event TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (function, key, window_start, channel)
);
CREATE INDEX IF NOT EXISTS deliveries_by_channel ON deliveries (function, channel, at);
"""
KEEP_INCIDENTS = 7 * 86400.0  # seconds an incident's counters outlive its last event


@dataclass
class Claim:
    """What one event may page: ``send`` (claimed channels), ``limited`` (held back)."""

    key: str
    window_start: float
    send: list[str] = field(default_factory=list)
    limited: list[str] = field(default_factory=list)
    duplicate: bool = False
    repeats: int = 0  # duplicates of the previous window, never paged


class AlertState:
    """Dedup windows and rate limits of one alert function, shared by its processes."""

    def __init__(
        self, path: Path, function: str, *, window: float, rate_count: int, rate_per: float
    ):
        self.path, self.function = path, function
        self.window, self.rate_count, self.rate_per = window, rate_count, rate_per
        create_store(path, SCHEMA)

    def claim(self, key: str, channels: list[str], event_id: str) -> Claim:
        """Claim the channels that should get this event's incident now."""
        now = time.time()
        with self._transaction() as db:
            self._prune(db, now)
            claim = self._open(db, key, now)
            busy = self._busy(db, claim, event_id)
            pending = [channel for channel in channels if channel not in busy]
            if not pending:
                self._count(db, key, duplicates=1)
                return replace(claim, duplicate=True)
            for channel in pending:
                if self._over_rate(db, channel, now):
                    claim.limited.append(channel)
                    continue
                claim.send.append(channel)
                db.execute(
                    "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, 'sending', ?, ?)",
                    (self.function, key, claim.window_start, channel, event_id, now),
                )
            self._count(db, key, rate_limited=len(claim.limited))
        return claim

    def finish(self, claim: Claim, sent: list[str]) -> None:
        """Mark ``sent`` channels paged; release the rest of the claim for a retry."""
        with self._transaction() as db:
            for channel in claim.send:
                where = (self.function, claim.key, claim.window_start, channel)
                if channel in sent:
                    db.execute(
                        "UPDATE deliveries SET status = 'sent' WHERE function = ? AND key = ?"
                        " AND window_start = ? AND channel = ?",
                        where,
                    )
                else:
                    db.execute(
                        "DELETE FROM deliveries WHERE function = ? AND key = ?"
                        " AND window_start = ? AND channel = ? AND status = 'sending'",
                        where,
                    )

    def incidents(self) -> list[dict[str, Any]]:
        """Every incident of this function with its counters, most recent first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT key, window_start, last_seen, window_duplicates, duplicates, rate_limited"
                " FROM incidents WHERE function = ? ORDER BY last_seen DESC",
                (self.function,),
            ).fetchall()
        return [dict(row) for row in rows]

    def _open(self, db: sqlite3.Connection, key: str, now: float) -> Claim:
        """The incident's current window, opening a new one when the last has passed."""
        row = db.execute(
            "SELECT window_start, window_duplicates FROM incidents WHERE function = ? AND key = ?",
            (self.function, key),
        ).fetchone()
        if row is not None and now - row["window_start"] < self.window:
            db.execute(
                "UPDATE incidents SET last_seen = ? WHERE function = ? AND key = ?",
                (now, self.function, key),
            )
            return Claim(key, row["window_start"])
        db.execute(
            "INSERT INTO incidents (function, key, window_start, last_seen) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (function, key) DO UPDATE SET window_start = excluded.window_start,"
            " last_seen = excluded.last_seen, window_duplicates = 0",
            (self.function, key, now, now),
        )
        return Claim(key, now, repeats=row["window_duplicates"] if row else 0)

    def _busy(self, db: sqlite3.Connection, claim: Claim, event_id: str) -> set[str]:
        """Channels paged in this window, or being paged for another event."""
        rows = db.execute(
            "SELECT channel FROM deliveries WHERE function = ? AND key = ? AND window_start = ?"
            " AND (status = 'sent' OR event != ?)",
            (self.function, claim.key, claim.window_start, event_id),
        ).fetchall()
        return {row["channel"] for row in rows}

    def _over_rate(self, db: sqlite3.Connection, channel: str, now: float) -> bool:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE function = ? AND channel = ? AND at > ?",
            (self.function, channel, now - self.rate_per),
        ).fetchone()
        return bool(count >= self.rate_count)

    def _count(
        self, db: sqlite3.Connection, key: str, *, duplicates: int = 0, rate_limited: int = 0
    ) -> None:
        db.execute(
            "UPDATE incidents SET window_duplicates = window_duplicates + ?,"
            " duplicates = duplicates + ?, rate_limited = rate_limited + ?"
            " WHERE function = ? AND key = ?",
            (duplicates, duplicates, rate_limited, self.function, key),
        )

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        keep = self.window + self.rate_per
        db.execute(
            "DELETE FROM deliveries WHERE function = ? AND at < ?", (self.function, now - keep)
        )
        db.execute(
            "DELETE FROM incidents WHERE function = ? AND last_seen < ?",
            (self.function, now - max(keep, KEEP_INCIDENTS)),
        )

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self.path)
