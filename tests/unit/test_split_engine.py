"""Rules over one fact matched in process, joins in durable-rules: never a match missed, and
the one-fact answers exact (issue 15)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.decisions.build import conditions_hold
from agent.model import Fact
from agent.rulebook.compiler import EnginePlan
from agent.rulebook.engine import DurableEngine, RuleEngine
from agent.rulebook.split import SplitEngine
from tests.unit.test_engine import JOIN, LOW_STOCK, ruleset

ONE_FACT = """\
  - id: hot-a
    when:
      m: kind == "machine" and line == "A" and temp_c > 30 and not (state == "down")
    then:
      - alert: {message: hot}
  - id: hot-b
    when:
      m: kind == "machine" and line == "B" and temp_c >= 40
    then:
      - alert: {message: hot}
  - id: either
    when:
      any:
        - m: kind == "machine" and state == "down"
        - m: kind == "machine" and temp_c == 60
    then:
      - alert: {message: x}
"""


def random_fact(rng: random.Random, at: datetime) -> Fact:
    if rng.random() < 0.5:
        name = f"M{rng.randrange(4)}"
        fields: dict[str, Any] = {
            "kind": "machine",
            "machine": name,
            "state": rng.choice(["running", "down", "idle"]),
            "line": rng.choice(["A", "B", "C"]),
            "temp_c": rng.choice([20, 40, 60, 35.5]),
            "spare_parts": rng.sample(["S0", "S1", "S2"], 2),
        }
        return Fact("machine", "p", name, fields, at)
    name = f"S{rng.randrange(3)}"
    fields = {"kind": "stock", "sku": name, "on_hand": rng.choice([0, 0.5, 3, 20])}
    return Fact("stock", "p", name, fields | {"on_order": 0, "reorder_point": 5}, at)


@pytest.mark.parametrize("seed", range(6))
def test_the_split_engine_finds_every_tuple_that_holds_and_one_fact_rules_exactly(
    seed: int,
) -> None:
    rules = ruleset(LOW_STOCK + JOIN.removeprefix("rules:\n") + ONE_FACT)
    made: list[RuleEngine] = []

    def factory(plan: EnginePlan) -> RuleEngine:
        assert set(plan.rule_ids.values()) == {"spare", "same-line"}  # joins only
        made.append(DurableEngine(plan))
        return made[-1]

    engine = SplitEngine(rules, factory)
    rng = random.Random(seed)
    facts: dict[str, Fact] = {}
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for step in range(300):
        batch = [random_fact(rng, at) for _ in range(rng.choice([1, 1, 3]))]
        batch = list({fact.key: fact for fact in batch}.values())  # one step per subject
        answers = engine.update_many([(fact.key, fact.fields) for fact in batch])
        for fact, answer in zip(batch, answers, strict=True):
            assert not isinstance(answer, Exception)
            facts[fact.key] = fact
            found = {(m.rule_id, tuple(sorted(m.facts.items()))) for m in answer}
            for rule in rules.rules:
                aliases = [c.alias for c in rule.conditions]
                holding = set()
                for combo in itertools.product(facts.values(), repeat=len(aliases)):
                    tuple_ = dict(zip(aliases, combo, strict=True))
                    if fact in combo and conditions_hold(rule, tuple_):
                        holding.add((rule.id, tuple(sorted((a, f.key) for a, f in tuple_.items()))))
                mine = {item for item in found if item[0] == rule.id}
                assert holding <= mine, (step, rule.id)
                if len(aliases) == 1:
                    assert mine == holding, (step, rule.id)  # exact: no candidates to re-check
    assert len(made) == 1


def test_without_joins_no_engine_is_made() -> None:
    def factory(plan: EnginePlan) -> RuleEngine:
        raise AssertionError("no engine for one-fact rules")

    engine = SplitEngine(ruleset(LOW_STOCK), factory)
    fields = {"kind": "stock", "sku": "S1", "on_hand": 2, "on_order": 0, "reorder_point": 5}
    (match,) = engine.update("stock/p/S1", fields)
    assert (match.rule_id, dict(match.facts)) == ("low", {"stock": "stock/p/S1"})
    assert engine.joins is None


def test_the_join_engine_sees_only_facts_a_join_could_use() -> None:
    seen: list[str] = []

    class Recording(DurableEngine):
        def update(self, key: str, fields: Any) -> Any:
            seen.append(key)
            return super().update(key, fields)

    spare_only = JOIN[: JOIN.index("  - id: same-line")]  # `same-line` would want every machine
    engine = SplitEngine(ruleset(spare_only), Recording)
    engine.update("machine/p/M1", {"kind": "machine", "state": "running", "line": "A"})
    engine.update("stock/p/S1", {"kind": "stock", "sku": "S1", "on_hand": 5})
    assert seen == []
    engine.update("machine/p/M1", {"kind": "machine", "state": "down", "line": "A"})
    assert seen == ["machine/p/M1"]
    # Leaving the gate, it is posted once more so the engine lets go of it; then never again.
    engine.update("machine/p/M1", {"kind": "machine", "state": "running", "line": "A"})
    engine.update("machine/p/M1", {"kind": "machine", "state": "idle", "line": "A"})
    assert seen == ["machine/p/M1", "machine/p/M1"]
    joins = engine.joins
    assert isinstance(joins, DurableEngine) and not joins.joined("machine/p/M1")
