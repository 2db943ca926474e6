"""Small HTML building blocks: the page frame, tables, times, escaping.

Pages are plain strings with every value escaped here; no template engine, no
assets from the internet (the CSS and JS are served from the package).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

NAV = (
    ("functions", "/ui/", "Functions"),
    ("graph", "/ui/graph", "Event flow"),
    ("events", "/ui/events", "Events"),
    ("runs", "/ui/runs", "Runs"),
    ("models", "/ui/models", "Models"),
    ("dead-letters", "/ui/dead-letters", "Dead letters"),
)


def e(value: Any) -> str:
    """A value as escaped text (``None`` is empty)."""
    return "" if value is None else escape(str(value))


def page(current: str, title: str, body: str, *, live: str = "") -> str:
    links = "".join(
        f'<a href="{href}"{" class=on" if key == current else ""}>{label}</a>'
        for key, href, label in NAV
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{e(title)} · cumulo</title>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel=stylesheet href="/ui/static/dashboard.css"></head>'
        f'<body data-page="{e(current)}" data-live="{e(live)}">'
        f"<header><span class=brand>cumulo</span><nav>{links}</nav>"
        "<span id=live class=muted></span></header>"
        f"<main><h1>{e(title)}</h1>{body}</main>"
        '<script src="/ui/static/dashboard.js"></script></body></html>'
    )


def table(headers: Sequence[str], rows: Iterable[str], *, id: str = "", empty: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class=muted>{e(empty or "nothing yet")}</td></tr>'
    attr = f' id="{e(id)}"' if id else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def row(*cells: str, attrs: str = "") -> str:
    return f"<tr{' ' + attrs if attrs else ''}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return f'<time datetime="{epoch}">{e(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)))}</time>'


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def badge(status: str | None) -> str:
    return f'<span class="badge {e(status)}">{e(status)}</span>' if status else ""


def progress(percent: float | None) -> str:
    if percent is None:
        return ""
    return (
        f'<span class=bar title="{percent:.0f}%"><span style="width:{max(0.0, min(percent, 100)):.0f}%">'
        f"</span></span> {percent:.0f}%"
    )


def pretty(value: Any) -> str:
    return f"<pre>{e(json.dumps(value, indent=2, sort_keys=True, default=str))}</pre>"
