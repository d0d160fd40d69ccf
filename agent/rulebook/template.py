"""Message templates: `"{m.machine} at {m.temp_c:.1f} °C"`, with field references only.

A template cannot reach attributes, index anything or call anything: placeholders are parsed here
into field references and a format spec checked against a whitelist, and rendered with `format()`
on plain scalars.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from agent.errors import ExpressionError
from agent.rulebook.expr import Field

MAX_TEMPLATE_LENGTH: Final = 2000
_PLACEHOLDER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?(?::([^{}]*))?")
# format_spec: [[fill]align][sign][#][0][width][,_][.precision][type], fill not a brace
_SPEC = re.compile(r"(?:[^{}]?[<>=^])?[+\- ]?#?0?\d{0,3}[,_]?(?:\.\d{1,2})?[bcdeEfFgGnosxX%]?")


@dataclass(frozen=True, slots=True)
class Placeholder:
    field: Field
    spec: str


@dataclass(frozen=True, slots=True)
class Template:
    parts: tuple[str | Placeholder, ...]

    @property
    def fields(self) -> list[Field]:
        return [part.field for part in self.parts if isinstance(part, Placeholder)]

    def render(self, resolve: Callable[[Field], Any]) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            out.append(_format(resolve(part.field), part.spec))
        return "".join(out)


def _format(value: Any, spec: str) -> str:
    if value is None:
        return "?"
    if isinstance(value, list):
        return ", ".join(_format(item, "") for item in value)
    if not isinstance(value, (str, int, float, bool)):
        return "?"
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        return str(value)


def parse_template(text: str) -> Template:
    """Parse `{alias.field:spec}` placeholders; `{{` and `}}` are literal braces."""
    if not isinstance(text, str):
        raise ExpressionError(f"expected text, got {type(text).__name__}")
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise ExpressionError(f"template longer than {MAX_TEMPLATE_LENGTH} characters")
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "{}" and text[i + 1 : i + 2] == ch:
            literal.append(ch)
            i += 2
            continue
        if ch == "}":
            raise ExpressionError("single '}' in template: write '}}' for a brace", i + 1)
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        end = text.find("}", i)
        if end < 0:
            raise ExpressionError("unclosed '{' in template", i + 1)
        inner = text[i + 1 : end]
        m = _PLACEHOLDER.fullmatch(inner)
        if m is None:
            raise ExpressionError(
                f"placeholder {{{inner}}} must be a field such as {{m.machine}} or "
                "{m.temp_c:.1f}: no attributes, indexes or calls",
                i + 1,
            )
        first, second, spec = m.group(1), m.group(2), m.group(3) or ""
        if first.startswith("__") or (second or "").startswith("__"):
            raise ExpressionError(f"names starting with '__' are not allowed: {{{inner}}}", i + 1)
        if not _SPEC.fullmatch(spec):
            raise ExpressionError(f"invalid format spec {spec!r} in {{{inner}}}", i + 1)
        field = Field(first, second, i + 1) if second else Field(None, first, i + 1)
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(Placeholder(field, spec))
        i = end + 1
    if literal:
        parts.append("".join(literal))
    return Template(tuple(parts))
