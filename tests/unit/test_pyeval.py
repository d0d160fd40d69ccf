"""Compiled rule expressions answer exactly as the tree-walking evaluator (`expr.evaluate`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ExpressionError
from agent.rulebook import expr, pyeval

NAMES = ("a", "b", "c", "s", "missing")
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, -0.5, 2.5, 1e300]),
    st.sampled_from(["", "x", "down", "E42", "a"]),
    st.lists(st.sampled_from(["x", "a", 1, 2.5]), max_size=3),
)
LITERALS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 2.5]),
    st.sampled_from(["x", "down", "a"]),
)


def fields(alias: str | None) -> st.SearchStrategy[expr.Node]:
    return st.builds(
        expr.Field, st.sampled_from([alias, None, "other"]), st.sampled_from(NAMES), st.just(0)
    )


def leaves(alias: str | None) -> st.SearchStrategy[expr.Node]:
    return st.one_of(st.builds(expr.Literal, LITERALS, st.just(0)), fields(alias))


def trees(alias: str | None) -> st.SearchStrategy[expr.Node]:
    def extend(children: st.SearchStrategy[expr.Node]) -> st.SearchStrategy[expr.Node]:
        ops = ["and", "or", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "in", "not in"]
        return st.one_of(
            st.builds(expr.Binary, st.sampled_from(ops), children, children, st.just(0)),
            st.builds(expr.Unary, st.sampled_from(["not", "-"]), children, st.just(0)),
            st.builds(expr.ListOf, st.lists(children, max_size=3).map(tuple), st.just(0)),
            st.builds(
                expr.Call,
                st.sampled_from(["min", "max", "abs", "round"]),
                st.lists(children, min_size=1, max_size=2).map(tuple),
                st.just(0),
            ),
            st.builds(lambda f: expr.Call("exists", (f,), 0), fields(alias)),
            st.builds(
                lambda f: expr.Call("matches", (f, expr.Literal("^E4", 0)), 0, expr.Regex("^E4")),
                fields(alias),
            ),
        )

    return st.recursive(leaves(alias), extend, max_leaves=8)


def outcome(function: Any, *args: Any) -> Any:
    try:
        return ("value", function(*args))
    except Exception as exc:  # the same error on both sides counts as the same answer
        return ("error", type(exc))


@settings(max_examples=3000, deadline=None)
@given(
    trees("m"),
    st.fixed_dictionaries({name: VALUES for name in NAMES[:-1]}),
    st.fixed_dictionaries({name: VALUES for name in NAMES[:-1]}),
)
def test_compiled_expressions_evaluate_as_the_tree_walker(
    node: expr.Node, own: dict[str, Any], other: dict[str, Any]
) -> None:
    facts = {"m": SimpleNamespace(fields=own), "other": SimpleNamespace(fields=other)}

    def resolve(ref: expr.Field) -> Any:
        fact = facts.get(ref.alias if ref.alias is not None else "m")
        return None if fact is None else fact.fields.get(ref.name)

    assert outcome(pyeval.evaluator(node, "m"), own.get, facts) == outcome(
        expr.evaluate, node, resolve
    )
    assert outcome(pyeval.predicate(node, "m"), own.get, facts) == outcome(
        expr.holds, node, resolve
    )


def test_no_text_of_a_rule_reaches_the_generated_source() -> None:
    """A field name or literal that is Python is a constant, not code."""
    node = expr.parse('kind == "__import__(\'os\').system(\'x\')" or a == "\\")"')
    assert pyeval.predicate(node)({"kind": "stock", "a": 1}.get, {}) is False
    evil = expr.Field(None, "x) or __import__('os').getpid() or (y", 0)
    assert pyeval.evaluator(evil)({}.get, {}) is None


def test_a_compiled_condition_is_cached_per_tree() -> None:
    node = expr.parse("a > 1")
    assert pyeval.cached_predicate(node) is pyeval.cached_predicate(node)
    assert pyeval.cached_predicate(node, "m") is not pyeval.cached_predicate(node)


def test_the_longest_chains_a_rule_may_write_compile_and_answer_as_the_walker() -> None:
    """2,000 characters of `a and a and ...` (330 links) is past Python's 200 nested brackets
    unless the chain is written flat; it is."""
    values = {"a": 1, "b": 2, "c": True}
    for text in ("a and " * 330 + "a", "a or " * 390 + "a", "a > 1 and " * 150 + "a > 0"):
        node = expr.parse(text)
        walked = expr.holds(node, lambda ref: values.get(ref.name))
        assert pyeval.predicate(node)(values.get, {}) is walked
        assert pyeval.selector([(node, None), (node, None)])(values.get, {}) == (
            [0, 1] if walked else []
        )


def test_a_tree_too_deep_to_compile_is_walked_instead() -> None:
    node: expr.Node = expr.Field(None, "a", 0)
    for _ in range(300):  # deeper than expr.parse lets a rule write: built by hand
        node = expr.Binary("+", node, expr.Literal(1, 0), 0)
    test = expr.Binary(">", node, expr.Literal(100, 0), 0)
    assert pyeval.predicate(test)({"a": 1}.get, {}) is True
    assert pyeval.evaluator(node)({"a": 1}.get, {}) == 301
    assert pyeval.selector([(test, None)])({"a": 1}.get, {}) == [0]


def test_a_chain_deeper_than_the_evaluator_takes_is_refused_with_its_column() -> None:
    with pytest.raises(ExpressionError, match="chains more than 120 operations") as refused:
        expr.parse("q + " * 130 + "q > 1")
    assert refused.value.column > 0
