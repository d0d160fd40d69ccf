"""Alerts go out while a backlog drains: an agent that comes back to a large backlog publishes the
alerts raised early in it long before it has worked through the rest.

On a connection shared with the subscription, the PUBACK of each publication queued behind the
backlog the broker was sending, the sender waited for it, and every later alert went out only
when the backlog was done (in the benchmark, probes stalled for over a minute). The daemon
publishes over a connection of its own (`<client_id>-out`) for that reason; this test keeps it so.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as paho

from tests.support.agent_process import AgentProcess, write_config
from tests.support.live import publish_burst
from tests.support.mosquitto import Mosquitto

# Drains in about 5 s on 2 cores. Publishing over the subscription's connection, alerts came
# about 1 s late with a 30k backlog, and only at its end with 60k (measured).
BACKLOG = 60_000
# Alerts raised in the first sixth of the backlog. A publication leaves at once even on a shared
# connection; its PUBACK is what waits, and the sender with it, so the alerts after it stall.
EARLY = range(0, 12_500, 2_500)
LAST = BACKLOG - 1  # its publication marks the end: messages are handled in order
SKUS = 200
CLIENT_ID = "agent-backlog"
ANDON = "andon"
ALERTS = "factory/plant1/agent/alerts"
ANDON_RULE = f"""\
rules:
  - id: andon
    description: A machine that reports itself down lights its andon lamp and raises an alert.
    when:
      m: kind == "machine" and state == "down"
    then:
      - publish: {{topic: "{ANDON}/{{m.machine}}", payload: {{fault: m.fault}}}}
      - alert: {{severity: critical, message: "{{m.machine}} is down: {{m.fault}}"}}
"""


def machine(number: int) -> str:
    return f"m-{number:05d}"


def backlog() -> Iterator[tuple[str, bytes]]:
    """Machines down at the EARLY positions and at the LAST; stock counts that decide nothing
    in between."""
    for n in range(BACKLOG):
        if n in EARLY or n == LAST:
            topic = f"factory/plant1/machine/{machine(n)}/telemetry"
            yield topic, b'{"state":"down","fault":"E7"}'
        else:
            yield f"factory/plant1/stock/BL-{n % SKUS:04d}", b'{"on_hand":%d}' % (500 + n % 50)


class Arrivals:
    """When (epoch seconds) each machine's andon publication and alert publication came first."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, str], float] = {}
        self._changed = threading.Condition()

    def on_message(self, _client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        now = time.time()
        if message.topic.startswith(f"{ANDON}/"):
            key = (ANDON, message.topic.split("/")[1])
        else:  # the alert's record; its key ends with the machine
            key = ("alert", str(json.loads(message.payload)["key"]).split("/")[-1])
        with self._changed:
            self.at.setdefault(key, now)
            self._changed.notify_all()

    def wait(self, key: tuple[str, str], timeout: float) -> float:
        with self._changed:
            if not self._changed.wait_for(lambda: key in self.at, timeout):
                raise AssertionError(f"no {key} within {timeout} s; arrived: {sorted(self.at)}")
            return self.at[key]


@contextmanager
def listening(broker: Mosquitto) -> Iterator[Arrivals]:
    """A plant's andon board and alert bridge, subscribed before the agent comes back."""
    arrivals = Arrivals()
    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="andon-board")
    client.on_message = arrivals.on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(broker.host, broker.port)
    client.subscribe([(f"{ANDON}/#", 1), (ALERTS, 1)])
    client.loop_start()
    try:
        assert subscribed.wait(10), "the andon board did not subscribe"
        yield arrivals
    finally:
        client.loop_stop()
        client.disconnect()


def reconnected_at(agent: AgentProcess) -> float:
    """When (epoch seconds, the agent's log) the subscription's connection came back last: the
    broker starts sending the backlog then."""
    connects = [
        e
        for e in agent.events
        if e.get("event") == "mqtt_connected" and e.get("client_id") == CLIENT_ID
    ]
    return datetime.fromisoformat(connects[-1]["timestamp"]).timestamp()


def test_alerts_raised_early_in_a_backlog_go_out_before_half_of_it_is_drained(
    broker: Mosquitto, tmp_path: Path
) -> None:
    rules = tmp_path / "rules" / "andon.yaml"
    rules.parent.mkdir()
    rules.write_text(ANDON_RULE, encoding="utf-8")
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=CLIENT_ID,
        rules=rules,
    )
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    try:
        agent.wait_for("mqtt_subscribed", timeout=30)  # the session and its subscriptions exist
        assert agent.stop(timeout=30) == 0
        publish_burst(broker, backlog(), client_id="backlog-publisher")
        with listening(broker) as arrivals:
            agent.start()
            agent.wait_for("mqtt_subscribed", timeout=30, count=2)
            end = arrivals.wait((ANDON, machine(LAST)), timeout=120)
            early = {
                (kind, machine(n)): arrivals.wait((kind, machine(n)), timeout=10)
                for n in EARLY
                for kind in (ANDON, "alert")
            }
    finally:
        agent.kill()
    back = reconnected_at(agent)
    drained = end - back
    after = {key: round(at - back, 2) for key, at in early.items()}
    print(f"\nbacklog of {BACKLOG:,} drained after {drained:.2f} s; early alerts out after {after}")
    assert drained > 2.0, f"a backlog drained in {drained:.1f} s proves little: make it larger"
    late = {key: seconds for key, seconds in after.items() if seconds >= drained / 2}
    assert not late, f"published only after half of the {drained:.1f} s drain: {late}"
