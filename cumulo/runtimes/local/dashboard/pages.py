"""The dashboard's pages about the platform: functions, event flow, events, runs.

Each function takes what the JSON API answers and returns the page's HTML;
the JS (``static/dashboard.js``) refreshes the live parts from the same API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .html import badge, e, page, pretty, progress, row, seconds, table, when


def functions_page(functions: list[dict[str, Any]], status: dict[str, Any]) -> str:
    rows = [
        row(
            f"<b>{e(f['name'])}</b>",
            e(f["mode"]),
            f'<span data-field="replicas">{f["replicas"]}</span> / {f["max"]}',
            f'<span data-field="invocations">{f["invocations"]}</span>',
            f'<span data-field="errors">{f["errors"]}</span>',
            f'<span data-field="coldStarts">{e(f["coldStarts"])}</span>',
            attrs=f'data-function="{e(f["name"])}"',
        )
        for f in functions
    ]
    head = ("function", "mode", "replicas (live / max)", "invocations", "errors", "cold starts")
    body = table(head, rows, id="functions")
    body += "<h2>Triggers</h2>" + table(
        ("trigger", "function", "delivered", "retried", "dead-lettered", "in flight"),
        (
            row(
                e(t["name"]),
                e(t["function"]),
                e(t["delivered"]),
                e(t["retried"]),
                e(t["dead_lettered"]),
                e(t["inflight"]),
            )
            for t in status.get("triggers", [])
        ),
    )
    body += "<h2>Sources</h2>" + table(
        ("source", "kind", "published / fired"),
        (
            row(e(s["name"]), e(s["kind"]), e(s.get("published", s.get("fired", ""))))
            for s in status.get("sources", [])
        ),
        empty="no event sources",
    )
    return page("functions", "Functions", body, live="functions")


def graph_page(svg: str) -> str:
    legend = (
        '<p class="legend-row"><span class="key source">source</span>'
        '<span class="key type">event type</span><span class="key function">function</span>'
        ' <span class="muted">numbers on edges: events delivered or emitted (live)</span></p>'
    )
    return page("graph", "Event flow", legend + f'<div class="scroll">{svg}</div>', live="graph")


def events_form(query: dict[str, str], topics: list[str]) -> str:
    def field(name: str, label: str, kind: str = "text") -> str:
        return (
            f'<label>{label}<input name="{name}" type="{kind}" value="{e(query.get(name, ""))}"'
            f' placeholder="{label.lower()}"></label>'
        )

    chosen = query.get("topic", "default")
    options = "".join(
        f"<option{' selected' if t == chosen else ''}>{e(t)}</option>" for t in topics
    )
    return (
        '<form class="filters" method="get" action="/ui/events">'
        + field("type", "Type")
        + field("source", "Source")
        + field("subject", "Subject")
        + field("since", "From", "datetime-local")
        + field("until", "To", "datetime-local")
        + f'<label>Topic<select name="topic">{options}</select></label>'
        + '<button type="submit">Search</button></form>'
    )


def events_page(found: list[dict[str, Any]], query: dict[str, str], topics: list[str]) -> str:
    rows = [_event_row(item) for item in found]
    head = ("offset", "published", "event (click for payload)", "source", "subject", "runs")
    body = events_form(query, topics) + f'<p class="muted">{len(found)} event(s), newest first</p>'
    return page("events", "Events", body + table(head, rows, id="events", empty="no events match"))


def _event_row(item: dict[str, Any]) -> str:
    event = item["event"]
    runs = " ".join(
        f'<a href="/ui/runs/{quote(r["id"])}">{e(r["function"])}</a> {badge(r["status"])}'
        for r in item["runs"]
    )
    caused = ", ".join(
        f'<a href="/ui/events?type=&topic={quote(item["topic"])}#{quote(c)}">{e(c)}</a>'
        for c in item["caused"][:10]
    )
    details = (
        f'<details class="event" id="{e(event["id"])}"><summary>{e(event["type"])}'
        f' <span class="muted">{e(event["id"])}</span></summary>{pretty(event)}'
        + (f"<p>runs: {runs}</p>" if runs else "")
        + (f"<p>caused: {caused}</p>" if caused else "")
        + "</details>"
    )
    return row(
        e(item["offset"]),
        when(item["publishedAt"]),
        details,
        e(event.get("source")),
        e(event.get("subject")),
        runs,
    )


def runs_page(runs: list[dict[str, Any]], function: str) -> str:
    rows = [
        row(
            f'<a href="/ui/runs/{quote(r["id"])}">{e(r["id"])}</a>',
            e(r["function"]),
            f'<span data-field="status">{badge(r["status"])}</span>',
            e(r["eventType"]),
            when(r["started"]),
            f'<span data-field="duration">{seconds(r["duration"])}</span>',
            f'<span data-field="progress">{progress(r["progress"])}</span>',
            f'<a class="log-link" href="/ui/runs/{quote(r["id"])}#log">log</a>',
            attrs=f'data-run="{e(r["id"])}" class="{e(r["status"])}"',
        )
        for r in runs
    ]
    head = ("run", "function", "status", "event", "started", "duration", "progress", "")
    title = f"Runs of {function}" if function else "Runs"
    return page("runs", title, table(head, rows, id="runs", empty="no runs yet"), live="runs")


def run_page(run: dict[str, Any], log: str) -> str:
    facts = [
        ("function", e(run["function"])),
        ("status", badge(run["status"])),
        (
            "event",
            f'<a href="/ui/events?type={quote(run["eventType"])}">{e(run["eventType"])}</a>'
            f' <span class="muted">{e(run["eventId"])}</span>',
        ),
        ("started", when(run["started"])),
        ("duration", seconds(run["duration"])),
        ("progress", progress(run["progress"])),
        ("exit code", e(run["exitCode"])),
        ("trace", e(run["trace"])),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    error = f'<p class="error">{e(run["error"])}</p>' if run["error"] else ""
    body = (
        f"<dl>{dl}</dl>{error}<h2>Log</h2>"
        f'<pre id="log" class="log" data-run="{e(run["id"])}">{e(log) or "(empty)"}</pre>'
    )
    return page("runs", f"Run {run['id']}", body, live="run" if run["status"] == "running" else "")
