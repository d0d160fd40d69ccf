"""Decisions as people and programs read them: one JSON-friendly record, one line of text.

Used by `replay`, `actions`, `alerts` and the daemon's decision logs.
"""

from __future__ import annotations

from typing import Any

_PARAM_ORDER = ("sku", "quantity", "machine", "task", "priority", "supplier", "cost", "note")


def record(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """A stored action or alert row as one flat record: `type`, `kind`, `rule`, `key`, ..."""
    out: dict[str, Any] = {
        "type": table,
        "id": row.get("id"),
        "kind": row.get("kind") if table == "action" else "alert",
        "rule": row.get("rule_id"),
        "key": row.get("dedup_key"),
        "status": row.get("status"),
        "at": row.get("created_at") if table == "action" else row.get("first_seen"),
        "last_seen": row.get("last_seen"),
        "count": row.get("count"),
        "site": row.get("site"),
        "rule_set": row.get("rule_set_hash"),
    }
    if table == "action":
        params = row.get("params") or {}
        out["params"] = params
        out.update({k: v for k, v in params.items() if k not in out})
    else:
        out["severity"] = row.get("severity")
        out["message"] = row.get("message")
        if row.get("last_message") and row.get("last_message") != row.get("message"):
            out["last_message"] = row.get("last_message")
        if row.get("late"):
            out["late"] = True  # decided on late data: its times are plant times from the past
    return out


def line(rec: dict[str, Any]) -> str:
    """One readable line: when, what, which key, the essentials, and the rule that decided it."""
    at = str(rec.get("at") or "")[:19].replace("T", " ")
    if rec["type"] == "action":
        params = rec.get("params") or {}
        shown = " ".join(f"{k}={params[k]}" for k in _PARAM_ORDER if k in params)
        what = f"{rec['kind']:<13} {rec['status']:<12} {shown}"
    else:
        what = f"alert/{rec['severity']:<8} {rec['status']:<12} {rec['message']}"
    count = f" ×{rec['count']}" if (rec.get("count") or 1) > 1 else ""
    return f"#{rec['id']:<5} {at}  {what}{count}  (rule {rec['rule']})"


def open_spend(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open reorders grouped by supplier: how many, and the value still to come
    (`unit_cost` × what is not received yet; the recorded `cost` when no unit cost is known)."""
    by_supplier: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("kind") != "reorder" or row.get("status") not in ("open", "acknowledged"):
            continue
        params = row.get("params") or {}
        supplier = str(params.get("supplier") or "(no supplier)")
        entry = by_supplier.setdefault(
            supplier, {"supplier": supplier, "reorders": 0, "open_value": 0.0, "ordered_value": 0.0}
        )
        entry["reorders"] += 1
        quantity = _number(params.get("quantity"))
        received = _number(params.get("received"))
        unit_cost = _number(params.get("unit_cost"))
        cost = _number(params.get("cost"))
        ordered = cost if cost is not None else (unit_cost or 0.0) * quantity
        entry["ordered_value"] += ordered
        if unit_cost is not None:
            entry["open_value"] += unit_cost * max(quantity - received, 0.0)
        else:
            entry["open_value"] += ordered
    summary = sorted(by_supplier.values(), key=lambda e: (-e["open_value"], e["supplier"]))
    for entry in summary:
        entry["open_value"] = round(entry["open_value"], 2)
        entry["ordered_value"] = round(entry["ordered_value"], 2)
    return summary


def spend_lines(summary: list[dict[str, Any]]) -> list[str]:
    """The open-spend table as text lines, with a total."""
    if not summary:
        return ["no open reorders"]
    width = max(len("supplier"), *(len(e["supplier"]) for e in summary))
    lines = [f"{'supplier':<{width}}  reorders  {'open value':>12}"]
    for e in summary:
        lines.append(f"{e['supplier']:<{width}}  {e['reorders']:>8}  {e['open_value']:>12,.2f}")
    total = sum(e["open_value"] for e in summary)
    count = sum(e["reorders"] for e in summary)
    lines.append(f"{'total':<{width}}  {count:>8}  {total:>12,.2f}")
    return lines


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)
