"""Restarts: the world comes back from the fact snapshot (no message needed, nothing re-fired),
and the inline engine mode runs the same daemon without a worker process.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.store.repository import Store
from tests.faults.ledger import Sender, wait_for
from tests.support.agent_process import AgentProcess, write_config
from tests.support.live import PRESS, Publisher, poll
from tests.support.mosquitto import Mosquitto


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/agent.db")
    yield opened
    opened.close()


def agent_with(tmp_path: Path, broker: Mosquitto, rules: str = "") -> AgentProcess:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-restart",
    )
    config.write_text(config.read_text().replace("[rules]\n", "[rules]\n" + rules, 1))
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    agent.wait_for("mqtt_subscribed", timeout=30)
    return agent


def test_a_restart_restores_the_facts_and_fires_nothing_again(
    broker: Mosquitto, store: Store, tmp_path: Path
) -> None:
    agent = agent_with(tmp_path, broker)
    sender = Sender(broker)
    try:
        sender.send(3)  # F-00003 with on_hand 3: no master data, no rule fires
        sender.client.publish(
            "factory/plant1/stock/BRG-6204", b'{"on_hand": 12, "ts": "2026-03-02T06:00:00Z"}', 1
        )
        wait_for(lambda: store.actions("open"), 10, "the reorder")
        wait_for(lambda: len(store.facts()) == 2, 10, "two facts saved")
        assert agent.stop(signal.SIGTERM) == 0
        agent.start()
        restored = agent.wait_for("world_restored", timeout=30, count=2)
        assert restored["facts"] == 2
        agent.wait_for("mqtt_subscribed", timeout=30, count=2)
    finally:
        sender.close()
        agent.kill()
    (reorder,) = store.actions()
    assert reorder["count"] == 1  # restoring decided nothing
    assert {fact.subject for fact in store.facts()} == {"F-00003", "BRG-6204"}


def test_the_inline_engine_mode_runs_without_a_worker_process(
    broker: Mosquitto, store: Store, tmp_path: Path
) -> None:
    agent = agent_with(tmp_path, broker, rules='engine = "inline"\n')
    sender = Sender(broker)
    try:
        sender.client.publish("factory/plant1/stock/BRG-6204", b'{"on_hand": 5}', 1)
        wait_for(lambda: store.actions("open"), 10, "the reorder")
    finally:
        sender.close()
        agent.kill()
    assert not [e for e in agent.events if e.get("event") == "engine_worker_started"]


HOT_FOR = """
rules:
  - id: hot-for
    when:
      m: kind == "machine" and temp_c > max_temp_c
    for: 10s
    resolve_when: m.temp_c < m.max_temp_c - 5
    then:
      - alert: {severity: warning, message: "{m.machine} hot at {m.temp_c}"}
"""


def test_a_for_timer_and_its_alert_survive_a_kill_and_a_restart(
    broker: Mosquitto, store: Store, tmp_path: Path
) -> None:
    """Killed 4 s into a 10 s `for`, the agent fires at 10 s of plant time, not 10 s after
    its restart; and the alert it raised resolves when the machine cools (issue 18 item 1)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "hot.yaml").write_text(HOT_FOR, encoding="utf-8")
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-restart-for",
        rules=rules,
    )
    config.write_text(config.read_text().replace("[rules]\n", "[rules]\ntick_s = 0.5\n", 1))
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    agent.wait_for("mqtt_subscribed", timeout=30)
    publisher = Publisher(broker)
    try:
        sent = datetime.now(UTC)
        publisher.send(PRESS, {"state": "running", "temp_c": 95.0})
        poll(lambda: [t for t in store.tracks() if not t.firing], 10.0, "pending track saved")
        agent.kill()
        while datetime.now(UTC) - sent < timedelta(seconds=4):
            time.sleep(0.1)  # plant time passes while the agent is down
        agent = AgentProcess(config, cwd=tmp_path)
        agent.start()
        (alert,) = poll(lambda: store.alerts(), 20.0, "the for alert")
        # the old code started the `for` anew at the restart: ≥ 14 s after the reading
        assert alert["first_seen"] - sent < timedelta(seconds=13)
        agent.wait_for("mqtt_subscribed", timeout=30)
        publisher.send(PRESS, {"state": "running", "temp_c": 60.0})
        poll(
            lambda: [a for a in store.alerts() if a["status"] == "resolved"],
            10.0,
            "resolved after the restart",
        )
    finally:
        publisher.close()
        agent.stop()
