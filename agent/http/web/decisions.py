"""What a decision's page shows, as pure functions: what `factory-agent explain` prints (the
rule, where it is written, the rule set's hash, the facts that matched with the fields the rule
read first, the message) and the history of an alert's episodes (the rows of its dedup key)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agent.http.web.views import when
from agent.rulebook.rules import Rule, fields_used


def explanation(
    row: Mapping[str, Any],
    rule: Rule | None,
    running_hash: str,
    loads: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The decision's rule as it runs now (flagged when the rule set changed since), the rule
    set's load that decided it, and the matched facts: the fields the rule read, then the rest."""
    decided_by = str(row.get("rule_set_hash") or "")
    load = next((r for r in loads if r.get("hash") == decided_by), None)
    used: list[str] = []
    conditions: list[dict[str, str]] = []
    if rule is not None:
        for number, variant in enumerate(rule.variants):
            head = "when" if number == 0 else "or when"
            for condition in variant:
                conditions.append({"head": head, "alias": condition.alias, "text": condition.text})
                head = "and"
        used = fields_used(rule)
    return {
        "rule_id": row.get("rule_id"),
        "rule_set_hash": decided_by,
        "running_hash": running_hash,
        "changed": rule is not None and decided_by != running_hash,
        "loaded_at": when(load.get("loaded_at")) if load else "",
        "loaded_by": str(load.get("loaded_by") or "") if load else "",
        "rule": _rule(rule, conditions),
        "facts": matched_facts(row.get("matched") or {}, used),
        "last_facts": matched_facts(row.get("last_matched") or {}, used),
    }


def _rule(rule: Rule | None, conditions: list[dict[str, str]]) -> dict[str, Any] | None:
    if rule is None:
        return None
    return {
        "where": f"{rule.file}:{rule.line}",
        "description": rule.description,
        "conditions": conditions,
        "for_s": f"{rule.for_s:g}" if rule.for_s else "",
        "resolve_when": rule.resolve_text,
        "schedule": rule.schedule,
    }


def matched_facts(matched: Mapping[str, Any], used: Iterable[str]) -> list[dict[str, Any]]:
    """Per alias: the fields the rule read (`m.temp_c` or `temp_c`), then the others by name."""
    names = list(used)
    out = []
    for alias, fields in matched.items():
        if not isinstance(fields, Mapping):  # a reload alert's problems: text per number
            out.append({"alias": alias, "used": [], "other": [("", fields)]})
            continue
        read = [n.split(".")[-1] for n in names if n.split(".")[0] in (alias, n)]
        first = [n for n in dict.fromkeys(read) if n in fields]
        rest = [n for n in sorted(fields) if n not in first]
        out.append(
            {
                "alias": alias,
                "used": [(n, fields[n]) for n in first],
                "other": [(n, fields[n]) for n in rest],
            }
        )
    return out


def episodes(row: Mapping[str, Any], alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every alert row of the same dedup key, newest first: one per time it fired."""
    key = row.get("dedup_key")
    same = [a for a in alerts if a.get("dedup_key") == key]
    same.sort(key=lambda a: -int(a.get("id") or 0))
    return [
        {
            "id": a.get("id"),
            "this": a.get("id") == row.get("id"),
            "status": a.get("status"),
            "first_seen": when(a.get("first_seen")),
            "last_seen": when(a.get("last_seen")),
            "count": a.get("count"),
            "acknowledged_by": a.get("acknowledged_by") or "",
            "resolved_by": a.get("resolved_by") or "",
            "resolved_at": when(a.get("resolved_at")),
            "message": a.get("last_message") or a.get("message"),
        }
        for a in same
    ]
