"""Talking to a live agent from a test: publish like a gateway, wait for an effect with a deadline.

Shared by the integration and fault tests (no pytest imports: benchmarks may use it too).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho

from tests.support.mosquitto import Mosquitto

STOCK = "factory/plant1/stock/BRG-6204"
PRESS = "factory/plant1/machine/press-01/telemetry"


def poll(check: Callable[[], Any], timeout: float, what: str, every_s: float = 0.02) -> Any:
    """Poll until `check()` is truthy or the deadline passes (no sleeping as synchronisation)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {result!r})")
        time.sleep(every_s)


class Publisher:
    """A QoS 1 publisher that waits for the broker's PUBACK of every message."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-publisher")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload: Any) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, raw, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publish_burst(
    broker: Mosquitto,
    messages: Iterable[tuple[str, bytes]],
    client_id: str,
    window: int = 500,
    stall_s: float = 30.0,
) -> None:
    """Publish at QoS 1 as fast as the broker takes them and return once it has acknowledged
    every one. At most `window` messages are unacknowledged: paho's own queue beyond its
    in-flight window can stall when fed from another thread, so that window is never filled."""
    slots = threading.BoundedSemaphore(window)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(window)
    client.on_publish = lambda *_args: slots.release()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            assert slots.acquire(timeout=stall_s), "the broker stopped acknowledging"
            client.publish(topic, payload, qos=1)
        for _ in range(window):  # the whole window back: every message acknowledged
            assert slots.acquire(timeout=stall_s), "the broker did not acknowledge the last"
    finally:
        client.loop_stop()
        client.disconnect()
