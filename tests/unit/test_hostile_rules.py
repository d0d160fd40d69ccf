"""Hostile rule and master-data files (issue 16): neither a regular expression nor a YAML file
can freeze the agent or fill its memory; each is refused at `file:line`, fast, never a crash."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.errors import MasterDataError, RuleError
from agent.rulebook import expr
from agent.rulebook.compiler import compile_rules
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules, parse_rule_sources
from agent.rulebook.yamlsrc import MAX_DEPTH, MAX_RULE_FILE_BYTES
from agent.world.masterdata import parse_items, parse_machines
from tests.integration.test_cli import cli

SCHEMA = build_schema(machine_fields={"max_temp_c": "number"})
HOSTILE_SKU = "a" * 39 + "b"  # 40 chars: `(a+)+$` backtracks 2^39 times in Python's `re`

RULE = """\
rules:
  - id: odd-sku
    when:
      s: kind == "stock" and matches(sku, {pattern})
    then:
      - alert: {{severity: info, message: "{{s.sku}}"}}
"""


def problems(text: str, name: str = "rules/x.yaml") -> list[str]:
    with pytest.raises(RuleError) as info:
        parse_rule_sources([(name, text)], SCHEMA)
    return [str(p) for p in info.value.problems]


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """`a9` stands for 9^9 (387 million) copies of "lol" in a file of about 1 kB."""
    lines = ['lol0: &a0 "lol"']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"lol{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


LAUGHING_RULES = (
    "rules:\n"
    "  - id: laughing\n"
    "    description: &a0 lol\n"
    + "".join(
        f"    x{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n" for level in range(1, 10)
    )
    + "    key: *a9\n"
    '    when: {s: kind == "stock"}\n'
    "    then: [{alert: {severity: info, message: x}}]\n"
)


def _resolver(values: dict[str, object]) -> expr.Resolver:
    return lambda ref: values.get(ref.name)


# ---------------------------------------------------------------------------------------------
# Regular expressions


def test_a_catastrophic_backtracking_pattern_matches_in_linear_time() -> None:
    node = expr.parse('matches(sku, "(a+)+$")')
    started = time.perf_counter()
    result = expr.evaluate(node, lambda ref: HOSTILE_SKU)
    assert time.perf_counter() - started < 1.0  # hours with Python's `re`
    assert result is False
    assert expr.evaluate(node, lambda ref: "aaa") is True


def test_the_redos_rule_loads_and_its_pattern_never_goes_to_the_engine() -> None:
    ruleset = parse_rule_sources([("x.yaml", RULE.format(pattern='"(a+)+$"'))], SCHEMA)
    plan = compile_rules(ruleset)
    assert "$mt" not in repr(plan.definitions)  # evaluated in Python, by RE2, only
    condition = ruleset.rules[0].variants[0][0].expr
    started = time.perf_counter()
    assert expr.holds(condition, _resolver({"kind": "stock", "sku": HOSTILE_SKU})) is False
    assert time.perf_counter() - started < 1.0


def test_a_string_over_the_input_limit_does_not_match() -> None:
    node = expr.parse('matches(fault, "E4")')
    assert expr.evaluate(node, _resolver({"fault": "E4" + "x" * 100})) is True
    long = "E4" + "x" * expr.MAX_MATCH_INPUT
    assert expr.evaluate(node, _resolver({"fault": long})) is False


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        (r'"(a)\\1"', "invalid pattern '(a)\\\\1': invalid escape sequence: \\1"),
        ('"E(?=4)"', "invalid perl operator: (?="),
        ('"(?<!x)E"', "invalid perl operator: (?<"),
    ],
)
def test_rules_check_refuses_patterns_re2_cannot_take(pattern: str, fragment: str) -> None:
    found = problems(RULE.format(pattern=pattern))[0]  # then: its alias `s` is unknown
    assert found.startswith("rules/x.yaml:4: odd-sku: "), found
    assert fragment in found and "RE2" in found


def test_the_cli_refuses_a_backreference_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(RULE.format(pattern=r'"(a)\\1"'), encoding="utf-8")
    result = cli("rules", "check", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path}:4: odd-sku: " in result.stdout and "invalid pattern" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "re2.cc" not in result.stderr  # RE2's own logging stays off


# ---------------------------------------------------------------------------------------------
# YAML: anchors and aliases, nesting, size


def test_a_billion_laughs_rule_file_is_refused_at_its_first_anchor_fast() -> None:
    started = time.perf_counter()
    (found,) = problems(LAUGHING_RULES)
    assert time.perf_counter() - started < 1.0
    assert found.startswith("rules/x.yaml:3: laughing: YAML anchors and aliases"), found


def test_any_alias_in_a_rule_file_is_refused_with_its_line() -> None:
    text = billion_laughs() + "rules: []\n"
    (found,) = problems(text)
    assert found.startswith("rules/x.yaml:1: -: YAML anchors and aliases"), found
    assert "hint" not in found
    (found,) = problems("rules:\n  - id: a\n    description: *nothing\n")
    assert found.startswith("rules/x.yaml:3: a: YAML anchors and aliases"), found


def test_the_loader_refuses_a_billion_laughs_file_in_well_under_a_second(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHING_RULES, encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(RuleError) as info:
        load_rules([path], SCHEMA)
    assert time.perf_counter() - started < 1.0
    first = str(info.value.problems[0])
    assert first.startswith(f"{path}:3: laughing: YAML anchors"), first


def test_the_cli_refuses_a_billion_laughs_file_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHING_RULES, encoding="utf-8")
    started = time.perf_counter()
    result = cli("rules", "check", str(path))
    elapsed = time.perf_counter() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path}:3: laughing: YAML anchors and aliases" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert elapsed < 30  # a whole interpreter start; the 18 GB expansion never finished


def test_a_document_nested_too_deep_is_refused_with_its_line() -> None:
    block = "rules:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, MAX_DEPTH + 5))
    (found,) = problems(block)
    assert found.startswith(f"rules/x.yaml:{MAX_DEPTH + 1}: "), found
    assert f"nested deeper than {MAX_DEPTH} levels" in found
    compact = "rules:\n  - " + "- " * 100_000 + "x\n"  # block lists on one line: no indentation
    started = time.perf_counter()
    (found,) = problems(compact)
    assert time.perf_counter() - started < 1.0
    assert found.startswith("rules/x.yaml:2: ") and "nested deeper" in found, found


def test_an_oversize_rule_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("rules: []\n#" + "x" * MAX_RULE_FILE_BYTES + "\n", encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_rules([path], SCHEMA)
    (found,) = [str(p) for p in info.value.problems]
    assert found.startswith(f"{path}:1: ") and "over the limit" in found, found
    (found,) = problems("rules: []\n#" + "x" * MAX_RULE_FILE_BYTES + "\n")
    assert found.startswith("rules/x.yaml:1: ") and "over the limit" in found, found


# ---------------------------------------------------------------------------------------------
# Master data: the same reader


def masterdata_problem(parse: object, text: str, source: str = "items.yaml") -> str:
    assert callable(parse)
    started = time.perf_counter()
    with pytest.raises(MasterDataError) as caught:
        parse(text, source)
    assert time.perf_counter() - started < 1.0
    return str(caught.value)


def test_a_master_data_alias_is_refused_with_file_and_line() -> None:
    text = "items:\n  A: &a\n    unit: pcs\n  B: *a\n"
    found = masterdata_problem(parse_items, text)
    assert found.startswith("items.yaml:4: -: YAML aliases are allowed only as `<<: *name`")


def test_a_billion_laughs_master_data_file_is_refused_fast() -> None:
    text = billion_laughs() + "items:\n  A:\n    description: *a9\n"
    found = masterdata_problem(parse_items, text)
    assert found.startswith("items.yaml:1: -: YAML aliases are allowed only"), found
    text = "machines:\n  m1: &m\n    line: A\n    <<: *m\n"
    found = masterdata_problem(parse_machines, text, "machines.yaml")
    assert found.startswith("machines.yaml:4: -:"), found


def test_merge_keys_of_a_plain_mapping_still_work_in_master_data() -> None:
    text = "machines:\n  p1: &p\n    line: A\n  p2:\n    <<: *p\n    line: B\n"
    assert parse_machines(text, "machines.yaml")["p2"] == {"line": "B"}


def test_over_deep_master_data_is_refused_with_file_and_line() -> None:
    text = "items:\n  A:\n    x:\n      - " + "- " * 200 + "y\n"
    found = masterdata_problem(parse_items, text)
    assert found.startswith("items.yaml:4: -: YAML nested deeper than"), found
    found = masterdata_problem(parse_items, "items:\n  A:\n    x: " + "[" * 100_000 + "\n")
    assert found.startswith("items.yaml:3: -: YAML nested deeper than"), found


def test_an_oversize_master_data_file_is_refused_unread(tmp_path: Path) -> None:
    from agent.world import masterdata

    path = tmp_path / "items.yaml"
    with path.open("wb") as out:
        out.truncate(masterdata.MAX_MASTERDATA_BYTES + 1)  # sparse: nothing written
    started = time.perf_counter()
    with pytest.raises(MasterDataError) as caught:
        masterdata.load_masterdata(path, path)
    assert time.perf_counter() - started < 1.0
    assert str(caught.value).startswith(f"{path}:1: -: the file is over the limit")
