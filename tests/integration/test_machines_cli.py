"""`factory-agent machines`: reliability figures from a database a replay filled, as users do."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import cli


def telemetry(ts: str, machine: str, state: str) -> str:
    topic = f"factory/plant1/machine/{machine}/telemetry"
    return json.dumps({"ts": ts, "topic": topic, "payload": {"state": state}})


def test_machines_shows_mtbf_mttr_and_downtime_cost_of_a_replayed_day(tmp_path: Path) -> None:
    recording = tmp_path / "day.jsonl"
    lines = [
        telemetry("2026-03-02T06:00:00Z", "press-01", "running"),
        telemetry("2026-03-02T06:00:00Z", "cnc-02", "running"),
        telemetry("2026-03-02T08:00:00Z", "press-01", "down"),
        telemetry("2026-03-02T09:30:00Z", "press-01", "running"),
        telemetry("2026-03-02T14:00:00Z", "press-01", "running"),
        telemetry("2026-03-02T14:00:00Z", "cnc-02", "running"),
    ]
    recording.write_text("\n".join(lines) + "\n")
    db = f"sqlite:///{tmp_path / 'agent.db'}"
    replayed = cli("replay", str(recording), "--db", db)
    assert replayed.returncode == 0, replayed.stderr
    period = ["--since", "2026-03-02T06:00:00Z", "--until", "2026-03-02T14:00:00Z"]
    # a subprocess, as a user runs it (in-process, the CLI would reconfigure the test's logging)
    shown = cli("machines", "--json", *period, env={"AGENT_DATABASE__URL": db})
    assert shown.returncode == 0, shown.stderr
    figures = {f["machine"]: f for f in map(json.loads, shown.stdout.splitlines())}
    press = figures["press-01"]
    assert (press["failures"], press["downtime_h"], press["mttr_h"], press["mtbf_h"]) == (
        1,
        1.5,
        1.5,
        6.5,
    )
    assert press["downtime_cost"] == 270  # 1.5 h × 180 per hour
    assert press["work_orders"] == 1 and press["open_work_orders"] == 1
    assert figures["cnc-02"]["failures"] == 0
