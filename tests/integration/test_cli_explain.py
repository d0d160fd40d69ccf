"""`explain` on a real SQLite file: with the rule files as they are, without master data, with
the rule gone, with another rule broken and with the rule itself broken."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.integration.test_cli import cli
from tests.support.agent_process import REPO

CONDITION = 'stock: kind == "stock" and projected <= reorder_point'
GONE = "(the rule is no longer in the rule files)"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A database holding the reorder (action 1) the shipped rules make of one low stock count."""
    url = f"sqlite:///{tmp_path}/agent.db"
    recording = tmp_path / "one.jsonl"
    entry = {
        "ts": "2026-03-02T06:00:00Z",
        "topic": "factory/plant1/stock/BRG-6204",
        "payload": {"on_hand": 12},
    }
    recording.write_text(json.dumps(entry) + "\n")
    done = cli("replay", str(recording), "--db", url)
    assert done.returncode == 0, done.stderr
    return {"AGENT_DATABASE__URL": url}


def rules_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "rules"
    shutil.copytree(REPO / "rules", copy, ignore=shutil.ignore_patterns("tests"))
    return copy


def test_with_master_data_the_rule_and_its_facts(env: dict[str, str]) -> None:
    done = cli("explain", "1", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("#1 ") and "reorder" in lines[0] and "sku=BRG-6204" in lines[0]
    assert f"  when {CONDITION}" in lines
    assert "does not load" not in done.stdout and GONE not in done.stdout
    assert any(
        text.startswith("  stock: kind='stock' projected=12 reorder_point=40") for text in lines
    )


def test_without_master_data_the_record_the_rule_as_written_and_why(
    env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "items.yaml"
    done = cli("explain", "1", env={**env, "AGENT_MASTERDATA__ITEMS": str(missing)})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    lines = out.splitlines()
    assert lines[0].startswith("#1 ") and "sku=BRG-6204" in lines[0]  # the record
    assert GONE not in out
    assert f"master data cannot be read: {missing}: file not found" in out
    assert "without master data the facts have no reorder_point" in out  # why it cannot match
    assert re.search(r"the rule as written, rules/inventory\.yaml:\d+:", out), out
    assert "    - id: reorder-point" in lines and f"        {CONDITION}" in lines
    assert any(
        text.startswith("  stock: kind='stock' projected=12 reorder_point=40") for text in lines
    )


def test_a_rule_removed_from_the_files_is_gone(env: dict[str, str], tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    text = (rules / "inventory.yaml").read_text()
    (rules / "inventory.yaml").write_text(text.replace("id: reorder-point", "id: renamed-rule"))
    done = cli("explain", "1", env={**env, "AGENT_RULES__PATH": str(rules)})
    assert done.returncode == 0, done.stderr
    assert GONE in done.stdout and "does not load" not in done.stdout


def test_another_broken_rule_does_not_hide_this_one(env: dict[str, str], tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    (rules / "broken.yaml").write_text(
        'rules:\n  - id: typo\n    when:\n      s: kind == "stock" and on_hnd < 1\n'
        "    then:\n      - alert: {severity: info, message: x}\n"
    )
    done = cli("explain", "1", env={**env, "AGENT_RULES__PATH": str(rules)})
    assert done.returncode == 0, done.stderr
    assert "1 problem(s) in other rules" in done.stdout
    assert re.search(r"the rule as written, .*inventory\.yaml:\d+:", done.stdout)
    assert f"        {CONDITION}" in done.stdout.splitlines()
    assert "typo" not in done.stdout and GONE not in done.stdout


def test_the_rule_itself_broken_now_says_where_and_why(env: dict[str, str], tmp_path: Path) -> None:
    rules = rules_copy(tmp_path)
    text = (rules / "inventory.yaml").read_text()
    (rules / "inventory.yaml").write_text(
        text.replace("projected <= reorder_point", "projected <= reorder_pont")
    )
    done = cli("explain", "1", env={**env, "AGENT_RULES__PATH": str(rules)})
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"inventory\.yaml:\d+: reorder-point: .*unknown field 'reorder_pont'", done.stdout
    )
    assert "projected <= reorder_pont" in done.stdout and GONE not in done.stdout
