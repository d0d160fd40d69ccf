"""Rules over one fact, matched in the daemon's own process as compiled Python.

A rule over one fact needs no other fact, so no rule engine: each of its conditions is compiled
once (`agent/rulebook/pyeval.py`) and asked of each changed fact of its kind. The answer is the
rules whose condition holds, exactly (durable-rules was a pre-filter whose matches were checked
again in Python anyway). Rules are found through an index on one `field == "text"` test each
(`line == "L3"`, `state == "down"`), so a hundred rules split by line cost a few lookups.

Rules over several facts (joins) stay with the rule engine; `JoinGate` says which facts it
needs to see: those that pass, in some join, the tests of their own alias that name no other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.rulebook import expr, pyeval
from agent.rulebook.engine import Match
from agent.rulebook.rules import Condition, RuleSet


@dataclass(frozen=True, slots=True)
class _Local:
    rule_id: str
    alias: str
    variant: int
    node: expr.Node


_NO_OTHERS: pyeval.Others = {}


class _Group:
    """Conditions asked together: one compiled function for all of them."""

    def __init__(self) -> None:
        self.locals: list[_Local] = []
        self._select: pyeval.Selector | None = None

    def holding(self, get: pyeval.Getter) -> list[_Local]:
        select = self._select
        if select is None:
            select = self._select = pyeval.selector([(x.node, x.alias) for x in self.locals])
        return [self.locals[i] for i in select(get, _NO_OTHERS)] if self.locals else []


class _KindRules:
    """The conditions of one kind: grouped by one text equality each, or in the plain group."""

    def __init__(self) -> None:
        self.plain = _Group()
        self.indexed: dict[str, dict[str, _Group]] = {}

    def add(self, local: _Local, index: tuple[str, str] | None) -> None:
        if index is None:
            self.plain.locals.append(local)
            return
        name, value = index
        self.indexed.setdefault(name, {}).setdefault(value, _Group()).locals.append(local)

    def holding(self, get: pyeval.Getter) -> list[_Local]:
        """The conditions that hold on the fact, the plain group's first."""
        found = self.plain.holding(get)
        for name, by_value in self.indexed.items():
            value = get(name)
            if isinstance(value, str):
                group = by_value.get(value)
                if group is not None:
                    found.extend(group.holding(get))
        return found


class LocalRules:
    """Every non-scheduled rule variant over one fact, ready to ask of a fact's fields."""

    def __init__(self, ruleset: RuleSet) -> None:
        self._by_kind: dict[str, _KindRules] = {}
        self.count = 0
        for rule in ruleset.rules:
            if rule.schedule:
                continue
            for number, conditions in enumerate(rule.variants):
                if len(conditions) != 1:
                    continue
                (condition,) = conditions
                local = _Local(rule.id, condition.alias, number, condition.expr)
                kind = self._by_kind.setdefault(condition.kind, _KindRules())
                kind.add(local, _text_equality(condition))
                self.count += 1

    def match(self, key: str, fields: Mapping[str, Any]) -> list[Match]:
        """The one-fact rules whose condition holds on these fields."""
        rules = self._by_kind.get(fields.get("kind"))  # type: ignore[arg-type]
        if rules is None:
            return []
        return [
            Match(local.rule_id, {local.alias: key}, local.variant)
            for local in rules.holding(fields.get)
        ]


class JoinGate:
    """Which facts a join could use: a fact of an alias's kind passing that alias's own tests.

    Own tests are the top-level `and` parts that read only the alias's own fields; a fact
    failing one can be in no tuple that holds at that position, so the engine need not see it.
    Joins often share them (`on_hand < 1` for the spare part of each line's join): each
    distinct test is asked once, found through the same index as the one-fact rules.
    """

    def __init__(self, ruleset: RuleSet) -> None:
        self._by_kind: dict[str, _KindRules] = {}
        self.joins = 0
        seen: set[tuple[str, str, str]] = set()
        for rule in ruleset.rules:
            if rule.schedule:
                continue
            for conditions in rule.variants:
                if len(conditions) < 2:
                    continue
                self.joins += 1
                for condition in conditions:
                    node = _own_part(condition)
                    text = _without_cols(node)
                    if (condition.kind, condition.alias, text) in seen:
                        continue
                    seen.add((condition.kind, condition.alias, text))
                    index = _text_equality_of(node, condition.alias)
                    kind = self._by_kind.setdefault(condition.kind, _KindRules())
                    kind.add(_Local(text, condition.alias, 0, node), index)

    def wants(self, fields: Mapping[str, Any]) -> bool:
        rules = self._by_kind.get(fields.get("kind"))  # type: ignore[arg-type]
        return rules is not None and bool(rules.holding(fields.get))


def _own_part(condition: Condition) -> expr.Node:
    """The `and` of the condition's top-level parts that read only its own alias's fields."""
    own = [
        node
        for node in expr.conjuncts(condition.expr)
        if all(f.alias in (None, condition.alias) for f in expr.fields(node))
    ]
    if not own:
        return expr.Literal(True, 0)
    node = own[-1]
    for part in reversed(own[:-1]):
        node = expr.Binary("and", part, node, 0)
    return node


def _without_cols(node: expr.Node) -> str:
    """The tree's text without its columns: equal for the same test written anywhere."""
    return re.sub(r"col=\d+", "", repr(node))


def _text_equality(condition: Condition) -> tuple[str, str] | None:
    """One top-level `field == "text"` test of the condition (not `kind`), to index it by."""
    return _text_equality_of(condition.expr, condition.alias)


def _text_equality_of(tree: expr.Node, alias: str) -> tuple[str, str] | None:
    for node in expr.conjuncts(tree):
        if not isinstance(node, expr.Binary) or node.op != "==":
            continue
        pairs: Sequence[tuple[expr.Node, expr.Node]] = (
            (node.left, node.right),
            (node.right, node.left),
        )
        for field, literal in pairs:
            if (
                isinstance(field, expr.Field)
                and field.alias in (None, alias)
                and field.name != "kind"
                and isinstance(literal, expr.Literal)
                and isinstance(literal.value, str)
            ):
                return field.name, literal.value
    return None
