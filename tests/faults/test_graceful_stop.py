"""SIGTERM while the database is unavailable: the agent stops within `daemon.stop_timeout_s`
with exit code 0, leaves the batch unacknowledged, and processes it after the restart.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.store.db import SQLITE_BUSY_TIMEOUT_MS
from agent.store.repository import Store
from tests.faults.ledger import Sender, wait_for
from tests.faults.test_delivery_under_faults import LOCK_FOR, start_agent
from tests.support.mosquitto import Mosquitto

SQLITE_BUSY_TIMEOUT_S = SQLITE_BUSY_TIMEOUT_MS / 1000


def test_sigterm_during_a_database_outage_exits_0_in_time_and_loses_nothing(
    broker: Mosquitto, counted_rules: Path, tmp_path: Path
) -> None:
    agent = start_agent(tmp_path, broker, counted_rules, extra="[daemon]\nstop_timeout_s = 5\n")
    agent.wait_for("mqtt_subscribed", timeout=30)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCK_FOR, str(tmp_path / "agent.db"), "15"],
        stdout=subprocess.PIPE,
        text=True,
    )
    sender = Sender(broker)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        sender.send(1)
        agent.wait_for("store_failed", timeout=20)
        started = time.monotonic()
        # The signal is handled once the ingest thread returns from SQLite, which may be waiting
        # out its 5 s busy timeout on the locked file: the bound is stop_timeout_s plus that.
        assert agent.stop(signal.SIGTERM, timeout=15) == 0
        assert time.monotonic() - started < 5 + SQLITE_BUSY_TIMEOUT_S
        locker.kill()
        locker.wait(10)
        agent.start()
        with Store.open(f"sqlite:///{tmp_path}/agent.db") as store:
            keys = wait_for(lambda: [a["dedup_key"] for a in store.alerts()], 30, "the alert")
            assert keys == ["counted/plant1/F-00001"]
    finally:
        sender.close()
        agent.kill()
        locker.kill()
