"""`factory-agent simulate`: a reproducible factory whose stream the agent turns into decisions."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho

from agent.simulator.factory import Factory
from agent.world.masterdata import load_masterdata
from tests.integration.test_cli import cli
from tests.support.agent_process import REPO
from tests.support.live import poll
from tests.support.mosquitto import Mosquitto

START = "2026-11-02T06:00:00+00:00"
OPTIONS = ["--speed", "3600", "--rate", "50", "--start", START, "--seed", "7"]


def simulate(tmp_path: Path, name: str, *extra: str) -> list[dict[str, object]]:
    path = tmp_path / name
    result = cli("simulate", "--offline", "--record", str(path), *OPTIONS, *extra)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_same_seed_gives_the_same_stream(tmp_path: Path) -> None:
    first = simulate(tmp_path, "a.jsonl", "--messages", "500")
    again = simulate(tmp_path, "b.jsonl", "--messages", "500")
    other = simulate(tmp_path, "c.jsonl", "--messages", "500", "--seed", "8")
    assert first == again
    assert first != other
    assert len(first) == 500


def test_ten_recorded_days_replay_into_every_kind_of_decision(tmp_path: Path) -> None:
    stream = simulate(tmp_path, "days.jsonl", "--messages", "3000", "--speed", "14400")
    topics = {entry["topic"].split("/")[2] for entry in stream}  # type: ignore[union-attr]
    assert topics == {"machine", "stock", "receipt"}
    states = {e["payload"]["state"] for e in stream if "state" in e["payload"]}  # type: ignore[operator,index]
    assert {"running", "idle", "down", "maintenance"} <= states

    result = cli("replay", str(tmp_path / "days.jsonl"), "--json")
    assert result.returncode == 0, result.stderr
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = {d["kind"] for d in decisions if d["type"] == "action"}
    assert kinds == {"reorder", "work_order", "idle_capacity"}
    assert any(d["type"] == "alert" for d in decisions)
    assert "0 dead letters" in result.stderr


def test_wear_drifts_toward_failure_and_a_repair_resets_it() -> None:
    masterdata = load_masterdata(REPO / "config/items.yaml", REPO / "config/machines.yaml")
    start = datetime(2026, 11, 2, 6, tzinfo=UTC)
    factory = Factory(
        random.Random(3), start, masterdata.machines, {}, machine_count=1, sku_count=0
    )
    press = factory.machines[0]
    press.wear, press.wear_per_hour = 0.5, 1 / 10
    seen: list[tuple[str, float]] = []
    for minute in range(0, 48 * 60, 6):
        (_, payload), *_ = factory.step(start + timedelta(minutes=minute))
        seen.append((str(payload["state"]), float(payload["vibration_mm_s"])))
    running = [v for s, v in seen if s == "running"]
    assert max(running) > press.max_vibration_mm_s  # worn out before it failed
    failed = next(i for i, (s, _) in enumerate(seen) if s == "down")
    assert any(s == "maintenance" for s, _ in seen[failed:])
    assert min(v for s, v in seen[failed:] if s == "running") < 0.5 * press.max_vibration_mm_s


def test_simulate_publishes_to_the_broker(broker: Mosquitto) -> None:
    received: list[str] = []
    listener = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="listener")
    listener.on_message = lambda _c, _u, message: received.append(message.topic)
    listener.connect(broker.host, broker.port)
    listener.subscribe("factory/#", qos=1)
    listener.loop_start()
    try:
        env = {"AGENT_MQTT__PORT": str(broker.port)}
        result = cli("simulate", "--rate", "200", "--messages", "40", env=env)
        assert result.returncode == 0, result.stderr
        assert "simulated 40 messages" in result.stderr
        poll(lambda: len(received) >= 40, 10, "40 messages at the broker")
    finally:
        listener.loop_stop()
        listener.disconnect()
