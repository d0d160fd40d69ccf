"""Send numbered QoS 1 messages through faults, and count what the agent stored for them.

`Sender` publishes one stock message per SKU `F-00001`... and counts the broker's acks across
broker restarts; `tally` reads the alerts back and says what was lost and what was doubled.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as paho

from agent.store.repository import Store
from tests.support.live import poll
from tests.support.mosquitto import Mosquitto

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def sku(number: int) -> str:
    return f"F-{number:05d}"


def topic(number: int) -> str:
    return f"factory/plant1/stock/{sku(number)}"


def payload(number: int) -> bytes:
    ts = (START + timedelta(milliseconds=number)).isoformat()
    return json.dumps({"on_hand": number % 7, "ts": ts}).encode()


class Sender:
    """A publisher that survives broker restarts: paho keeps unacknowledged QoS 1 messages and
    sends them again after reconnecting; `acked` counts the broker's PUBACKs."""

    def __init__(self, broker: Mosquitto, client_id: str = "fault-sender") -> None:
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
        )
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(0.1, 0.5)
        self._acked: set[int] = set()
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self._acked.add(mid)

    def send(self, number: int) -> None:
        self.client.publish(topic(number), payload(number), qos=1)

    @property
    def acked(self) -> int:
        with self._lock:
            return len(self._acked)

    def wait_acked(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.acked < count and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the ack counter with a deadline
        return self.acked

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass(frozen=True)
class Tally:
    sent: int
    expected: int
    found: int
    lost: int
    doubled: int

    def __str__(self) -> str:
        return (
            f"sent={self.sent} expected={self.expected} found={self.found} "
            f"lost={self.lost} doubled={self.doubled}"
        )


def tally(store: Store, sent: int, numbers: range) -> Tally:
    """Every expected alert once: a key with two rows, or a count above 1, is doubled."""
    rows = Counter[str]()
    counts = Counter[str]()
    for alert in store.alerts():
        rows[alert["dedup_key"]] += 1
        counts[alert["dedup_key"]] += alert["count"]
    expected = {f"counted/plant1/{sku(n)}" for n in numbers}
    found = expected & set(rows)
    doubled = sum(1 for key in found if rows[key] > 1 or counts[key] > 1)
    return Tally(sent, len(expected), len(found), len(expected - found), doubled)


def wait_for(check: Any, timeout: float, what: str) -> Any:
    """Poll the database with a deadline (every 0.1 s: it is shared with the agent)."""
    return poll(check, timeout, what, every_s=0.1)
