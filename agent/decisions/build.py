"""From a rule and the facts it matched to decisions: evaluate parameters, name dedup keys.

Pure: facts and a time in, `ActionDecision`/`AlertDecision` values out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from agent.model import (
    ActionDecision,
    AlertDecision,
    Decision,
    Fact,
    NotifyDecision,
    PublishDecision,
    Value,
)
from agent.rulebook import expr, pyeval
from agent.rulebook.rules import ActionSpec, Condition, Param, Rule
from agent.world.stock import round_up_to_packs

log = structlog.get_logger(__name__)

# What a buyer needs on a purchase request, copied from the item's fact when known.
_ITEM_DETAILS = ("supplier", "unit", "unit_cost")
# A reorder above this many times the item's largest stock figure (max_level, reorder_point,
# reorder_qty) is a rule or data mistake, not a purchase (`inventory.max_reorder_factor`).
MAX_REORDER_FACTOR = 10.0
# Above this, whatever the item: no plant orders a billion of anything in one request, and the
# cost of such a quantity may not even be a finite number.
MAX_REORDER_UNITS = 1_000_000_000
# The alert a refused action raises: one per rule and subject, resolved with the rule's own.
ACTION_REFUSED_KEY = "agent/rules/action-refused"


def field_resolver(facts: Mapping[str, Fact]) -> expr.Resolver:
    """Resolve `alias.field` (or `field`, in a one-alias rule) against matched facts."""
    only = next(iter(facts.values())) if len(facts) == 1 else None

    def resolve(ref: expr.Field) -> Any:
        fact = facts.get(ref.alias) if ref.alias is not None else only
        if fact is None:
            return None
        return fact.fields.get(ref.name)

    return resolve


def conditions_hold(rule: Rule, facts: Mapping[str, Fact]) -> bool:
    """The whole `when` of a rule (any of its alternatives), checked in Python on the tuple."""
    return any(_variant_holds(variant, facts) for variant in rule.variants)


def resolve_holds(rule: Rule, facts: Mapping[str, Fact]) -> bool:
    """The rule's `resolve_when` on these facts (False when it has none)."""
    if rule.resolve_when is None:
        return False
    # As `field_resolver`: a field without alias is the only fact's (none with several).
    get = next(iter(facts.values())).fields.get if len(facts) == 1 else _nothing
    return pyeval.cached_predicate(rule.resolve_when)(get, facts)


def _variant_holds(conditions: tuple[Condition, ...], facts: Mapping[str, Fact]) -> bool:
    for condition in conditions:
        fact = facts.get(condition.alias)
        if fact is None or fact.kind != condition.kind:
            return False
        # `expr.holds` over the alias's own fields (others by alias), compiled once per condition.
        if not pyeval.cached_predicate(condition.expr, condition.alias)(fact.fields.get, facts):
            return False
    return True


def _nothing(name: str) -> None:
    return None


def subject_param(action: str) -> str:
    """The parameter that names an action's subject: a reorder's SKU, else the machine."""
    return "sku" if action == "reorder" else "machine"


