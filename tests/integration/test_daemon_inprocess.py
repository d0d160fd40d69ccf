"""The daemon built in this process on a real broker and a real SQLite file, to read what a
subprocess hides: its metrics registry and its log events (issue 14 item 5)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.app.daemon import Daemon
from agent.app.policy import load_policy
from agent.config import load_settings
from agent.errors import StoreError, TransitionError
from agent.store.repository import Store
from tests.support.agent_process import write_config
from tests.support.live import Publisher, poll
from tests.support.mosquitto import Mosquitto

TELEMETRY = "factory/plant1/machine/press-01/telemetry"
COMMAND = "factory/plant1/agent/command"


@pytest.fixture
def daemon(tmp_path: Path, broker: Mosquitto, store: Store) -> Iterator[Daemon]:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-inprocess",
    )
    # The engine in this process (no worker to start) and no file watcher thread.
    settings = load_settings(config, {"AGENT_RULES__ENGINE": "inline", "AGENT_RULES__WATCH": "0"})
    built = Daemon(settings, load_policy(settings), store)
    yield built
    built.pipeline.core.close()


def queue_depth(daemon: Daemon) -> float | None:
    return daemon.metrics.registry.get_sample_value("factory_agent_queue_depth")


def test_the_queue_depth_gauge_counts_messages_waiting_for_ingest(
    daemon: Daemon, publisher: Publisher
) -> None:
    source = daemon.source
    source.start()
    try:
        assert source.wait_connected(10), "the daemon's source never subscribed"
        assert queue_depth(daemon) == 0
        for temp in range(5):
            publisher.send(TELEMETRY, {"temp_c": 20 + temp})

        # Nobody takes them: all five wait in the ingest queue, and /metrics says so.
        poll(lambda: queue_depth(daemon) == 5, 10, "a queue depth of 5")

        taken = source.get_batch(3, timeout=1)
        assert (len(taken), queue_depth(daemon)) == (3, 2)
        source.ack(taken)
        source.ack(source.get_batch(10, timeout=1))
        assert queue_depth(daemon) == 0
    finally:
        source.stop()


def test_a_refused_command_is_a_dead_letter_at_once_not_a_store_outage(
    daemon: Daemon, store: Store, publisher: Publisher
) -> None:
    assert not issubclass(TransitionError, StoreError)
    runner = threading.Thread(target=daemon.run, name="daemon")
    with capture_logs() as events:
        runner.start()
        try:
            poll(lambda: daemon.source.connected, 10, "the daemon subscribed")
            publisher.send(COMMAND, {"command": "ack", "id": 99, "by": "ann"})
            # Retried as an outage, the command would never become a dead letter.
            letters = poll(store.dead_letters, 10, "the refused command's dead letter")
        finally:
            daemon.stop()
            runner.join(15)
    assert not runner.is_alive()

    assert [letter["reason"] for letter in letters] == [
        "command refused: alert 99 does not exist; cannot ack"
    ]
    seen = [event["event"] for event in events]
    assert "command_refused" in seen
    assert not {"store_failed", "store_unavailable"} & set(seen)
