"""The rule-authoring commands as a user types them: rules test, replay --against, explain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.integration.test_cli import cli
from tests.support.agent_process import REPO


def test_rules_test_passes_on_the_shipped_tests_and_fails_with_a_diff(tmp_path: Path) -> None:
    ok = cli("rules", "test")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ", 0 failed, 0 problems" in ok.stdout

    broken = tmp_path / "inventory_test.yaml"
    text = (REPO / "rules/tests/core_inventory_test.yaml").read_text(encoding="utf-8")
    text = text.replace("rules: [../inventory.yaml]", f"rules: [{REPO / 'rules/inventory.yaml'}]")
    broken.write_text(text.replace("quantity: 120", "quantity: 300"), encoding="utf-8")
    failed = cli("rules", "test", str(broken))
    assert failed.returncode == 1
    assert "FAIL  reorders once, filling up to the max level" in failed.stdout
    assert '"quantity": 300' in failed.stdout and '"quantity": 120' in failed.stdout


def recording(path: Path) -> Path:
    lines = [
        {
            "ts": "2026-03-02T06:00:00Z",
            "topic": "factory/plant1/stock/BRG-6204",
            "payload": {"on_hand": 55},
        },
        {
            "ts": "2026-03-02T06:10:00Z",
            "topic": "factory/plant1/stock/OIL-HLP46",
            "payload": {"on_hand": 100},
        },
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def test_replay_against_old_rules_prints_only_the_decisions_that_differ(tmp_path: Path) -> None:
    new = tmp_path / "new"
    shutil.copytree(REPO / "rules", new, ignore=shutil.ignore_patterns("tests"))
    inventory = new / "inventory.yaml"
    text = inventory.read_text(encoding="utf-8")
    inventory.write_text(
        text.replace("projected <= reorder_point", "projected <= reorder_point + 20"),
        encoding="utf-8",
    )
    result = cli(
        "replay",
        str(recording(tmp_path / "r.jsonl")),
        "--rules",
        str(new),
        "--against",
        str(REPO / "rules"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # OIL-HLP46 reorders under both rule sets; only BRG-6204 (55 <= 40 + 20) differs.
    assert [line[:2] for line in lines] == ["+ ", "+ "]
    assert "sku=BRG-6204" in lines[0] and "OIL-HLP46" not in result.stdout
    assert "1 only new" not in result.stderr and "2 only new, 0 only old" in result.stderr


def test_explain_names_the_rule_the_conditions_and_the_matched_facts(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/agent.db"
    stored = cli("replay", str(recording(tmp_path / "r.jsonl")), "--db", db)
    assert stored.returncode == 0, stored.stderr
    env = {"AGENT_DATABASE__URL": db}
    result = cli("explain", "1", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "reorder" in out and "OIL-HLP46" in out
    assert "decided by rule 'reorder-point' of rule set" in out
    assert 'when stock: kind == "stock" and projected <= reorder_point' in out
    assert "projected=100" in out and "reorder_point=416" in out
    alert = cli("explain", "alert:1", env=env)
    assert alert.returncode == 0 and "alert/info" in alert.stdout
    missing = cli("explain", "99", env=env)
    assert missing.returncode == 1 and "no action with id 99" in missing.stderr


def test_replay_ticks_on_the_recorded_time_so_idle_machines_are_found(tmp_path: Path) -> None:
    lines = [
        {
            "ts": "2026-03-02T06:00:00Z",
            "topic": "factory/plant1/machine/cnc-02/telemetry",
            "payload": {"state": "idle"},
        },
        {
            "ts": "2026-03-02T07:00:00Z",
            "topic": "factory/plant1/stock/BRG-6204",
            "payload": {"on_hand": 100},
        },
    ]
    path = tmp_path / "idle.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    result = cli("replay", str(path), "--json")
    assert result.returncode == 0, result.stderr
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    idle = [d for d in decisions if d["kind"] == "idle_capacity"]
    assert [d["at"] for d in idle] == ["2026-03-02T06:20:00+00:00"]
