"""Actions that record a state rather than ask for work (`idle_capacity`): they close themselves
when their rule resolves, so the next idle spell is a new record with its own duration."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from agent.decisions.build import decide
from agent.model import ActionClosed, ActionDecision, Decision, Fact
from agent.rulebook.rules import Rule

RECORD_KINDS: Final = frozenset({"idle_capacity"})


def closed_records(
    rule: Rule, facts: Mapping[str, Fact], at: datetime, rule_set_hash: str, reason: str
) -> list[Decision]:
    """`ActionClosed` for the rule's record actions on these facts (none for other actions)."""
    if not any(action.kind in RECORD_KINDS for action in rule.actions):
        return []
    return [
        ActionClosed(decision.dedup_key, at, rule.id, rule_set_hash, reason)
        for decision in decide(rule, facts, at, rule_set_hash)
        if isinstance(decision, ActionDecision) and decision.kind in RECORD_KINDS
    ]