def decide(
    rule: Rule,
    facts: Mapping[str, Fact],
    at: datetime,
    rule_set_hash: str,
    max_reorder_factor: float = MAX_REORDER_FACTOR,
) -> list[Decision]:
    """The decisions a matched rule makes. An action whose subject does not evaluate is skipped;
    a reorder whose quantity is not a sane number becomes an error alert naming the rule's
    file:line, the rule, the subject and the value (`action_refused`), not an order."""
    resolve = field_resolver(facts)
    first = facts[rule.conditions[0].alias]
    matched = {alias: dict(fact.fields) for alias, fact in facts.items()}
    decisions: list[Decision] = []
    for spec in rule.actions:
        params = {name: _value(param, resolve) for name, param in spec.params.items()}
        if spec.kind == "alert":
            severity = params.get("severity") or rule.severity
            decisions.append(
                AlertDecision(
                    dedup_key=alert_key(rule, facts),
                    severity=severity,  # type: ignore[arg-type]
                    message=str(params["message"]),
                    site=first.site,
                    subject=first.subject,
                    rule_id=rule.id,
                    rule_set_hash=rule_set_hash,
                    matched=matched,
                    at=at,
                    repeat_s=rule.repeat_s,
                )
            )
            continue
        if spec.kind == "publish":
            payload = (
                {
                    name: _plain(expr.evaluate(node, resolve))
                    for name, node in (spec.params["payload"].items or {}).items()
                }
                if "payload" in spec.params
                else {}
            )
            if params.get("message") is not None:
                payload["message"] = params["message"]
            decisions.append(
                PublishDecision(
                    topic=str(params["topic"]),
                    payload=payload,
                    retain=params.get("retain") is True,
                    rule_id=rule.id,
                    rule_set_hash=rule_set_hash,
                    at=at,
                )
            )
            continue
        if spec.kind == "notify":
            decisions.append(
                NotifyDecision(
                    route=str(params["route"]),
                    severity=params.get("severity") or rule.severity,  # type: ignore[arg-type]
                    message=str(params.get("message") or _first_alert_message(rule, resolve)),
                    dedup_key=alert_key(rule, facts),
                    site=first.site,
                    subject=first.subject,
                    rule_id=rule.id,
                    rule_set_hash=rule_set_hash,
                    matched=matched,
                    at=at,
                )
            )
            continue
        action = _action(
            spec, params, rule, facts, first, matched, at, rule_set_hash, max_reorder_factor
        )
        if action is not None:
            decisions.append(action)
    return decisions


def _value(param: Param, resolve: expr.Resolver) -> Value:
    if param.expr is not None:
        value = expr.evaluate(param.expr, resolve)
        return value if isinstance(value, (str, int, float, bool, list)) else None
    if param.template is not None:
        return param.template.render(resolve)
    return param.choice


def _plain(value: Any) -> Value:
    return value if isinstance(value, (str, int, float, bool, list)) else None


def _first_alert_message(rule: Rule, resolve: expr.Resolver) -> str:
    """A `notify` without a message says what the rule's alert says, or the rule's description."""
    for spec in rule.actions:
        if spec.kind == "alert" and spec.params["message"].template is not None:
            return spec.params["message"].template.render(resolve)
    return rule.description or rule.id


def alert_key(rule: Rule, facts: Mapping[str, Fact]) -> str:
    """The rule's `key` template, or rule id + site + the matched subjects."""
    if rule.key is not None:
        return rule.key.render(field_resolver(facts))
    first = facts[rule.conditions[0].alias]
    subjects = "/".join(facts[c.alias].subject for c in rule.conditions)
    return f"{rule.id}/{first.site}/{subjects}"


def _action(
    spec: ActionSpec,
    params: dict[str, Value],
    rule: Rule,
    facts: Mapping[str, Fact],
    first: Fact,
    matched: Mapping[str, Mapping[str, Value]],
    at: datetime,
    rule_set_hash: str,
    max_reorder_factor: float = MAX_REORDER_FACTOR,
) -> ActionDecision | AlertDecision | None:
    subject_field = subject_param(spec.kind)
    subject = params.get(subject_field)
    if not isinstance(subject, str) or not subject:
        log.warning(
            "action_skipped",
            rule=rule.id,
            action=spec.kind,
            reason=f"{subject_field} did not evaluate to text",
        )
        return None
    if spec.kind == "reorder":
        quantity = params.get("quantity")
        problem = _quantity_problem(quantity, subject, facts, max_reorder_factor)
        if problem is None:
            assert isinstance(quantity, int | float)
            units, packs = round_up_to_packs(quantity, _pack_size(subject, facts))
            params["quantity"] = units
            if packs is not None:
                params["packs"] = packs
            params.update(_item_details(subject, facts, units))
            cost = params.get("cost")
            if isinstance(cost, float) and not math.isfinite(cost):
                problem = f"its cost ({units} x unit_cost) is not a finite number"
        if problem is not None:
            return _refused(spec, rule, first, subject, problem, matched, at, rule_set_hash)
        key = f"reorder/{first.site}/{subject}"
    elif spec.kind == "work_order":
        key = f"work_order/{first.site}/{subject}/{params.get('task')}"
    else:
        key = f"idle_capacity/{first.site}/{subject}"
    params = {name: value for name, value in params.items() if value is not None}
    return ActionDecision(
        kind=spec.kind,  # type: ignore[arg-type]
        dedup_key=key,
        site=first.site,
        subject=subject,
        params=params,
        rule_id=rule.id,
        rule_set_hash=rule_set_hash,
        matched=matched,
        at=at,
    )


