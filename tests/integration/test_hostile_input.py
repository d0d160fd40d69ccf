"""Hostile input against a real agent (issue 16): a real Mosquitto, the real process, a SQLite file.

Unknown SKUs are accepted up to the cap, the rest are dead letters with their payloads, one alert
says so, the metric counts them, and a restart keeps counting the ones it restored.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from agent.ingest.subjects import ALERT_KEY, SITES_ALERT_KEY
from agent.store.repository import Store
from tests.support.agent_process import AgentProcess, write_config
from tests.support.live import STOCK, Publisher, poll
from tests.support.mosquitto import Mosquitto, free_port


def start_agent(broker: Mosquitto, tmp_path: Path, http_port: int, extra: str = "") -> AgentProcess:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=f"agent-{tmp_path.name}",
        extra=f"\n[http]\nenabled = true\nport = {http_port}\n"
        "\n[ingest]\nunknown_subjects_max = 3\n" + extra,
    )
    process = AgentProcess(config, cwd=tmp_path)
    process.start()
    process.wait_for("mqtt_subscribed", timeout=15)
    return process


def unknown_subjects_metric(
    port: int, name: str = "factory_agent_unknown_subjects"
) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    return None


def test_unknown_skus_over_the_cap_are_dead_letters_with_one_alert_across_a_restart(
    broker: Mosquitto, tmp_path: Path, store: Store, publisher: Publisher
) -> None:
    port = free_port()
    agent = start_agent(broker, tmp_path, port)
    try:
        for i in range(6):
            publisher.send(f"factory/plant1/stock/NEW-{i}", {"on_hand": i})
        publisher.send(STOCK, {"on_hand": 500})  # a SKU in the master data: never capped
        letters = poll(lambda: len(store.dead_letters()) >= 3 and store.dead_letters(), 10, "3")
        assert sorted(letter["topic"] for letter in letters) == [
            f"factory/plant1/stock/NEW-{i}" for i in (3, 4, 5)
        ]
        assert all("ingest.unknown_subjects_max" in letter["reason"] for letter in letters)
        assert sorted(letter["payload"] for letter in letters) == [
            b'{"on_hand": 3}',
            b'{"on_hand": 4}',
            b'{"on_hand": 5}',
        ]
        poll(lambda: unknown_subjects_metric(port) == 3.0, 5, "the metric at 3")
        (alert,) = poll(lambda: [a for a in store.alerts() if a["dedup_key"] == ALERT_KEY], 5, "")
        assert (alert["status"], alert["severity"], alert["count"]) == ("firing", "warning", 1)
        assert agent.stop() == 0
    finally:
        agent.kill()

    again = start_agent(broker, tmp_path, port)
    try:
        publisher.send("factory/plant1/stock/NEW-9", {"on_hand": 9})
        publisher.send("factory/plant1/stock/NEW-0", {"on_hand": 10})  # restored: still updated
        poll(lambda: len(store.dead_letters()) >= 4, 10, "a fourth dead letter")
        assert store.dead_letters()[0]["topic"] == "factory/plant1/stock/NEW-9"
        poll(lambda: unknown_subjects_metric(port) == 3.0, 5, "the metric at 3 after the restart")
        poll(
            lambda: {f.key: f for f in store.facts()}["stock/plant1/NEW-0"].fields["on_hand"] == 10,
            5,
            "NEW-0 updated",
        )
        assert "stock/plant1/NEW-9" not in {fact.key for fact in store.facts()}
        # Still one alert row: the restarted agent raises it again once, as a repeat.
        alerts = [a for a in store.alerts() if a["dedup_key"] == ALERT_KEY]
        assert [a["status"] for a in alerts] == ["firing"]
    finally:
        agent_stopped = again.stop()
        again.kill()
    assert agent_stopped == 0


def test_a_flood_of_site_names_is_capped_with_one_alert_and_the_gauge(
    broker: Mosquitto, tmp_path: Path, store: Store, publisher: Publisher
) -> None:
    port = free_port()
    agent = start_agent(broker, tmp_path, port, extra="sites_max = 2\n")
    try:
        publisher.send(STOCK, {"on_hand": 500})  # plant1
        for i in range(5):  # a SKU in the master data, at sites nobody runs
            publisher.send(f"factory/site-{i}/stock/BRG-6204", {"on_hand": i})
        publisher.send(STOCK, {"on_hand": 400})  # a site in the world goes on
        letters = poll(lambda: len(store.dead_letters()) >= 4 and store.dead_letters(), 10, "4")
        assert sorted(letter["topic"] for letter in letters) == [
            f"factory/site-{i}/stock/BRG-6204" for i in (1, 2, 3, 4)
        ]
        assert all("ingest.sites_max" in letter["reason"] for letter in letters)
        poll(lambda: unknown_subjects_metric(port, "factory_agent_sites") == 2.0, 5, "2 sites")
        (alert,) = poll(
            lambda: [a for a in store.alerts() if a["dedup_key"] == SITES_ALERT_KEY], 5, ""
        )
        assert (alert["status"], alert["count"]) == ("firing", 1)
        poll(
            lambda: (
                {f.key: f for f in store.facts()}["stock/plant1/BRG-6204"].fields["on_hand"] == 400
            ),
            5,
            "plant1 updated",
        )
        assert agent.stop() == 0
    finally:
        agent.kill()
