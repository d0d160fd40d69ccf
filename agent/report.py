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
