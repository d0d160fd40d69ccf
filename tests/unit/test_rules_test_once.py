"""`rules test` with a broken rule file used by several test files: its problem is reported once
(one problem per root cause), not once per test file that loads it."""

from __future__ import annotations

from pathlib import Path

from agent.ruletest.run import report, run_tests
from agent.world.masterdata import load_masterdata

ROOT = Path(__file__).resolve().parents[2]
RULE = """\
rules:
  - id: hot
    when:
      m: kind == "machine" and temp_cc > 80
    then:
      - alert: {message: "{m.machine} hot"}
"""
TEST = """\
rules: [../hot.yaml]
start: 2026-03-02T06:00:00Z
tests:
  - name: {name}
    input:
      - {{at: 0s, topic: factory/plant1/machine/press-01/telemetry, payload: {{temp_c: 90}}}}
    until: 1m
    expect:
      alerts: [{{at: 0s, rule: hot, status: firing}}]
"""


def test_a_broken_rule_file_used_by_two_test_files_is_one_problem(tmp_path: Path) -> None:
    (tmp_path / "hot.yaml").write_text(RULE, encoding="utf-8")
    tests = tmp_path / "tests"
    tests.mkdir()
    for name in ("first", "second"):
        (tests / f"{name}_test.yaml").write_text(TEST.format(name=name), encoding="utf-8")
    masterdata = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    run = run_tests([tests], [tmp_path / "hot.yaml"], masterdata)
    (problem,) = run.problems
    assert (problem.line, problem.rule_id) == (4, "hot")
    assert "unknown field 'temp_cc'" in problem.reason and problem.hint == "did you mean 'temp_c'?"
    assert not run.ok
    assert report(run)[0] == str(problem)
