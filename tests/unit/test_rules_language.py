"""The whole rule language at load time: options, actions, `any:`, and located refusals,
including 100 generated broken files that must each be refused with a file:line error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import RuleError
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import parse_rule_sources
from agent.rulebook.rules import RuleSet
from agent.world.masterdata import load_masterdata

ROOT = Path(__file__).resolve().parents[2]
MASTER = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
SCHEMA = build_schema(MASTER.item_fields(), MASTER.machine_fields())

FULL = """\
rules:
  - id: hot
    description: every option at once
    when:
      any:
        - m: kind == "machine" and temp_c > max_temp_c
        - m: kind == "machine" and matches(fault, "^T[0-9]+$")
    for: 10m
    resolve_when: m.temp_c < 0.9 * m.max_temp_c
    repeat: 4h
    key: "hot/{m.machine}"
    severity: critical
    then:
      - work_order: {task: cool down}
      - alert: {message: "{m.machine} at {m.temp_c:.1f}"}
      - publish: {topic: "andon/{m.line}/{m.machine}", payload: {lamp: '"red"', t: m.temp_c}}
      - notify: {route: maintenance-team, message: "{m.machine} too hot"}
  - id: morning
    schedule: "0 6 * * mon-fri"
    enabled: false
    when:
      s: kind == "stock" and on_hand < safety_stock
    then:
      - alert: {severity: info, message: "{s.sku} below safety stock"}
