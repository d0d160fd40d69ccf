"""The daemon as PID 1, as in a container with an exec-form ENTRYPOINT and no `--init`.

The engine worker once took "my parent is init" for "my parent died" and exited at once, so the
image never started. Here the daemon runs as PID 1 of its own PID namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store.repository import Store
from tests.faults.ledger import Sender, wait_for
from tests.support.agent_process import AgentProcess, write_config
from tests.support.mosquitto import Mosquitto

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/agent.db")
    yield opened
    opened.close()


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def namespace_pids(pid: int) -> list[int]:
    """The PID of `pid` in each PID namespace it belongs to, outermost first."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return [int(n) for n in line.split()[1:]]
    raise AssertionError(f"no NSpid line for {pid}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux's unshare is missing")
def test_the_daemon_runs_as_pid_1_and_its_worker_dies_with_it(
    broker: Mosquitto, store: Store, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("a PID namespace needs root here")
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-pid1",
    )
    agent = AgentProcess(config, cwd=tmp_path, prefix=UNSHARE)
    agent.start()
    try:
        agent.wait_for("mqtt_subscribed", timeout=30)
        assert agent.process is not None
        (daemon,) = children(agent.process.pid)
        assert namespace_pids(daemon)[-1] == 1  # PID 1 in its own namespace
        started = agent.wait_for("engine_worker_started", timeout=10)
        (worker,) = [pid for pid in children(daemon) if namespace_pids(pid)[-1] == started["pid"]]

        sender = Sender(broker)
        try:
            sender.client.publish("factory/plant1/stock/BRG-6204", b'{"on_hand": 5}', 1)
            wait_for(lambda: store.actions("open"), 15, "the reorder")
        finally:
            sender.close()
        assert alive(worker)

        os.kill(daemon, signal.SIGKILL)
        wait_for(lambda: not alive(worker), 10, "the engine worker to go with the daemon")
    finally:
        agent.kill()
