"""Which fields a fact of each kind has, and their types: what rule validation checks against.

Built from the message schemas, the master data and the values the world state derives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.ingest.schema import KNOWN_METRICS, SCHEMAS
from agent.rulebook import expr

# Derived values the world state computes, per fact kind (DESIGN.md §4).
DERIVED: Mapping[str, Mapping[str, str]] = {
    "stock": {
        "projected": expr.NUMBER,
        "on_order": expr.NUMBER,
        "on_order_agent": expr.NUMBER,
        "on_order_erp": expr.NUMBER,
        "open_reorders": expr.NUMBER,
        "daily_usage": expr.NUMBER,
        "days_of_cover": expr.NUMBER,
        "dynamic_reorder_point": expr.NUMBER,
        "eoq": expr.NUMBER,
        "jump_share": expr.NUMBER,
        "count_implausible": expr.BOOL,
        "seen_h": expr.NUMBER,
        "counted_at": expr.STRING,
        "overstock_h": expr.NUMBER,
        "received_since_count": expr.NUMBER,
        "over_received": expr.NUMBER,
        "last_receipt_qty": expr.NUMBER,
    },
    "machine": {
        "state_minutes": expr.NUMBER,
        "state_since": expr.STRING,
        "idle_minutes": expr.NUMBER,
        "run_hours": expr.NUMBER,
        "hours_since_service": expr.NUMBER,
        "last_service": expr.STRING,
        "seen_s": expr.NUMBER,
        "stale": expr.BOOL,
        "scrap_pct": expr.NUMBER,
        "in_shift": expr.BOOL,
        "shift": expr.STRING,
        "shift_minutes": expr.NUMBER,
        "planned_downtime": expr.BOOL,
        "utilization_pct": expr.NUMBER,
        "open_work_orders": expr.NUMBER,
    },
}
IDENTITY: Mapping[str, Mapping[str, str]] = {
    "stock": {"kind": expr.STRING, "site": expr.STRING, "sku": expr.STRING},
    "machine": {"kind": expr.STRING, "site": expr.STRING, "machine": expr.STRING},
}
# Master data fields every item or machine may have (masterdata.py documents them).
ITEM_FIELDS: Mapping[str, str] = {
    "reorder_point": expr.NUMBER,
    "safety_stock": expr.NUMBER,
    "lead_time_days": expr.NUMBER,
    "reorder_qty": expr.NUMBER,
    "max_level": expr.NUMBER,
    "unit_cost": expr.NUMBER,
    "pack_size": expr.NUMBER,
    "order_cost": expr.NUMBER,
    "holding_cost_pct": expr.NUMBER,
    "annual_demand": expr.NUMBER,
    "supplier": expr.STRING,
    "unit": expr.STRING,
    "description": expr.STRING,
}
MACHINE_FIELDS: Mapping[str, str] = {
    "line": expr.STRING,
    "description": expr.STRING,
    "shift_calendar": expr.STRING,
    "spare_parts": expr.LIST,
    "service_interval_h": expr.NUMBER,
    "cost_per_hour": expr.NUMBER,
    "max_idle_minutes": expr.NUMBER,
    "avg_window_min": expr.NUMBER,
    "trend_window_min": expr.NUMBER,
    "stale_after_s": expr.NUMBER,
    "min_utilization_pct": expr.NUMBER,
}
_SCHEMA_TYPES = {
    "number": expr.NUMBER,
    "integer": expr.NUMBER,
    "string": expr.STRING,
    "bool": expr.BOOL,
    "list": expr.LIST,
}


@dataclass(frozen=True, slots=True)
class FactSchema:
    """Field name -> expression type, per fact kind."""

    kinds: Mapping[str, Mapping[str, str]]

    def type_of(self, kind: str, name: str) -> str | None:
        return self.kinds.get(kind, {}).get(name)

    def names(self, kind: str) -> list[str]:
        return sorted(self.kinds.get(kind, {}))


def build_schema(
    item_fields: Mapping[str, str] | None = None, machine_fields: Mapping[str, str] | None = None
) -> FactSchema:
    """The schema for facts, widened by the field types found in the plant's master data."""
    stock: dict[str, str] = {**IDENTITY["stock"], **ITEM_FIELDS, **DERIVED["stock"]}
    for name, spec in SCHEMAS["stock"].items():
        stock[name] = _SCHEMA_TYPES[spec.type]
    machine: dict[str, str] = {**IDENTITY["machine"], **MACHINE_FIELDS, **DERIVED["machine"]}
    for name, spec in SCHEMAS["telemetry"].items():
        machine[name] = _SCHEMA_TYPES[spec.type]
    for metric in KNOWN_METRICS:
        machine[metric] = expr.NUMBER
        machine[f"{metric}_avg"] = expr.NUMBER
        machine[f"{metric}_trend"] = expr.NUMBER
    for name, found in (item_fields or {}).items():
        stock.setdefault(name, _SCHEMA_TYPES.get(found, expr.ANY))
    for name, found in (machine_fields or {}).items():
        machine.setdefault(name, _SCHEMA_TYPES.get(found, expr.ANY))
        for bound in ("max_", "min_"):
            if name.startswith(bound) and len(name) > len(bound):
                metric = name[len(bound) :]  # max_temp_c -> temp_c, temp_c_avg, temp_c_trend
                for derived in ("", "_avg", "_trend"):
                    machine.setdefault(metric + derived, expr.NUMBER)
    return FactSchema({"stock": stock, "machine": machine})
