"""The daemon end to end, as a user runs it: a real Mosquitto, the real process, a SQLite file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store.repository import Store
from tests.support.agent_process import REPO, AgentProcess, write_config
from tests.support.live import PRESS, STOCK, Publisher, poll
from tests.support.mosquitto import Mosquitto


@pytest.fixture
def agent(broker: Mosquitto, tmp_path: Path) -> Iterator[AgentProcess]:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=f"agent-{tmp_path.name}",
    )
    process = AgentProcess(config, cwd=tmp_path)
    process.start()
    process.wait_for("mqtt_subscribed", timeout=15)
    yield process
    process.kill()


def test_low_stock_opens_one_reorder_within_two_seconds_and_stays_single(
    agent: AgentProcess, store: Store, publisher: Publisher
) -> None:
    started = time.monotonic()
    publisher.send(STOCK, {"on_hand": 12, "unit": "pcs"})
    reorders = poll(lambda: store.actions("open"), 2.0, "an open reorder")
    first_decision_s = time.monotonic() - started
    assert [(a["kind"], a["subject"]) for a in reorders] == [("reorder", "BRG-6204")]
    for on_hand in range(11, -39, -1):  # 50 more messages, all below the safety stock (15)
        publisher.send(STOCK, {"on_hand": max(on_hand, 1), "unit": "pcs"})
    # The open reorder counts as on order: the later counts expedite it, they ask for no more.
    poll(
        lambda: [a for a in store.alerts() if a["rule_id"] == "expedite" and a["count"] >= 50],
        10.0,
        "50 expedite requests on the open reorder",
    )
    assert [(a["count"], a["params"]["quantity"]) for a in store.actions()] == [(1, 140)]
    print(f"time to first decision: {first_decision_s * 1000:.0f} ms")


def test_down_machine_gives_one_work_order_and_one_alert(
    agent: AgentProcess, store: Store, publisher: Publisher
) -> None:
    publisher.send(PRESS, {"state": "down", "fault": "E17"})
    publisher.send(PRESS, {"state": "down", "fault": "E18"})
    orders = poll(lambda: [a for a in store.actions() if a["count"] >= 2], 5.0, "work order x2")
    assert [(o["kind"], o["subject"], o["params"]["task"]) for o in orders] == [
        ("work_order", "press-01", "repair")
    ]
    alerts = store.alerts()
    assert [(a["severity"], a["rule_id"], a["status"]) for a in alerts] == [
        ("critical", "machine-down", "firing")
    ]
    # the first firing's text stays with its facts; the latest repeat's is kept beside it
    assert "fault E17" in alerts[0]["message"]
    assert "fault E18" in alerts[0]["last_message"]


def test_bad_payloads_become_dead_letters_and_the_daemon_goes_on(
    agent: AgentProcess, store: Store, publisher: Publisher
) -> None:
    publisher.send(STOCK, b"not json")
    publisher.send(STOCK, {"on_hand": "lots"})
    letters = poll(lambda: len(store.dead_letters()) >= 2 and store.dead_letters(), 5.0, "2 dead")
    reasons = sorted(letter["reason"] for letter in letters)
    assert any("JSON" in reason for reason in reasons)
    assert any("on_hand" in reason for reason in reasons)
    assert {bytes(letter["payload"]) for letter in letters} == {b"not json", b'{"on_hand": "lots"}'}
    publisher.send(STOCK, {"on_hand": 3})
    poll(lambda: store.actions("open"), 5.0, "a reorder after the bad payloads")
    assert agent.process is not None and agent.process.poll() is None


def test_sigterm_stops_cleanly(agent: AgentProcess) -> None:
    assert agent.stop(signal.SIGTERM) == 0
    agent.wait_for("agent_stopped", timeout=1)


def test_broker_restart_is_survived(
    agent: AgentProcess, broker: Mosquitto, store: Store, publisher: Publisher
) -> None:
    publisher.close()
    broker.restart()
    agent.wait_for("mqtt_subscribed", timeout=15, count=2)
    again = Publisher(broker)
    try:
        again.send(STOCK, {"on_hand": 5})
        poll(lambda: store.actions("open"), 5.0, "a reorder after the broker restart")
    finally:
        again.close()


def test_messages_sent_while_the_agent_is_down_are_processed_when_it_returns(
    agent: AgentProcess, store: Store, publisher: Publisher
) -> None:
    assert agent.stop() == 0
    publisher.send(STOCK, {"on_hand": 4})
    agent.start()
    poll(lambda: store.actions("open"), 15.0, "a reorder for the message sent while down")


def test_replay_prints_the_decisions_the_daemon_stored(
    agent: AgentProcess, store: Store, publisher: Publisher, tmp_path: Path
) -> None:
    recording = [
        {"ts": "2026-03-02T06:00:00Z", "topic": STOCK, "payload": {"on_hand": 100}},
        {"ts": "2026-03-02T06:01:00Z", "topic": STOCK, "payload": {"on_hand": 30}},
        {
            "ts": "2026-03-02T06:02:00Z",
            "topic": PRESS,
            "payload": {"state": "running", "temp_c": 85},
        },
        {
            "ts": "2026-03-02T06:03:00Z",
            "topic": PRESS,
            "payload": {"state": "down", "fault": "E42"},
        },
        {
            "ts": "2026-03-02T06:04:00Z",
            "topic": "factory/plant1/stock/FLT-HYD10",
            "payload": {"on_hand": 0},
        },
        {"ts": "2026-03-02T06:05:00Z", "topic": STOCK, "payload": "not json"},
    ]
    path = tmp_path / "recording.jsonl"
    path.write_text("\n".join(json.dumps(entry) for entry in recording) + "\n")
    for entry in recording:
        payload = entry["payload"]
        publisher.send(
            entry["topic"],
            payload.encode() if isinstance(payload, str) else {**payload, "ts": entry["ts"]},
        )
    poll(lambda: len(store.dead_letters()) == 1, 5.0, "the whole recording processed")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "replay",
            str(path),
            "--json",
            "--config",
            str(agent.config),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    replayed = {
        (d["type"], d["kind"], d["key"], d["status"])
        for d in map(json.loads, result.stdout.splitlines())
    }
    stored = {("action", a["kind"], a["dedup_key"], a["status"]) for a in store.actions()} | {
        ("alert", "alert", a["dedup_key"], a["status"]) for a in store.alerts()
    }
    assert replayed == stored
    assert ("action", "reorder", "reorder/plant1/FLT-HYD10", "open") in replayed
    assert "1 dead letters" in result.stderr


def test_a_receipt_after_the_daemon_was_killed_closes_the_reorder_it_opened(
    agent: AgentProcess, store: Store, publisher: Publisher
) -> None:
    publisher.send(STOCK, {"on_hand": 12})
    (opened,) = poll(lambda: store.actions("open"), 5.0, "an open reorder")
    agent.kill()  # SIGKILL: nothing but the database survives
    agent.start()
    assert agent.wait_for("reorders_loaded", timeout=15, count=2)["open"] == 1
    agent.wait_for("mqtt_subscribed", timeout=15, count=2)
    publisher.send(STOCK, {"on_hand": 11})  # still counts the open reorder: no second one
    receipt = "factory/plant1/receipt/BRG-6204"
    publisher.send(receipt, {"quantity": 140, "reference": "DN-1"})
    (closed,) = poll(lambda: store.actions("done"), 5.0, "the reorder closed by its receipt")
    assert (closed["id"], closed["params"]["received"], closed["closed_by"]) == (
        opened["id"],
        140,
        "receipt",
    )
    assert len(store.actions()) == 1


def test_a_reorder_cancelled_by_hand_stops_counting_as_on_order(
    broker: Mosquitto, store: Store, publisher: Publisher, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=f"agent-{tmp_path.name}",
        extra="[inventory]\nreorder_sync_s = 0.2\n",
    )
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    try:
        agent.wait_for("mqtt_subscribed", timeout=15)
        publisher.send(STOCK, {"on_hand": 12})
        (first,) = poll(lambda: store.actions("open"), 5.0, "an open reorder")
        seen = len(agent.events)
        store.transition("action", first["id"], "cancel", "buyer", at=first["created_at"])
        poll(
            lambda: [
                e
                for e in agent.events[seen:]
                if e.get("event") == "reorders_seeded" and e.get("open") == 0
            ],
            5.0,
            "the daemon re-reading the open reorders",
        )
        publisher.send(STOCK, {"on_hand": 11})
        (second,) = poll(lambda: store.actions("open"), 5.0, "a new reorder")
        assert second["id"] != first["id"]
    finally:
        agent.kill()


def test_a_work_order_done_over_mqtt_reaches_the_machine_fact(
    agent: AgentProcess, store: Store, publisher: Publisher
) -> None:
    publisher.send(PRESS, {"state": "down", "fault": "E17"})
    (order,) = poll(lambda: store.actions("open"), 5.0, "the repair work order")
    command = {"command": "done", "id": order["id"], "by": "anna"}
    publisher.send("factory/plant1/agent/command", command)
    closed = agent.wait_for("work_order_closed", timeout=5)
    assert (closed["machine"], closed["service"], closed["id"]) == ("press-01", False, order["id"])
    assert store.find("action", order["id"])["status"] == "done"  # type: ignore[index]
