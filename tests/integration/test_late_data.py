"""Late data on a real agent and broker (issue 20): a gateway forwards two hours of buffered
readings, with their original `ts`, in about six seconds, while the agent's scheduler ticks
every 0.2 s. A backfill is not silence: no `sensor-stale` episodes, run hours for the two hours,
and an overheat inside the backfill is one resolved episode at its plant times."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.store.repository import Store
from agent.store.tables import outbox_table
from tests.integration.test_cli import cli
from tests.support.agent_process import AgentProcess, write_config
from tests.support.live import Publisher, poll
from tests.support.mosquitto import Mosquitto
from tests.support.notify_servers import WebhookSink

STEP = timedelta(seconds=30)
READINGS = 241  # two hours, every 30 s
HOT = range(120, 150)  # cnc-02 at 85 degrees (limit 70) for 15 minutes from an hour in


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/agent.db")
    yield opened
    opened.close()


def topic(machine: str) -> str:
    return f"factory/plant1/machine/{machine}/telemetry"


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.start()
    yield sink
    sink.stop()


def outbox(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as connection:
        return [dict(r) for r in connection.execute(select(outbox_table)).mappings()]


def test_a_two_hour_backfill_is_not_silence_and_keeps_its_episodes_in_plant_time(
    broker: Mosquitto, store: Store, tmp_path: Path, webhook: WebhookSink
) -> None:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-late-data",
        extra=f"""
[notify]
channels = {{ ops = "{webhook.url()}" }}
poll_s = 0.2
late_hold_s = 3

[[notify.routes]]
name = "maintenance"
channels = ["ops"]
severity = ["warning", "critical"]
""",
    )
    config.write_text(config.read_text().replace("[rules]\n", "[rules]\ntick_s = 0.2\n", 1))
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    agent.wait_for("mqtt_subscribed", timeout=30)
    publisher = Publisher(broker)
    start = (datetime.now(UTC) - READINGS * STEP).replace(microsecond=0)
    last = start + (READINGS - 1) * STEP
    try:
        for i in range(READINGS):
            ts = (start + i * STEP).isoformat()
            normal = {"state": "running", "temp_c": 60.0, "vibration_mm_s": 2.0, "ts": ts}
            publisher.send(topic("press-01"), json.dumps(normal).encode())
            hot = {**normal, "temp_c": 85.0 if i in HOT else 60.0}
            publisher.send(topic("cnc-02"), json.dumps(hot).encode())
            time.sleep(0.02)  # the gateway's pace: two hours in about six seconds
        poll(
            lambda: (
                {
                    f.subject
                    for f in store.facts()
                    if f.fields.get("last_message_at") == last.isoformat()
                }
                == {"press-01", "cnc-02"}
            ),
            30.0,
            "the backfill taken in",
        )
        hot_alerts = poll(
            lambda: [
                a
                for a in store.alerts()
                if a["rule_id"] == "overheating" and a["status"] == "resolved"
            ],
            20.0,
            "the overheating episode, resolved",
        )
        # Nobody is paged for the episode that was over before its data came: one summary
        # line names it, and its held firing message is skipped, never sent.
        summaries = poll(
            lambda: [r for r in webhook.requests if "from late data" in r["body"]["title"]],
            20.0,
            "the late-episode summary",
        )
        assert any("cnc-02" in r["body"]["message"] for r in summaries)
        hot_id = hot_alerts[0]["id"]
        poll(
            lambda: (
                {
                    r["status"]
                    for r in outbox(store)
                    if r["ref_id"] == hot_id and r["channel"] == "ops"
                }
                == {"skipped"}
            ),
            20.0,
            "the held firing message skipped",
        )
    finally:
        publisher.close()
        agent.stop()
    assert not [
        r
        for r in webhook.requests
        if "overheating" in r["body"]["title"].lower() or "cnc-02 at" in r["body"]["title"]
    ]
    alerts = store.alerts()
    assert [a for a in alerts if a["rule_id"] == "sensor-stale"] == []  # old code: one per tick
    (episode,) = hot_alerts
    assert episode["late"] is True  # recorded as an episode from late data
    assert [a["rule_id"] for a in alerts].count("overheating") == 1
    assert episode["subject"] == "cnc-02"
    hot_from = start + HOT.start * STEP
    hot_to = start + HOT.stop * STEP
    # At plant time: the 10-minute average passes the limit a few minutes in, then `for: 5m`.
    assert hot_from + timedelta(minutes=5) <= episode["first_seen"] <= hot_to
    assert hot_to < episode["resolved_at"] < hot_to + timedelta(minutes=15)
    assert [a for a in store.actions() if a["kind"] == "idle_capacity"] == []
    facts = {f.subject: f.fields for f in store.facts()}
    assert facts["press-01"]["run_hours"] == pytest.approx(2.0, abs=0.02)
    assert facts["press-01"]["stale"] is False


def test_replay_of_the_recorded_backfill_decides_the_same(tmp_path: Path) -> None:
    """The recording keeps each message's arrival (`ts` of the line) and its reading's `ts`
    (in the payload): `replay` sees the same lag as the daemon did, so the same episodes."""
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    arrive = start + READINGS * STEP + timedelta(minutes=5)
    lines = []
    for i in range(READINGS):
        ts = (start + i * STEP).isoformat()
        arrived = (arrive + i * timedelta(milliseconds=25)).isoformat()
        normal = {"state": "running", "temp_c": 60.0, "vibration_mm_s": 2.0, "ts": ts}
        hot = {**normal, "temp_c": 85.0 if i in HOT else 60.0}
        lines.append({"ts": arrived, "topic": topic("press-01"), "payload": normal})
        lines.append({"ts": arrived, "topic": topic("cnc-02"), "payload": hot})
    path = tmp_path / "backfill.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    result = cli("replay", str(path), "--json", "--all")
    assert result.returncode == 0, result.stderr
    alerts = [d for d in map(json.loads, result.stdout.splitlines()) if d["type"] == "alert"]
    assert [a for a in alerts if a.get("rule") == "sensor-stale"] == []
    hot = [a for a in alerts if a.get("rule") == "overheating"]
    assert {a["id"] for a in hot} and len({a["id"] for a in hot}) == 1
    last = hot[-1]
    assert last["status"] == "resolved"
    assert last["late"] is True
    first_seen = datetime.fromisoformat(last["at"])
    assert start + HOT.start * STEP + timedelta(minutes=5) <= first_seen <= start + HOT.stop * STEP
