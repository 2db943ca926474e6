"""The dashboard's pages about models and failures: models, dead letters."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .chart import line_chart
from .html import badge, e, page, pretty, row, table, when

LINEAGE_STEPS = (
    ("datasetUri", "data"),
    ("datasetHash", "hash"),
    ("gitCommit", "commit"),
    ("imageDigest", "image"),
    ("runId", "run"),
)


def models_page(models: list[dict[str, Any]]) -> str:
    if not models:
        return page("models", "Models", '<p class="muted">no model registered yet</p>')
    return page("models", "Models", "".join(_model(m) for m in models))


def _model(model: dict[str, Any]) -> str:
    name = model["name"]
    versions = model["versions"]
    rows = [
        row(
            f"<b>v{v['version']}</b>",
            badge(v["stage"]),
            ", ".join(f"{e(k)} {val:.4g}" for k, val in sorted(v["metrics"].items())),
            when(v["created"]),
            _lineage(v, model["history"]),
            e(v.get("note")),
            attrs=f'data-version="{v["version"]}" data-stage="{e(v["stage"])}"',
        )
        for v in versions
    ]
    head = ("version", "stage", "metrics", "created", "lineage: data → commit → deployment", "note")
    return (
        f'<section class="model" data-model="{e(name)}"><h2>{e(name)}</h2>'
        f'<div class="chart-box"><h3>Metrics over versions</h3>{line_chart(versions)}</div>'
        + table(head, rows, id=f"versions-{name}")
        + _history(model["history"])
        + "</section>"
    )


def _lineage(version: dict[str, Any], history: list[dict[str, Any]]) -> str:
    lineage = version.get("lineage") or {}
    steps = []
    for key, label in LINEAGE_STEPS:
        value = lineage.get(key)
        if value:
            shown = str(value)[:12] if key in ("datasetHash", "imageDigest", "gitCommit") else value
            if key == "runId":
                shown = f'<a href="/ui/runs/{quote(str(value))}">{e(str(value)[-6:])}</a>'
            else:
                shown = e(shown)
            steps.append(f'<span class="step" title="{e(value)}">{label} {shown}</span>')
    steps.append(f'<span class="step">v{version["version"]}</span>')
    promoted = [h for h in history if h["version"] == version["version"]]
    for entry in promoted:
        steps.append(f'<span class="step deployed">{e(entry["why"])}d {when(entry["at"])}</span>')
    return '<span class="lineage">' + " → ".join(steps) + "</span>"


def _history(history: list[dict[str, Any]]) -> str:
    if not history:
        return ""
    rows = [
        row(
            when(h["at"]),
            e(h["why"]),
            f"v{h['version']}",
            f"v{h['previous']}" if h["previous"] else "",
        )
        for h in history
    ]
    return "<h3>Champion history</h3>" + table(("when", "what", "champion", "replaced"), rows)


def dead_letters_page(
    letters: list[dict[str, Any]], topic: str, bus: str, triggers: list[str]
) -> str:
    rows = [_letter(item, topic, bus) for item in letters]
    head = ("offset", "dead-lettered", "event", "reason", "attempts", "trigger → function", "")
    body = (
        f'<p class="muted">topic <b>{e(topic)}</b> on bus <b>{e(bus)}</b>.'
        " Redrive publishes the original event again (reason stripped, same id and source)"
        " to its trigger's topic; each dead letter is redriven at most once.</p>"
        + table(head, rows, id="dead-letters", empty="no dead letters")
        + _replay_form(triggers)
    )
    return page("dead-letters", "Dead letters", body)


def _letter(item: dict[str, Any], topic: str, bus: str) -> str:
    event, reason, done = item["event"], item["reason"], item["redrive"]
    if done:
        action = f'<span class="muted redriven">redriven → offset {done["newOffset"]}</span>'
    else:
        url = f"/api/dead-letters/{item['offset']}/redrive?topic={quote(topic)}&bus={quote(bus)}"
        action = f'<button class="redrive" data-url="{e(url)}">Redrive</button>'
    return row(
        e(item["offset"]),
        when(item["publishedAt"]),
        f'<details><summary>{e(event["type"])} <span class="muted">{e(event["id"])}</span>'
        f"</summary>{pretty(event)}</details>",
        f'<b>{e(reason["errorType"])}</b>: <span class="reason">{e(reason["message"])}</span>',
        e(reason["attempts"]),
        f"{e(reason['trigger'])} → {e(reason['destination'])}",
        action,
        attrs=f'data-offset="{item["offset"]}" data-id="{e(event["id"])}"',
    )


def _replay_form(triggers: list[str]) -> str:
    options = "".join(f"<option>{e(t)}</option>" for t in triggers)
    return (
        "<h2>Replay a trigger</h2>"
        '<form id="replay" class="filters"><label>Trigger'
        f'<select name="trigger">{options}</select></label>'
        '<label>From offset<input name="fromOffset" type="number" min="0"></label>'
        '<label>or from time<input name="fromTime" type="datetime-local"></label>'
        '<button type="submit">Replay</button> <span id="replayed" class="muted"></span></form>'
    )
