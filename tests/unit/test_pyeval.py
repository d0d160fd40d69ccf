"""Compiled rule expressions answer exactly as the tree-walking evaluator (`expr.evaluate`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

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
