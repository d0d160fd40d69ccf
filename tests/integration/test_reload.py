"""Live reload with the real daemon: an edited threshold takes effect within 2 s, a broken edit
leaves the old rules running and raises an alert naming file, line and reason, SIGHUP reloads."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from agent.store.repository import Store
from tests.support.agent_process import REPO, AgentProcess, write_config
from tests.support.live import PRESS, STOCK, Publisher, poll
from tests.support.mosquitto import Mosquitto


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(REPO / "rules", folder, ignore=shutil.ignore_patterns("tests"))
    return folder


@pytest.fixture
def agent(broker: Mosquitto, tmp_path: Path, rules: Path) -> Iterator[AgentProcess]:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=f"agent-{tmp_path.name}",
        rules=rules,
    )
    process = AgentProcess(config, cwd=tmp_path)
    process.start()
    process.wait_for("mqtt_subscribed", timeout=15)
    yield process
    process.kill()


def work_orders(store: Store) -> list[dict[str, Any]]:
    return [a for a in store.actions("open") if a["kind"] == "work_order"]


def reload_alerts(store: Store) -> list[dict[str, Any]]:
    return [a for a in store.alerts("firing") if a["rule_id"] == "rules-reload"]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_an_edited_threshold_applies_within_two_seconds_and_a_broken_edit_keeps_the_old_rules(
    agent: AgentProcess, store: Store, publisher: Publisher, rules: Path
) -> None:
    publisher.send(PRESS, {"state": "running", "fault": "E17"})  # not a hydraulic fault (E4..)
    publisher.send(STOCK, {"on_hand": 12})  # in order after the telemetry: a marker
    poll(lambda: store.actions("open"), 5.0, "the reorder that marks the telemetry as handled")
    started = time.monotonic()
    edit(rules / "maintenance.yaml", 'matches(fault, "^E4.*")', 'matches(fault, "^E[14].*")')
    orders = poll(lambda: work_orders(store), 2.0, "a work order under the edited rule")
    latency_s = time.monotonic() - started
    assert orders[0]["rule_id"] == "hydraulic-fault"
    reloaded = agent.wait_for("rules_reloaded", timeout=1)
    assert {r["hash"] for r in store.rule_sets()} == {reloaded["previous"], reloaded["rule_set"]}

    edit(rules / "capacity.yaml", "idle_minutes >= max_idle_minutes", "idle_minutes >= max_idle")
    (alert,) = poll(lambda: reload_alerts(store), 3.0, "an alert about the refused edit")
    assert "capacity.yaml:7: machine-idle: " in alert["message"]
    assert "unknown field 'max_idle'" in alert["message"]
    # The old rules (with the edited threshold) keep running.
    publisher.send(PRESS.replace("press-01", "cnc-02"), {"state": "running", "fault": "E12"})
    poll(lambda: len(work_orders(store)) == 2, 3.0, "a work order for cnc-02 (the edited match)")

    edit(rules / "capacity.yaml", "idle_minutes >= max_idle", "idle_minutes >= max_idle_minutes")
    poll(lambda: not reload_alerts(store), 3.0, "the reload alert resolved: the rules load again")
    (resolved,) = store.alerts("resolved")
    assert resolved["rule_id"] == "rules-reload"
    print(
        f"reload latency (edit to decision): {latency_s * 1000:.0f} ms, "
        f"validate and swap: {reloaded['took_ms']} ms"
    )


def test_sighup_reloads_the_rules(agent: AgentProcess, rules: Path) -> None:
    assert agent.process is not None
    agent.process.send_signal(signal.SIGHUP)
    event = agent.wait_for("rules_unchanged", timeout=3)
    assert event["why"] == "SIGHUP"


def test_the_scheduler_tick_fires_a_for_rule_without_new_messages(
    broker: Mosquitto, tmp_path: Path, publisher: Publisher, store: Store
) -> None:
    folder = tmp_path / "timed"
    folder.mkdir()
    (folder / "hot.yaml").write_text(
        """\
rules:
  - id: hot-for-a-second
    when:
      m: kind == "machine" and temp_c > max_temp_c
    for: 1s
    then:
      - alert: {severity: warning, message: "{m.machine} hot for a second"}
""",
        encoding="utf-8",
    )
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=f"agent-{tmp_path.name}",
        rules=folder,
        extra="",
    )
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[rules]\n", "[rules]\ntick_s = 0.2\n"), encoding="utf-8")
    process = AgentProcess(config, cwd=tmp_path)
    process.start()
    try:
        process.wait_for("mqtt_subscribed", timeout=15)
        sent = time.monotonic()
        publisher.send(PRESS, {"state": "running", "temp_c": 95.0})
        (alert,) = poll(lambda: store.alerts("firing"), 5.0, "the alert after `for: 1s`")
        assert time.monotonic() - sent >= 1.0
        assert alert["rule_id"] == "hot-for-a-second"
    finally:
        process.kill()


def test_a_publish_action_reaches_the_broker_once_per_firing(
    broker: Mosquitto, tmp_path: Path, publisher: Publisher, store: Store
) -> None:
    folder = tmp_path / "andon"
    folder.mkdir()
    (folder / "andon.yaml").write_text(
        """\
rules:
  - id: andon
    when:
      m: kind == "machine" and state == "down"
    then:
      - publish: {topic: "andon/{m.machine}", payload: {lamp: '"red"', fault: m.fault}}
""",
        encoding="utf-8",
    )
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=f"agent-{tmp_path.name}",
        rules=folder,
    )
    received: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    listener = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="andon-board")
    listener.on_message = lambda c, u, m: received.put((m.topic, json.loads(m.payload)))
    listener.connect(broker.host, broker.port)
    listener.subscribe("andon/#", qos=1)
    listener.loop_start()
    process = AgentProcess(config, cwd=tmp_path)
    process.start()
    try:
        process.wait_for("mqtt_subscribed", timeout=15)
        publisher.send(PRESS, {"state": "down", "fault": "E7"})
        publisher.send(PRESS, {"state": "down", "fault": "E7"})  # still firing: no second lamp
        assert received.get(timeout=5) == ("andon/press-01", {"lamp": "red", "fault": "E7"})
        publisher.send(PRESS, {"state": "running"})
        publisher.send(PRESS, {"state": "down", "fault": "E8"})  # fires again
        assert received.get(timeout=5) == ("andon/press-01", {"lamp": "red", "fault": "E8"})
        assert received.empty()
    finally:
        process.kill()
        listener.loop_stop()
        listener.disconnect()
