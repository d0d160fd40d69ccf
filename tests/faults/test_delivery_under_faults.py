"""Nothing lost, nothing doubled: 10k QoS 1 messages while the daemon is SIGKILLed 5 times and
the broker restarted twice; every message must yield its one decision exactly once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store.repository import Store
from tests.faults.ledger import Sender, sku, tally, wait_for
from tests.support.agent_process import AgentProcess, write_config
from tests.support.mosquitto import Mosquitto

MESSAGES = 10_000
RATE_PER_S = 500


def start_agent(tmp_path: Path, broker: Mosquitto, rules: Path, extra: str = "") -> AgentProcess:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-faults",
        rules=rules,
        extra=extra,
    )
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    return agent


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/agent.db")
    yield opened
    opened.close()


def publish_paced(sender: Sender, numbers: range, faults: dict[int, object]) -> None:
    """Publish at about RATE_PER_S, running `faults[n]()` just before message n."""
    started = time.monotonic()
    for index, number in enumerate(numbers):
        fault = faults.get(number)
        if fault is not None:
            fault()  # type: ignore[operator]
        sender.send(number)
        ahead = index / RATE_PER_S - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)  # pacing the publisher, not synchronising


def finish(agent: AgentProcess, sender: Sender, store: Store, last: int) -> None:
    """A last message after all others were acked by the broker: when its decision is stored,
    everything before it has been delivered and committed."""
    sender.send(last)
    wait_for(
        lambda: any(a["dedup_key"].endswith(sku(last)) for a in store.alerts()),
        90,
        "the closing message's decision",
    )
    assert agent.stop(signal.SIGTERM) == 0


def test_10k_messages_through_5_agent_kills_and_2_broker_restarts(
    broker: Mosquitto, counted_rules: Path, store: Store, tmp_path: Path
) -> None:
    agent = start_agent(tmp_path, broker, counted_rules)
    agent.wait_for("mqtt_subscribed", timeout=30)
    sender = Sender(broker)  # (an agent left behind by a failure is killed at exit)
    kills = 0

    def kill_agent() -> None:
        nonlocal kills
        agent.kill()
        kills += 1
        agent.start()

    faults: dict[int, object] = {n: kill_agent for n in (1_200, 2_900, 4_700, 6_300, 8_600)} | {
        n: broker.restart for n in (3_800, 7_500)
    }
    try:
        publish_paced(sender, range(1, MESSAGES + 1), faults)
        sent = sender.wait_acked(MESSAGES, timeout=60)
        finish(agent, sender, store, MESSAGES + 1)
    finally:
        sender.close()
        agent.kill()
    counts = tally(store, sent, range(1, MESSAGES + 1))
    print(f"\nfaults: {kills} agent SIGKILLs, 2 broker restarts; {counts}")
    assert kills == 5
    assert counts.sent == MESSAGES
    assert (counts.lost, counts.doubled) == (0, 0), str(counts)
    assert len(store.dead_letters()) == 0


# Only rules over several facts run in the engine worker (one-fact rules are matched in the
# daemon): a join whose stock side every message passes puts each message through the worker.
# No machine reports, so it never fires and the counted alerts stay one per SKU.
THROUGH_THE_WORKER = """\
  - id: counted-join
    description: A join the fault suite's stock messages reach the engine worker through.
    when:
      stock: kind == "stock" and on_hand >= 0
      m: kind == "machine" and state == "down"
    then:
      - alert:
          message: "{stock.sku} with {m.machine} down"
"""


def test_engine_worker_killed_mid_run_loses_and_doubles_nothing(
    broker: Mosquitto, counted_rules: Path, store: Store, tmp_path: Path
) -> None:
    messages = 3_000
    counted_rules.write_text(counted_rules.read_text() + THROUGH_THE_WORKER, encoding="utf-8")
    agent = start_agent(tmp_path, broker, counted_rules)
    agent.wait_for("mqtt_subscribed", timeout=30)
    sender = Sender(broker)  # (an agent left behind by a failure is killed at exit)
    killed: list[int] = []

    def kill_worker() -> None:
        started = [e for e in agent.events if e.get("event") == "engine_worker_started"]
        pid = started[-1]["pid"]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    try:
        publish_paced(sender, range(1, messages + 1), {800: kill_worker, 2_000: kill_worker})
        sent = sender.wait_acked(messages, timeout=60)
        finish(agent, sender, store, messages + 1)
    finally:
        sender.close()
        agent.kill()
    counts = tally(store, sent, range(1, messages + 1))
    print(f"\nfaults: engine worker SIGKILLed {len(killed)} times; {counts}")
    lost = [e for e in agent.events if e.get("event") == "engine_worker_lost"]
    assert len(lost) == 2 and all("SIGKILL" in e["reason"] for e in lost)
    assert (counts.lost, counts.doubled) == (0, 0), str(counts)
    assert len(store.dead_letters()) == 0


LOCK_FOR = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


def test_sqlite_locked_by_another_process_pauses_ingest_and_resumes(
    broker: Mosquitto, counted_rules: Path, store: Store, tmp_path: Path
) -> None:
    # A 5 s lock is waited out by SQLite's 5 s busy timeout; an 8 s one makes the commit fail,
    # so the agent retries with back-off and raises (then clears) an alarm over MQTT.
    messages = 2_500
    agent = start_agent(tmp_path, broker, counted_rules)
    agent.wait_for("mqtt_subscribed", timeout=30)
    sender = Sender(broker)  # (an agent left behind by a failure is killed at exit)
    alarms = Sender(broker, client_id="fault-alarm-listener")
    received: list[bytes] = []
    alarms.client.on_message = lambda client, userdata, message: received.append(message.payload)
    alarms.client.subscribe("factory/+/agent/alerts", qos=1)
    lockers: list[subprocess.Popen[str]] = []

    def lock_database(seconds: float) -> None:
        database = str(tmp_path / "agent.db")
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCK_FOR, database, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        lockers.append(locker)

    faults = {500: lambda: lock_database(5), 1_500: lambda: lock_database(8)}
    try:
        publish_paced(sender, range(1, messages + 1), faults)
        sent = sender.wait_acked(messages, timeout=60)
        finish(agent, sender, store, messages + 1)
    finally:
        sender.close()
        alarms.close()
        agent.kill()
        for locker in lockers:
            locker.wait(30)
    counts = tally(store, sent, range(1, messages + 1))
    print(f"\nfaults: SQLite locked 5 s, then 8 s, by another process; {counts}")
    failures = [e for e in agent.events if e.get("event") == "store_failed"]
    assert failures and "locked" in failures[0]["error"]
    assert any(b"store_unavailable" in body for body in received)
    assert any(b"store_recovered" in body for body in received)
    assert (counts.lost, counts.doubled) == (0, 0), str(counts)
    assert sqlite3.connect(tmp_path / "agent.db").execute("PRAGMA integrity_check").fetchone() == (
        "ok",
    )
