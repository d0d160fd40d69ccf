"""Reliability figures per machine from the stored decisions: failures (down periods), MTBF,
MTTR, downtime and its cost, work orders, idle capacity. `factory-agent machines` prints them.

A down period is an alert of the down rule (`machine-down` in the shipped rules) on a machine
that was `down`, from `first_seen` until it resolved (the machine ran again) or, unresolved, until
its urgent repair work order was closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from agent.model import Value


@dataclass
class MachineFigures:
    machine: str
    failures: int = 0
    repaired: int = 0
    downtime_h: float = 0.0
    repair_h: float = 0.0  # down time of the repaired failures: MTTR's numerator
    mtbf_h: float | None = None
    mttr_h: float | None = None
    downtime_cost: float | None = None
    work_orders: int = 0
    open_work_orders: int = 0
    services: int = 0
    idle_records: int = 0
    idle_h: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _at(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value) if isinstance(value, str) else None


DOWN_RULE = "machine-down"


def _down_machine(alert: Mapping[str, Any], down_rule: str) -> str | None:
    if alert.get("rule_id") != down_rule:
        return None
    for fields in (alert.get("matched") or {}).values():
        if isinstance(fields, Mapping) and fields.get("kind") == "machine":
            if fields.get("state") == "down":
                return str(fields.get("machine"))
            return None
    return None


def period_of(
    actions: Iterable[Mapping[str, Any]], alerts: Iterable[Mapping[str, Any]]
) -> tuple[datetime, datetime] | None:
    """The time the records span: the earliest opening to the latest change."""
    times = [
        t
        for row in [*actions, *alerts]
        for t in (
            _at(row.get(k))
            for k in ("created_at", "first_seen", "last_seen", "closed_at", "resolved_at")
        )
        if t is not None
    ]
    return (min(times), max(times)) if times else None


def machine_figures(
    actions: Iterable[Mapping[str, Any]],
    alerts: Iterable[Mapping[str, Any]],
    machines: Mapping[str, Mapping[str, Value]],
    start: datetime,
    end: datetime,
    down_rule: str = DOWN_RULE,
) -> list[MachineFigures]:
    """Figures per machine over [start, end]: every machine in the master data, and any other
    one the records name."""
    actions, alerts = list(actions), list(alerts)
    figures = {name: MachineFigures(name) for name in machines}
    repairs: dict[str, list[datetime]] = {}
    for row in actions:
        name = str(row.get("subject"))
        created, closed = _at(row.get("created_at")), _at(row.get("closed_at"))
        if row.get("kind") == "work_order":
            fig = figures.setdefault(name, MachineFigures(name))
            fig.work_orders += created is not None and start <= created <= end
            fig.open_work_orders += row.get("status") in ("open", "acknowledged")
            params = row.get("params") or {}
            if row.get("status") == "done" and closed is not None:
                if params.get("service") is True:
                    fig.services += 1
                elif params.get("priority") == "urgent":
                    repairs.setdefault(name, []).append(closed)
        elif row.get("kind") == "idle_capacity" and created is not None:
            fig = figures.setdefault(name, MachineFigures(name))
            fig.idle_records += 1
            fig.idle_h += _hours(max(created, start), min(closed or end, end))
    for alert in alerts:
        machine = _down_machine(alert, down_rule)
        first = _at(alert.get("first_seen"))
        if machine is None or first is None or first > end:
            continue
        fig = figures.setdefault(machine, MachineFigures(machine))
        until = _at(alert.get("resolved_at")) or _repair_after(repairs.get(machine, []), first)
        fig.failures += first >= start
        fig.downtime_h += _hours(max(first, start), min(until or end, end))
        if until is not None and first >= start:
            fig.repaired += 1
            fig.repair_h += _hours(first, until)
    total_h = _hours(start, end)
    for name, fig in figures.items():
        if fig.failures:
            fig.mtbf_h = (total_h - fig.downtime_h) / fig.failures
        if fig.repaired:
            fig.mttr_h = fig.repair_h / fig.repaired
        cost = machines.get(name, {}).get("cost_per_hour")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            fig.downtime_cost = round(fig.downtime_h * cost, 2)
    return sorted(figures.values(), key=lambda f: (-f.downtime_h, f.machine))


def _repair_after(closed: list[datetime], first: datetime) -> datetime | None:
    later = [t for t in closed if t >= first]
    return min(later) if later else None


def _hours(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0) / 3600.0


def figure_lines(figures: list[MachineFigures], start: datetime, end: datetime) -> list[str]:
    """The table: one line per machine, then the totals."""

    def h(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    head = (
        f"{'machine':<12} {'failures':>8} {'MTBF h':>8} {'MTTR h':>8} {'down h':>8} "
        f"{'down cost':>10} {'WOs':>5} {'open':>5} {'svc':>4} {'idle':>5} {'idle h':>7}"
    )
    lines = [f"period {start.isoformat()} .. {end.isoformat()} ({_hours(start, end):.1f} h)", head]
    for f in figures:
        cost = "-" if f.downtime_cost is None else f"{f.downtime_cost:,.2f}"
        lines.append(
            f"{f.machine:<12} {f.failures:>8} {h(f.mtbf_h):>8} {h(f.mttr_h):>8} "
            f"{f.downtime_h:>8.2f} {cost:>10} {f.work_orders:>5} {f.open_work_orders:>5} "
            f"{f.services:>4} {f.idle_records:>5} {f.idle_h:>7.2f}"
        )
    cost_total = sum(f.downtime_cost or 0.0 for f in figures)
    lines.append(
        f"{'total':<12} {sum(f.failures for f in figures):>8} {'':>8} {'':>8} "
        f"{sum(f.downtime_h for f in figures):>8.2f} {cost_total:>10,.2f} "
        f"{sum(f.work_orders for f in figures):>5} {sum(f.open_work_orders for f in figures):>5} "
        f"{sum(f.services for f in figures):>4} {sum(f.idle_records for f in figures):>5} "
        f"{sum(f.idle_h for f in figures):>7.2f}"
    )
    return lines
