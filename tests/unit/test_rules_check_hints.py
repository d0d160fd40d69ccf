"""`rules check` keeps the README's promise: `file:line: rule-id: reason (hint: ...)`, and one
problem per root cause. Each case is a small broken rule file: the line, the reason and the hint
are asserted exactly where they matter, and the problem count is 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.errors import RuleError, RuleProblem
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import parse_rule_sources
from agent.world.masterdata import load_masterdata

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = build_schema(machine_fields={"max_temp_c": "number"})

STOCK = """\
rules:
  - id: reorder-point
    when:
      stock: kind == "stock" and projected <= reorder_point
    then:
      - reorder:
          quantity: max(stock.reorder_qty, stock.max_level - stock.projected)
      - alert: {severity: info, message: "{stock.sku} low"}
"""
HOT = """\
rules:
  - id: hot
    when:
      m: kind == "machine" and temp_c > max_temp_c
    then:
      - work_order: {task: "cool {m.machine}", priority: high}
      - alert: {message: "{m.machine} hot at {m.temp_c:.1f}"}
"""
QUANTITY = "max(stock.reorder_qty, stock.max_level - stock.projected)"
CONDITION = "temp_c > max_temp_c"


def the_problem(text: str) -> RuleProblem:
    """The one problem of a broken file (fails, listing them, if there are more or none)."""
    with pytest.raises(RuleError) as info:
        parse_rule_sources([("rules/x.yaml", text)], SCHEMA)
    found = info.value.problems
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def test_the_good_files_load() -> None:
    assert len(parse_rule_sources([("a.yaml", STOCK), ("b.yaml", HOT)], SCHEMA).rules) == 2


# -- unknown keys -------------------------------------------------------------------------------


def test_an_unknown_key_suggests_the_known_one() -> None:
    problem = the_problem(STOCK.replace("    then:", "    severty: info\n    then:"))
    assert str(problem) == (
        "rules/x.yaml:5: reorder-point: unknown key 'severty' (hint: did you mean 'severity'?)"
    )


def test_a_misspelt_parameter_is_not_also_missing() -> None:
    problem = the_problem(HOT.replace("task:", "tsk:"))
    assert (problem.line, problem.reason) == (6, "work_order: unknown parameter 'tsk'")
    assert problem.hint == "did you mean 'task'?"


# -- wrong types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason", "hint"),
    [
        (
            STOCK.replace(QUANTITY, "abc"),
            7,
            "reorder: quantity: expected a number, got 'abc'",
            "'abc' is no stock field: write a number or a sum of number fields",
        ),
        (
            STOCK.replace(QUANTITY, "[1, 2]"),
            7,
            "reorder: quantity: expected a number, got a list",
            "write a number",
        ),
        (
            STOCK.replace("    then:", "    enabled: maybe\n    then:"),
            5,
            "enabled: expected true or false, got 'maybe'",
            "`enabled: false` keeps the rule",
        ),
        (
            STOCK.replace("    then:", "    description: [a, b]\n    then:"),
            5,
            "description: expected text, got a list",
            "quote it",
        ),
        (
            HOT.replace('task: "cool {m.machine}"', "task: [1]"),
            6,
            "work_order: task: expected text, got a list",
            "write it in quotes",
        ),
        (
            HOT.replace('      m: kind == "machine" and temp_c > max_temp_c', "      m: [1]"),
            4,
            "condition 'm': expected an expression, got a list",
            "a condition is `alias: expression`",
        ),
    ],
    ids=["bare-word-for-number", "list-for-number", "enabled", "description", "task", "condition"],
)
def test_a_wrong_type_says_what_was_expected_and_what_was_found(
    text: str, line: int, reason: str, hint: str
) -> None:
    problem = the_problem(text)
    assert (problem.line, problem.reason) == (line, reason)
    assert problem.hint.startswith(hint), problem.hint


def test_a_misspelt_field_for_a_number_still_suggests_the_field() -> None:
    problem = the_problem(STOCK.replace(QUANTITY, "reorder_qt"))
    assert "unknown field 'reorder_qt'" in problem.reason
    assert problem.hint == "did you mean 'reorder_qty'?"


# -- bad choices --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason", "hint"),
    [
        (
            STOCK.replace("    then:", "    severity: critcal\n    then:"),
            5,
            "severity must be one of info, warning, critical; got 'critcal'",
            "did you mean 'critical'?",
        ),
        (
            STOCK.replace("    then:", "    severity: 3\n    then:"),
            5,
            "severity must be one of info, warning, critical; got 3",
            "expected one of: info, warning, critical",
        ),
        (
            STOCK.replace("      - alert:", "          priority: urgnt\n      - alert:"),
            8,
            "reorder: priority must be one of normal, high, expedite; got 'urgnt'",
            "'urgent' is a work_order priority; reorder takes normal, high, expedite",
        ),
        (
            HOT.replace("priority: high", "priority: hgih"),
            6,
            "work_order: priority must be one of low, normal, high, urgent; got 'hgih'",
            "did you mean 'high'?",
        ),
        (
            STOCK.replace("- alert:", "- alrt:"),
            8,
            "unknown action 'alrt'",
            "did you mean 'alert'?",
        ),
        (
            STOCK.replace("- alert:", "- page:"),
            8,
            "unknown action 'page'",
            "actions: alert, idle_capacity, notify, publish, reorder, work_order",
        ),
        (
            HOT.replace('kind == "machine"', 'kind == "machin"'),
            4,
            "condition 'm' does not say which facts it is about",
            "unknown kind 'machin': did you mean 'machine'?",
        ),
        (
            HOT.replace('kind == "machine"', 'knd == "machine"'),
            4,
            "condition 'm' does not say which facts it is about",
            'did you mean `kind == "machine"`?',
        ),
    ],
    ids=[
        "severity",
        "severity-number",
        "priority-of-another-action",
        "priority",
        "action",
        "action-far",
        "kind-value",
        "kind-field",
    ],
)
def test_a_bad_choice_lists_the_valid_ones_and_the_closest(
    text: str, line: int, reason: str, hint: str
) -> None:
    problem = the_problem(text)
    assert (problem.line, problem.reason, problem.hint) == (line, reason, hint)


# -- unknown fields and aliases -----------------------------------------------------------------


def test_an_unknown_field_suggests_a_known_one() -> None:
    problem = the_problem(HOT.replace(CONDITION, "temp_cc > max_temp_c"))
    assert (problem.line, problem.hint) == (4, "did you mean 'temp_c'?")
    assert problem.reason == "condition 'm': column 23: unknown field 'temp_cc'"


def test_an_unknown_field_in_a_template_suggests_a_known_one() -> None:
    problem = the_problem(HOT.replace("{m.temp_c:.1f}", "{m.temp:.1f}"))
    assert (problem.line, problem.hint) == (7, "did you mean 'temp_c'?")


def test_a_misspelt_alias_is_one_problem_however_often_it_is_used() -> None:
    # declared `mm`, used as `m` in the task, the message (twice), the key and resolve_when
    text = HOT.replace("      m: kind", "      mm: kind")
    text += "    resolve_when: m.temp_c < m.max_temp_c - 5\n    key: '{m.machine}'\n"
    problem = the_problem(text)
    assert (problem.line, problem.reason) == (6, "work_order: task: unknown field 'm.machine'")
    assert problem.hint == "'m' is not an alias of this rule: did you mean 'mm'?"


def test_an_alias_used_in_a_condition_suggests_the_declared_one() -> None:
    problem = the_problem(HOT.replace(CONDITION, "mm.temp_c > 80"))
    assert problem.hint == "'mm' is not an alias of this rule: did you mean 'm'?"


def test_a_misspelt_any_is_one_problem_not_one_per_use_of_its_aliases() -> None:
    text = HOT.replace(
        '    when:\n      m: kind == "machine" and temp_c > max_temp_c',
        '    when:\n      ay:\n        - m: kind == "machine" and temp_c > max_temp_c',
    )
    problem = the_problem(text)
    assert problem.line == 4
    assert problem.reason == "condition 'ay': expected an expression, got a list"
    assert problem.hint == "did you mean `any:`? (a list of alternatives)"


def test_an_unknown_function_suggests_a_known_one() -> None:
    problem = the_problem(HOT.replace(CONDITION, "mx(temp_c, 1) > 80"))
    assert problem.reason.startswith("condition 'm': column 23: unknown function 'mx'")
    assert problem.hint == "did you mean 'max'?"


# -- tabs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        (STOCK.replace("    then:", "\tthen:"), 5, 1),
        (STOCK.replace("      - reorder:", "  \t    - reorder:"), 6, 3),
        (STOCK.replace("projected <= reorder_point", "projected\t<= reorder_point"), 4, 43),
    ],
    ids=["indent", "indent-mixed", "inside-a-value"],
)
def test_a_tab_is_named_with_its_line_and_column(text: str, line: int, column: int) -> None:
    problem = the_problem(text)
    assert str(problem) == (
        f"rules/x.yaml:{line}: reorder-point: a tab character at column {column} "
        "(hint: YAML indents with spaces only: replace the tab with spaces)"
    )


def test_a_tab_inside_quotes_is_text_not_a_problem() -> None:
    assert parse_rule_sources([("r.yaml", HOT.replace("cool {m", "cool\t{m"))], SCHEMA).rules


# -- unbalanced brackets and quotes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason", "hint"),
    [
        (
            STOCK.replace("projected <= reorder_point", "(projected <= reorder_point"),
            4,
            "condition 'stock': column 21: this '(' is never closed",
            "add the ')' that ends the group or the call",
        ),
        (
            STOCK.replace(QUANTITY, QUANTITY[:-1]),
            7,
            "reorder: quantity: column 4: this '(' is never closed",
            "add the ')' that ends the group or the call",
        ),
        (
            STOCK.replace("projected <= reorder_point", "projected <= reorder_point)"),
            4,
            "condition 'stock': column 47: this ')' closes nothing",
            "remove it, or add the '(' it was meant to close",
        ),
        (
            HOT.replace(CONDITION, 'state in ["down", "idle"'),
            4,
            "condition 'm': column 32: this '[' is never closed",
            "end the list with ']'",
        ),
        (
            HOT.replace(CONDITION, 'state == "down'),
            4,
            "condition 'm': column 32: this quote \" is never closed",
            'end the text with "',
        ),
        (
            HOT.replace(CONDITION, "state == 'down"),
            4,
            "condition 'm': column 32: this quote ' is never closed",
            "end the text with '",
        ),
        (
            HOT.replace(CONDITION, 'state = "down"'),
            4,
            "condition 'm': column 29: '=' is not an operator",
            "compare with `==`",
        ),
        (
            HOT.replace(CONDITION, 'state == "down" && temp_c > 3'),
            4,
            "condition 'm': column 39: '&&' is not an operator",
            "write `and`",
        ),
    ],
    ids=["paren", "paren-in-action", "extra-paren", "list", "quote", "single-quote", "=", "&&"],
)
def test_a_syntax_mistake_points_at_its_column(
    text: str, line: int, reason: str, hint: str
) -> None:
    problem = the_problem(text)
    assert (problem.line, problem.reason, problem.hint) == (line, reason, hint)


def test_a_broken_condition_is_one_problem_though_resolve_when_and_key_use_its_alias() -> None:
    text = HOT.replace(CONDITION, "(temp_c > max_temp_c")
    text += "    resolve_when: m.temp_c < m.max_temp_c - 5\n    key: '{m.machine}'\n"
    problem = the_problem(text)
    assert problem.line == 4
    assert problem.reason == "condition 'm': column 23: this '(' is never closed"


def test_a_rule_without_id_says_so() -> None:
    problem = the_problem(STOCK.replace("  - id: reorder-point\n    when", "  - when"))
    assert (problem.line, problem.reason) == (2, "a rule needs an `id`")


def test_the_errors_example_of_the_docs_is_what_rules_check_prints() -> None:
    doc = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    section = doc.split("## Errors\n", 1)[1].split("\n## ", 1)[0]
    (broken,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    (printed,) = re.findall(r"```text\n(.*?)```", section, re.S)
    master = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    schema = build_schema(master.item_fields(), master.machine_fields())
    with pytest.raises(RuleError) as info:
        parse_rule_sources([("rules/broken.yaml", broken)], schema)
    found = [str(p) for p in info.value.problems]
    assert [*found, f"{len(found)} problem(s) found"] == printed.splitlines()


# -- indentation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason", "hint"),
    [
        (
            HOT.replace(
                "    then:\n      - work_order", "      then:\n        - work_order"
            ).replace('      - alert: {message: "{m.machine} hot at {m.temp_c:.1f}"}\n', ""),
            5,
            "`then` is indented as a part of `when`",
            "`then` is a key of the rule: line it up with `when`",
        ),
        (
            HOT.replace("    then:", "      resolve_when: m.temp_c < 50\n    then:"),
            5,
            "`resolve_when` is indented as a part of `when`",
            "`resolve_when` is a key of the rule: line it up with `when`",
        ),
        (
            HOT.replace(
                '      - work_order: {task: "cool {m.machine}", priority: high}',
                '      - work_order:\n        task: "cool {m.machine}"',
            ),
            6,
            "work_order: its parameters are not indented under it",
            "indent them further than `work_order:`",
        ),
        (
            HOT.replace("      - work_order:", "      work_order:").replace(
                "      - alert:", "      alert:"
            ),
            5,
            "`then` must be a list of actions",
            "write each action as a list item: `- alert: {message: ...}`",
        ),
    ],
    ids=["then-under-when", "resolve-when-under-when", "parameters", "then-mapping"],
)
def test_a_misindented_key_is_one_problem_saying_where_it_belongs(
    text: str, line: int, reason: str, hint: str
) -> None:
    problem = the_problem(text)
    assert (problem.line, problem.reason, problem.hint) == (line, reason, hint)


# -- text without quotes, numbers with units ---------------------------------------------------


def test_unquoted_text_is_suggested_quotes_not_a_list_of_fields() -> None:
    problem = the_problem(HOT.replace(CONDITION, "state == down"))
    assert (problem.line, problem.reason) == (4, "condition 'm': column 32: unknown field 'down'")
    assert problem.hint == "'down' is no machine field: if it is text, write it in quotes: \"down\""


def test_an_unknown_bare_name_in_a_template_is_a_field_not_text() -> None:
    problem = the_problem(HOT.replace("{m.temp_c:.1f}", "{zzz}"))
    assert problem.reason == "alert: message: unknown field 'zzz'"
    assert problem.hint.startswith("machine fields: avg_window_min, ")


def test_a_number_with_a_unit_says_numbers_are_written_bare() -> None:
    problem = the_problem(STOCK.replace(QUANTITY, "10 pcs"))
    assert (problem.line, problem.reason) == (7, "reorder: quantity: column 4: unexpected 'pcs'")
    assert problem.hint.endswith(
        "numbers are written without units or separators: 1000, not 1,000 pcs"
    )
