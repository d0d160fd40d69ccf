"""The compiled rules on a real durable-rules Host: what reaches the engine, and what comes back."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime
from typing import Any

import durable_rules_engine
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.decisions.build import conditions_hold
from agent.model import Fact
from agent.rulebook import engine as engine_module
from agent.rulebook.compiler import compile_rules
from agent.rulebook.engine import DurableEngine, Match
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import parse_rule_sources

SCHEMA = build_schema(machine_fields={"max_temp_c": "number", "spare_parts": "list"})


def ruleset(text: str) -> Any:
    return parse_rule_sources([("r.yaml", text)], SCHEMA)


LOW_STOCK = """\
rules:
  - id: low
    when:
      stock: kind == "stock" and on_hand <= 10 and on_hand + on_order <= reorder_point
    then:
      - alert: {message: low}
"""
JOIN = """\
rules:
  - id: spare
    when:
      m: kind == "machine" and state == "down"
      s: kind == "stock" and on_hand < 1 and sku in m.spare_parts
    then:
      - alert: {message: "{m.machine} {s.sku}"}
  - id: same-line
    when:
      a: kind == "machine" and state == "down"
      b: kind == "machine" and line == a.line and temp_c > a.temp_c + 10
    then:
      - alert: {message: x}
"""


def test_only_safe_shapes_reach_the_engine() -> None:
    plan = compile_rules(ruleset(LOW_STOCK + JOIN.removeprefix("rules:\n")))
    low, spare, same_line = plan.definitions.values()
    assert low == {"all": [{"a0": {"$and": [{"kind": "stock"}, {"$lte": {"on_hand": 10}}]}}]}
    # `sku in m.spare_parts` and the arithmetic stay in Python; the numeric test goes in.
    assert spare["all"][1] == {"a1": {"$and": [{"kind": "stock"}, {"$lt": {"on_hand": 1}}]}}
    # An equality join goes in; a relational comparison across aliases never does (notes: crash).
    assert same_line["all"][1] == {"a1": {"$and": [{"kind": "machine"}, {"line": {"a0": "line"}}]}}
    assert plan.fields == {"kind", "on_hand", "state", "line"}


def test_a_fact_fires_each_time_it_is_replaced_while_it_matches() -> None:
    engine = DurableEngine(compile_rules(ruleset(LOW_STOCK)))
    assert engine.update("stock/p/A", {"kind": "stock", "on_hand": 5}) == [
        Match("low", {"stock": "stock/p/A"})
    ]
    assert len(engine.update("stock/p/A", {"kind": "stock", "on_hand": 4})) == 1
    assert engine.update("stock/p/A", {"kind": "stock", "on_hand": 50}) == []
    assert engine.update("stock/p/B", {"kind": "stock", "on_hand": 50}) == []


def test_joins_match_on_either_side_and_forget_retracted_facts() -> None:
    engine = DurableEngine(compile_rules(ruleset(JOIN)))
    assert engine.update("stock/p/BRG", {"kind": "stock", "on_hand": 0, "sku": "BRG"}) == []
    fired = engine.update("machine/p/press", {"kind": "machine", "state": "down", "line": "A"})
    assert Match("spare", {"m": "machine/p/press", "s": "stock/p/BRG"}) in fired
    engine.update("machine/p/press", {"kind": "machine", "state": "running", "line": "A"})
    assert engine.update("stock/p/BRG", {"kind": "stock", "on_hand": 0, "sku": "BRG"}) == []


def test_the_engine_holds_only_facts_a_join_could_match() -> None:
    """Rules over one fact need nothing stored; a join needs only facts that pass their own
    alias's terms (here: down machines, any machine for `same-line`'s `b`, empty stock)."""
    engine = DurableEngine(compile_rules(ruleset(LOW_STOCK + JOIN.removeprefix("rules:\n"))))
    for n in range(50):
        engine.update(f"stock/p/S{n}", {"kind": "stock", "on_hand": 5 + n, "sku": f"S{n}"})
    assert engine.held() == 0
    engine.update("stock/p/S3", {"kind": "stock", "on_hand": 0, "sku": "S3"})
    engine.update("machine/p/M1", {"kind": "machine", "state": "running", "line": "A"})
    assert engine.held() == 2  # S3 is out; M1 may be `same-line`'s `b`
    fired = engine.update("machine/p/M2", {"kind": "machine", "state": "down", "line": "A"})
    assert Match("spare", {"m": "machine/p/M2", "s": "stock/p/S3"}) in fired
    engine.update("stock/p/S3", {"kind": "stock", "on_hand": 8, "sku": "S3"})
    assert engine.held() == 2  # S3 left the join's store; M1 and M2 are held
    again = engine.update("machine/p/M2", {"kind": "machine", "state": "down", "line": "A"})
    assert [m for m in again if m.rule_id == "spare"] == []


@pytest.mark.parametrize("seed", range(5))
def test_joins_never_miss_a_tuple_python_says_matches(seed: int) -> None:
    rules = ruleset(LOW_STOCK + JOIN.removeprefix("rules:\n"))
    engine = DurableEngine(compile_rules(rules))
    rng = random.Random(seed)
    facts: dict[str, Fact] = {}
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(400):
        if rng.random() < 0.5:
            name = f"M{rng.randrange(4)}"
            fields: dict[str, Any] = {
                "kind": "machine",
                "machine": name,
                "state": rng.choice(["running", "down"]),
                "line": rng.choice(["A", "B"]),
                "temp_c": rng.choice([20, 40, 60]),
                "spare_parts": rng.sample(["S0", "S1", "S2"], 2),
            }
            fact = Fact("machine", "p", name, fields, at)
        else:
            name = f"S{rng.randrange(3)}"
            fields = {"kind": "stock", "sku": name, "on_hand": rng.choice([0, 0.5, 3, 20])}
            fields |= {"on_order": 0, "reorder_point": 5}
            fact = Fact("stock", "p", name, fields, at)
        facts[fact.key] = fact
        found = {
            (m.rule_id, tuple(sorted(m.facts.items()))) for m in engine.update(fact.key, fields)
        }
        for rule in rules.rules:
            aliases = [c.alias for c in rule.conditions]
            for combo in itertools.product(facts.values(), repeat=len(aliases)):
                tuple_ = dict(zip(aliases, combo, strict=True))
                if fact not in combo or not conditions_hold(rule, tuple_):
                    continue
                keys = tuple(sorted((a, f.key) for a, f in tuple_.items()))
                assert (rule.id, keys) in found, (rule.id, keys)


def test_values_the_engine_cannot_take_are_not_posted() -> None:
    engine = DurableEngine(compile_rules(ruleset(LOW_STOCK)))
    # A bool or a NaN would match wrongly or fail in the C core: they are left out of the fact.
    assert engine.update("stock/p/A", {"kind": "stock", "on_hand": float("nan")}) == []
    assert engine.update("stock/p/A", {"kind": "stock", "on_hand": True}) == []
    assert engine.update("stock/p/A", {"kind": "stock", "on_hand": 3}) != []


def test_an_id_hash_collision_is_retried_with_a_salted_id(monkeypatch: pytest.MonkeyPatch) -> None:
    notes: list[tuple[str, dict[str, Any]]] = []
    engine = DurableEngine(
        compile_rules(ruleset(LOW_STOCK)), note=lambda event, ctx: notes.append((event, ctx))
    )
    real_assert = durable_rules_engine.assert_fact
    refused: list[str] = []

    def collide_once(handle: int, text: str) -> Any:
        fact = json.loads(text)
        if fact["id"] == "stock/p/A":  # as if its 32-bit hash equalled a stored fact's
            refused.append(fact["id"])
            return (2, 0)  # what the C core answers for an id it has seen
        return real_assert(handle, text)

    monkeypatch.setattr(durable_rules_engine, "assert_fact", collide_once)
    assert engine.update("stock/p/A", {"kind": "stock", "on_hand": 1}) == [
        Match("low", {"stock": "stock/p/A"})
    ]
    assert engine.update("stock/p/A", {"kind": "stock", "on_hand": 2}) == [
        Match("low", {"stock": "stock/p/A"})
    ]
    assert refused == ["stock/p/A", "stock/p/A"]
    assert notes == [("engine_id_collision", {"fact": "stock/p/A", "salt": 0})] * 2
    assert engine_module.MAX_ID_SALTS > 1


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["<", "<=", ">", ">=", "=="]), st.integers(-5, 5)),
        min_size=1,
        max_size=3,
    ),
    st.one_of(st.integers(-6, 6), st.floats(-6, 6, allow_nan=False), st.none()),
)
def test_the_engine_never_misses_a_fact_python_says_matches(
    terms: list[tuple[str, int]], on_hand: float | None
) -> None:
    condition = " and ".join(f"on_hand {op} {value}" for op, value in terms)
    text = (
        f'rules:\n  - id: r\n    when:\n      s: kind == "stock" and {condition}\n'
        "    then:\n      - alert: {message: x}\n"
    )
    rules = ruleset(text)
    engine = DurableEngine(compile_rules(rules))
    fired = engine.update("stock/p/A", {"kind": "stock", "on_hand": on_hand})
    expected = on_hand is not None and all(eval(f"{on_hand!r} {op} {value}") for op, value in terms)
    assert bool(fired) == expected


@pytest.mark.parametrize("on_hand", [1e-05, -1e-05, 1e16, -1e16, 5e-324, 1.5e300])
def test_numbers_python_writes_with_exponents_reach_the_engine(on_hand: float) -> None:
    # durable-rules' JSON parser refuses `1e-05` (error 204): facts are encoded without exponents.
    engine = DurableEngine(
        compile_rules(ruleset(LOW_STOCK.replace("on_hand <= 10", "on_hand < 0")))
    )
    assert bool(engine.update("stock/p/A", {"kind": "stock", "on_hand": on_hand})) == (on_hand < 0)


FACT_VALUES = (
    st.text(max_size=8)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), FACT_VALUES, max_size=6))
def test_the_fast_fact_encoding_says_what_the_fieldwise_one_says(fact: dict[str, Any]) -> None:
    encoded = engine_module.encode_fact(fact)
    assert json.loads(encoded) == json.loads(engine_module._encode_fieldwise(fact)) == fact


@pytest.mark.parametrize("on_hand", [1e-05, 0.0001, 9999999999999998.0, 1e16, 2**64, 3])
def test_facts_reach_the_engine_whichever_encoding_they_take(on_hand: float) -> None:
    engine = DurableEngine(
        compile_rules(ruleset(LOW_STOCK.replace("on_hand <= 10", "on_hand > -1")))
    )
    assert engine.update("stock/p/A", {"kind": "stock", "on_hand": on_hand}) == [
        Match("low", {"stock": "stock/p/A"})
    ]
