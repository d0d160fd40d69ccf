"""Rule expressions compiled to Python functions: the same answers as `expr.evaluate`, faster.

`expr.evaluate` walks the tree for every fact and every rule, dispatching on each node's type;
a rule's condition is evaluated for every message about a subject of its kind. Here a tree is
turned once into the source of one Python function whose body is the expression, written with
the evaluator's own operator functions (`expr._compare`, `expr._arithmetic`, ...), so the meaning
is the evaluator's by construction; only the dispatch is gone. No text from a rule file reaches
the generated source: literals, field names and patterns are passed in as constants (`k0`,
`k1`, ...) and the source is built from the tree's node types alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from agent.rulebook import expr

# A compiled condition: (the fact's own `fields.get`, alias -> the matched facts) -> bool. The
# facts are anything with `fields` (`agent.model.Fact`); only other aliases' fields are read there.
Getter = Callable[[str], Any]
Others = Mapping[str, Any]
Predicate = Callable[[Getter, Others], bool]
Evaluator = Callable[[Getter, Others], Any]

_COMPARE: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})
_FLIPPED: Final = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ORDER: Final = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def _other(others: Others, alias: str, name: str) -> Any:
    fact = others.get(alias)
    return None if fact is None else fact.fields.get(name)


# Comparisons with a literal, as `expr._compare` answers them: a number only with a number (not a
# bool), a text only with a text; the type tests come first as the cheap common case.
def _num(value: Any) -> bool:
    kind = value.__class__
    return kind is float or kind is int or expr._is_number(value)


def _eqs(value: Any, text: str) -> bool:
    return type(value) is str and value == text


def _eqn(value: Any, number: float) -> bool:
    return _num(value) and value == number


def _ltn(value: Any, number: float) -> bool:
    return _num(value) and value < number


def _len(value: Any, number: float) -> bool:
    return _num(value) and value <= number


def _gtn(value: Any, number: float) -> bool:
    return _num(value) and value > number


def _gen(value: Any, number: float) -> bool:
    return _num(value) and value >= number


_RUNTIME: Final[dict[str, Any]] = {
    "_eqs": _eqs,
    "_eqn": _eqn,
    "_ltn": _ltn,
    "_len": _len,
    "_gtn": _gtn,
    "_gen": _gen,
    "_t": expr._truth,
    "_cmp": expr._compare,
    "_ar": expr._arithmetic,
    "_o": _other,
    "_neg": expr._negative,
    "_member": expr._member,
    "_mt": expr._matches,
    "_call": expr._number_call,
}


class _Writer:
    """Python source for one expression tree, its constants collected as `k<n>` names."""

    def __init__(self, alias: str | None) -> None:
        self.alias = alias
        self.constants: dict[str, Any] = {}

    def constant(self, value: object) -> str:
        name = f"k{len(self.constants)}"
        self.constants[name] = value
        return name

    def truth(self, node: expr.Node) -> str:
        """Source whose value is the node's truth (a bool), as `expr._truth` reads it."""
        if _is_boolean(node):
            return self.value(node)
        return f"_t({self.value(node)})"

    def value(self, node: expr.Node) -> str:
        if isinstance(node, expr.Literal):
            return self.constant(node.value)
        if isinstance(node, expr.Field):
            if node.alias is None or node.alias == self.alias:
                return f"g({self.constant(node.name)})"
            return f"_o(o, {self.constant(node.alias)}, {self.constant(node.name)})"
        if isinstance(node, expr.Unary):
            if node.op == "not":
                return f"(not {self.truth(node.operand)})"
            return f"_neg({self.value(node.operand)})"
        if isinstance(node, expr.ListOf):
            return "[" + "".join(f"{self.value(item)}, " for item in node.items) + "]"
        if isinstance(node, expr.Binary):
            return self._binary(node)
        return self._call(node)

    def _binary(self, node: expr.Binary) -> str:
        op = node.op
        if op in ("and", "or"):
            # A chain of one operator is one flat Python `and`/`or` (no nesting: Python's parser
            # refuses 200 nested parentheses, and `a and a and ...` in 2,000 characters is 330).
            parts = f" {op} ".join(self.truth(part) for part in _chain(node, op))
            return f"({parts})"
        left, right = self.value(node.left), self.value(node.right)
        if op in expr.ARITHMETIC:
            return f"_ar({self.constant(op)}, {left}, {right})"
        if op in ("in", "not in"):
            return f"_member({self.constant(op)}, {left}, {right})"
        assert op in _COMPARE, op
        return self._compare(op, node.left, node.right, left, right)

    def _compare(
        self, op: str, left_node: expr.Node, right_node: expr.Node, left: str, right: str
    ) -> str:
        """`_cmp`, or the same test specialised for a literal on one side (the usual rule)."""
        if isinstance(left_node, expr.Literal) and not isinstance(right_node, expr.Literal):
            op, left, right, right_node = _FLIPPED[op], right, left, left_node
        if not isinstance(right_node, expr.Literal):
            return f"_cmp({self.constant(op)}, {left}, {right})"
        value = right_node.value
        if op in ("==", "!="):
            if value is None or isinstance(value, bool):
                test = f"({left} is {right})"  # only None is None, only True is True
            elif isinstance(value, str):
                test = f"_eqs({left}, {right})"
            else:
                test = f"_eqn({left}, {right})"
            return test if op == "==" else f"(not {test})"
        if expr._is_number(value):
            return f"_{_ORDER[op]}n({left}, {right})"
        return f"_cmp({self.constant(op)}, {left}, {right})"

    def _call(self, node: expr.Call) -> str:
        if node.func == "exists":
            return f"({self.value(node.args[0])} is not None)"
        args = [self.value(arg) for arg in node.args]
        if node.func == "matches":
            assert node.pattern is not None
            return f"_mt({self.constant(node.pattern)}, {args[0]})"
        return f"_call({self.constant(node.func)}, {', '.join(args)})"