def _quantity_problem(
    quantity: Value, sku: str, facts: Mapping[str, Fact], factor: float
) -> str | None:
    """What makes a reorder quantity absurd, or None: not a number (a division by zero, an
    overflow, a missing field all evaluate to nothing), not positive, or above the limit."""
    if quantity is None:
        return (
            "quantity did not evaluate to a number (a division by zero, an overflow or a "
            "missing field?)"
        )
    if not isinstance(quantity, int | float) or isinstance(quantity, bool):
        return f"quantity is not a number: {quantity!r}"
    if not math.isfinite(quantity):
        return f"quantity {quantity} is not a finite number"
    if quantity <= 0:
        return f"quantity {quantity:g} is not positive"
    if quantity > MAX_REORDER_UNITS:
        return f"quantity {quantity:g} is above the limit of {MAX_REORDER_UNITS:,} units"
    scale = _stock_scale(sku, facts)
    if scale is not None and quantity > factor * scale[1]:
        name, value = scale
        return (
            f"quantity {quantity:g} is above {factor:g} x {name} {value:g} = "
            f"{factor * value:g} (inventory.max_reorder_factor)"
        )
    return None


def _stock_scale(sku: str, facts: Mapping[str, Fact]) -> tuple[str, float] | None:
    """The item's largest positive stock figure (max_level, reorder_point, reorder_qty)."""
    for fact in facts.values():
        if fact.kind != "stock" or fact.subject != sku:
            continue
        figures = [
            (name, float(value))
            for name in ("max_level", "reorder_point", "reorder_qty")
            if isinstance(value := fact.fields.get(name), int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        ]
        return max(figures, key=lambda figure: figure[1]) if figures else None
    return None


def _refused(
    spec: ActionSpec,
    rule: Rule,
    first: Fact,
    subject: str,
    problem: str,
    matched: Mapping[str, Mapping[str, Value]],
    at: datetime,
    rule_set_hash: str,
) -> AlertDecision:
    """The error alert of an action not taken: where the rule is, which subject, what value."""
    where = f"{rule.file}:{spec.line}"
    log.warning(
        "action_refused", rule=rule.id, at=where, action=spec.kind, subject=subject, reason=problem
    )
    return AlertDecision(
        dedup_key=f"{ACTION_REFUSED_KEY}/{rule.id}/{first.site}/{subject}",
        severity="warning",
        message=f"{where}: {rule.id}: {spec.kind} of {subject} not placed: {problem}",
        site=first.site,
        subject=subject,
        rule_id=rule.id,
        rule_set_hash=rule_set_hash,
        matched={**matched, "refused": {"action": spec.kind, "at": where, "reason": problem}},
        at=at,
    )


def _pack_size(sku: str, facts: Mapping[str, Fact]) -> Value:
    """The supplier's pack size for the SKU, from its matched stock fact (None if unknown)."""
    for fact in facts.values():
        if fact.kind == "stock" and fact.subject == sku:
            return fact.fields.get("pack_size")
    return None


def _item_details(sku: str, facts: Mapping[str, Fact], quantity: int) -> dict[str, Value]:
    for fact in facts.values():
        if fact.kind == "stock" and fact.subject == sku:
            details: dict[str, Value] = {
                name: fact.fields[name] for name in _ITEM_DETAILS if name in fact.fields
            }
            cost = fact.fields.get("unit_cost")
            if isinstance(cost, (int, float)) and not isinstance(cost, bool):
                details["cost"] = round(cost * quantity, 2)
            return details
    return {}
