"""Rule files and message templates are data: no tag, expression or template reaches Python.

Each hostile file is refused with a reason naming the file and line, and its payload never runs
(the canary file it would create stays absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import RuleError
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import parse_rule_sources
from agent.rulebook.template import parse_template

SCHEMA = build_schema(machine_fields={"max_temp_c": "number"})


def rule(when: str = 'kind == "machine"', message: str = "hot") -> str:
    return f"""\
rules:
  - id: hostile
    when:
      m: {when}
    then:
      - alert: {{message: {message!r}}}
"""


def refused(text: str) -> str:
    with pytest.raises(RuleError) as caught:
        parse_rule_sources([("hostile.yaml", text)], SCHEMA)
    reasons = "\n".join(str(problem) for problem in caught.value.problems)
    assert reasons.startswith("hostile.yaml:")
    return reasons


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system [{canary}]",
        "!!python/object/new:subprocess.Popen [[touch, {canary}]]",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/object:builtins.object {{}}",
    ],
)
def test_yaml_python_tags_are_refused_and_never_constructed(tag: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    text = rule() + f"    description: {tag.format(canary=f'touch {canary}')}\n"
    reasons = refused(text)
    assert "python" in reasons
    assert not canary.exists()


@pytest.mark.parametrize(
    "expression",
    [
        '__import__("os").system("touch /tmp/x")',
        "kind.__class__",
        "m.__class__.__mro__",
        "m.__dict__",
        "temp_c.real",
        'eval("1")',
        "getattr(m, 'x')",
        "(lambda: 1)()",
        "[x for x in kind]",
        "kind[0]",
        'f"{kind}"',
    ],
)
def test_expressions_cannot_import_call_or_reach_attributes(expression: str) -> None:
    refused(rule(when=f'kind == "machine" and {expression}'))


@pytest.mark.parametrize(
    "template",
    [
        "{m.__class__}",
        "{m.machine.__class__.__init__.__globals__}",
        "{m.machine!r}",
        "{m.machine!s:>10}",
        "{m.machine[0]}",
        "{0.__class__}",
        "{m.temp_c:{m.machine}}",
        "{__import__}",
        "{m.machine.upper}",
        "%(m)s {m.machine:%}",
    ],
)
def test_templates_cannot_reach_attributes_or_call_anything(template: str) -> None:
    try:
        parsed = parse_template(template)
    except Exception:
        refused(rule(message=template))
        return
    # Accepted only as plain field references: rendering sees values, never objects.
    rendered = parsed.render(lambda ref: "press" if ref.name == "machine" else 1.5)
    assert "class" not in rendered and "function" not in rendered
