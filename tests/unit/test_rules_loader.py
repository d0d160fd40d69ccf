"""Rule files are validated before anything runs; every problem is `file:line: rule-id: reason`."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import RuleError
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules, parse_rule_sources

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = build_schema(machine_fields={"max_temp_c": "number", "max_vibration_mm_s": "number"})

GOOD = """\
rules:
  - id: reorder-point
    when:
      stock: kind == "stock" and projected <= reorder_point
    then:
      - reorder:
          quantity: max(stock.reorder_qty, stock.max_level - stock.projected)
      - alert: {severity: info, message: "{stock.sku} low"}
"""


def problems(text: str, name: str = "rules/x.yaml") -> list[str]:
    with pytest.raises(RuleError) as info:
        parse_rule_sources([(name, text)], SCHEMA)
    return [str(p) for p in info.value.problems]


def test_the_shipped_rules_are_valid() -> None:
    ruleset = load_rules([ROOT / "rules"], SCHEMA)
    ids = {rule.id for rule in ruleset.rules}
    assert {"reorder-point", "overheating", "machine-idle", "no-spare-for-failing-machine"} <= ids
    assert len(ruleset.hash) == 12


def test_a_valid_rule_takes_the_sku_from_its_only_stock_alias() -> None:
    ruleset = parse_rule_sources([("r.yaml", GOOD)], SCHEMA)
    (rule,) = ruleset.rules
    assert rule.actions[0].params["sku"].expr is not None
    assert rule.actions[0].params["priority"].choice == "normal"


def test_the_hash_changes_with_the_text() -> None:
    first = parse_rule_sources([("r.yaml", GOOD)], SCHEMA).hash
    second = parse_rule_sources([("r.yaml", GOOD.replace("info", "warning"))], SCHEMA).hash
    assert first != second


def test_yaml_syntax_error_names_file_and_line() -> None:
    found = problems("rules:\n  - id: x\n    when: [unclosed\n")
    assert found[0].startswith("rules/x.yaml:")
    assert "YAML" in found[0]


def test_unknown_field_names_line_rule_and_suggests() -> None:
    (found,) = problems(GOOD.replace("projected <= reorder_point", "projected <= reorder_pont"))
    assert found.startswith("rules/x.yaml:4: reorder-point: condition 'stock': ")
    assert "unknown field 'reorder_pont'" in found
    assert "did you mean 'reorder_point'" in found


def test_type_mismatch_is_refused() -> None:
    (found,) = problems(GOOD.replace("projected <= reorder_point", 'on_hand > "ten"'))
    assert "rules/x.yaml:4: reorder-point:" in found
    assert "cannot compare number with string" in found


def test_unknown_action_names_its_line() -> None:
    (found,) = problems(GOOD.replace("- reorder:", "- reordr:"))
    assert found.startswith("rules/x.yaml:6: reorder-point: unknown action 'reordr'")
    assert "did you mean 'reorder'" in found


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = (
        GOOD
        + """\
  - id: second
    when:
      m: kind == "machine" and temp_c > "hot"
    then:
      - work_order: {task: x, priority: whenever}
  - id: third
    colour: red
    when:
      m: state == "down"
    then:
      - alert: {message: "{m.machin} down"}
