"""The rule expression language: a whitelist parser, a type checker and an evaluator.

No `eval`, no attribute access, no calls except the functions in `FUNCTIONS`. Text in, a small
frozen AST out; every error is an `ExpressionError` with a column, never a crash.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import re2

from agent.errors import ExpressionError

MAX_LENGTH: Final = 2000
MAX_DEPTH: Final = 40
# Operations along one path of the tree, `and`/`or` aside: `a + b + c ...` is one deeper level
# per operator (see `_check_depth`).
MAX_TREE_DEPTH: Final = 120
MAX_REGEX_LENGTH: Final = 200
# matches() on a longer string is false: the rule reads a code or an id, not a document.
MAX_MATCH_INPUT: Final = 4096

KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false", "null"})
COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})
ARITHMETIC: Final = frozenset({"+", "-", "*", "/"})

# Types the checker knows. "any" is a field whose type cannot be known before run time.
Type = str
NUMBER, STRING, BOOL, LIST, NULL, ANY = "number", "string", "bool", "list", "null", "any"


# ---------------------------------------------------------------------------------------------
# AST


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool | None
    col: int


@dataclass(frozen=True, slots=True)
class Field:
    alias: str | None
    name: str
    col: int

    def __str__(self) -> str:
        return f"{self.alias}.{self.name}" if self.alias else self.name


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[Node, ...]
    col: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "not" | "-"
    operand: Node
    col: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # comparisons, arithmetic, "and", "or", "in", "not in"
    left: Node
    right: Node
    col: int


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Node, ...]
    col: int
    pattern: Regex | None = None  # compiled once for matches()


Node = Literal | Field | ListOf | Unary | Binary | Call


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the reason goes into the rule problem, not to stderr


class Regex:
    """A `matches()` pattern, run by RE2: time linear in the text whatever the pattern, so
    `(a+)+$` cannot freeze the agent as it does Python's backtracking `re`. RE2 has no
    backreferences or lookarounds: such a pattern is refused when the rule is read."""

    __slots__ = ("_compiled", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._compiled = re2.compile(text, _RE2_OPTIONS)  # raises re2.error

    def search(self, value: str) -> bool:
        """Whether the pattern occurs in `value`; never for a string over MAX_MATCH_INPUT."""
        if len(value) > MAX_MATCH_INPUT:
            return False
        try:
            return self._compiled.search(value) is not None
        except UnicodeError:  # a lone surrogate: not text RE2 can read
            return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Regex({self.text!r})"

    def __reduce__(self) -> tuple[type[Regex], tuple[str]]:
        return Regex, (self.text,)


# ---------------------------------------------------------------------------------------------
# Tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
    """,
    re.VERBOSE,
)

_ESCAPES: Final = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}
# Operators of other languages (the rule loader's hint says what this one writes instead).
FOREIGN_OPERATORS: Final = ("&&", "||", "&", "|", "!", "=")