def _is_boolean(node: expr.Node) -> bool:
    """Whether the node's value is always a bool (so its truth is itself)."""
    if isinstance(node, expr.Binary):
        return node.op not in expr.ARITHMETIC
    if isinstance(node, expr.Unary):
        return node.op == "not"
    if isinstance(node, expr.Call):
        return node.func in ("exists", "matches")
    return False


def _chain(node: expr.Node, op: str) -> list[expr.Node]:
    """The operands of a chain of `op` (`a and b and c`: [a, b, c]), without recursion."""
    found: list[expr.Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, expr.Binary) and current.op == op:
            stack.extend((current.right, current.left))
        else:
            found.append(current)
    return found


# What compiling a tree too deep for Python's parser or for our writer's recursion raises.
_TOO_DEEP: Final = (SyntaxError, RecursionError, MemoryError, ValueError)


def _build(source: str, constants: Mapping[str, Any]) -> Any:
    namespace: dict[str, Any] = {**_RUNTIME, **constants, "__builtins__": {}}
    code = compile(f"def _f(g, o):\n    return {source}\n", "<rule expression>", "exec")
    exec(code, namespace)  # the source is built from node types; every value is a constant
    return namespace["_f"]


def _walker(node: expr.Node, alias: str | None, truth: bool) -> Any:
    """The tree walker itself behind the same signature: for a tree too deep to compile (long
    arithmetic chains), whose answers (and limits) are then exactly the evaluator's."""

    def run(g: Getter, o: Others) -> Any:
        def resolve(ref: expr.Field) -> Any:
            if ref.alias is None or ref.alias == alias:
                return g(ref.name)
            return _other(o, ref.alias, ref.name)

        return expr.holds(node, resolve) if truth else expr.evaluate(node, resolve)

    return run


def evaluator(node: expr.Node, alias: str | None = None) -> Evaluator:
    """The node's value as a function of (own `fields.get`, other aliases' fields)."""
    try:
        writer = _Writer(alias)
        return _build(writer.value(node), writer.constants)  # type: ignore[no-any-return]
    except _TOO_DEEP:
        return _walker(node, alias, truth=False)  # type: ignore[no-any-return]


def predicate(node: expr.Node, alias: str | None = None) -> Predicate:
    """The node as a condition (True only when it evaluates to true): `expr.holds`."""
    try:
        writer = _Writer(alias)
        return _build(writer.truth(node), writer.constants)  # type: ignore[no-any-return]
    except _TOO_DEEP:
        return _walker(node, alias, truth=True)  # type: ignore[no-any-return]


# Compiled conditions by the id of their tree (kept alive here, so the id stays theirs).
_CACHE: dict[tuple[int, str | None], tuple[expr.Node, Predicate]] = {}
_CACHE_MAX: Final = 20_000


def cached_predicate(node: expr.Node, alias: str | None = None) -> Predicate:
    """`predicate`, compiled once per tree (a rule set's trees live as long as the set)."""
    key = (id(node), alias)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is node:
        return hit[1]
    if len(_CACHE) >= _CACHE_MAX:  # many reloads: start again rather than grow
        _CACHE.clear()
    compiled = predicate(node, alias)
    _CACHE[key] = (node, compiled)
    return compiled


# Several compiled conditions asked at once: (own `fields.get`, others) -> indices that hold.
Selector = Callable[[Getter, Others], list[int]]


def selector(tests: Sequence[tuple[expr.Node, str | None]]) -> Selector:
    """One function asking each (tree, alias) in turn: the positions of those that hold.

    The same conditions as `predicate` each, in one body: for a kind with many rules, one call
    per fact instead of one per rule.
    """
    try:
        writer = _Writer(None)
        lines = ["def _f(g, o):", "    r = []"]
        for position, (node, alias) in enumerate(tests):
            writer.alias = alias
            lines.append(f"    if {writer.truth(node)}:")
            lines.append(f"        r.append({position})")
        lines.append("    return r")
        namespace: dict[str, Any] = {**_RUNTIME, **writer.constants, "__builtins__": {}}
        exec(compile("\n".join(lines) + "\n", "<rule expressions>", "exec"), namespace)
        return namespace["_f"]  # type: ignore[no-any-return]
    except _TOO_DEEP:  # one test too deep for one body: each on its own (compiled or walked)
        each = [predicate(node, alias) for node, alias in tests]
        return lambda g, o: [i for i, test in enumerate(each) if test(g, o)]
