"""Message templates: fields with format specs, and nothing else."""

from __future__ import annotations

import pytest

from agent.errors import ExpressionError
from agent.rulebook.template import parse_template

FACTS = {"m": {"machine": "press-01", "temp_c": 81.456, "fault": None, "parts": ["a", "b"]}}


def render(text: str) -> str:
    return parse_template(text).render(lambda ref: FACTS.get(ref.alias or "m", {}).get(ref.name))


def test_renders_fields_with_format_specs() -> None:
    assert render("{m.machine} at {m.temp_c:.1f} °C") == "press-01 at 81.5 °C"
    assert render("{machine}: {{literal}}") == "press-01: {literal}"
    assert render("fault {m.fault}, parts {m.parts}") == "fault ?, parts a, b"


@pytest.mark.parametrize(
    "text",
    [
        "{m.__class__}",
        "{m.machine.__class__}",
        "{m[0]}",
        "{m.machine!r}",
        "{0}",
        "{}",
        "{m.machine:{x}}",
        "{m.temp_c:%Y}",
        "unclosed {m.machine",
        "stray } brace",
        "{m.machine.upper()}",
    ],
)
def test_refuses_anything_but_a_field(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_template(text)


def test_a_spec_that_does_not_fit_the_value_falls_back_to_plain_text() -> None:
    assert render("{m.machine:.1f}") == "press-01"
