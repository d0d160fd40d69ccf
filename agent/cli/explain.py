"""`factory-agent explain ID`: why a decision was made, in words a planner can check.

The stored row carries the rule id, the rule set's hash and the facts that matched; the rule's
conditions come from the rule files (flagged when they changed since).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Literal

from agent.app.policy import load_policy
from agent.cli.database import open_for_reading
from agent.config import Settings
from agent.decisions.report import line, record
from agent.errors import AgentError, RuleError
from agent.rulebook import expr
from agent.rulebook.rules import Rule
from agent.store.repository import json_friendly


def parse_id(text: str) -> tuple[Literal["action", "alert"], int]:
    table, _, number = text.rpartition(":")
    if table not in ("", "action", "alert") or not number.isdigit():
        raise AgentError(f"expected an id such as 12, action:12 or alert:7; got {text!r}")
    return ("alert" if table == "alert" else "action"), int(number)


def explain(text: str, settings: Settings, as_json: bool = False) -> int:
    table, id = parse_id(text)
    store = open_for_reading(settings)
    try:
        row = store.find(table, id)
        loads = [r for r in store.rule_sets() if row and r["hash"] == row["rule_set_hash"]]
    finally:
        store.close()
    if row is None:
        print(f"no {table} with id {id}", file=sys.stderr)
        return 1
    rule, current = _current_rule(settings, row["rule_id"])
    if as_json:
        print(json.dumps(json_friendly(row), default=str))
        return 0
    for text_line in describe(table, row, rule, current, loads):
        print(text_line)
    return 0


def _current_rule(settings: Settings, rule_id: str) -> tuple[Rule | None, str]:
    try:
        policy = load_policy(settings)
    except (RuleError, AgentError):
        return None, ""
    return policy.ruleset.by_id().get(rule_id), policy.ruleset.hash


def describe(
    table: str,
    row: dict[str, Any],
    rule: Rule | None,
    current_hash: str,
    loads: list[dict[str, Any]],
) -> list[str]:
    """The explanation as lines: the decision, the rule and its conditions, the matched facts."""
    rec = record(table, json_friendly(row))
    out = [line(rec)]
    rule_set = row["rule_set_hash"]
    loaded = f", loaded {json_friendly(loads[-1])['loaded_at']}" if loads else ""
    out.append(f"decided by rule {row['rule_id']!r} of rule set {rule_set}{loaded}")
    used: list[str] = []
    if rule is None:
        out.append("  (the rule is no longer in the rule files)")
    else:
        if rule_set != current_hash:
            out.append(f"  (rule set now {current_hash}: the rule below may have changed since)")
        out.append(
            f"  {rule.file}:{rule.line}" + (f" — {rule.description}" if rule.description else "")
        )
        for number, variant in enumerate(rule.variants):
            head = "when" if number == 0 else "or when"
            for condition in variant:
                out.append(f"  {head} {condition.alias}: {condition.text}")
                used.extend(str(f) for f in expr.fields(condition.expr))
                head = "and"
        for spec in rule.actions:
            for param in spec.params.values():
                if param.expr is not None:
                    used.extend(str(f) for f in expr.fields(param.expr))
                elif param.template is not None:
                    used.extend(str(f) for f in param.template.fields)
        if rule.for_s:
            out.append(f"  for {rule.for_s:g} s")
        if rule.resolve_text:
            out.append(f"  resolve_when {rule.resolve_text}")
    out.append("matched facts:")
    for alias, fields in (row.get("matched") or {}).items():
        names = [n.split(".")[-1] for n in used if n.split(".")[0] in (alias, n)]
        first = [n for n in dict.fromkeys(names) if n in fields]
        rest = [n for n in sorted(fields) if n not in first]
        shown = " ".join(f"{n}={fields[n]!r}" for n in first)
        out.append(f"  {alias}: {shown}")
        out.append("    also: " + ", ".join(f"{n}={fields[n]!r}" for n in rest))
    return out
