"""Compile a validated `RuleSet` into durable-rules ruleset definitions (plain dicts).

Only shapes proven safe go to the engine (notes/durable-rules.md): `field == literal`, numeric
`field < literal` and friends, and equality joins on an earlier alias. The engine is a pre-filter:
every match is re-checked in Python against the whole condition, so the engine may match more
than a rule says, never less. `matches()` is never handed to the engine (its `$mt` operator runs
the engine's own C regex code): it is evaluated in Python only, by RE2, in linear time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.rulebook import expr
from agent.rulebook.rules import Condition, RuleSet

_ENGINE_OPS = {"==": "", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
_FLIPPED = {"==": "==", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True, slots=True)
class EnginePlan:
    """What the engine is given: one definition per rule, and which fact fields it needs."""

    definitions: Mapping[str, dict[str, Any]]  # engine rule name -> {"all": [...]}
    rule_ids: Mapping[str, str]  # engine rule name -> rule id
    aliases: Mapping[str, tuple[str, ...]]  # engine rule name -> user alias per position (a0, a1..)
    fields: frozenset[str]  # fact fields the definitions test (plus kind)
    variants: Mapping[str, int] = field(default_factory=dict)  # engine rule name -> `any:` index
    # rule id -> "file:line" and -> the rule's fingerprint: how a disabled rule is named, and
    # whether a reload changed it (see `agent/rulebook/disabled.py`).
    locations: Mapping[str, str] = field(default_factory=dict)
    fingerprints: Mapping[str, str] = field(default_factory=dict)


def compile_rules(ruleset: RuleSet, joins_only: bool = False) -> EnginePlan:
    """The engine's definitions of the rule set; with `joins_only`, of its rules over several
    facts only (the others are matched in Python: `agent/rulebook/local.py`)."""
    definitions: dict[str, dict[str, Any]] = {}
    rule_ids: dict[str, str] = {}
    aliases: dict[str, tuple[str, ...]] = {}
    variants: dict[str, int] = {}
    used: set[str] = {"kind"}
    locations: dict[str, str] = {}
    fingerprints: dict[str, str] = {}
    for index, rule in enumerate(ruleset.rules):
        if rule.schedule:
            continue  # evaluated on its timetable, against the world state, not by the engine
        if joins_only and all(len(variant) < 2 for variant in rule.variants):
            continue
        locations[rule.id] = f"{rule.file}:{rule.line}"
        fingerprints[rule.id] = rule.fingerprint
        for number, conditions in enumerate(rule.variants):
            if joins_only and len(conditions) < 2:
                continue
            name = f"r{index}" if number == 0 else f"r{index}v{number}"
            definitions[name] = {"all": _compile_conditions(conditions, used)}
            rule_ids[name] = rule.id
            aliases[name] = tuple(c.alias for c in conditions)
            variants[name] = number
    return EnginePlan(
        definitions, rule_ids, aliases, frozenset(used), variants, locations, fingerprints
    )


def engine_alias(position: int) -> str:
    # durable-rules exposes matches as attributes of its closure, where `m` and `s` are taken.
    return f"a{position}"


def _compile_conditions(conditions: tuple[Condition, ...], used: set[str]) -> list[dict[str, Any]]:
    positions = {c.alias: i for i, c in enumerate(conditions)}
    compiled = []
    for position, condition in enumerate(conditions):
        terms = [
            term
            for node in expr.conjuncts(condition.expr)
            if (term := _engine_term(node, condition, position, positions, used)) is not None
        ]
        body = terms[0] if len(terms) == 1 else {"$and": terms}
        compiled.append({engine_alias(position): body})
    return compiled


def _engine_term(
    node: expr.Node,
    condition: Condition,
    position: int,
    positions: Mapping[str, int],
    used: set[str],
) -> dict[str, Any] | None:
    if not isinstance(node, expr.Binary) or node.op not in _ENGINE_OPS:
        return None
    op, left, right = node.op, node.left, node.right
    if not _is_own(left, condition):
        if not _is_own(right, condition):
            return None
        op, left, right = _FLIPPED[op], right, left
    assert isinstance(left, expr.Field)
    if isinstance(right, expr.Literal):
        value = right.value
        if op == "==" and isinstance(value, str):
            used.add(left.name)
            return {left.name: value}
        if _is_finite_number(value):
            used.add(left.name)
            if op == "==":
                return {left.name: value}
            return {_ENGINE_OPS[op]: {left.name: value}}
        return None
    if (
        op == "=="
        and isinstance(right, expr.Field)
        and right.alias is not None
        and right.alias in positions
    ):
        other = positions[right.alias]
        if other < position:  # the engine can only refer back to an earlier alias
            used.update((left.name, right.name))
            return {left.name: {engine_alias(other): right.name}}
    return None


def _is_own(node: expr.Node, condition: Condition) -> bool:
    return isinstance(node, expr.Field) and node.alias in (None, condition.alias)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
