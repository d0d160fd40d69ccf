"""Restarts: the world comes back from the fact snapshot (no message needed, nothing re-fired),
and the inline engine mode runs the same daemon without a worker process.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store.repository import Store
from tests.faults.ledger import Sender, wait_for
from tests.support.agent_process import AgentProcess, write_config
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
