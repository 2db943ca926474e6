"""Metrics over model versions as an inline SVG line chart (one line per metric)."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 560, 240, 48, 140, 16, 32
COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


def series(versions: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Each metric's (version, value) points, in version order."""
    lines: dict[str, list[tuple[int, float]]] = {}
    for version in sorted(versions, key=lambda v: v["version"]):
        for metric, value in sorted(version["metrics"].items()):
            if isinstance(value, int | float):
                lines.setdefault(metric, []).append((version["version"], float(value)))
    return lines


def line_chart(versions: list[dict[str, Any]]) -> str:
    lines = series(versions)
    if not lines:
        return '<p class="muted">no metrics recorded</p>'
    xs = sorted({x for points in lines.values() for x, _ in points})
    values = [y for points in lines.values() for _, y in points]
    low, high = min(values), max(values)
    if high == low:
        low, high = low - 0.5, high + 0.5
    span_x = max(len(xs) - 1, 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(x: int, y: float) -> tuple[float, float]:
        px = LEFT + (xs.index(x) / span_x) * plot_w if len(xs) > 1 else LEFT + plot_w / 2
        return px, TOP + (1 - (y - low) / (high - low)) * plot_h

    parts = [_axes(xs, low, high, at)]
    for index, (metric, points) in enumerate(lines.items()):
        parts.append(_line(metric, points, COLORS[index % len(COLORS)], index, at))
    return (
        f'<svg class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' xmlns="http://www.w3.org/2000/svg" role="img" aria-label="metrics by version">'
        f"{''.join(parts)}</svg>"
    )


def _axes(xs: list[int], low: float, high: float, at: Any) -> str:
    bottom, top = HEIGHT - BOTTOM, TOP
    parts = [f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>']
    for x in xs:
        px, _ = at(x, low)
        parts.append(f'<text class="tick" x="{px}" y="{bottom + 18}">v{x}</text>')
    for value, y in ((high, top), (low, bottom)):
        parts.append(f'<text class="tick y" x="{LEFT - 6}" y="{y + 4}">{value:.3g}</text>')
    return "".join(parts)


def _line(metric: str, points: list[tuple[int, float]], color: str, index: int, at: Any) -> str:
    coords = [at(x, y) for x, y in points]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle class="point" data-metric="{escape(metric)}" data-version="{v}" cx="{x:.1f}"'
        f' cy="{y:.1f}" r="4" fill="{color}"><title>{escape(metric)} v{v}: {value:.4g}</title>'
        "</circle>"
        for (x, y), (v, value) in zip(coords, points, strict=True)
    )
    legend_y = TOP + 14 + index * 18
    return (
        f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>{dots}'
        f'<text class="legend" x="{WIDTH - RIGHT + 12}" y="{legend_y}" fill="{color}">'
        f"{escape(metric)}</text>"
    )
