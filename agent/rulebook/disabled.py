"""Rules taken out of the engine because they stopped its worker: which, why, until when.

The engine worker (`agent/rulebook/worker.py`) finds the rule a fact hangs or crashes and calls
`disable`; every engine built afterwards (a restart, a reload) is given `apply(plan)`, the plan
without the rules still disabled. A rule comes back when a reload changes it (its fingerprint)
or removes it. Pure: no I/O; one critical alert per disabled rule, resolved when it comes back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from agent.model import AlertDecision, AlertResolved, Decision
from agent.rulebook.compiler import EnginePlan

ALERT_KEY: Final = "agent/rules/rule-disabled"
ALERT_RULE: Final = "rule-disabled"


@dataclass(frozen=True, slots=True)
class DisabledRule:
    rule_id: str
    where: str  # file:line
    fingerprint: str  # the rule's text when it was disabled
    reason: str  # what the worker did: "no answer within 10 s", "killed by SIGSEGV"
    fact: str  # the fact key it stopped on


class DisabledRules:
    """The rules out of the engine, shared by the engines a daemon builds one after another."""

    __slots__ = ("_alerted", "_resolved", "_rules")

    def __init__(self) -> None:
        self._rules: dict[str, DisabledRule] = {}
        self._alerted: set[str] = set()  # rule ids whose alert is raised
        self._resolved: dict[str, str] = {}  # rule id -> why it is back, alert not resolved yet

    @property
    def count(self) -> int:
        """Rules disabled now (the metric `factory_agent_rules_disabled`)."""
        return len(self._rules)

    def ids(self) -> frozenset[str]:
        return frozenset(self._rules)

    def disable(self, plan: EnginePlan, rule_id: str, reason: str, fact: str) -> DisabledRule:
        rule = DisabledRule(
            rule_id,
            plan.locations.get(rule_id, "?"),
            plan.fingerprints.get(rule_id, ""),
            reason,
            fact,
        )
        self._rules[rule_id] = rule
        self._resolved.pop(rule_id, None)
        return rule

    def apply(self, plan: EnginePlan) -> EnginePlan:
        """The plan without the rules still disabled; a rule the plan changed or no longer has
        is enabled again (its alert resolved by the next `alerts`)."""
        for rule_id, rule in list(self._rules.items()):
            if plan.fingerprints.get(rule_id) != rule.fingerprint:
                del self._rules[rule_id]
                changed = "changed" if rule_id in plan.fingerprints else "removed"
                self._resolved[rule_id] = f"rule {rule_id} {changed} by a reload: enabled again"
        return without_rules(plan, frozenset(self._rules))

    def alerts(self, at: datetime, rule_set_hash: str) -> list[Decision]:
        """One critical alert per rule disabled since the last call, a resolution per rule
        enabled again. Called after each batch."""
        decisions: list[Decision] = []
        for rule_id, why in self._resolved.items():
            if rule_id in self._alerted:
                self._alerted.discard(rule_id)
                decisions.append(
                    AlertResolved(f"{ALERT_KEY}/{rule_id}", at, ALERT_RULE, rule_set_hash, why)
                )
        self._resolved.clear()
        for rule_id, rule in self._rules.items():
            if rule_id in self._alerted:
                continue
            self._alerted.add(rule_id)
            decisions.append(_alert(rule, at, rule_set_hash))
        return decisions


def without_rules(plan: EnginePlan, rule_ids: frozenset[str]) -> EnginePlan:
    """The plan without the engine rules of `rule_ids` (all their `any:` variants)."""
    if not rule_ids:
        return plan
    return only_names(plan, [n for n, rule in plan.rule_ids.items() if rule not in rule_ids])


def only_names(plan: EnginePlan, names: list[str]) -> EnginePlan:
    """The plan with only these engine rule names."""
    return dataclasses.replace(
        plan,
        definitions={name: plan.definitions[name] for name in names},
        rule_ids={name: plan.rule_ids[name] for name in names},
        aliases={name: plan.aliases[name] for name in names if name in plan.aliases},
        variants={name: plan.variants[name] for name in names if name in plan.variants},
    )


def _alert(rule: DisabledRule, at: datetime, rule_set_hash: str) -> AlertDecision:
    return AlertDecision(
        dedup_key=f"{ALERT_KEY}/{rule.rule_id}",
        severity="critical",
        message=(
            f"{rule.where}: rule {rule.rule_id} is disabled: the rule engine worker stopped on it "
            f"({rule.reason}, fact {rule.fact}); the other rules go on. Fix the rule and reload: "
            "a changed rule is enabled again"
        ),
        site="agent",
        subject="rules",
        rule_id=ALERT_RULE,
        rule_set_hash=rule_set_hash,
        matched={
            "disabled": {
                "rule": rule.rule_id,
                "at": rule.where,
                "reason": rule.reason,
                "fact": rule.fact,
            }
        },
        at=at,
    )
