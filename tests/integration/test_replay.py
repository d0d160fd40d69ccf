"""`replay` on the settings the daemon runs with: the batch size does not change the answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.app.policy import Policy, load_policy
from agent.app.replay import replay_with
from agent.config import Settings
from agent.decisions.report import record
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.ruletest.run import report, run_tests
from agent.store.repository import Store
from tests.integration.test_cli import cli
from tests.support.agent_process import REPO


def settings(**sections: dict[str, Any]) -> Settings:
    paths = {
        "rules": {"path": str(REPO / "rules")},
        "masterdata": {
            "items": str(REPO / "config/items.yaml"),
            "machines": str(REPO / "config/machines.yaml"),
        },
    }
    for name, values in sections.items():
        paths[name] = {**paths.get(name, {}), **values}
    return Settings.model_validate(paths)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(settings())


def replayed(recording: Path, policy: Policy, config: Settings) -> list[dict[str, Any]]:
    with Store.open("sqlite://") as store:
        result = replay_with(recording, policy, store, config)
    assert result.dead_letters == 0
    return [{"created": c.created, **record(c.table, c.row)} for c in result.changes]


@pytest.fixture(scope="module")
def short_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~1,200 messages of the same plant: one-message batches commit once each (slow)."""
    path = tmp_path_factory.mktemp("replay") / "short.jsonl"
    result = cli(
        "simulate", "--offline", "--record", str(path), "--messages", "1200",
        "--speed", "3600", "--rate", "20", "--start", "2026-11-02T06:00:00+00:00", "--seed", "7",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return path


def test_one_message_batches_decide_as_a_thousand(short_recording: Path, policy: Policy) -> None:
    one = replayed(short_recording, policy, settings(ingest={"batch_size": 1}))
    many = replayed(short_recording, policy, settings(ingest={"batch_size": 1000}))
    assert sum(c["created"] for c in one) >= 10  # the stream decides something
    assert one == many


HOT_RULE = """\
rules:
  - id: hot
    when:
      m: kind == "machine" and temp_c > max_temp_c
    for: 2m
    resolve_when: m.temp_c < m.max_temp_c - 5
    then:
      - alert: {message: "{m.machine} hot"}
"""
PRESS = "factory/plant1/machine/press-01/telemetry"
CNC = "factory/plant1/machine/cnc-02/telemetry"
COMMAND = "factory/plant1/agent/command"
# Both hot at 0s, the press cool at exactly 2m: the tick at 2m (the `for` is due) comes before
# the message at 2m, in replay as in a rule test, so its alert fires at 2m and resolves at once.
# The cnc's (alert 1: in a tick, facts in key order) is acknowledged by a command.
TIMED = [
    (0, CNC, {"temp_c": 85}),
    (0, PRESS, {"temp_c": 85}),
    (120, PRESS, {"temp_c": 60}),
    (180, COMMAND, {"command": "ack", "id": 1, "by": "ana"}),
]
START = datetime(2026, 3, 2, 6, tzinfo=UTC)


def test_replay_and_a_rule_test_tick_at_the_same_instants_and_apply_commands(
    tmp_path: Path, policy: Policy
) -> None:
    (tmp_path / "rules.yaml").write_text(HOT_RULE, encoding="utf-8")
    lines = [
        {"ts": (START + timedelta(seconds=at)).isoformat(), "topic": topic, "payload": payload}
        for at, topic, payload in TIMED
    ]
    recording = tmp_path / "hot.jsonl"
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    schema = build_schema(policy.masterdata.item_fields(), policy.masterdata.machine_fields())
    hot = Policy(policy.masterdata, schema, load_rules([tmp_path / "rules.yaml"], schema))
    with Store.open("sqlite://") as store:
        result = replay_with(recording, hot, store, settings())
        alerts = {row["subject"]: row for row in store.alerts()}
    assert result.dead_letters == 0
    two = START + timedelta(minutes=2)
    press, cnc = alerts["press-01"], alerts["cnc-02"]
    assert (press["status"], press["first_seen"], press["resolved_at"]) == ("resolved", two, two)
    assert (cnc["id"], cnc["status"], cnc["acknowledged_by"]) == (1, "acknowledged", "ana")

    inputs = "\n".join(
        f"      - {{at: {at}s, topic: {topic}, payload: {json.dumps(payload)}}}"
        for at, topic, payload in TIMED
    )
    test_file = tmp_path / "hot_test.yaml"
    test_file.write_text(
        f"rules: [rules.yaml]\nstart: {START.isoformat()}\ntests:\n  - name: hot\n"
        f"    input:\n{inputs}\n    expect:\n"
        "      alerts:\n"
        "        - {machine: press-01, at: 2m, resolved_at: 2m, status: resolved}\n"
        "        - {machine: cnc-02, at: 2m, status: acknowledged}\n",
        encoding="utf-8",
    )
    run = run_tests([test_file], [], policy.masterdata, settings())
    assert run.ok, "\n".join(report(run))