def _bad_character(text: str, pos: int) -> str:
    """Why the character at `pos` starts no token, in the words of the mistake it usually is."""
    char = text[pos]
    if char in "\"'":
        return f"this quote {char} is never closed"
    for candidate in (text[pos : pos + 2], char):
        if candidate in FOREIGN_OPERATORS:
            return f"{candidate!r} is not an operator"
    return f"unexpected character {char!r}"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number | string | name | op | end
    text: str
    col: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExpressionError(_bad_character(text, pos), pos + 1)
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, m.group(), pos + 1))
        pos = m.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _unquote(token: _Token) -> str:
    body = token.text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise ExpressionError(f"unknown escape \\{nxt} in string", token.col + i + 1)
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Parser (precedence climbing): or < and < not < comparison/in < + - < * / < unary - < primary


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind in ("op", "name") and token.text in texts

    def expect(self, text: str, opening: _Token | None = None) -> _Token:
        """The token `text`; `opening` is the bracket it closes, named when it is missing."""
        token = self.peek()
        if token.text != text or token.kind not in ("op", "name"):
            if token.kind == "end" and opening is not None:
                raise ExpressionError(f"this {opening.text!r} is never closed", opening.col)
            found = repr(token.text) if token.kind != "end" else "the end"
            raise ExpressionError(f"expected {text!r}, found {found}", token.col)
        return self.take()

    def enter(self, col: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels", col)

    def parse(self) -> Node:
        node = self.parse_or()
        token = self.peek()
        if token.kind != "end":
            if token.text in (")", "]"):
                raise ExpressionError(f"this {token.text!r} closes nothing", token.col)
            raise ExpressionError(f"unexpected {token.text!r}", token.col)
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.at("or"):
            token = self.take()
            node = Binary("or", node, self.parse_and(), token.col)
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.at("and"):
            token = self.take()
            node = Binary("and", node, self.parse_not(), token.col)
        return node

    def parse_not(self) -> Node:
        if self.at("not"):
            token = self.take()
            self.enter(token.col)
            node = Unary("not", self.parse_not(), token.col)
            self.depth -= 1
            return node
        return self.parse_comparison()

    def parse_comparison(self) -> Node:
        node = self.parse_additive()
        token = self.peek()
        if token.kind == "op" and token.text in COMPARISONS:
            self.take()
            node = Binary(token.text, node, self.parse_additive(), token.col)
        elif self.at("in"):
            self.take()
            node = Binary("in", node, self.parse_additive(), token.col)
        elif self.at("not") and self.tokens[self.i + 1].text == "in":
            self.take()
            self.take()
            node = Binary("not in", node, self.parse_additive(), token.col)
        else:
            return node
        nxt = self.peek()
        if (nxt.kind == "op" and nxt.text in COMPARISONS) or self.at("in"):
            raise ExpressionError("comparisons cannot be chained: write `a < b and b < c`", nxt.col)
        return node

    def parse_additive(self) -> Node:
        node = self.parse_multiplicative()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            token = self.take()
            node = Binary(token.text, node, self.parse_multiplicative(), token.col)
        return node

    def parse_multiplicative(self) -> Node:
        node = self.parse_unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/"):
            token = self.take()
            node = Binary(token.text, node, self.parse_unary(), token.col)
        return node

    def parse_unary(self) -> Node:
        if self.peek().kind == "op" and self.peek().text == "-":
            token = self.take()
            self.enter(token.col)
            operand = self.parse_unary()
            self.depth -= 1
            if isinstance(operand, Literal) and _is_number(operand.value):
                return Literal(-operand.value, token.col)  # type: ignore[operator]
            return Unary("-", operand, token.col)
        return self.parse_primary()

    def parse_primary(self) -> Node:
        token = self.take()
        if token.kind == "number":
            value: int | float = (
                float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
            )
            if isinstance(value, float) and not math.isfinite(value):
                raise ExpressionError(f"number {token.text} is too large", token.col)
            return Literal(value, token.col)
        if token.kind == "string":
            return Literal(_unquote(token), token.col)
        if token.kind == "op" and token.text == "(":
            self.enter(token.col)
            node = self.parse_or()
            self.expect(")", token)
            self.depth -= 1
            return node
        if token.kind == "op" and token.text == "[":
            return self.parse_list(token)
        if token.kind == "name":
            return self.parse_name(token)
        found = repr(token.text) if token.kind != "end" else "the end of the expression"
        raise ExpressionError(f"expected a value, found {found}", token.col)

    def parse_list(self, opening: _Token) -> Node:
        self.enter(opening.col)
        items: list[Node] = []
        if not self.at("]"):
            items.append(self.parse_or())
            while self.at(","):
                self.take()
                items.append(self.parse_or())
        self.expect("]", opening)
        self.depth -= 1
        return ListOf(tuple(items), opening.col)

    def parse_name(self, token: _Token) -> Node:
        text = token.text
        if text in ("true", "false"):
            return Literal(text == "true", token.col)
        if text == "null":
            return Literal(None, token.col)
        if text in KEYWORDS:
            raise ExpressionError(f"unexpected keyword {text!r}", token.col)
        parts = text.split(".")
        if any(part.startswith("__") for part in parts):
            raise ExpressionError(f"names starting with '__' are not allowed: {text!r}", token.col)
        if self.at("("):
            if len(parts) > 1:
                raise ExpressionError(
                    f"{text!r} is not a function: only {', '.join(sorted(FUNCTIONS))} can be "
                    "called",
                    token.col,
                )
            return self.parse_call(token)
        if len(parts) > 2:
            raise ExpressionError(
                f"{text!r}: only `field` or `alias.field` can be referenced", token.col
            )
        if len(parts) == 2:
            return Field(parts[0], parts[1], token.col)
        return Field(None, parts[0], token.col)

    def parse_call(self, token: _Token) -> Node:
        name = token.text
        if name not in FUNCTIONS:
            raise ExpressionError(
                f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}", token.col
            )
        opening = self.expect("(")
        self.enter(token.col)
        args: list[Node] = []
        if not self.at(")"):
            args.append(self.parse_or())
            while self.at(","):
                self.take()
                args.append(self.parse_or())
        self.expect(")", opening)
        self.depth -= 1
        low, high = FUNCTIONS[name]
        if not low <= len(args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise ExpressionError(f"{name}() takes {wanted} arguments, got {len(args)}", token.col)
        pattern = None
        if name == "exists" and not isinstance(args[0], Field):
            raise ExpressionError("exists() takes a field name", token.col)
        if name == "matches":
            pattern = _compile_regex(args[1], token.col)
        return Call(name, tuple(args), token.col, pattern)


def _compile_regex(node: Node, col: int) -> Regex:
    if not isinstance(node, Literal) or not isinstance(node.value, str):
        raise ExpressionError("matches() needs a string literal as its pattern", col)
    if len(node.value) > MAX_REGEX_LENGTH:
        raise ExpressionError(f"pattern longer than {MAX_REGEX_LENGTH} characters", col)
    try:
        return Regex(node.value)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ExpressionError(
            f"invalid pattern {node.value!r}: {reason} (the syntax is RE2's: no backreferences"
            " or lookarounds)",
            col,
        ) from exc
    except UnicodeError as exc:  # a lone surrogate (`"\\ud800"`) is no UTF-8 for RE2
        raise ExpressionError(f"invalid pattern {node.value!r}: not valid Unicode", col) from exc


# name -> (min args, max args)
FUNCTIONS: Final[Mapping[str, tuple[int, int]]] = {
    "min": (2, 8),
    "max": (2, 8),
    "abs": (1, 1),
    "round": (1, 2),
    "exists": (1, 1),
    "matches": (2, 2),
}


def parse(text: str) -> Node:
    """Parse an expression; raise `ExpressionError` (with a 1-based column) when it is not one."""
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression as text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ExpressionError("empty expression")
    node = _Parser(text).parse()
    _check_depth(node)
    return node


def _check_depth(root: Node) -> None:
    """Refuse a tree deeper than MAX_TREE_DEPTH operations: a chain like `q + q + q ...` is
    not nested in the text (MAX_DEPTH counts brackets and prefixes), yet its tree is as deep
    as it is long, and the evaluator and type checker recurse along it."""
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise ExpressionError(
                f"expression chains more than {MAX_TREE_DEPTH} operations in one term; "
                "split it into several conditions",
                node.col,
            )
        if isinstance(node, Binary):
            # `and`/`or` chains are flat when compiled, and 2,000 characters hold at most ~330
            # links (`a and `), within what the evaluator's recursion takes: not counted.
            deeper = depth if node.op in ("and", "or") else depth + 1
            stack.extend(((node.left, deeper), (node.right, deeper)))
        elif isinstance(node, Unary):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, (Call, ListOf)):
            items = node.args if isinstance(node, Call) else node.items
            stack.extend((item, depth + 1) for item in items)


