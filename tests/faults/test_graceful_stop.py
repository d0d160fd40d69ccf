"""SIGTERM while the database is unavailable: the agent stops within `daemon.stop_timeout_s`
(exit code 0 when the batch in hand gives up in time, 1 when it does not), leaves the batch
unacknowledged, and processes it after the restart.
"""

from __future__ import annotations

import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.store.repository import Store
from tests.faults.ledger import Sender, wait_for
from tests.faults.test_delivery_under_faults import LOCK_FOR, start_agent
from tests.support.live import poll
from tests.support.mosquitto import Mosquitto

# The sleep system calls SQLite's busy handler waits in (usleep): nanosleep, clock_nanosleep.
SLEEP_SYSCALLS = {"x86_64": {"35", "230"}, "aarch64": {"101", "115"}}


def test_sigterm_during_a_database_outage_exits_0_in_time_and_loses_nothing(
    broker: Mosquitto, counted_rules: Path, tmp_path: Path
) -> None:
    # Longer than SQLite's busy timeout: the commit in hand gives up first, and the exit is clean.
    agent = start_agent(tmp_path, broker, counted_rules, extra="[daemon]\nstop_timeout_s = 8\n")
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
        assert agent.stop(signal.SIGTERM, timeout=15) == 0
        assert time.monotonic() - started < 8
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


def main_thread_sleeps_in_c(pid: int) -> bool:
    """Whether the process's main thread is in a sleep system call: for the agent, SQLite
    waiting out its busy timeout (a Python wait would be a futex)."""
    syscall = Path(f"/proc/{pid}/task/{pid}/syscall").read_text().split()
    return bool(syscall) and syscall[0] in SLEEP_SYSCALLS[platform.machine()]


def test_sigterm_while_ingest_sits_in_sqlite_exits_within_stop_timeout(
    broker: Mosquitto, counted_rules: Path, tmp_path: Path
) -> None:
    # Python runs signal handlers on the main thread, which is ingest: while it sat in SQLite's
    # 5 s busy wait, SIGTERM waited too, and stop_timeout_s was not even armed.
    if platform.machine() not in SLEEP_SYSCALLS or not Path("/proc/self/syscall").exists():
        pytest.skip("needs Linux /proc/<pid>/syscall on x86_64 or aarch64")
    agent = start_agent(tmp_path, broker, counted_rules, extra="[daemon]\nstop_timeout_s = 1\n")
    agent.wait_for("mqtt_subscribed", timeout=30)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCK_FOR, str(tmp_path / "agent.db"), "60"],
        stdout=subprocess.PIPE,
        text=True,
    )
    sender = Sender(broker)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        sender.send(1)
        agent.wait_for("store_failed", timeout=20)  # the commit met the lock once; it retries
        assert agent.process is not None
        pid = agent.process.pid
        poll(lambda: main_thread_sleeps_in_c(pid), 5, "ingest in SQLite's busy wait again")
        started = time.monotonic()
        code = agent.stop(signal.SIGTERM, timeout=15)
        took = time.monotonic() - started
        assert took < 1 + 1.0, f"exited {took:.1f} s after SIGTERM"
        assert code == 1  # overdue: the batch is left unacknowledged
        agent.wait_for("agent_stop_overdue", timeout=1)
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
