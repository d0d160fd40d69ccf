"""Notifications end to end, as a user runs the agent: a real Mosquitto, the agent process,
a SQLite file, and real receivers (an HTTP web-hook server, an SMTP server)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from sqlalchemy import select

from agent.store.repository import Store
from agent.store.tables import outbox_table
from tests.support.agent_process import REPO, AgentProcess, write_config
from tests.support.live import Publisher, poll
from tests.support.mosquitto import Mosquitto
from tests.support.notify_servers import SmtpSink, WebhookSink

HOT_RULE = """\
rules:
  - id: hot
    when:
      m: kind == "machine" and temp_c > 80
    then:
      - alert:
          severity: critical
          message: "{m.machine} at {m.temp_c} °C"
"""
ID_HEADER = "X-Factory-Agent-Notification"


def notify_config(tmp_path: Path, broker: Mosquitto, url: str, extra: str = "") -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "hot.yaml").write_text(HOT_RULE, encoding="utf-8")
    return write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=f"agent-{tmp_path.name}",
        rules=rules,
        extra=f"""
[notify]
channels = {{ ops = "{url}" }}
retry_min_s = 0.2
retry_max_s = 1.0
poll_s = 0.2

[[notify.routes]]
name = "phones"
channels = ["ops"]
severity = ["critical"]
{extra}""",
    )


def outbox_rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as connection:
        return [dict(r) for r in connection.execute(select(outbox_table)).mappings()]


def test_100_alerts_arrive_once_each_with_the_agent_killed_twice_during_delivery(
    broker: Mosquitto, tmp_path: Path, store: Store, publisher: Publisher
) -> None:
    running: list[AgentProcess] = []
    killed = [threading.Event(), threading.Event()]

    def kill_between_send_and_record(count: int) -> None:
        # The message has arrived; the agent dies before it hears the 200 and records it.
        if count in (30, 70):
            running[-1].kill()
            killed[0 if count == 30 else 1].set()

    webhook = WebhookSink(on_request=kill_between_send_and_record)
    webhook.start()
    config = notify_config(tmp_path, broker, webhook.url())
    try:
        for round in range(3):
            agent = AgentProcess(config, cwd=tmp_path)
            running.append(agent)
            agent.start()
            agent.wait_for("mqtt_subscribed", timeout=15)
            if round == 0:
                for n in range(100):
                    publisher.send(
                        f"factory/plant1/machine/m-{n:03d}/telemetry", {"temp_c": 90 + n / 10}
                    )
            if round < 2:
                assert killed[round].wait(30), agent.tail()
                poll(lambda a=agent: a.process.poll() is not None, 10, "the agent is dead")
        ids = lambda: {r["headers"][ID_HEADER] for r in webhook.requests}  # noqa: E731
        poll(lambda: len(ids()) == 100, 30, "100 distinct notifications")
        poll(
            lambda: sum(r["status"] == "sent" for r in outbox_rows(store)) == 200,
            30,
            "every outbox row (100 notifications, 100 MQTT publications) recorded as sent",
        )
    finally:
        for agent in running:
            agent.kill()
        webhook.stop()
    arrivals = Counter(r["headers"][ID_HEADER] for r in webhook.requests)
    twice = sorted(key for key, n in arrivals.items() if n > 1)
    print(f"100 alerts, 2 kills: {sum(arrivals.values())} arrivals, doubled: {twice}")
    assert len(store.alerts()) == 100
    assert len(arrivals) == 100  # none lost
    # Each kill fell between a send and its record: that one message, and only it, went again.
    assert sum(arrivals.values()) == 102
    assert max(arrivals.values()) == 2


def test_an_alert_fired_while_smtp_is_down_arrives_once_when_it_is_back(
    broker: Mosquitto, tmp_path: Path, store: Store, publisher: Publisher
) -> None:
    smtp = SmtpSink()
    agent = AgentProcess(notify_config(tmp_path, broker, smtp.url), cwd=tmp_path)
    agent.start()
    try:
        agent.wait_for("mqtt_subscribed", timeout=15)
        publisher.send("factory/plant1/machine/press-01/telemetry", {"temp_c": 95})
        agent.wait_for("notify_retry", timeout=10, count=2)
        smtp.start()
        (mail,) = smtp.received.wait_for(1, timeout=10)
        notices = lambda: [r for r in outbox_rows(store) if r["channel"] == "ops"]  # noqa: E731
        poll(lambda: notices()[0]["status"] == "sent", 5, "the notification recorded as sent")
        assert notices()[0]["attempts"] >= 3
        assert len(smtp.messages) == 1
        assert mail["Subject"] == "[CRITICAL] press-01: press-01 at 95 °C"
    finally:
        agent.kill()
        smtp.stop()


def test_mqtt_commands_acknowledge_refuse_and_changes_are_published(
    broker: Mosquitto, tmp_path: Path, store: Store, publisher: Publisher
) -> None:
    webhook = WebhookSink()
    webhook.start()
    config = notify_config(
        tmp_path, broker, webhook.url(), extra='\n[commands]\nallowed_by = ["ann"]\n'
    )
    published: list[tuple[str, dict[str, Any]]] = []
    arrived = threading.Condition()

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic.endswith("/command"):
            return  # our own commands
        with arrived:
            published.append((message.topic, json.loads(message.payload)))
            arrived.notify_all()

    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="watcher")
    watcher.on_message = on_message
    watcher.connect(broker.host, broker.port)
    watcher.subscribe("factory/+/agent/+", qos=1)
    watcher.loop_start()
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    command = "factory/plant1/agent/command"
    try:
        agent.wait_for("mqtt_subscribed", timeout=15)
        publisher.send("factory/plant1/machine/press-01/telemetry", {"temp_c": 95})
        (alert,) = poll(lambda: store.alerts(), 5, "an alert")
        publisher.send(command, {"command": "ack", "id": alert["id"], "by": "eve"})
        publisher.send(command, {"command": "ack", "id": alert["id"], "by": "ann", "note": "hi"})
        publisher.send(command, {"command": "ack", "id": alert["id"], "by": "ann"})
        publisher.send(command, {"command": "done", "id": 999, "by": "ann"})
        letters = poll(lambda: len(store.dead_letters()) == 3 and store.dead_letters(), 10, "3")
        reasons = sorted(letter["reason"] for letter in letters)
        assert reasons == [
            "command refused: 'eve' is not in commands.allowed_by",
            "command refused: action 999 does not exist; cannot done",
            f"command refused: alert {alert['id']} is acknowledged; cannot ack",
        ]
        assert store.alerts()[0]["acknowledged_by"] == "ann"
        with arrived:
            assert arrived.wait_for(lambda: len(published) >= 2, timeout=10), published
        assert [(t, p["status"]) for t, p in published] == [
            ("factory/plant1/agent/alerts", "firing"),
            ("factory/plant1/agent/alerts", "acknowledged"),
        ]
        assert published[0][1]["id"] == alert["id"]
    finally:
        agent.kill()
        watcher.loop_stop()
        watcher.disconnect()
        webhook.stop()


def test_cli_commands_change_rows_and_refuse_unknown_ids(
    tmp_path: Path, broker: Mosquitto, store: Store
) -> None:
    from datetime import UTC, datetime

    from agent.model import AlertDecision, Outcome

    config = notify_config(tmp_path, broker, "json://127.0.0.1:9/x")
    at = datetime.now(UTC)
    store.apply(
        Outcome([AlertDecision("k", "warning", "hot", "plant1", "press-01", "hot", "h", {}, at)])
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent", *args, "--config", str(config)],
            cwd=tmp_path,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    acked = cli("ack", "alert", "1", "--by", "ann", "--note", "on my way")
    assert acked.returncode == 0, acked.stderr
    assert "acknowledged" in acked.stdout
    again = cli("ack", "1", "--by", "ann")
    assert (again.returncode, again.stderr.strip()) == (
        1,
        "factory-agent: alert 1 is acknowledged; cannot ack",
    )
    missing = cli("done", "action", "7")
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "factory-agent: action 7 does not exist; cannot done",
    )
    resolved = cli("resolve", "1", "--by", "ann")
    assert resolved.returncode == 0, resolved.stderr
    row = store.alerts()[0]
    assert (row["status"], row["resolved_by"], row["note"]) == ("resolved", "ann", "on my way")
    events = sorted((r["channel"], r["event"]) for r in outbox_rows(store))
    assert events == [("mqtt", "acknowledged"), ("mqtt", "resolved")]