# ---------------------------------------------------------------------------------------------
# Walking the tree


def fields(node: Node) -> list[Field]:
    """Every field reference in the expression, in reading order."""
    found: list[Field] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Field):
            found.append(current)
        elif isinstance(current, Unary):
            stack.append(current.operand)
        elif isinstance(current, Binary):
            stack.extend((current.right, current.left))
        elif isinstance(current, (Call, ListOf)):
            stack.extend(reversed(current.args if isinstance(current, Call) else current.items))
    return found


def conjuncts(node: Node) -> list[Node]:
    """Split `a and b and c` into [a, b, c]."""
    if isinstance(node, Binary) and node.op == "and":
        return conjuncts(node.left) + conjuncts(node.right)
    return [node]


# ---------------------------------------------------------------------------------------------
# Type checking

FieldTypes = Callable[[Field], Type | None]
"""Resolves a field reference to its type, or None when the field is unknown."""


def check(node: Node, field_type: FieldTypes) -> Type:
    """Infer the expression's type; raise `ExpressionError` for unknown fields and type clashes."""
    if isinstance(node, Literal):
        return _literal_type(node.value)
    if isinstance(node, Field):
        found = field_type(node)
        if found is None:
            raise ExpressionError(f"unknown field {str(node)!r}", node.col)
        return found
    if isinstance(node, ListOf):
        for item in node.items:
            check(item, field_type)
        return LIST
    if isinstance(node, Unary):
        inner = check(node.operand, field_type)
        if node.op == "-":
            _expect(inner, NUMBER, "'-' needs a number", node.col)
            return NUMBER
        return BOOL
    if isinstance(node, Binary):
        return _check_binary(node, field_type)
    return _check_call(node, field_type)


