"""A validated rule set: what the loader produces and the compiler and decisions consume.

Everything here is already checked: expressions parsed and typed, actions known, fields known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.model import FactKind, Value
from agent.rulebook.expr import Node, fields
from agent.rulebook.template import Template


@dataclass(frozen=True, slots=True)
class Condition:
    """One named condition of `when`: `alias: expression` over facts of one kind."""

    alias: str
    kind: FactKind
    expr: Node
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class Param:
    """An action parameter: exactly one of an expression, a template or a fixed choice."""

    name: str
    expr: Node | None = None
    template: Template | None = None
    choice: Value = None
    items: Mapping[str, Node] | None = None  # a mapping of expressions (publish payload)


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One entry of `then`: an action kind (or `alert`) and its parameters."""

    kind: str
    params: Mapping[str, Param]
    line: int


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    conditions: tuple[Condition, ...]
    actions: tuple[ActionSpec, ...]
    severity: str
    key: Template | None
    file: str
    line: int
    # `when: any:` alternatives; `conditions` is the first. Empty for a plain `when`.
    alternatives: tuple[tuple[Condition, ...], ...] = ()
    for_s: float = 0.0  # `for`: the condition must hold this long before the rule fires
    resolve_when: Node | None = None  # auto-resolve the rule's alerts when this holds
    resolve_text: str = ""
    repeat_s: float | None = None  # re-notify interval while firing and unacknowledged
    schedule: str = ""  # cron: evaluated on this timetable instead of on fact changes
    timezone: str = ""  # the IANA zone the schedule is read in ("": UTC)
    fingerprint: str = ""  # identifies the rule's text: unchanged rules keep pending timers

    def condition(self, alias: str) -> Condition:
        for condition in self.conditions:
            if condition.alias == alias:
                return condition
        raise KeyError(alias)

    @property
    def variants(self) -> tuple[tuple[Condition, ...], ...]:
        """Every way the rule can match: its `any:` alternatives, or its one `when`."""
        return self.alternatives or (self.conditions,)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The enabled rules of a set of files, and the hash that identifies that exact text."""

    rules: tuple[Rule, ...]
    hash: str
    files: tuple[str, ...]
    disabled: int = 0

    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}


def fields_used(rule: Rule) -> list[str]:
    """Every field reference the rule reads (`alias.field` or `field`), in reading order: its
    conditions' (all alternatives), then its actions' parameters and templates. What `explain`
    and the console's decision page show first of a matched fact."""
    used = [str(f) for variant in rule.variants for c in variant for f in fields(c.expr)]
    for spec in rule.actions:
        for param in spec.params.values():
            if param.expr is not None:
                used.extend(str(f) for f in fields(param.expr))
            elif param.template is not None:
                used.extend(str(f) for f in param.template.fields)
    return used
