"""`rules test`: test files parsed with located errors, run on a simulated clock, with diffs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.config import InventorySettings, Settings
from agent.ruletest.run import report, run_tests
from agent.ruletest.testfile import parse_test_file
from agent.world.masterdata import MasterData, load_masterdata

ROOT = Path(__file__).resolve().parents[2]
IDLE_RULE = """\
rules:
  - id: idle-long
    when:
      m: kind == "machine" and state == "idle" and state_minutes >= 45
    for: 10m
    then:
      - idle_capacity: {note: "idle {m.state_minutes:.0f} min"}
"""


@pytest.fixture
def masterdata() -> MasterData:
    return load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")


def write(tmp_path: Path, tests: str, rules: str = IDLE_RULE) -> Path:
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    (tmp_path / "tests").mkdir(exist_ok=True)
    path = tmp_path / "tests" / "idle_test.yaml"
    path.write_text(tests, encoding="utf-8")
    return path


EIGHT_HOURS = """\
rules: [../rules.yaml]
start: 2026-03-02T06:00:00Z
tick: 30s
tests:
  - name: idle for most of a shift is recorded once, 10 minutes after 45 idle minutes
    input:
      - {at: 0s, topic: factory/plant1/machine/press-01/telemetry, payload: {state: idle}}
      - {at: 4h, topic: factory/plant1/machine/cnc-02/telemetry, payload: {state: running}}
    until: 8h
    expect:
      actions: [{at: 55m, kind: idle_capacity, machine: press-01, note: idle 55 min, count: 1}]
    absent:
      actions: [{machine: cnc-02}]
"""


def test_eight_hours_of_simulated_time_run_in_under_a_second(
    tmp_path: Path, masterdata: MasterData
) -> None:
    path = write(tmp_path, EIGHT_HOURS)
    started = time.perf_counter()
    run = run_tests([path], [], masterdata)
    took = time.perf_counter() - started
    assert run.ok, "\n".join(report(run))
    assert took < 1.0
    print(f"8 h simulated test: {took * 1000:.0f} ms")


def test_a_changed_expectation_fails_with_expected_and_got(
    tmp_path: Path, masterdata: MasterData
) -> None:
    path = write(tmp_path, EIGHT_HOURS.replace("at: 55m", "at: 45m"))
    run = run_tests([path], [], masterdata)
    assert not run.ok
    text = "\n".join(report(run))
    assert '- expected (line 11): {"at": "45m"' in text
    assert '+ got (unexpected):  {"at": "55m"' in text
    assert "1 tests, 1 failed" in text


def test_absent_decisions_that_happen_fail(tmp_path: Path, masterdata: MasterData) -> None:
    path = write(tmp_path, EIGHT_HOURS.replace("{machine: cnc-02}", "{machine: press-01}"))
    (result,) = run_tests([path], [], masterdata).results
    assert "absent.actions (line 13)" in result.failures[0]


def test_expect_lists_must_match_in_count(tmp_path: Path, masterdata: MasterData) -> None:
    path = write(
        tmp_path,
        EIGHT_HOURS.replace("    absent:\n      actions: [{machine: cnc-02}]\n", "")
        .replace("expect:\n      actions:", "expect:\n      alerts: []\n      actions:")
        .replace("[{at: 55m", "[{kind: idle_capacity}, {at: 55m"),
    )
    (result,) = run_tests([path], [], masterdata).results
    assert "actions: expected 2, got 1" in result.failures[0]


def test_problems_in_a_test_file_are_located_and_all_reported(tmp_path: Path) -> None:
    text = """\
tests:
  - name: one
    input:
      - {at: soon, topic: factory/plant1/stock/X, payload: {on_hand: 1}}
    expect:
      orders: []
    colour: red
"""
    parsed, problems = parse_test_file(tmp_path / "t.yaml", text)
    assert parsed is None
    shown = [str(p) for p in problems]
    assert any(s.startswith(f"{tmp_path}/t.yaml:4: one: at: bad duration") for s in shown)
    assert any(":6: one: expect: unknown list 'orders'" in s for s in shown)
    assert any(":7: one: unknown key 'colour'" in s for s in shown)


def test_broken_rules_under_test_are_reported_not_raised(
    tmp_path: Path, masterdata: MasterData
) -> None:
    path = write(tmp_path, EIGHT_HOURS, rules=IDLE_RULE.replace("state_minutes", "idle_mins", 1))
    run = run_tests([path], [], masterdata)
    assert not run.ok and run.results == []
    problem = str(run.problems[0])
    assert "rules.yaml:4: idle-long: condition 'm': column 43: unknown field 'idle_mins'" in problem


def test_the_shipped_rule_tests_pass(masterdata: MasterData) -> None:
    run = run_tests([ROOT / "rules" / "tests"], [ROOT / "rules"], masterdata)
    assert run.ok, "\n".join(report(run))
    assert len(run.results) >= 12
    print(f"shipped rule tests: {len(run.results)} in {run.seconds * 1000:.0f} ms")


HOT_RULE = """\
rules:
  - id: hot
    when:
      m: kind == "machine" and temp_c > max_temp_c
    for: 2m
    resolve_when: m.temp_c < m.max_temp_c - 5
    then:
      - alert: {message: "{m.machine} hot"}
      - notify: {route: maintenance}
      - publish: {topic: "andon/{m.machine}", payload: {lamp: '"red"'}}
