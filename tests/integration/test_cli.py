"""The command line as a user types it: exit codes and what it prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agent_process import REPO

GOOD_RULE = """\
rules:
  - id: low-stock
    when:
      s: kind == "stock" and projected <= reorder_point
    then:
      - reorder: {quantity: s.reorder_qty}
"""


def cli(
    *args: str,
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    base["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rules_check_passes_the_shipped_rules_with_a_summary() -> None:
    result = cli("rules", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.match(r"ok: \d+ rules in 3 files \(rule set \w+\)", result.stdout), result.stdout


@pytest.mark.parametrize(
    ("broken", "line", "fragment"),
    [
        (GOOD_RULE.replace("when:", "when: [oops"), 4, "YAML: while parsing a flow sequence"),
        (
            GOOD_RULE.replace("projected <= reorder_point", 'on_hand > "ten"'),
            4,
            "cannot compare number with string",
        ),
        (
            GOOD_RULE.replace("projected <= reorder_point", "projected <= reorder_pint"),
            4,
            "unknown field 'reorder_pint'",
        ),
        (GOOD_RULE.replace("- reorder:", "- purchase:"), 6, "unknown action 'purchase'"),
    ],
    ids=["syntax", "type", "field", "action"],
)
def test_rules_check_names_file_line_and_rule_and_exits_1(
    tmp_path: Path, broken: str, line: int, fragment: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(broken)
    result = cli("rules", "check", str(path))
    assert result.returncode == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{path}:{line}: low-stock: "), first
    assert fragment in first


def test_a_wrong_setting_is_named_not_a_traceback() -> None:
    result = cli("rules", "check", env={"AGENT_MQTT__PORT": "abc"})
    assert result.returncode == 2
    assert "mqtt.port" in result.stderr and "AGENT_MQTT__PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_refuses_broken_rules_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(GOOD_RULE.replace("- reorder:", "- purchase:"))
    result = cli("run", env={"AGENT_RULES__PATH": str(tmp_path)})
    assert result.returncode == 2
    assert f"{tmp_path / 'bad.yaml'}:6: low-stock: unknown action 'purchase'" in result.stderr


def test_replay_json_has_the_fields_the_readme_promises(tmp_path: Path) -> None:
    path = tmp_path / "recording.jsonl"
    path.write_text(
        json.dumps(
            {
                "ts": "2026-03-02T06:00:00Z",
                "topic": "factory/plant1/stock/BRG-6204",
                "payload": {"on_hand": 12},
            }
        )
        + "\n"
    )
    result = cli("replay", str(path), "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(text) for text in result.stdout.splitlines()]
    reorder = next(r for r in records if r["type"] == "action")
    assert {k: reorder[k] for k in ("kind", "rule", "key", "status", "at", "sku", "quantity")} == {
        "kind": "reorder",
        "rule": "reorder-point",
        "key": "reorder/plant1/BRG-6204",
        "status": "open",
        "at": "2026-03-02T06:00:00+00:00",
        "sku": "BRG-6204",
        "quantity": 140,  # max(100, 150 - 12) = 138, up to whole packs of 10
    }
    alert = next(r for r in records if r["type"] == "alert")
    assert alert["severity"] == "info" and "BRG-6204" in alert["message"]
    assert "replayed 1 messages" in result.stderr


def test_replay_of_a_broken_recording_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "recording.jsonl"
    path.write_text('{"ts": 1, "topic": "x", "payload": {}}\nnot json\n')
    result = cli("replay", str(path))
    assert result.returncode == 2
    assert f"{path}:2: not JSON" in result.stderr


def test_listing_an_empty_database(tmp_path: Path) -> None:
    env = {"AGENT_DATABASE__URL": f"sqlite:///{tmp_path}/agent.db"}
    assert cli("db", "upgrade", env=env).returncode == 0
    assert cli("actions", env=env).stdout.strip() == "no open actions"
    assert cli("actions", "--all", env=env).stdout.strip() == "no actions"
    assert (
        cli("alerts", "--status", "firing", env=env).stdout.strip()
        == "no alerts with status firing"
    )


@pytest.mark.parametrize(
    ("table", "wrong", "valid"), [("alerts", "open", "firing"), ("actions", "firing", "open")]
)
def test_a_status_of_the_other_table_is_refused_with_the_valid_ones_not_a_traceback(
    tmp_path: Path, table: str, wrong: str, valid: str
) -> None:
    env = {"AGENT_DATABASE__URL": f"sqlite:///{tmp_path}/agent.db"}
    done = cli(table, "--status", wrong, env=env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"invalid choice: '{wrong}'" in done.stderr and valid in done.stderr
