"""What the pages show, as pure functions over stored rows: filters from the query string,
the alert order (open first, by severity, newest first), the buttons each row offers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
ALERT_OPEN = ("firing", "acknowledged")
ACTION_OPEN = ("open", "acknowledged")
FILTERS = ("site", "severity", "machine", "sku", "rule", "status")
ROW_LIMIT = 500  # closed rows shown with status=all; open rows are always all shown


@dataclass(frozen=True, slots=True)
class Filters:
    """The query string's filters; empty means any. `status`: open (default), closed or all."""

    site: str = ""
    severity: str = ""
    machine: str = ""
    sku: str = ""
    rule: str = ""
    status: str = "open"

    @classmethod
    def of(cls, query: Mapping[str, Sequence[str]]) -> Filters:
        values = {name: (query.get(name) or [""])[0].strip() for name in FILTERS}
        status = values.pop("status")
        return cls(**values, status=status if status in ("open", "closed", "all") else "open")

    def query(self) -> str:
        """The filters as a query string (for the live endpoint and the buttons' way back)."""
        from urllib.parse import urlencode

        pairs = [(name, getattr(self, name)) for name in FILTERS if getattr(self, name)]
        return urlencode([(k, v) for k, v in pairs if (k, v) != ("status", "open")])


def subject_kind(row: Mapping[str, Any]) -> str:
    """machine or stock, from the facts the rule matched ("" when they do not say)."""
    facts = [f for f in (row.get("matched") or {}).values() if isinstance(f, Mapping)]
    subject = row.get("subject")
    for fields in facts:
        if fields.get("machine") == subject or fields.get("sku") == subject:
            return str(fields.get("kind") or "")
    return next((str(f["kind"]) for f in facts if f.get("kind")), "")


def _subject_matches(
    row: Mapping[str, Any], filters: Filters, machine_kinds: Iterable[str]
) -> bool:
    subject = str(row.get("subject") or "")
    if filters.machine and (subject != filters.machine or subject_kind(row) not in machine_kinds):
        return False
    return not filters.sku or (subject == filters.sku and subject_kind(row) not in machine_kinds)


def alerts(rows: Iterable[Mapping[str, Any]], filters: Filters) -> list[dict[str, Any]]:
    """The alerts the filters keep, open first, then by severity, newest first."""
    kept = []
    for row in rows:
        status = str(row.get("status"))
        is_open = status in ALERT_OPEN
        if (filters.status == "open" and not is_open) or (filters.status == "closed" and is_open):
            continue
        if filters.site and row.get("site") != filters.site:
            continue
        if filters.severity and row.get("severity") != filters.severity:
            continue
        if filters.rule and row.get("rule_id") != filters.rule:
            continue
        if not _subject_matches(row, filters, ("machine",)):
            continue
        kept.append(_alert_view(row))
    kept.sort(key=lambda a: a["_order"])
    opened = [a for a in kept if a["open"]]
    closed = [a for a in kept if not a["open"]][:ROW_LIMIT]
    return opened + closed


def _alert_view(row: Mapping[str, Any]) -> dict[str, Any]:
    status = str(row.get("status"))
    first_seen, last_seen = row.get("first_seen"), row.get("last_seen")
    view: dict[str, Any] = {
        "id": row.get("id"),
        "status": status,
        "open": status in ALERT_OPEN,
        "severity": str(row.get("severity") or ""),
        "site": row.get("site"),
        "subject": row.get("subject"),
        "subject_kind": subject_kind(row),
        "rule": row.get("rule_id"),
        "message": row.get("last_message") or row.get("message"),
        "first_message": row.get("message"),
        "count": row.get("count"),
        "first_seen": when(first_seen),
        "last_seen": when(last_seen),
        "acknowledged_by": row.get("acknowledged_by") or "",
        "resolved_by": row.get("resolved_by") or "",
        "commands": _alert_commands(status),
    }
    stamp = first_seen.timestamp() if isinstance(first_seen, datetime) else 0.0
    view["_order"] = (
        0 if view["open"] else 1,
        SEVERITY_RANK.get(view["severity"], 9),
        -stamp,
        -int(row.get("id") or 0),
    )
    return view


def _alert_commands(status: str) -> list[str]:
    if status == "firing":
        return ["ack", "resolve"]
    if status == "acknowledged":
        return ["resolve"]
    return []


def actions(rows: Iterable[Mapping[str, Any]], filters: Filters) -> list[dict[str, Any]]:
    """Reorders and work orders the filters keep, open first, newest first."""
    kept = []
    for row in rows:
        status = str(row.get("status"))
        is_open = status in ACTION_OPEN
        if (filters.status == "open" and not is_open) or (filters.status == "closed" and is_open):
            continue
        if filters.site and row.get("site") != filters.site:
            continue
        if filters.rule and row.get("rule_id") != filters.rule:
            continue
        kind = str(row.get("kind"))
        subject = row.get("subject")
        if filters.machine and (kind == "reorder" or subject != filters.machine):
            continue
        if filters.sku and (kind != "reorder" or subject != filters.sku):
            continue
        kept.append(_action_view(row))
    kept.sort(key=lambda a: (0 if a["open"] else 1, -int(a["id"] or 0)))
    opened = [a for a in kept if a["open"]]
    return opened + [a for a in kept if not a["open"]][:ROW_LIMIT]


def _action_view(row: Mapping[str, Any]) -> dict[str, Any]:
    status = str(row.get("status"))
    params: Mapping[str, Any] = row.get("params") or {}
    return {
        "id": row.get("id"),
        "kind": row.get("kind"),
        "status": status,
        "open": status in ACTION_OPEN,
        "site": row.get("site"),
        "subject": row.get("subject"),
        "rule": row.get("rule_id"),
        "params": params,
        "count": row.get("count"),
        "created": when(row.get("created_at")),
        "updated": when(row.get("updated_at")),
        "acknowledged_by": row.get("acknowledged_by") or "",
        "closed_by": row.get("closed_by") or "",
        "commands": ["done", "cancel"] if status in ACTION_OPEN else [],
    }


def when(value: Any) -> str:
    """A timestamp as people read it on the page: `2026-12-04 17:53:20` (UTC)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value or "")[:19].replace("T", " ")


def supplier_totals(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Open reorders per supplier: how many, the quantity and the cost they add up to (the
    cost of reorders without one is left out and counted in `uncosted`), largest cost first."""
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("kind") != "reorder" or str(row.get("status")) not in ACTION_OPEN:
            continue
        params: Mapping[str, Any] = row.get("params") or {}
        supplier = str(params.get("supplier") or "") or "(no supplier)"
        empty = {"supplier": supplier, "count": 0, "quantity": 0.0, "cost": 0.0, "uncosted": 0}
        total = totals.setdefault(supplier, empty)
        total["count"] += 1
        total["quantity"] += _amount(params.get("quantity")) or 0.0
        cost = _amount(params.get("cost"))
        if cost is None:
            total["uncosted"] += 1
        else:
            total["cost"] += cost
    for total in totals.values():
        total["quantity"] = round(total["quantity"], 3)
        total["cost"] = round(total["cost"], 2)
    return sorted(totals.values(), key=lambda t: (-t["cost"], -t["count"], t["supplier"]))


def _amount(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value)) if value not in (None, "") else None
    except ValueError:
        return None
