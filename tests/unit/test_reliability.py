"""MTBF, MTTR and downtime cost per machine from stored alerts and work orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agent.decisions.reliability import figure_lines, machine_figures, period_of

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def h(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def down_alert(machine: str, first: float, resolved: float | None) -> dict[str, Any]:
    return {
        "rule_id": "machine-down",
        "first_seen": h(first),
        "last_seen": h(first),
        "resolved_at": None if resolved is None else h(resolved),
        "matched": {"m": {"kind": "machine", "machine": machine, "state": "down"}},
    }


def work_order(machine: str, created: float, closed: float | None, **params: Any) -> dict[str, Any]:
    return {
        "kind": "work_order",
        "subject": machine,
        "status": "open" if closed is None else "done",
        "created_at": h(created),
        "closed_at": None if closed is None else h(closed),
        "params": params,
    }


def test_mtbf_mttr_and_downtime_cost_from_down_periods() -> None:
    alerts = [down_alert("press-01", 2, 4), down_alert("press-01", 10, 11)]
    stale_while_down = {**down_alert("press-01", 2.1, 4), "rule_id": "sensor-stale"}
    hot = {
        "first_seen": h(5),
        "matched": {"m": {"kind": "machine", "machine": "press-01", "state": "running"}},
    }
    machines = {"press-01": {"cost_per_hour": 100}, "cnc-02": {}}
    (press, cnc) = machine_figures(
        [], [*alerts, hot, stale_while_down], machines, T0, T0 + timedelta(hours=24)
    )
    assert (press.failures, press.downtime_h, press.mttr_h, press.mtbf_h) == (2, 3.0, 1.5, 10.5)
    assert press.downtime_cost == 300
    assert (cnc.failures, cnc.mtbf_h, cnc.mttr_h, cnc.downtime_cost) == (0, None, None, None)


def test_an_unresolved_down_period_ends_with_its_repair_or_runs_to_the_end() -> None:
    alerts = [down_alert("press-01", 2, None), down_alert("weld-03", 20, None)]
    actions = [
        work_order("press-01", 2, 5, priority="urgent", task="repair"),
        work_order("weld-03", 20, None, priority="urgent", task="repair"),
    ]
    figures = {
        f.machine: f for f in machine_figures(actions, alerts, {}, T0, T0 + timedelta(hours=24))
    }
    assert (figures["press-01"].downtime_h, figures["press-01"].mttr_h) == (3.0, 3.0)
    assert (figures["weld-03"].downtime_h, figures["weld-03"].mttr_h) == (4.0, None)
    assert figures["weld-03"].open_work_orders == 1


def test_services_and_idle_records_are_counted() -> None:
    actions = [
        work_order("press-01", 1, 2, service=True, task="preventive maintenance"),
        {
            "kind": "idle_capacity",
            "subject": "press-01",
            "status": "done",
            "created_at": h(3),
            "closed_at": h(4.5),
            "params": {},
        },
    ]
    (fig,) = machine_figures(actions, [], {}, T0, T0 + timedelta(hours=8))
    assert (fig.services, fig.idle_records, fig.idle_h, fig.work_orders) == (1, 1, 1.5, 1)
    assert period_of(actions, []) == (T0 + timedelta(hours=1), T0 + timedelta(hours=4.5))
    lines = figure_lines([fig], T0, T0 + timedelta(hours=8))
    assert lines[-1].startswith("total") and "press-01" in lines[2]
