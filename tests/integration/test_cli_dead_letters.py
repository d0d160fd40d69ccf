"""`dead-letters list | show | reprocess` on a real SQLite file and a real broker."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from agent.model import Outcome, Rejected
from agent.store.repository import Store
from tests.integration.test_cli import cli
from tests.support.mosquitto import Mosquitto, free_port

RECEIVED = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
LETTERS = [
    Rejected("factory/plant1/stock/BRG-6204", b'{"on_hand": "twelve"}', "on_hand: not a number",
             RECEIVED),
    Rejected("factory/plant1/stock/OIL-HLP46", b"\xff\xfe binary", "not JSON: bad UTF-8",
             RECEIVED + timedelta(minutes=1)),
    Rejected("factory/plant1/machine/CNC-07/telemetry", b'{"temperature": 91}',
             "unknown machine CNC-07 " + "and a long explanation " * 6,
             RECEIVED + timedelta(minutes=2)),
]  # fmt: skip


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Store, dict[str, str]]]:
    url = f"sqlite:///{tmp_path}/agent.db"
    with Store.open(url) as store:
        for letter in LETTERS:  # one by one: ids 1, 2, 3
            store.apply(Outcome([], [letter]))
        yield store, {"AGENT_DATABASE__URL": url}


def test_list_is_a_table_newest_first(database: tuple[Store, dict[str, str]]) -> None:
    _, env = database
    done = cli("dead-letters", "list", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["ID", "RECEIVED", "AGE", "TOPIC", "REASON"]
    assert [text.split()[0] for text in lines[1:]] == ["3", "2", "1"]
    assert lines[3].split()[1:3] == ["2026-03-02", "06:00:00"]
    assert "factory/plant1/stock/BRG-6204" in lines[3] and "on_hand: not a number" in lines[3]
    assert max(len(text) for text in lines) <= 100 and "…" in lines[1]


def test_list_json_has_every_field(database: tuple[Store, dict[str, str]]) -> None:
    _, env = database
    done = cli("dead-letters", "list", "--json", env=env)
    records = [json.loads(text) for text in done.stdout.splitlines()]
    assert [r["id"] for r in records] == [3, 2, 1]
    binary = records[1]
    assert binary["payload"] is None and binary["payload_base64"] == "//4gYmluYXJ5"
    assert records[2]["payload"] == '{"on_hand": "twelve"}'
    assert records[2]["received_at"] == "2026-03-02T06:00:00+00:00"
    assert records[2]["topic"] == "factory/plant1/stock/BRG-6204"


def test_show_prints_the_full_payload_and_reason(database: tuple[Store, dict[str, str]]) -> None:
    _, env = database
    done = cli("dead-letters", "show", "3", env=env)
    assert done.returncode == 0, done.stderr
    assert LETTERS[2].reason in done.stdout
    assert done.stdout.splitlines()[-1] == '{"temperature": 91}'
    binary = cli("dead-letters", "show", "2", env=env)
    assert "not UTF-8" in binary.stdout and binary.stdout.splitlines()[-1].startswith("ff fe 20")
    missing = cli("dead-letters", "show", "9", env=env)
    assert missing.returncode == 1 and "no dead letter with id 9" in missing.stderr


def subscriber(broker: Mosquitto, topic: str) -> tuple[paho.Client, queue.Queue[paho.MQTTMessage]]:
    arrived: queue.Queue[paho.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-dead-letter-watcher")
    client.on_message = lambda _c, _u, message: arrived.put(message)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.subscribe(topic, qos=1)
    assert subscribed.wait(10)
    return client, arrived


def test_reprocess_republishes_the_raw_payload_and_deletes_the_row(
    broker: Mosquitto, database: tuple[Store, dict[str, str]]
) -> None:
    store, env = database
    env = {**env, "AGENT_MQTT__HOST": broker.host, "AGENT_MQTT__PORT": str(broker.port)}
    client, arrived = subscriber(broker, "factory/#")
    try:
        done = cli("dead-letters", "reprocess", "1", "2", env=env)
        assert done.returncode == 0, done.stderr
        got = [arrived.get(timeout=10) for _ in range(2)]
    finally:
        client.loop_stop()
        client.disconnect()
    assert sorted((m.topic, m.payload, m.qos) for m in got) == [
        ("factory/plant1/stock/BRG-6204", b'{"on_hand": "twelve"}', 1),
        ("factory/plant1/stock/OIL-HLP46", b"\xff\xfe binary", 1),
    ]
    assert "re-sent #1 to factory/plant1/stock/BRG-6204 (21 bytes)" in done.stdout
    assert f"re-sent 2 of 2 dead letters to {broker.host}:{broker.port}" in done.stdout
    assert [row["id"] for row in store.dead_letters()] == [3]


def test_reprocess_all_and_the_mistakes(
    broker: Mosquitto, database: tuple[Store, dict[str, str]]
) -> None:
    store, env = database
    env = {**env, "AGENT_MQTT__HOST": broker.host, "AGENT_MQTT__PORT": str(broker.port)}
    unknown = cli("dead-letters", "reprocess", "1", "7", env=env)
    assert unknown.returncode == 1 and "no dead letter with id 7" in unknown.stderr
    neither = cli("dead-letters", "reprocess", env=env)
    assert neither.returncode == 1 and "give IDs or --all" in neither.stdout
    assert len(store.dead_letters()) == 3  # nothing sent, nothing deleted
    done = cli("dead-letters", "reprocess", "--all", env=env)
    assert done.returncode == 0, done.stderr
    assert "re-sent 3 of 3" in done.stdout and store.dead_letters() == []


def test_reprocess_without_a_broker_keeps_the_rows(database: tuple[Store, dict[str, str]]) -> None:
    store, env = database
    port = free_port()
    done = cli("dead-letters", "reprocess", "--all", env={**env, "AGENT_MQTT__PORT": str(port)})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"cannot reach the broker 127.0.0.1:{port}" in done.stderr and "hint:" in done.stderr
    assert len(store.dead_letters()) == 3
