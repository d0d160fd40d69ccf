"""Floods: a burst far larger than the hand-over queue must not grow the agent's memory beyond
the bound the queue sets; the broker holds the rest (flow control by unacknowledged messages).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.agent_process import AgentProcess, write_config
from tests.support.flood import flood
from tests.support.mosquitto import Mosquitto

BURST = 30_000
QUEUE = 1_000
# Bound: queue + one batch of ~150-byte messages (~1 KiB each as Python objects), plus the
# world state for 1,000 SKUs and allocator slack; measured +10..25 MiB. Unbounded growth
# (30k messages held at once) would show as several times more.
BOUND_MIB = 60


def test_a_30k_burst_stays_within_the_memory_bound(broker: Mosquitto, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-flood",
    )
    text = config.read_text().replace("[mqtt]\n", f"[mqtt]\nqueue_size = {QUEUE}\n", 1)
    config.write_text(text)
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    try:
        agent.wait_for("mqtt_subscribed", timeout=30)
        result = flood(agent, broker, BURST, committed=BURST, timeout_s=150)
    finally:
        agent.kill()
    print(f"\nflood: {result}")
    assert result.rss_peak_mib - result.rss_before_mib < BOUND_MIB, str(result)