def _check_binary(node: Binary, field_type: FieldTypes) -> Type:
    left = check(node.left, field_type)
    right = check(node.right, field_type)
    if node.op in ("and", "or"):
        return BOOL
    if node.op in ARITHMETIC:
        _expect(left, NUMBER, f"{node.op!r} needs numbers, not {left}", node.col)
        _expect(right, NUMBER, f"{node.op!r} needs numbers, not {right}", node.col)
        return NUMBER
    if node.op in ("in", "not in"):
        if right not in (LIST, STRING, ANY):
            raise ExpressionError(
                f"'in' needs a list or a string on its right, not {right}", node.col
            )
        return BOOL
    if node.op in ("<", "<=", ">", ">="):
        for side in (left, right):
            if side not in (NUMBER, STRING, ANY):
                raise ExpressionError(f"cannot order {side} values with {node.op!r}", node.col)
    if ANY not in (left, right) and NULL not in (left, right) and left != right:
        raise ExpressionError(
            f"cannot compare {left} with {right}: {_render(node.left)} {node.op} "
            f"{_render(node.right)}",
            node.col,
        )
    return BOOL


def _check_call(node: Call, field_type: FieldTypes) -> Type:
    if node.func == "exists":
        # exists() accepts any field name of the alias, known or not: that is its point.
        return BOOL
    types = [check(arg, field_type) for arg in node.args]
    if node.func == "matches":
        _expect(types[0], STRING, "matches() needs a string field", node.col)
        return BOOL
    for found in types:
        _expect(found, NUMBER, f"{node.func}() needs numbers, not {found}", node.col)
    return NUMBER


def _expect(found: Type, wanted: Type, message: str, col: int) -> None:
    if found not in (wanted, ANY):
        raise ExpressionError(message, col)


def _literal_type(value: object) -> Type:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, float)):
        return NUMBER
    return STRING


def _render(node: Node) -> str:
    if isinstance(node, Literal):
        return repr(node.value) if isinstance(node.value, str) else str(node.value)
    if isinstance(node, Field):
        return str(node)
    return "(...)"


# ---------------------------------------------------------------------------------------------
# Evaluation

