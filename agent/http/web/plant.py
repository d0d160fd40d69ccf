"""What the machine and stock pages show, as pure functions over saved facts and readings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any

from agent.http.web.charts import Limit, Marker, Point, line_chart
from agent.model import Fact, Value
from agent.world.history import Reading

STATE_RANK = {"down": 0, "fault": 0, "idle": 1, "setup": 2, "running": 3}
# MTBF and MTTR come from the closed episodes of these rules' alerts on the machine.
DOWN_RULES = ("machine-down",)


def machines(
    facts: Iterable[Fact],
    now: datetime,
    reliable: Mapping[tuple[str, str], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per machine: worst state first (down, idle, ...), then by name; with its MTBF
    and MTTR when `reliable` (from `reliability`) is given."""
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
                "reliability": (reliable or {}).get((fact.site, fact.subject), NO_RELIABILITY),
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


def stock_chart(
    fact: Fact,
    readings: Sequence[Reading],
    start: datetime,
    end: datetime,
    receipts: Iterable[Mapping[str, Any]] = (),
) -> str:
    """On hand over time with the reorder point, static and learned, and a marker per receipt
    of the SKU received in the period (with its quantity)."""
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
    markers = [
        Marker(at, f"+{_num_text(r.get('quantity'))}")
        for r in receipts
        if r.get("site") == fact.site
        and r.get("subject") == fact.subject
        and isinstance(at := r.get("received_at"), datetime)
        and start <= at <= end
    ]
    return line_chart("on_hand", points, limits, start, end, markers)


def reliability(
    alerts: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """MTBF and MTTR per (site, machine) from its down alerts (`DOWN_RULES`): an episode runs
    from `first_seen` to `resolved_at`. MTTR is the mean episode length over resolved
    episodes; MTBF the mean time from one episode's resolution to the next one's start (so it
    needs two episodes). Closed by hand or by `resolve_when`, both count."""
    episodes: dict[tuple[str, str], list[tuple[datetime, datetime | None]]] = {}
    for row in alerts:
        start = row.get("first_seen")
        if row.get("rule_id") not in DOWN_RULES or not isinstance(start, datetime):
            continue
        end = row.get("resolved_at")
        key = (str(row.get("site")), str(row.get("subject")))
        episodes.setdefault(key, []).append((start, end if isinstance(end, datetime) else None))
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key, spans in episodes.items():
        spans.sort(key=lambda span: span[0])
        repairs = [(end - start).total_seconds() for start, end in spans if end is not None]
        gaps = [
            (later[0] - earlier[1]).total_seconds()
            for earlier, later in pairwise(spans)
            if earlier[1] is not None
        ]
        mttr = sum(repairs) / len(repairs) if repairs else None
        mtbf = sum(gaps) / len(gaps) if gaps else None
        out[key] = {
            "failures": len(spans),
            "mttr_s": mttr,
            "mtbf_s": mtbf,
            "mttr": _duration(mttr),
            "mtbf": _duration(mtbf),
        }
    return out


NO_RELIABILITY: dict[str, Any] = {
    "failures": 0,
    "mttr_s": None,
    "mtbf_s": None,
    "mttr": "",
    "mtbf": "",
}


def _num_text(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


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
