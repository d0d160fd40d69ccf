"""The daemon on a real broker with a real engine worker process, where one rule hangs the engine
(the test hook `serve_with_slow_rule`): that rule is disabled with one critical alert and the
gauge, its message is a dead letter, the other rules go on deciding, and a reload that changes the
rule brings it back (issue 16)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.app.daemon import Daemon
from agent.app.policy import load_policy
from agent.config import load_settings
from agent.model import Fact
from agent.rulebook import worker
from agent.rulebook.disabled import ALERT_KEY
from agent.store.repository import Store
from tests.support.agent_process import write_config
from tests.support.live import Publisher, poll
from tests.support.mosquitto import Mosquitto
from tests.unit.test_rule_disabled import HANG, serve_with_slow_rule

DISABLED = f"{ALERT_KEY}/slow"
# Only rules over several facts reach the engine worker (one-fact rules are matched in the
# daemon: agent/rulebook/local.py), so the rule that hangs it here is a join.
RULES = """\
rules:
  - id: low
    when:
      stock: kind == "stock" and on_hand <= 10
    then:
      - alert: {message: low}
  - id: slow
    when:
      stock: kind == "stock" and on_hand < 0
      m: kind == "machine" and state == "down"
    then:
      - alert: {message: negative}
"""
PRESS = "factory/plant1/machine/press-01/telemetry"


def stock(sku: str) -> str:
    return f"factory/plant1/stock/{sku}"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "r.yaml").write_text(RULES, encoding="utf-8")
    return folder


@pytest.fixture
def daemon(
    tmp_path: Path, broker: Mosquitto, store: Store, rules: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Daemon]:
    monkeypatch.setattr(worker, "serve", serve_with_slow_rule)  # the worker process runs it
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-rule-disabled",
        rules=rules,
    )
    settings = load_settings(
        config, {"AGENT_RULES__ENGINE_DEADLINE_S": "1", "AGENT_RULES__WATCH": "0"}
    )
    built = Daemon(settings, load_policy(settings), store)
    yield built
    built.pipeline.core.close()


def gauge(daemon: Daemon) -> float | None:
    return daemon.metrics.registry.get_sample_value("factory_agent_rules_disabled")


def on_hand(fact: Fact | None) -> object:
    return None if fact is None else fact.fields.get("on_hand")


def alerts(store: Store, key: str) -> list[dict[str, object]]:
    return [a for a in store.alerts() if a["dedup_key"] == key]


def test_a_rule_that_hangs_the_worker_is_disabled_and_the_others_go_on(
    daemon: Daemon, store: Store, publisher: Publisher, rules: Path
) -> None:
    runner = threading.Thread(target=daemon.run, name="daemon")
    runner.start()
    try:
        poll(lambda: daemon.source.connected, 15, "the daemon subscribed")
        assert gauge(daemon) == 0
        publisher.send(stock("POISON"), {"on_hand": HANG})
        (letter,) = poll(store.dead_letters, 30, "the poison message's dead letter")
        assert letter["topic"] == stock("POISON")
        assert "quarantined" in letter["reason"] and "rule slow disabled" in letter["reason"]
        (alert,) = poll(lambda: alerts(store, DISABLED), 10, "the rule-disabled alert")
        assert (alert["status"], alert["severity"]) == ("firing", "critical")
        assert str(alert["message"]).startswith(f"{rules}/r.yaml:7: rule slow is disabled")
        assert gauge(daemon) == 1

        # The same hostile value again: no hang, no dead letter; `low` decides on it.
        publisher.send(stock("AGAIN"), {"on_hand": HANG})
        publisher.send(stock("AGAIN"), {"on_hand": 5})
        low = poll(lambda: [a for a in store.alerts() if a["rule_id"] == "low"], 10, "low")
        assert [a["subject"] for a in low] == ["AGAIN"]
        assert len(store.dead_letters()) == 1 and len(alerts(store, DISABLED)) == 1
        assert not [a for a in store.alerts() if a["rule_id"] == "slow"]

        # A reload that changes the rule, while the poison fact is in the world: the new rule
        # hangs on it too, and is disabled again; the reload holds, the alert stays one.
        generation = "factory_agent_rule_set_generation"
        (rules / "r.yaml").write_text(RULES.replace("message: negative", "message: neg"), "utf-8")
        daemon.request_reload("test")
        poll(lambda: daemon.metrics.registry.get_sample_value(generation) == 2, 30, "reloaded")
        assert gauge(daemon) == 1 and not alerts(store, "agent/rules/reload-refused")
        assert [a["status"] for a in alerts(store, DISABLED)] == ["firing"]

        # A sane value for the poison SKU, then a reload that changes the rule: back, its alert
        # resolved, and it decides again.
        publisher.send(stock("POISON"), {"on_hand": 50})
        world = daemon.pipeline.core.world
        poll(lambda: on_hand(world.get("stock/plant1/POISON")) == 50, 10, "poison reset")
        (rules / "r.yaml").write_text(RULES.replace("on_hand < 0", "on_hand < -1"), "utf-8")
        daemon.request_reload("test")
        poll(lambda: gauge(daemon) == 0, 10, "the gauge back at 0")
        publisher.send(PRESS, {"state": "down"})
        publisher.send(stock("NEG"), {"on_hand": -5})
        poll(lambda: [a for a in store.alerts() if a["rule_id"] == "slow"], 10, "slow fires")
        poll(
            lambda: [a["status"] for a in alerts(store, DISABLED)] == ["resolved"],
            10,
            "the rule-disabled alert resolved",
        )
    finally:
        daemon.stop()
        runner.join(20)
    assert not runner.is_alive()
