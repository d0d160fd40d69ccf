"""Averages and trends go on across a restart: the metric windows refill from the readings
table (issue 17 item 2), on a real agent process and broker."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.model import Fact
from agent.store import readings
from agent.store.repository import Store
from agent.world.history import Reading
from tests.support.agent_process import AgentProcess, write_config
from tests.support.live import PRESS, Publisher, poll
from tests.support.mosquitto import Mosquitto

HISTORY = "\n[history]\nenabled = true\n"  # off by default


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/agent.db")
    yield opened
    opened.close()


def press(store: Store) -> Fact | None:
    return next((f for f in store.facts() if f.subject == "press-01"), None)


def test_the_average_right_after_a_restart_is_the_one_before(
    broker: Mosquitto, store: Store, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-history",
        extra=HISTORY,
    )
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    agent.wait_for("mqtt_subscribed", timeout=30)
    publisher = Publisher(broker)
    start = datetime.now(UTC) - timedelta(minutes=5)  # mid-window: 5 of the 10 minutes
    values = [60.0, 64.0, 68.0, 72.0, 76.0]
    try:
        for minute, value in enumerate(values):
            at = (start + timedelta(minutes=minute)).isoformat()
            publisher.send(PRESS, {"state": "running", "temp_c": value, "ts": at})
        before = poll(
            lambda: (f := press(store)) and f.fields.get("temp_c_avg") == 68.0 and f,
            10,
            "the average of five readings",
        )
        saved = readings.series(
            store.engine, "machine", "plant1", ["press-01"], start - timedelta(minutes=1)
        )
        assert sum(r.count for r in saved if r.metric == "temp_c") == 5
        assert agent.stop(signal.SIGTERM) == 0
        agent.start()
        refilled = agent.wait_for("metric_windows_refilled", timeout=30, count=2)
        assert refilled["readings"] >= 5
        agent.wait_for("mqtt_subscribed", timeout=30, count=2)
        # One reading equal to the mean: the average stays as it was, not this one reading's
        # alone (with empty windows that would be 68 too: then a reading of 80 tells them apart).
        now = datetime.now(UTC)
        publisher.send(PRESS, {"temp_c": 68.0, "ts": now.isoformat()})
        poll(
            lambda: (f := press(store)) and f.updated_at >= now - timedelta(seconds=1),
            10,
            "the reading after the restart",
        )
        after = press(store)
        assert after is not None and after.fields["temp_c_avg"] == before.fields["temp_c_avg"]
        publisher.send(PRESS, {"temp_c": 80.0, "ts": (now + timedelta(seconds=1)).isoformat()})
        moved = poll(
            lambda: (f := press(store)) and f.fields.get("temp_c") == 80.0 and f,
            10,
            "the second reading after the restart",
        )
    finally:
        publisher.close()
        agent.kill()
    assert moved.fields["temp_c_avg"] == round((5 * 68 + 68 + 80) / 7, 4)  # not 74, not 80
    assert float(moved.fields["temp_c_trend"]) > 0  # the rise goes on, not restarted empty


def test_readings_older_than_the_retention_are_pruned_at_start(
    broker: Mosquitto, store: Store, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    kept, old = now - timedelta(days=1), now - timedelta(days=3)
    with store.engine.begin() as connection:
        readings.write(
            connection,
            [
                Reading("machine", "plant1", "press-01", "temp_c", at, 1, 1, 1, 1, 1, at)
                for at in (old, kept)
            ],
        )
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-history-prune",
        extra=f"{HISTORY}retention_days = 2\n",
    )
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    try:
        pruned = agent.wait_for("readings_pruned", timeout=30)
    finally:
        agent.kill()
    assert pruned["deleted"] == 1
    left = readings.series(store.engine, "machine", "plant1", ["press-01"], old)
    assert [r.bucket for r in left] == [kept]


def test_with_history_off_by_default_no_readings_are_written(
    broker: Mosquitto, store: Store, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-history-off",
    )
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    publisher = Publisher(broker)
    start = datetime.now(UTC) - timedelta(minutes=1)
    try:
        agent.wait_for("mqtt_subscribed", timeout=30)
        publisher.send(PRESS, {"state": "running", "temp_c": 61.0, "ts": start.isoformat()})
        poll(lambda: press(store), 10, "the reading stored as a fact")
    finally:
        publisher.close()
        agent.kill()
    since = start - timedelta(minutes=2)  # the reading's bucket starts before it
    assert readings.series(store.engine, "machine", "plant1", ["press-01"], since) == []
    events = {e.get("event") for e in agent.events}
    assert "metric_windows_refilled" not in events and "readings_pruned" not in events
