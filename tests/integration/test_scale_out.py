"""Two agents on the same partition by mistake, one broker, one PostgreSQL: no action opens twice.

Both receive every message and both decide; the database's unique open-key index lets one open
each action and turns the other's attempt into a repeat (count + 1).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agent.store.repository import Store
from tests.support.agent_process import AgentProcess, write_config
from tests.support.databases import database_url
from tests.support.live import Publisher, poll
from tests.support.mosquitto import Mosquitto

SKUS = ("BRG-6204", "OIL-HLP46", "STL-2MM", "BLT-A42")
MACHINES = ("press-01", "cnc-02", "weld-03")
ROUNDS = 25


@pytest.mark.postgres
def test_two_agents_on_one_partition_never_open_an_action_twice(
    broker: Mosquitto, tmp_path: Path
) -> None:
    with database_url("postgresql", tmp_path) as url:
        Store.open(url).close()  # migrate once, so both start on a ready schema
        agents: list[AgentProcess] = []
        try:
            for name in ("east", "west"):
                directory = tmp_path / name
                directory.mkdir()
                config = write_config(
                    directory, port=broker.port, database_url=url, client_id=f"agent-{name}"
                )
                agent = AgentProcess(config, cwd=directory)
                agent.start()
                agents.append(agent)
            for agent in agents:
                agent.wait_for("mqtt_subscribed", timeout=20)

            publisher = Publisher(broker)
            try:
                for round_ in range(ROUNDS):
                    for sku in SKUS:
                        publisher.send(f"factory/plant1/stock/{sku}", {"on_hand": round_ % 3})
                    for machine in MACHINES:
                        payload = {"state": "down", "fault": "E-STOP", "temp_c": 99.0}
                        publisher.send(f"factory/plant1/machine/{machine}/telemetry", payload)
            finally:
                publisher.close()

            store = Store.open(url)
            try:
                # Each agent sees every message: a down machine's work order is asked for
                # 2 x ROUNDS times in all (an open reorder counts as on order: asked once each).
                def settled() -> list[dict[str, object]]:
                    rows = store.actions()
                    orders = [r for r in rows if r["kind"] == "work_order"]
                    total = sum(int(r["count"]) for r in orders)  # type: ignore[call-overload]
                    return rows if total >= 2 * ROUNDS * len(MACHINES) else []

                rows = poll(settled, 60, "both agents' decisions stored")
                alerts = store.alerts()
            finally:
                store.close()
            keys = Counter(str(row["dedup_key"]) for row in rows)
            assert keys and max(keys.values()) == 1, keys
            assert {row["kind"] for row in rows} == {"reorder", "work_order"}
            assert {r["subject"] for r in rows if r["kind"] == "reorder"} == set(SKUS)
            # Alerts that resolve and fire again are episodes (rows linked by previous_id); at
            # most one of them is open per key, and no episode was opened by both agents.
            open_keys = Counter(
                str(row["dedup_key"])
                for row in alerts
                if row["status"] in ("firing", "acknowledged")
            )
            assert max(open_keys.values()) == 1, open_keys
            episodes = Counter((str(row["dedup_key"]), row["previous_id"]) for row in alerts)
            assert max(episodes.values()) == 1, episodes
            for agent in agents:  # both really worked, and neither crashed on the other's rows
                assert agent.process is not None and agent.process.poll() is None
                handled = {"reorder_opened", "decision_repeated"}
                assert any(e.get("event") in handled for e in agent.events), agent.tail()
        finally:
            for agent in agents:
                agent.stop()


@pytest.mark.postgres
def test_agents_on_their_own_sites_each_decide_for_their_own_site(
    broker: Mosquitto, tmp_path: Path
) -> None:
    with database_url("postgresql", tmp_path) as url:
        agents: dict[str, AgentProcess] = {}
        try:
            for site in ("plant1", "plant2"):
                directory = tmp_path / site
                directory.mkdir()
                config = write_config(
                    directory, port=broker.port, database_url=url, client_id=f"agent-{site}"
                )
                text = config.read_text().replace("[mqtt]\n", f'[mqtt]\nsites = "{site}"\n')
                config.write_text(text)
                agents[site] = AgentProcess(config, cwd=directory)
                agents[site].start()
            for agent in agents.values():
                agent.wait_for("mqtt_subscribed", timeout=20)
            publisher = Publisher(broker)
            try:
                for site in ("plant1", "plant2"):
                    publisher.send(f"factory/{site}/stock/BRG-6204", {"on_hand": 3})
            finally:
                publisher.close()
            for site, agent in agents.items():
                opened = agent.wait_for("reorder_opened", timeout=20)
                assert f"/{site}/" in opened["key"]
            store = Store.open(url)
            try:
                rows = poll(lambda: len(store.actions()) == 2 and store.actions(), 10, "both")
            finally:
                store.close()
            assert sorted(row["site"] for row in rows) == ["plant1", "plant2"]
            for site, agent in agents.items():  # neither saw the other's message
                other = "plant2" if site == "plant1" else "plant1"
                assert not any(other in str(e.get("key", "")) for e in agent.events)
        finally:
            for agent in agents.values():
                agent.stop()