"""


def load(text: str, name: str = "rules/test.yaml") -> RuleSet:
    return parse_rule_sources([(name, text)], SCHEMA)


def problems(text: str) -> list[str]:
    with pytest.raises(RuleError) as caught:
        load(text)
    return [str(p) for p in caught.value.problems]


def test_every_option_and_action_loads() -> None:
    ruleset = load(FULL)
    (rule,) = ruleset.rules
    assert ruleset.disabled == 1
    assert len(rule.variants) == 2
    assert (rule.for_s, rule.repeat_s, rule.severity) == (600, 14400, "critical")
    assert rule.resolve_text == "m.temp_c < 0.9 * m.max_temp_c"
    assert [a.kind for a in rule.actions] == ["work_order", "alert", "publish", "notify"]


def test_a_schedule_loads_on_an_enabled_rule() -> None:
    (rule,) = load(FULL.replace("    enabled: false\n", "")).rules[1:]
    assert rule.schedule == "0 6 * * mon-fri"


def test_a_schedule_takes_a_time_zone_and_its_change_is_a_changed_rule() -> None:
    plain = load(FULL.replace("    enabled: false\n", "")).rules[1]
    zoned = load(FULL.replace("    enabled: false\n", "    timezone: Europe/Berlin\n")).rules[1]
    assert (plain.timezone, zoned.timezone) == ("", "Europe/Berlin")
    assert plain.fingerprint != zoned.fingerprint  # a reload re-arms the timetable


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("for: 10m", "for: ten minutes", r"test.yaml:8: hot: for: bad duration"),
        ("repeat: 4h", "repeat: 0s", r"test.yaml:10: hot: repeat: must be longer than 0s"),
        ('"0 6 * * mon-fri"', '"0 25 * * *"', r"test.yaml:19: morning: bad schedule"),
        ("    enabled: false\n", "    for: 5m\n", r"test.yaml:20: morning: a scheduled rule"),
        (
            "    enabled: false\n",
            "    timezone: Europe/Berln\n",
            r"test.yaml:20: morning: unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin",
        ),
        (
            "    repeat: 4h\n",
            "    timezone: Europe/Berlin\n",
            r"test.yaml:10: hot: `timezone` applies to a `schedule` only",
        ),
        (
            "m.temp_c < 0.9",
            'm.temp_c < "cool" and 0.9',
            r"test.yaml:9: hot: resolve_when: .*compare",
        ),
        (
            '- m: kind == "machine" and matches',
            '- x: kind == "machine" and matches',
            r"test.yaml:7: hot: every `any:` alternative must use the same aliases",
        ),
        ("andon/{m.line}", "andon/+/{m.line}", r"test.yaml:16: hot: publish: topic must not"),
        ("route: maintenance-team", "route: 'two words'", r"test.yaml:17: hot: notify: route"),
        ("t: m.temp_c}", "t: m.temp}", r"test.yaml:16: hot: publish: payload.t: .*unknown field"),
        ("- notify:", "- page:", r"test.yaml:17: hot: unknown action 'page'"),
        ('key: "hot/{m.machine}"', 'key: "hot/{m.mach}"', r"test.yaml:11: hot: key: unknown"),
    ],
)
def test_refusals_name_file_line_rule_and_reason(old: str, new: str, expected: str) -> None:
    assert old in FULL
    found = problems(FULL.replace(old, new))
    assert any(re.search(expected, p) for p in found), found


# --- generated broken files ---------------------------------------------------------------------

BASE = (ROOT / "rules" / "maintenance.yaml").read_text(encoding="utf-8")
BASE_LINES = BASE.count("\n") + 1
IDENT = st.from_regex(r"zz[a-z_]{1,12}", fullmatch=True)


def _break_field(name: str, which: int) -> str:
    fields = ["and temp_c", "> max_temp_c", "and vibration_mm_s", "and state", "and on_hand"]
    old = fields[which % len(fields)]
    return BASE.replace(old, old.split()[0] + " " + name, 1)


def _unknown_key(name: str, which: int) -> str:
    ids = re.findall(r"  - id: ([\w-]+)\n", BASE)
    rule = ids[which % len(ids)]
    return BASE.replace(f"  - id: {rule}\n", f"  - id: {rule}\n    {name}: 1\n", 1)


def _bad_operator(name: str, which: int) -> str:
    ops = ["=>", "===", "=<", "<>", "!", "&&"]
    return BASE.replace(" > max_temp_c", f" {ops[which % len(ops)]} max_temp_c", 1)


def _bad_duration(name: str, which: int) -> str:
    return BASE.replace("    when:\n", f"    for: {name}\n    when:\n", 1)


def _bad_cron(name: str, which: int) -> str:
    minute = 60 + which % 500
    return BASE.replace("    when:\n", f"    schedule: '{minute} * * * *'\n    when:\n", 1)


def _unknown_action(name: str, which: int) -> str:
    return BASE.replace("- work_order:", f"- {name}:", 1)


def _broken_yaml(name: str, which: int) -> str:
    lines = BASE.splitlines()
    # Not a comment or a blank line: `# text: [` is still a comment.
    body = [
        i
        for i, line in enumerate(lines)
        if i >= 2 and line.strip() and not line.lstrip().startswith("#")
    ]
    at = body[which % len(body)]
    lines[at] = lines[at] + ": [" if which % 2 else "\t" + lines[at]
    return "\n".join(lines) + "\n"


def _duplicate_id(name: str, which: int) -> str:
    return BASE.replace("id: bearing-wear", "id: overheating", 1)


def _type_mismatch(name: str, which: int) -> str:
    return BASE.replace("> max_temp_c", f'> "{name}"', 1)


def _undefined_alias(name: str, which: int) -> str:
    return BASE.replace("sku: s.sku", f"sku: {name}.sku", 1)


MUTATIONS = [
    _break_field,
    _unknown_key,
    _bad_operator,
    _bad_duration,
    _bad_cron,
    _unknown_action,
    _broken_yaml,
    _duplicate_id,
    _type_mismatch,
    _undefined_alias,
]


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutation=st.sampled_from(MUTATIONS), name=IDENT, which=st.integers(0, 10_000))
def test_generated_broken_rule_files_are_refused_with_a_located_error(
    mutation: object, name: str, which: int
) -> None:
    text = mutation(name, which)  # type: ignore[operator]
    assert text != BASE
    with pytest.raises(RuleError) as caught:
        load(text, "rules/maintenance.yaml")
    assert caught.value.problems
    lines = text.count("\n") + 1
    for problem in caught.value.problems:
        assert problem.file == "rules/maintenance.yaml"
        assert 1 <= problem.line <= lines, problem
        assert re.match(r"rules/maintenance\.yaml:\d+: [\w.-]+: .+", str(problem)), problem


def test_a_rule_set_testing_more_fields_than_the_engine_takes_is_refused() -> None:
    schema = build_schema(machine_fields={f"f{i}": "number" for i in range(260)})
    rules = "rules:\n" + "".join(
        f'  - id: r{i}\n    when: {{m: kind == "machine" and f{i} > 1}}\n'
        f"    then: [{{alert: {{message: x}}}}]\n"
        for i in range(260)
    )
    with pytest.raises(RuleError) as caught:
        parse_rule_sources([("many.yaml", rules)], schema)
    assert "tests 261 different fields" in str(caught.value)
