"""A believable factory on a simulated clock: machines on shifts that wear, idle, fault and get
repaired; items consumed while the plant works and delivered a lead time after they are ordered.

Pure: the caller passes the time and a seeded `random.Random`; out come (topic, payload) pairs.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.model import Value

HOUR = 3600.0
FAULTS = ("HYD-PRESSURE", "E-STOP", "SPINDLE-OVERLOAD", "SENSOR-LOST")
# Shift calendars by name (config/machines.yaml `shift_calendar`): working hours of the day.
SHIFT_HOURS = {"one-shift": (6, 14), "two-shift": (6, 22), "three-shift": (0, 24)}


def _number(fields: Mapping[str, Value], name: str, default: float) -> float:
    value = fields.get(name)
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


@dataclass
class Machine:
    name: str
    shift: tuple[int, int]
    max_temp_c: float
    max_vibration_mm_s: float
    wear: float  # 0 new .. 1 failing
    wear_per_hour: float
    state: str = "running"
    until: float = 0.0  # simulated seconds: when an idle stop, repair or maintenance ends
    fault: str | None = None
    cycles: int = 0
    scrap: int = 0

    def in_shift(self, when: datetime) -> bool:
        start, end = self.shift
        return start <= when.hour < end


@dataclass
class Item:
    sku: str
    unit: str
    on_hand: float
    reorder_point: float
    reorder_qty: float
    lead_time_s: float
    usage_per_hour: float
    on_order: float = 0.0
    order_at: float | None = None  # when the buyer will place the order
    deliveries: list[tuple[float, float, str]] = field(default_factory=list)  # (due, qty, ref)


class Factory:
    """Advance with `step(now)`; each call returns the messages to publish at `now`."""

    def __init__(
        self,
        rng: random.Random,
        start: datetime,
        machines: Mapping[str, Mapping[str, Value]],
        items: Mapping[str, Mapping[str, Value]],
        *,
        machine_count: int,
        sku_count: int,
        site: str = "plant1",
        prefix: str = "factory",
    ) -> None:
        self.rng = rng
        self.start = start
        self.site = site
        self.prefix = prefix
        self.elapsed = 0.0
        self.orders = 0
        named_machines = list(machines.items())
        named_items = list(items.items())
        self.machines = [
            self._machine(*_pick(named_machines, i, "machine")) for i in range(machine_count)
        ]
        self.items = [self._item(*_pick(named_items, i, "SKU")) for i in range(sku_count)]
        self._turn = 0

    def _machine(self, name: str, spec: Mapping[str, Value]) -> Machine:
        calendar = str(spec.get("shift_calendar", "two-shift"))
        return Machine(
            name=name,
            shift=SHIFT_HOURS.get(calendar, SHIFT_HOURS["two-shift"]),
            max_temp_c=_number(spec, "max_temp_c", 75.0),
            max_vibration_mm_s=_number(spec, "max_vibration_mm_s", 5.0),
            wear=self.rng.uniform(0.0, 0.95),
            wear_per_hour=self.rng.uniform(1 / 120, 1 / 30),  # fails after 30..120 running hours
        )

    def _item(self, sku: str, spec: Mapping[str, Value]) -> Item:
        reorder_point = _number(spec, "reorder_point", 50.0)
        max_level = max(_number(spec, "max_level", reorder_point * 3), reorder_point + 1)
        days_to_reorder_point = self.rng.uniform(2.0, 6.0)
        return Item(
            sku=sku,
            unit=str(spec.get("unit", "pcs")),
            # Some items start near their reorder point, so the first hours show a reorder.
            on_hand=self.rng.uniform(reorder_point * 0.9, max_level),
            reorder_point=reorder_point,
            reorder_qty=_number(spec, "reorder_qty", max_level - reorder_point),
            lead_time_s=_number(spec, "lead_time_days", 5.0) * 24 * HOUR,
            usage_per_hour=(max_level - reorder_point) / (days_to_reorder_point * 16),
        )

    # -- time -----------------------------------------------------------------------------------

    def step(self, now: datetime) -> list[tuple[str, dict[str, Any]]]:
        """Advance to `now`; the deliveries that arrived, then one subject's current report."""
        elapsed = (now - self.start).total_seconds()
        dt = max(0.0, elapsed - self.elapsed)
        self.elapsed = max(self.elapsed, elapsed)
        out: list[tuple[str, dict[str, Any]]] = []
        for machine in self.machines:
            self._run_machine(machine, now, dt)
        working = any(m.state == "running" for m in self.machines) or not self.machines
        for item in self.items:
            out.extend(self._run_item(item, now, dt, working))
        subjects = len(self.machines) + len(self.items)
        if subjects:
            index = self._turn % subjects
            self._turn += 1
            if index < len(self.machines):
                out.append(self._telemetry(self.machines[index], now))
            else:
                out.append(self._stock(self.items[index - len(self.machines)], now))
        return out

    def _run_machine(self, m: Machine, now: datetime, dt: float) -> None:
        t, rng = self.elapsed, self.rng
        if m.state == "down" and t >= m.until:
            m.state, m.until, m.fault = "maintenance", t + rng.uniform(0.5, 1.5) * HOUR, None
        elif m.state == "maintenance" and t >= m.until:
            m.state, m.wear = ("running" if m.in_shift(now) else "idle"), 0.0
        elif m.state in ("running", "idle"):
            if not m.in_shift(now):
                m.state = "idle"  # off shift: planned idle
            elif m.state == "idle" and t >= m.until:
                m.state = "running"
            elif m.state == "running":
                hours = dt / HOUR
                m.wear += m.wear_per_hour * hours
                m.cycles += int(hours * rng.uniform(50, 70))
                m.scrap += int(hours * rng.uniform(0, 2))
                if m.wear >= 1.0:
                    m.state, m.fault = "down", "BEARING-FAILURE"
                    m.until = t + rng.uniform(2, 6) * HOUR
                elif rng.random() < 0.01 * hours:
                    m.state, m.fault = "down", rng.choice(FAULTS)
                    m.until = t + rng.uniform(0.5, 3) * HOUR
                elif rng.random() < 0.12 * hours:
                    m.state, m.until = "idle", t + rng.uniform(0.3, 1.2) * HOUR  # no material

    def _run_item(
        self, item: Item, now: datetime, dt: float, working: bool
    ) -> list[tuple[str, dict[str, Any]]]:
        t = self.elapsed
        if working:
            used = item.usage_per_hour * dt / HOUR * self.rng.uniform(0.6, 1.4)
            item.on_hand = max(0.0, item.on_hand - used)
        if item.order_at is None and item.on_hand + item.on_order <= item.reorder_point:
            item.order_at = t + self.rng.uniform(1, 4) * HOUR  # the buyer reacts within hours
        if item.order_at is not None and t >= item.order_at:
            self.orders += 1
            due = t + item.lead_time_s * self.rng.uniform(0.8, 1.2)
            item.deliveries.append((due, item.reorder_qty, f"PO-{self.orders:05d}"))
            item.on_order += item.reorder_qty
            item.order_at = None
        out: list[tuple[str, dict[str, Any]]] = []
        for delivery in [d for d in item.deliveries if d[0] <= t]:
            item.deliveries.remove(delivery)
            _, quantity, reference = delivery
            item.on_hand += quantity
            item.on_order -= quantity
            payload = {"quantity": quantity, "reference": reference, "ts": now.isoformat()}
            out.append((f"{self.prefix}/{self.site}/receipt/{item.sku}", payload))
        return out

    # -- reports --------------------------------------------------------------------------------

    def _telemetry(self, m: Machine, now: datetime) -> tuple[str, dict[str, Any]]:
        rng = self.rng
        load = {"running": 1.0, "idle": 0.15, "setup": 0.3}.get(m.state, 0.05)
        severity = min(m.wear, 1.0) ** 2
        temp = 22 + (m.max_temp_c - 30) * load + 18 * severity * load + rng.gauss(0, 0.8)
        vibration = (0.3 * m.max_vibration_mm_s + 1.0 * m.max_vibration_mm_s * severity) * load
        payload: dict[str, Any] = {
            "state": m.state,
            "temp_c": round(temp, 1),
            "vibration_mm_s": round(max(0.0, vibration + rng.gauss(0, 0.05)), 2),
            "current_a": round(max(0.0, 180 * load + rng.gauss(0, 3)), 1),
            "cycles": m.cycles,
            "good": m.cycles - m.scrap,
            "scrap": m.scrap,
            "ts": now.isoformat(),
        }
        if m.fault:
            payload["fault"] = m.fault
        return f"{self.prefix}/{self.site}/machine/{m.name}/telemetry", payload

    def _stock(self, item: Item, now: datetime) -> tuple[str, dict[str, Any]]:
        payload = {
            "on_hand": round(item.on_hand),
            "on_order": round(item.on_order),
            "unit": item.unit,
            "ts": now.isoformat(),
        }
        return f"{self.prefix}/{self.site}/stock/{item.sku}", payload


def _pick(
    named: list[tuple[str, Mapping[str, Value]]], index: int, word: str
) -> tuple[str, Mapping[str, Value]]:
    """The index-th named subject; beyond the master data, a numbered copy of one of them."""
    if index < len(named):
        return named[index]
    spec = named[index % len(named)][1] if named else {}
    prefix = "SKU" if word == "SKU" else "machine"
    return f"{prefix}-{index + 1:03d}", spec
