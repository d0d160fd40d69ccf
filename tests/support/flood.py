"""A burst of stock messages at a running agent, with the agent's memory sampled meanwhile.

Shared by the flood test and `bench/flood.py`. RSS is read from /proc (Linux), for the agent
process and its engine worker, every 50 ms until every message is committed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.agent_process import AgentProcess
from tests.support.live import publish_burst
from tests.support.mosquitto import Mosquitto


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


@dataclass(frozen=True)
class FloodResult:
    messages: int
    publish_s: float
    drain_s: float
    rss_before_mib: float
    rss_peak_mib: float
    worker_peak_mib: float

    def __str__(self) -> str:
        return (
            f"{self.messages} messages published in {self.publish_s:.1f} s, all committed after "
            f"{self.drain_s:.1f} s; agent RSS {self.rss_before_mib:.0f} MiB before, peak "
            f"{self.rss_peak_mib:.0f} MiB (+{self.rss_peak_mib - self.rss_before_mib:.0f}); "
            f"engine worker peak {self.worker_peak_mib:.0f} MiB"
        )


def flood(
    agent: AgentProcess,
    broker: Mosquitto,
    messages: int,
    committed: int,
    skus: int = 1000,
    timeout_s: float = 600,
) -> FloodResult:
    """Publish `messages` QoS 1 stock messages as fast as the broker takes them; wait until the
    agent says it acknowledged `committed` messages in all (its `batch_acked` debug events)."""
    assert agent.process is not None
    pid = agent.process.pid
    worker = [e for e in agent.events if e.get("event") == "engine_worker_started"][-1]["pid"]
    before = rss_mib(pid)
    peak = [before, rss_mib(worker)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_mib(pid))
            peak[1] = max(peak[1], rss_mib(worker))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    burst = (
        (
            f"factory/plant1/stock/FL-{n % skus:05d}",
            json.dumps({"on_hand": 500 + n % 50}).encode(),
        )
        for n in range(messages)
    )
    try:
        publish_burst(broker, burst, client_id="flood-publisher", stall_s=timeout_s)
        published = time.monotonic() - started
        _wait_acked(agent, committed, timeout_s)
        drained = time.monotonic() - started
    finally:
        done.set()
        sampler.join()
    return FloodResult(messages, published, drained, before, peak[0], peak[1])


def _wait_acked(agent: AgentProcess, total: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        acked = [e["total"] for e in agent.events[-50:] if e.get("event") == "batch_acked"]
        if acked and max(acked) >= total:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not {total} messages acknowledged within {timeout_s} s")
        time.sleep(0.1)  # polling the agent's log with a deadline
