"""What a broker crash loses: QoS 1 messages the broker acknowledged, queued for the agent's
offline persistent session, then the broker SIGKILLed and restarted. Per persistence config.

    python bench/broker_crash.py [--rate 500] [--before-kill-s 5] [--runs 3]

Prints, per config: messages acknowledged to the publisher, lost after the restart, the loss
window (lost / rate, in seconds of traffic) and the rate the broker acknowledged at (below
`--rate` when saving holds it back).
The configs: the shipped ones (`config/mosquitto.conf`, `deploy/mosquitto/mosquitto.conf`),
Mosquitto's default autosave, and a save on every change (the strongest Mosquitto 2.0 has;
the `persist-sqlite` plugin needs Mosquitto 2.1).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

import paho.mqtt.client as paho

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.mosquitto import Mosquitto  # noqa: E402

TOPIC = "factory/plant1/stock/BENCH"
PERSISTENCE_KEYS = ("autosave_interval", "autosave_on_changes")


def shipped(path: Path) -> list[str]:
    """The persistence lines of a shipped mosquitto.conf."""
    lines = path.read_text().splitlines()
    return [line for line in lines if line.split(" ", 1)[0] in PERSISTENCE_KEYS]


CONFIGS: dict[str, list[str]] = {
    "config/mosquitto.conf (make run)": shipped(REPO / "config/mosquitto.conf"),
    "deploy/mosquitto (compose)": shipped(REPO / "deploy/mosquitto/mosquitto.conf"),
    "Mosquitto default (autosave_interval 1800)": ["autosave_interval 1800"],
    "autosave_on_changes true, autosave_interval 1": [
        "autosave_on_changes true",
        "autosave_interval 1",
    ],
    # A save every 100 changes: at most 100 messages lost whatever the rate.
    "autosave_on_changes true, autosave_interval 100": [
        "autosave_on_changes true",
        "autosave_interval 100",
    ],
}


class Broker(Mosquitto):
    persistence: ClassVar[list[str]] = []

    def _config(self) -> str:
        base = [
            line
            for line in super()._config().splitlines()
            if line.split(" ", 1)[0] not in PERSISTENCE_KEYS
        ]
        return "\n".join(base + self.persistence + [""])


def session(broker: Broker, received: set[int] | None = None) -> paho.Client:
    """The agent's persistent session (MQTT 3.1.1, clean_session False), subscribed at QoS 1."""
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id="bench-agent", clean_session=False
    )
    subscribed = threading.Event()

    def on_connect(c: paho.Client, *_: object) -> None:
        c.subscribe(TOPIC, qos=1)

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        if received is not None:
            received.add(int(message.payload))

    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert subscribed.wait(10), "no SUBACK"
    return client


def one_run(persistence: list[str], rate: float, before_kill_s: float) -> tuple[int, int, float]:
    """(acknowledged, lost after the restart, acknowledgements per second before the kill)."""
    with tempfile.TemporaryDirectory(prefix="broker-crash-") as tmp:
        Broker.persistence = persistence
        broker = Broker(directory=Path(tmp))
        broker.start()
        try:
            agent = session(broker)
            agent.disconnect()
            agent.loop_stop()
            # Which messages the broker acknowledged, read from paho's own per-message state
            # after the kill. (A lock shared by the publishing loop and `on_publish` deadlocked:
            # paho calls `on_publish` holding the lock `publish` takes, and a broker that saves
            # on every change acknowledges in bursts while we publish: the row never printed.)
            publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-gateway")
            publisher.connect(broker.host, broker.port)
            publisher.loop_start()
            infos: list[paho.MQTTMessageInfo] = []
            started = time.monotonic()
            while time.monotonic() - started < before_kill_s:
                infos.append(publisher.publish(TOPIC, str(len(infos)).encode(), qos=1))
                next_at = started + len(infos) / rate
                time.sleep(max(0.0, next_at - time.monotonic()))
            elapsed = time.monotonic() - started
            broker.stop(kill=True)
            publisher.loop_stop()  # PUBACKs sent before the kill are read by now
            publisher.disconnect()
            acked = {n for n, info in enumerate(infos) if info.is_published()}
            broker.start()
            received: set[int] = set()
            agent = session(broker, received)
            quiet_since, seen = time.monotonic(), 0
            while time.monotonic() - quiet_since < 2.0:  # until 2 s without a new message
                time.sleep(0.1)
                if len(received) != seen:
                    seen, quiet_since = len(received), time.monotonic()
            agent.disconnect()
            agent.loop_stop()
            return len(acked), len(acked - received), len(acked) / elapsed
        finally:
            broker.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="messages per second")
    parser.add_argument("--before-kill-s", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="the configs whose name holds this text")
    args = parser.parse_args()
    from tests.support.mosquitto import find_mosquitto

    help_text = subprocess.run([find_mosquitto(), "-h"], capture_output=True, text=True).stdout
    version = re.search(r"mosquitto version ([\d.]+)", help_text)
    print(f"Mosquitto {version[1] if version else '?'}")
    print(f"rate {args.rate:g}/s, SIGKILL after {args.before_kill_s:g} s, {args.runs} runs each")
    print(f"{'config':48} {'acked':>7} {'lost (runs)':>18} {'window s':>9} {'acked/s':>7}")
    for name, persistence in CONFIGS.items():
        if args.only not in name:
            continue
        results = [one_run(persistence, args.rate, args.before_kill_s) for _ in range(args.runs)]
        acked = statistics.median(r[0] for r in results)
        losses = [r[1] for r in results]
        window = statistics.median(losses) / args.rate
        sustained = statistics.median(r[2] for r in results)
        lost = "/".join(str(x) for x in losses)
        print(f"{name:48} {acked:>7.0f} {lost:>18} {window:>9.2f} {sustained:>7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