"""
    )
    found = problems(text)
    assert any(":11: second:" in p and "cannot compare" in p for p in found)
    assert any(":13: second:" in p and "priority must be one of" in p for p in found)
    assert any(":15: third: unknown key 'colour'" in p for p in found)
    assert any(":17: third:" in p and "does not say which facts" in p for p in found)
    # `m.machin` cannot be checked while `m` has no kind: that is a consequence, not a problem.
    assert len(found) == 4, found


def test_duplicate_ids_across_files_are_refused() -> None:
    with pytest.raises(RuleError) as info:
        parse_rule_sources([("a.yaml", GOOD), ("b.yaml", GOOD)], SCHEMA)
    (found,) = [str(p) for p in info.value.problems]
    assert found.startswith(
        "b.yaml:2: reorder-point: duplicate rule id (first defined at a.yaml:2)"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rules:\n  - !!python/object/apply:os.system ['true']\n", "YAML"),
        ("rules:\n  - id: a\n    id: b\n", "duplicate key 'id'"),
        ("", "empty"),
        ("rules: 5\n", "must be a list"),
        ("other: []\n", "`rules:` list"),
        (GOOD.replace("severity: info", "severity: loud"), "severity must be one of"),
        (GOOD.replace("- reorder:", "- reorder:\n          qty: 3\n"), "unknown parameter 'qty'"),
        (GOOD.replace("{stock.sku} low", "{stock.__class__}"), "'__'"),
        (GOOD.replace("max(stock.reorder_qty", "max(stock.sku"), "needs numbers"),
        (GOOD.replace("    when:", "    for: 10 minutes\n    when:"), "bad duration"),
    ],
)
def test_refusals(text: str, fragment: str) -> None:
    assert any(fragment in p for p in problems(text)), problems(text)


def test_a_join_must_qualify_fields_in_templates() -> None:
    text = """\
rules:
  - id: j
    when:
      m: kind == "machine" and state == "down"
      s: kind == "stock" and sku in m.spare_parts
    then:
      - alert: {message: "{machine} needs {s.sku}"}
"""
    (found,) = problems(text)
    assert "several aliases" in found


def test_disabled_rules_are_validated_but_not_loaded() -> None:
    ruleset = parse_rule_sources(
        [("r.yaml", GOOD.replace("    when:", "    enabled: false\n    when:"))], SCHEMA
    )
    assert ruleset.rules == ()
    assert ruleset.disabled == 1


def test_a_broken_condition_is_one_problem_not_one_per_use_of_its_alias() -> None:
    text = GOOD.replace("projected <= reorder_point", "projected <= reorder_point and")
    text += "    resolve_when: stock.on_hand > stock.max_level\n    key: '{stock.sku}'\n"
    (found,) = problems(text)
    assert found.startswith("rules/x.yaml:4: reorder-point: condition 'stock': column")


def test_a_misspelt_when_is_one_problem_naming_the_right_key() -> None:
    (found,) = problems(GOOD.replace("    when:", "    wehn:"))
    assert found == "rules/x.yaml:3: reorder-point: unknown key 'wehn' (hint: did you mean 'when'?)"


def test_a_misspelt_then_is_one_problem_naming_the_right_key() -> None:
    (found,) = problems(GOOD.replace("    then:", "    thne:"))
    assert "unknown key 'thne' (hint: did you mean 'then'?)" in found


def test_an_alias_never_declared_is_still_reported_when_the_conditions_are_fine() -> None:
    (found,) = problems(GOOD.replace('"{stock.sku} low"', '"{s.sku} low"'))
    assert "unknown field 's.sku'" in found and "'s' is not an alias of this rule" in found


def test_a_choice_error_suggests_the_near_miss_or_lists_the_choices() -> None:
    (near,) = problems(GOOD.replace("severity: info", "severity: warn"))
    assert "severity must be one of info, warning, critical; got 'warn'" in near
    assert near.endswith("(hint: did you mean 'warning'?)")
    (far,) = problems(GOOD.replace("severity: info", "severity: loud"))
    assert far.endswith("(hint: expected one of: info, warning, critical)")


def test_a_type_error_carries_a_hint() -> None:
    quantity = "max(stock.reorder_qty, stock.max_level - stock.projected)"
    (clash,) = problems(GOOD.replace("projected <= reorder_point", 'on_hand > "ten"'))
    assert "cannot compare number with string" in clash
    assert "(hint: both sides must be of one type" in clash
    (wrong,) = problems(GOOD.replace(quantity, "stock.sku + 1"))
    assert "needs numbers" in wrong and "(hint: arithmetic" in wrong
    (param,) = problems(GOOD.replace(quantity, "stock.sku"))
    assert "quantity must be a number, but 'stock.sku' is a string (hint: write a number" in param
