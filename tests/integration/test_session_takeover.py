"""Two agents with one MQTT client id, on a real Mosquitto: the broker hands the session back
and forth many times; the agent raises one alarm (a warning log and one message on
`{prefix}/{site}/agent/alerts`) naming the client id, not one per take-over."""

from __future__ import annotations

import functools
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from structlog.testing import capture_logs

from agent.adapters.alarm import alarm_topic, raise_alarm
from agent.adapters.mqtt import MqttSource
from tests.support.agent_process import AgentProcess, write_config
from tests.support.mosquitto import Mosquitto

DEADLINE_S = 20.0
TAKE_OVERS = 12
ALARMS = alarm_topic("factory", "s1")


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def alarms_seen(broker: Mosquitto) -> Iterator[queue.Queue[dict[str, Any]]]:
    yield from _alarms_seen(broker, ALARMS)


def _alarms_seen(broker: Mosquitto, topic: str) -> Iterator[queue.Queue[dict[str, Any]]]:
    """Every message on the agent's alarm topic, as an operator's dashboard would get it."""
    seen: queue.Queue[dict[str, Any]] = queue.Queue()
    subscribed = threading.Event()
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="operator",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, message: seen.put(json.loads(message.payload))
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert subscribed.wait(DEADLINE_S), broker.log_tail()
    yield seen
    client.disconnect()
    client.loop_stop()


@contextmanager
def plain_publisher(broker: Mosquitto) -> Iterator[paho.Client]:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="end-of-test",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()  # after the queued QoS 1 publish is written
        client.loop_stop()


def source(broker: Mosquitto, client_id: str, **options: Any) -> MqttSource:
    settings: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "client_id": client_id,
        "subscriptions": ["factory/+/stock/#"],
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.2,
    }
    made = MqttSource(**(settings | options))
    made.start()
    return made


def test_two_agents_with_one_client_id_raise_one_alarm_not_one_per_take_over(
    broker: Mosquitto, alarms_seen: queue.Queue[dict[str, Any]]
) -> None:
    outgoing = source(broker, "agent-out", subscriptions=[])
    assert outgoing.wait_connected(DEADLINE_S), broker.log_tail()
    alarm = functools.partial(raise_alarm, outgoing.publish, ALARMS)
    with capture_logs() as logs:
        agent = source(broker, "line-3", alarm=alarm)
        assert agent.wait_connected(DEADLINE_S), broker.log_tail()
        # the second agent, configured with the same id, raises its alarms its own way
        twin_alarms: list[bytes] = []
        twin_alarm = functools.partial(raise_alarm, lambda _t, body: twin_alarms.append(body), "")
        twin = source(broker, "line-3", alarm=twin_alarm)
        try:

            def drops() -> int:
                return sum(e["event"] == "mqtt_disconnected" and not e["stopping"] for e in logs)

            # both reconnect at once, each connection taking the session from the other
            assert wait_until(lambda: drops() >= 2 * TAKE_OVERS), (drops(), broker.log_tail())
            fought = drops()
            twin.stop()
            agent.stop()
            # Published after the alarms on the same connection, QoS 1: it arrives after them all.
            outgoing.publish(ALARMS, b'{"event": "end-of-test"}')
            received: list[dict[str, Any]] = []
            while not received or received[-1]["event"] != "end-of-test":
                received.append(alarms_seen.get(timeout=DEADLINE_S))
        finally:
            twin.stop()
            agent.stop()
            outgoing.stop()
    assert fought >= 2 * TAKE_OVERS  # a fight of many take-overs ...
    assert [e["event"] for e in received] == ["mqtt_session_taken_over", "end-of-test"]
    first = received[0]  # ... and one alarm
    assert first["event"] == "mqtt_session_taken_over"
    assert first["client_id"] == "line-3"
    assert (
        first["hint"] == "two agents share client id 'line-3': give each its own [mqtt] client_id"
    )
    assert len(twin_alarms) == 1  # the other agent: one too
    warnings = [e for e in logs if e["event"] == "mqtt_session_taken_over"]
    assert len(warnings) == 2, warnings  # one per agent
    assert {(e["log_level"], e["client_id"], e["alarm"]) for e in warnings} == {
        ("warning", "line-3", True)
    }


def test_two_agent_processes_with_one_client_id_each_raise_one_alarm(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """The daemon's wiring: each agent warns once and publishes one alarm on its alarm topic;
    its publishing connection (`{client_id}-out`), taken over as well, adds no second one."""
    agents = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        config = write_config(
            directory,
            port=broker.port,
            database_url=f"sqlite:///{directory}/agent.db",
            client_id="plant-agent",
        )
        agents.append(AgentProcess(config, directory))
    alarms = _alarms_seen(broker, "factory/+/agent/alerts")
    seen = next(alarms)
    try:
        for agent in agents:
            agent.start()
        for agent in agents:
            agent.wait_for("mqtt_session_taken_over", timeout=DEADLINE_S)
        for agent in agents:  # the fight goes on ...
            agent.wait_for("mqtt_disconnected", timeout=DEADLINE_S, count=TAKE_OVERS)
        received: list[dict[str, Any]] = []
        while len(received) < 2:
            received.append(seen.get(timeout=DEADLINE_S))
        codes = [agent.stop() for agent in agents]
        # Whatever the agents published reached the broker before they stopped: a message sent
        # now comes after it.
        with plain_publisher(broker) as publisher:
            publisher.publish("factory/s1/agent/alerts", b'{"event": "end-of-test"}', qos=1)
        while received[-1]["event"] != "end-of-test":
            received.append(seen.get(timeout=DEADLINE_S))
    finally:
        for agent in agents:
            agent.kill()
        next(alarms, None)
    assert codes == [0, 0]
    for agent in agents:  # ... and each agent said it once
        (warning,) = [
            e
            for e in agent.events
            if e.get("event") == "mqtt_session_taken_over" and e.get("level") == "warning"
        ]
        assert warning["client_id"] == "plant-agent" and warning["alarm"] is True
        assert "give each its own [mqtt] client_id" in warning["hint"]
    assert [e["event"] for e in received] == ["mqtt_session_taken_over"] * 2 + ["end-of-test"]
    assert {e["client_id"] for e in received[:2]} == {"plant-agent"}
