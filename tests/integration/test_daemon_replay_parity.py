"""One recorded shift through the daemon (a real broker, the plant's clock) and through `replay`:
the same decisions, field by field, with ticks, receipts and people's commands in the stream."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.app.daemon import Daemon
from agent.app.plantclock import PlantClock
from agent.app.policy import Policy, load_policy
from agent.app.replay import replay_with
from agent.config import Settings, load_settings
from agent.store.repository import Store
from tests.integration.test_cli import cli
from tests.support.agent_process import write_config
from tests.support.live import poll, publish_burst
from tests.support.mosquitto import Mosquitto

# Three runs of eight plant days with a tick every 5 minutes (~2,400 ticks each) on a loaded
# machine: well over the default 120 s hang guard.
pytestmark = pytest.mark.timeout(600)

START = "2026-11-02T06:00:00+00:00"
COMMAND = "factory/plant1/agent/command"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text().splitlines() if text.strip()]


def write(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    return path


def rows(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every decision row, oldest first, every column."""
    return {"actions": list(reversed(store.actions())), "alerts": list(reversed(store.alerts()))}


@pytest.fixture(scope="module")
def shift(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight days of 1,000 messages (machines, stock counts, receipts) with commands put in
    after the decisions they name: an alert acknowledged, a work order done, one refused."""
    folder = tmp_path_factory.mktemp("shift")
    plain = folder / "plain.jsonl"
    result = cli(
        "simulate", "--offline", "--record", str(plain), "--messages", "1000",
        "--speed", "14400", "--rate", "20", "--start", START, "--seed", "5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    entries = lines(plain)
    with Store.open("sqlite://") as store:
        replay_with(plain, load_policy(settings_for(folder)), store, settings_for(folder))
        alerts, actions = store.alerts(), store.actions()
    work_order = next(a for a in reversed(actions) if a["kind"] == "work_order")
    alert = next(a for a in reversed(alerts) if a["status"] == "firing")

    def command(after: datetime, payload: dict[str, Any]) -> None:
        index = next(i for i, e in enumerate(entries) if datetime.fromisoformat(e["ts"]) > after)
        ts = entries[index]["ts"]
        entries.insert(index, {"ts": ts, "topic": COMMAND, "payload": {**payload, "ts": ts}})

    command(alert["first_seen"], {"command": "ack", "id": alert["id"], "by": "ana"})
    command(work_order["created_at"], {"command": "done", "id": work_order["id"], "by": "bo"})
    command(work_order["created_at"], {"command": "resolve", "id": 999, "by": "bo"})
    topics = {entry["topic"].split("/")[2] for entry in entries}
    assert {"machine", "stock", "receipt", "agent"} <= topics
    return write(folder / "shift.jsonl", entries)


def settings_for(folder: Path, port: int = 1883) -> Settings:
    config = write_config(
        folder,
        port=port,
        database_url=f"sqlite:///{folder}/agent.db",
        client_id=f"agent-{folder.name}",
        # no wall-clock work that could tell the daemon from replay: no store resync, no reload
        extra="[inventory]\nreorder_sync_s = 1000000\n",
    )
    settings = load_settings(config, environ={})
    return settings.model_copy(
        update={"rules": settings.rules.model_copy(update={"watch": False, "tick_s": 300.0})}
    )


@pytest.fixture
def daemon_store(shift: Path, broker: Mosquitto, tmp_path: Path) -> Iterator[Store]:
    settings = settings_for(tmp_path, broker.port)
    entries = lines(shift)
    store = Store.open(settings.database.url)
    daemon = Daemon(
        settings,
        load_policy(settings),
        store,
        clock=PlantClock(datetime.fromisoformat(entries[0]["ts"])),
    )
    thread = threading.Thread(target=daemon.run, name="daemon")
    thread.start()
    try:
        assert daemon.source.wait_connected(15.0), "the daemon did not subscribe"
        messages = [(e["topic"], json.dumps(e["payload"]).encode()) for e in entries]
        publish_burst(broker, messages, client_id="shift-publisher")
        poll(lambda: daemon._acked >= len(entries), 240.0, "every message acknowledged")
        yield store
    finally:
        daemon.stop()
        thread.join(timeout=30)
        store.close()


def test_a_recorded_shift_decides_the_same_through_the_daemon_and_replay(
    shift: Path, daemon_store: Store, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    policy: Policy = load_policy(settings)
    with Store.open("sqlite://") as store:
        result = replay_with(shift, policy, store, settings)
        replayed = rows(store)
        replayed_dead = [d["reason"] for d in store.dead_letters()]
    daemon = rows(daemon_store)
    assert len(replayed["actions"]) >= 5 and len(replayed["alerts"]) >= 5
    assert {r["status"] for r in replayed["alerts"]} >= {"acknowledged"}
    assert "done" in {r["status"] for r in replayed["actions"] if r["kind"] == "work_order"}
    assert sum(r["count"] > 1 for r in replayed["alerts"] + replayed["actions"]) >= 1
    for table in ("actions", "alerts"):
        assert len(daemon[table]) == len(replayed[table]), table
        for got, want in zip(daemon[table], replayed[table], strict=True):
            assert got == want, f"{table} {want['id']}"
    assert [d["reason"] for d in daemon_store.dead_letters()] == replayed_dead
    assert result.dead_letters == len(replayed_dead) == 1
    created = len(replayed["actions"]) + len(replayed["alerts"])
    print(f"shift: {result.messages} messages, {created} decisions, the same in both")