"""

HOT_TESTS = """\
rules: [../rules.yaml]
tests:
  - name: fires after two minutes, notifies once, resolves below the band
    input:
      - {at: 0s, topic: factory/plant1/machine/press-01/telemetry, payload: {temp_c: 85}}
      - {at: 5m, topic: factory/plant1/machine/press-01/telemetry, payload: {temp_c: 86}}
      - {at: 10m, topic: factory/plant1/machine/press-01/telemetry, payload: {temp_c: 78}}
      - {at: 15m, topic: factory/plant1/machine/press-01/telemetry, payload: {temp_c: 74}}
    expect:
      alerts: [{at: 2m, rule: hot, status: resolved, resolved_at: 15m, count: 2}]
      notified: [{at: 2m, route: maintenance, message: press-01 hot}]
      published: [{topic: andon/press-01, lamp: red}]
"""


def test_pending_resolved_notified_and_published_can_be_expected(
    tmp_path: Path, masterdata: MasterData
) -> None:
    path = write(tmp_path, HOT_TESTS, rules=HOT_RULE)
    run = run_tests([path], [], masterdata)
    assert run.ok, "\n".join(report(run))


def test_the_shipped_24_hour_two_shift_day_runs_in_under_a_second(masterdata: MasterData) -> None:
    shifts = ROOT / "rules/tests/shifts_test.yaml"
    run = run_tests([shifts], [ROOT / "rules"], masterdata)
    assert run.ok, "\n".join(report(run))
    assert run.seconds < 1.0
    print(f"24 h two-shift test file: {run.seconds * 1000:.0f} ms")


REORDER_RULE = """\
rules:
  - id: reorder-point
    when:
      s: kind == "stock" and projected <= reorder_point
    then:
      - reorder: {sku: s.sku, quantity: s.reorder_qty}
"""

# 30 on hand, reorder point 40, and the ERP reports 100 on order: `max` (the default) counts the
# ERP's order (projected 130, no reorder), `agent` trusts only the agent's own (projected 30).
ERP_ORDER_TESTS = """\
rules: [../rules.yaml]
masterdata:
  items:
    BRG-6204: {reorder_point: 40, reorder_qty: 100}
SETTINGS
tests:
  - name: the ERP's open order counts or not, as [inventory] says
    input:
      - {at: 0s, topic: factory/plant1/stock/BRG-6204, payload: {on_hand: 30, on_order: 100}}
    expect:
      actions: EXPECTED
"""


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("", "[]"),
        ("settings: {inventory: {on_order_source: max}}", "[]"),
        ("settings: {inventory: {on_order_source: agent}}", "[{kind: reorder, sku: BRG-6204}]"),
        ("settings: agent.toml", "[{kind: reorder, sku: BRG-6204}]"),
    ],
)
def test_a_rule_test_runs_on_the_inventory_settings_it_names(
    tmp_path: Path, masterdata: MasterData, settings: str, expected: str
) -> None:
    text = ERP_ORDER_TESTS.replace("SETTINGS", settings).replace("EXPECTED", expected)
    path = write(tmp_path, text, rules=REORDER_RULE)
    (path.parent / "agent.toml").write_text('[inventory]\non_order_source = "agent"\n')
    run = run_tests([path], [], masterdata)
    assert run.ok, "\n".join(report(run))


def test_the_settings_rules_test_runs_on_reach_every_test(
    tmp_path: Path, masterdata: MasterData
) -> None:
    text = ERP_ORDER_TESTS.replace("SETTINGS", "").replace("EXPECTED", "[{kind: reorder}]")
    path = write(tmp_path, text, rules=REORDER_RULE)
    agent_only = Settings().model_copy(
        update={"inventory": InventorySettings(on_order_source="agent")}
    )
    assert not run_tests([path], [], masterdata).ok
    run = run_tests([path], [], masterdata, agent_only)
    assert run.ok, "\n".join(report(run))


def test_a_wrong_settings_key_is_a_located_problem(tmp_path: Path) -> None:
    text = ERP_ORDER_TESTS.replace("SETTINGS", "settings: {inventory: {on_order_src: agent}}")
    parsed, problems = parse_test_file(tmp_path / "t.yaml", text.replace("EXPECTED", "[]"))
    assert parsed is None
    assert ":5: -: settings: [inventory] on_order_src: Extra inputs are not permitted" in str(
        problems[0]
    )


COMMAND_TESTS = """\
rules: [../rules.yaml]
masterdata:
  items:
    BRG-6204: {reorder_point: 40, reorder_qty: 100}
tests:
  - name: a person's commands in a test are applied as the daemon applies them
    input:
      - {at: 0s, topic: factory/plant1/stock/BRG-6204, payload: {on_hand: 30}}
      - {at: 1m, topic: factory/plant1/agent/command, payload: {command: ack, id: 1, by: ana}}
      - {at: 2m, topic: factory/plant1/agent/command, payload: {command: done, id: 1, by: ana}}
    expect:
      alerts: [{rule: reorder-point, status: acknowledged}]
      actions: [{kind: reorder, status: done}]
"""
ALERTING_REORDER_RULE = REORDER_RULE + "      - alert: {message: low}\n"


def test_commands_in_a_rule_test_change_the_rows(tmp_path: Path, masterdata: MasterData) -> None:
    path = write(tmp_path, COMMAND_TESTS, rules=ALERTING_REORDER_RULE)
    run = run_tests([path], [], masterdata)
    assert run.ok, "\n".join(report(run))


def test_a_refused_command_in_a_rule_test_is_a_failure(
    tmp_path: Path, masterdata: MasterData
) -> None:
    path = write(
        tmp_path, COMMAND_TESTS.replace("ack, id: 1", "ack, id: 9"), rules=ALERTING_REORDER_RULE
    )
    (result,) = run_tests([path], [], masterdata).results
    assert "input at line 9 was refused: command refused:" in result.failures[0]
