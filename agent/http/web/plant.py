"""What the machine and stock pages show, as pure functions over saved facts and readings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from agent.http.web.charts import Limit, Point, line_chart
from agent.model import Fact, Value
from agent.world.history import Reading

STATE_RANK = {"down": 0, "fault": 0, "idle": 1, "setup": 2, "running": 3}


def machines(facts: Iterable[Fact], now: datetime) -> list[dict[str, Any]]:
    """One row per machine: worst state first (down, idle, ...), then by name."""
    rows: list[dict[str, Any]] = []
    for fact in facts:
        if fact.kind != "machine":
            continue
        f = fact.fields
        state = str(f.get("state") or "unknown")
        rows.append(
            {
                "site": fact.site,
                "machine": fact.subject,
                "line": f.get("line") or "",
                "state": state,
                "in_state": _duration(_since(f.get("state_since"), now)),
                "utilization_pct": f.get("utilization_pct"),
                "shift": f.get("shift") or "",
                "open_work_orders": f.get("open_work_orders") or 0,
                "run_hours": f.get("run_hours"),
                "stale": f.get("stale") is True,
                "last_seen": fact.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
                "_order": (STATE_RANK.get(state, 1), fact.site, fact.subject),
            }
        )
    rows.sort(key=_order)
    return rows


def stock(facts: Iterable[Fact]) -> list[dict[str, Any]]:
    """One row per SKU: the fewest days of cover first (unknown cover last)."""
    rows: list[dict[str, Any]] = []
    for fact in facts:
        if fact.kind != "stock":
            continue
        f = fact.fields
        cover = f.get("days_of_cover")
        rows.append(
            {
                "site": fact.site,
                "sku": fact.subject,
                "description": f.get("description") or "",
                "unit": f.get("unit") or "",
                "on_hand": f.get("on_hand"),
                "on_order": f.get("on_order"),
                "projected": f.get("projected"),
                "days_of_cover": cover,
                "reorder_point": f.get("reorder_point"),
                "learned_reorder_point": f.get("dynamic_reorder_point"),
                "low": _below(f.get("projected"), f.get("reorder_point")),
                "updated": fact.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
                "_order": (_number(cover) is None, _number(cover) or 0.0, fact.site, fact.subject),
            }
        )
    rows.sort(key=_order)
    return rows


def machine_charts(
    fact: Fact, readings: Sequence[Reading], start: datetime, end: datetime
) -> list[dict[str, str]]:
    """A chart per metric with its limits (`max_<metric>`, `min_<metric>` of the fact)."""
    charts = []
    for metric, series in _by_metric(readings).items():
        limits = [
            Limit(name, float(value))
            for name in (f"max_{metric}", f"min_{metric}")
            if (value := _number(fact.fields.get(name))) is not None
        ]
        points = [Point(r.bucket, r.min, r.max, r.mean) for r in series]
        charts.append({"metric": metric, "svg": line_chart(metric, points, limits, start, end)})
    return charts


def stock_chart(fact: Fact, readings: Sequence[Reading], start: datetime, end: datetime) -> str:
    """On hand over time with the reorder point, static and learned."""
    series = _by_metric(readings).get("on_hand", [])
    limits = [
        Limit(name, float(value))
        for name, key in (
            ("reorder point", "reorder_point"),
            ("learned", "dynamic_reorder_point"),
        )
        if (value := _number(fact.fields.get(key))) is not None
    ]
    points = [Point(r.bucket, r.min, r.max, r.last) for r in series]
    return line_chart("on_hand", points, limits, start, end)


def _order(row: dict[str, Any]) -> Any:
    return row["_order"]


def _by_metric(readings: Iterable[Reading]) -> dict[str, list[Reading]]:
    out: dict[str, list[Reading]] = {}
    for reading in sorted(readings, key=lambda r: (r.metric, r.bucket)):
        out.setdefault(reading.metric, []).append(reading)
    return out


def _since(value: Value | None, now: datetime) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return max((now - datetime.fromisoformat(value)).total_seconds(), 0.0)
    except ValueError:
        return None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def _number(value: Value | None) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _below(value: Value | None, limit: Value | None) -> bool:
    a, b = _number(value), _number(limit)
    return a is not None and b is not None and a <= b


def hours_of(query: Mapping[str, Sequence[str]], default: float, most: float) -> float:
    """The `hours` of the query string, within (0, most]; `default` when absent or unusable."""
    raw = (query.get("hours") or [""])[0]
    try:
        hours = float(raw)
    except ValueError:
        return default
    return min(hours, most) if hours > 0 else default
