"""Memory under a flood: a 200k-message QoS 1 burst at the agent (default settings, engine in its
worker process), with the agent's and the worker's RSS sampled every 50 ms.

    python bench/flood.py [--messages 200000] [--queue-size 10000]

Starts a private Mosquitto and the agent as a subprocess (SQLite file), publishes as fast as the
broker takes the messages, waits until the agent acknowledged them all, prints one line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.agent_process import AgentProcess, write_config  # noqa: E402
from tests.support.flood import flood  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--queue-size", type=int, default=10_000)
    parser.add_argument("--skus", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "mosquitto") as broker:
        directory = Path(tmp)
        config = write_config(
            directory,
            port=broker.port,
            database_url=f"sqlite:///{directory}/agent.db",
            client_id="agent-flood",
        )
        text = config.read_text().replace(
            "[mqtt]\n", f"[mqtt]\nqueue_size = {args.queue_size}\n", 1
        )
        config.write_text(text)
        agent = AgentProcess(config, cwd=directory)
        agent.start()
        try:
            agent.wait_for("mqtt_subscribed", timeout=30)
            result = flood(agent, broker, args.messages, args.messages, args.skus, 1800)
        finally:
            agent.kill()
    rate = result.messages / result.drain_s
    print(f"flood (queue_size {args.queue_size}): {result}; {rate:,.0f} messages/s committed")


if __name__ == "__main__":
    main()
