"""Charts as inline SVG, drawn on the server: no script, no charting library, no CSP exception.

Pure: a series of (time, low, high, mean) points and optional limits in, SVG text out. The mean
is a line with a dot per bucket, the bucket's min..max a band behind it, a limit a dashed line,
a marker (a receipt) a vertical line at its time with its label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH = 640
HEIGHT = 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 10, 24


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    low: float
    high: float
    mean: float


@dataclass(frozen=True, slots=True)
class Marker:
    at: datetime
    label: str  # e.g. "+200" for a receipt of 200


@dataclass(frozen=True, slots=True)
class Limit:
    name: str  # e.g. "max_temp_c" or "reorder point"
    value: float


def line_chart(
    title: str,
    points: Sequence[Point],
    limits: Sequence[Limit] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    markers: Sequence[Marker] = (),
) -> str:
    """An SVG chart of `points` from `start` to `end` (the points' own span by default)."""
    label = escape(title)
    if not points and not markers:
        return (
            f'<svg class="chart empty" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{label}: no readings"><text x="{WIDTH // 2}" y="{HEIGHT // 2}" '
            f'text-anchor="middle" class="axis">no readings in this period</text></svg>'
        )
    times = [p.at for p in points] or [m.at for m in markers]
    first = start or min(times)
    last = end or max(times)
    span_s = max((last - first).total_seconds(), 1.0)
    values = [v for p in points for v in (p.low, p.high)] + [limit.value for limit in limits]
    values = values or [0.0]
    bottom, top = min(values), max(values)
    if top - bottom < 1e-9:
        bottom, top = bottom - 1.0, top + 1.0
    pad = (top - bottom) * 0.05
    bottom, top = bottom - pad, top + pad
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM

    def x(at: datetime) -> float:
        return _LEFT + (at - first).total_seconds() / span_s * plot_w

    def y(value: float) -> float:
        return _TOP + (top - value) / (top - bottom) * plot_h

    band = [f"{x(p.at):.1f},{y(p.high):.1f}" for p in points]
    band += [f"{x(p.at):.1f},{y(p.low):.1f}" for p in reversed(points)]
    line = " ".join(f"{x(p.at):.1f},{y(p.mean):.1f}" for p in points)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" '
        f'data-points="{len(points)}" data-markers="{len(markers)}">',
        f"<title>{label}</title>",
        f'<rect class="frame" x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#d8dce3"/>',
        f'<polygon class="band" points="{" ".join(band)}" fill="#bfdbfe" stroke="none"/>',
        f'<polyline class="mean" points="{line}" fill="none" stroke="#1d4ed8" stroke-width="1.5"/>',
    ]
    for p in points:
        tip = escape(f"{p.at:%H:%M} mean {_num(p.mean)} (min {_num(p.low)}, max {_num(p.high)})")
        parts.append(
            f'<circle class="point" cx="{x(p.at):.1f}" cy="{y(p.mean):.1f}" r="2" '
            f'fill="#1d4ed8"><title>{tip}</title></circle>'
        )
    for limit in limits:
        at_y = y(limit.value)
        parts.append(
            f'<line class="limit" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{at_y:.1f}" '
            f'y2="{at_y:.1f}" stroke="#b91c1c" stroke-dasharray="6 4"/>'
            f'<text class="limit-label" x="{WIDTH - _RIGHT - 4}" y="{at_y - 4:.1f}" '
            f'text-anchor="end" fill="#b91c1c">{escape(limit.name)} {_num(limit.value)}</text>'
        )
    for marker in markers:
        at_x = x(marker.at)
        tip = escape(f"{marker.at:%Y-%m-%d %H:%M} received {marker.label}")
        parts.append(
            f'<g class="marker"><line x1="{at_x:.1f}" x2="{at_x:.1f}" y1="{_TOP}" '
            f'y2="{_TOP + plot_h}" stroke="#15803d" stroke-dasharray="2 3"/>'
            f'<text x="{at_x + 3:.1f}" y="{_TOP + 12}" fill="#15803d" font-size="11">'
            f"{escape(marker.label)}</text><title>{tip}</title></g>"
        )
    axis = 'class="axis" fill="#6b7280" font-size="11"'
    parts += [
        f'<text {axis} x="{_LEFT - 4}" y="{_TOP + 10}" text-anchor="end">{_num(top)}</text>',
        f'<text {axis} x="{_LEFT - 4}" y="{_TOP + plot_h}" text-anchor="end">{_num(bottom)}</text>',
        f'<text {axis} x="{_LEFT}" y="{HEIGHT - 6}">{first:%Y-%m-%d %H:%M}</text>',
        f'<text {axis} x="{WIDTH - _RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
        f"{last:%H:%M} UTC</text>",
        "</svg>",
    ]
    return "".join(parts)


def _num(value: float) -> str:
    return f"{value:.4g}"