Resolver = Callable[[Field], Any]
"""Returns a field's value, or None when the fact does not have it."""


def evaluate(node: Node, resolve: Resolver) -> Any:
    """Evaluate over facts. Missing values propagate as None and make comparisons false."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Field):
        return resolve(node)
    if isinstance(node, Binary):
        return _eval_binary(node, resolve)
    if isinstance(node, Unary):
        value = evaluate(node.operand, resolve)
        if node.op == "not":
            return not _truth(value)
        return _negative(value)
    if isinstance(node, ListOf):
        return [evaluate(item, resolve) for item in node.items]
    return _eval_call(node, resolve)


def holds(node: Node, resolve: Resolver) -> bool:
    """Evaluate a condition: true only when it evaluates to true (None and errors are false)."""
    return _truth(evaluate(node, resolve))


def _truth(value: Any) -> bool:
    return value is True or (_is_number(value) and value != 0)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _eval_binary(node: Binary, resolve: Resolver) -> Any:
    op = node.op
    if op == "and":
        return _truth(evaluate(node.left, resolve)) and _truth(evaluate(node.right, resolve))
    if op == "or":
        return _truth(evaluate(node.left, resolve)) or _truth(evaluate(node.right, resolve))
    left = evaluate(node.left, resolve)
    right = evaluate(node.right, resolve)
    if op in ARITHMETIC:
        return _arithmetic(op, left, right)
    if op in ("in", "not in"):
        return _member(op, left, right)
    return _compare(op, left, right)


def _negative(value: Any) -> Any:
    return -value if _is_number(value) else None


def _member(op: str, left: Any, right: Any) -> bool:
    """`in` / `not in`: both False when membership cannot be asked (no list or text, no value,
    a non-text in a text)."""
    if not isinstance(right, (list, str)) or left is None:
        return False
    if isinstance(right, str) and not isinstance(left, str):
        return False
    found = left in right
    return found if op == "in" else not found


def _arithmetic(op: str, left: Any, right: Any) -> float | int | None:
    if not (_is_number(left) and _is_number(right)):
        return None
    if op == "+":
        result = left + right
    elif op == "-":
        result = left - right
    elif op == "*":
        result = left * right
    else:
        if right == 0:
            return None
        result = left / right
    if isinstance(result, float) and not math.isfinite(result):
        return None
    return result  # type: ignore[no-any-return]


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return _same_kind(left, right) and left == right
    if op == "!=":
        return not (_same_kind(left, right) and left == right)
    if left is None or right is None or not _same_kind(left, right):
        return False
    if isinstance(left, (bool, list)):
        return False
    if op == "<":
        return left < right  # type: ignore[no-any-return]
    if op == "<=":
        return left <= right  # type: ignore[no-any-return]
    if op == ">":
        return left > right  # type: ignore[no-any-return]
    return left >= right  # type: ignore[no-any-return]


def _same_kind(left: Any, right: Any) -> bool:
    if _is_number(left):
        return _is_number(right)
    return type(left) is type(right)


def _eval_call(node: Call, resolve: Resolver) -> Any:
    if node.func == "exists":
        return resolve(node.args[0]) is not None  # type: ignore[arg-type]
    args = [evaluate(arg, resolve) for arg in node.args]
    if node.func == "matches":
        assert node.pattern is not None
        return _matches(node.pattern, args[0])
    return _number_call(node.func, *args)


def _matches(pattern: Regex, value: Any) -> bool:
    return isinstance(value, str) and pattern.search(value)


def _number_call(func: str, *args: Any) -> Any:
    """min, max, abs and round of evaluated arguments (no value unless all are numbers)."""
    if not all(_is_number(arg) for arg in args):
        return None
    if func == "min":
        return min(args)
    if func == "max":
        return max(args)
    if func == "abs":
        return abs(args[0])
    digits = int(args[1]) if len(args) > 1 else 0
    if not -12 <= digits <= 12:
        return None
    return round(args[0], digits) if digits else round(args[0])
