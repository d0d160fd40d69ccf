"""What the rules page shows, as pure functions: the loaded rule set (hash, files, each rule
with where it is written, its severity, and whether it runs), the last reload and, when the
last change was refused, its problems (file, line, reason) as the refusal alert carries them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.http.web.views import ALERT_OPEN, when
from agent.rulebook.rules import Rule, RuleSet

# The alerts a refused reload or a disabled rule raises (agent/app/reload.py, rulebook/disabled).
REFUSAL_RULES = ("rules-reload", "masterdata-reload")
DISABLED_RULE = "rule-disabled"
ALERT_RULES = (*REFUSAL_RULES, DISABLED_RULE)  # the alerts the page reads
_LOCATED = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+): (?P<reason>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class RulesState:
    """What the daemon runs: its rule set, the ids its engine worker disabled, when it last
    reloaded and why; the rule sets it recorded (newest first)."""

    ruleset: RuleSet
    disabled: frozenset[str] = frozenset()
    last_reload: tuple[datetime, str] | None = None
    loads: Sequence[Mapping[str, Any]] = ()


def view(state: RulesState, alerts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The page's content; `alerts` for why a rule is disabled and a reload refused."""
    ruleset = state.ruleset
    open_alerts = [a for a in alerts if str(a.get("status")) in ALERT_OPEN]
    why_disabled = {
        str(_facts(a).get("disabled", {}).get("rule")): _facts(a).get("disabled", {})
        for a in open_alerts
        if a.get("rule_id") == DISABLED_RULE
    }
    rules = [
        {
            "id": rule.id,
            "where": f"{rule.file}:{rule.line}",
            "severity": severity(rule),
            "description": rule.description,
            "enabled": rule.id not in state.disabled,
            "why": str(why_disabled.get(rule.id, {}).get("reason") or ""),
            "schedule": rule.schedule,
        }
        for rule in ruleset.rules
    ]
    load = next((r for r in state.loads if r.get("hash") == ruleset.hash), None)
    reload_at, reload_why = state.last_reload or (None, "")
    return {
        "hash": ruleset.hash,
        "files": list(ruleset.files),
        "rules": rules,
        "switched_off": ruleset.disabled,  # `enabled: false` in the files
        "loaded_at": when(load.get("loaded_at")) if load else "",
        "loaded_by": str(load.get("loaded_by") or "") if load else "",
        "last_reload": when(reload_at) if reload_at else "",
        "last_reload_why": reload_why,
        "refusals": refusals(open_alerts),
    }


def severity(rule: Rule) -> str:
    """The severity of the rule's alerts (`then: - alert: severity:`), else the rule's own
    (`severity:`, "warning" by default); "" for a rule that raises no alert."""
    alerts = [spec for spec in rule.actions if spec.kind == "alert"]
    chosen = [
        str(param.choice)
        for spec in alerts
        if (param := spec.params.get("severity")) is not None and param.choice is not None
    ]
    if chosen:
        return ", ".join(dict.fromkeys(chosen))
    return rule.severity if alerts else ""


def refusals(alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The open refusal alerts (rules, master data), each with its problems located."""
    out = []
    for alert in alerts:
        if alert.get("rule_id") not in REFUSAL_RULES or str(alert.get("status")) not in ALERT_OPEN:
            continue
        problems = _facts(alert).get("problems") or {}
        texts = [str(problems[k]) for k in sorted(problems, key=_number)]
        out.append(
            {
                "what": "rule files" if alert.get("rule_id") == "rules-reload" else "master data",
                "id": alert.get("id"),
                "since": when(alert.get("first_seen")),
                "last": when(alert.get("last_seen")),
                "problems": [problem(text) for text in texts],
            }
        )
    return out


def problem(text: str) -> dict[str, str]:
    """`file:line: reason` as its parts (line "" when the problem names no line)."""
    found = _LOCATED.match(text)
    if found is None:
        return {"file": "", "line": "", "reason": text}
    return {"file": found["file"], "line": found["line"], "reason": found["reason"]}


def _facts(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The latest facts of the alert: a repeat's when it repeated, else the first firing's."""
    facts = alert.get("last_matched") or alert.get("matched") or {}
    return dict(facts) if isinstance(facts, Mapping) else {}


def _number(key: str) -> int:
    return int(key) if str(key).isdigit() else 0
