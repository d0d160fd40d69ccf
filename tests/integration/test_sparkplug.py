"""Sparkplug B on a real broker and a real agent: an edge node publishing NBIRTH/DBIRTH with
aliases, DDATA by alias and DDEATH makes the same decisions as the same readings in the built-in
scheme; a DDATA the agent cannot resolve makes it ask the node for a rebirth (NCMD)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from agent.ingest import sparkplug_pb as pb
from agent.store.repository import Store
from tests.integration.test_input_mappings import RULES as MAPPING_RULES
from tests.integration.test_input_mappings import _decisions
from tests.support.agent_process import AgentProcess, write_config
from tests.support.live import Publisher, poll
from tests.support.mosquitto import Mosquitto, free_port

RULES = (
    MAPPING_RULES
    + """\
  - id: offline
    when:
      m: kind == "machine" and online == 0
    resolve_when: m.online == 1
    then:
      - alert: {severity: critical, message: "{m.machine} went offline"}
"""
)

INPUTS = """\
inputs:
  - name: line1-edge
    sparkplug: {group: Plant1}
    site: plant1
    fields:
      temp_c: Temperature
      state: {metric: State, map: {0: idle, 1: running, 2: down}}
"""

PRESS = "factory/plant1/machine/press-01/telemetry"
NODE = "spBv1.0/Plant1/{}/edge-1"
DEVICE = "spBv1.0/Plant1/{}/edge-1/press-01"


def _payload(seq: int | None, ms: int, *metrics: dict[str, Any]) -> bytes:
    message: Any = pb.Payload(timestamp=ms)
    if seq is not None:
        message.seq = seq
    for metric in metrics:
        message.metrics.add(**metric)
    return bytes(message.SerializeToString())


def _day(plant: str, now: float) -> list[tuple[str, bytes]]:
    """A press's short day, then it drops off: in the built-in scheme and as an edge node."""
    if plant == "builtin":
        readings: list[dict[str, Any]] = [
            {"state": "running", "temp_c": 70.0, "online": 1, "ts": now},
            {"temp_c": 95.0, "ts": now + 1},
            {"state": "down", "ts": now + 2},
            {"state": "running", "temp_c": 60.0, "ts": now + 3},
            {"online": 0, "ts": now + 4},
        ]
        return [(PRESS, json.dumps(reading).encode()) for reading in readings]
    ms = int(now * 1000)
    temp = {"datatype": pb.DOUBLE}
    state = {"datatype": pb.INT32}
    return [
        (NODE.format("NBIRTH"), _payload(0, ms, {"name": "bdSeq", "long_value": 0})),
        (
            DEVICE.format("DBIRTH"),
            _payload(
                1,
                ms,
                {"name": "Temperature", "alias": 1, "double_value": 70.0, **temp},
                {"name": "State", "alias": 2, "int_value": 1, **state},
                {"name": "Vendor", "alias": 3, "string_value": "ACME", "datatype": pb.STRING},
            ),
        ),
        (DEVICE.format("DDATA"), _payload(2, ms + 1000, {"alias": 1, "double_value": 95.0})),
        (DEVICE.format("DDATA"), _payload(3, ms + 2000, {"alias": 2, "int_value": 2})),
        (
            DEVICE.format("DDATA"),
            _payload(
                4, ms + 3000, {"alias": 2, "int_value": 1}, {"alias": 1, "double_value": 60.0}
            ),
        ),
        (DEVICE.format("DDEATH"), _payload(5, ms + 4000)),
    ]


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture
def agent(broker: Mosquitto, tmp_path: Path, http_port: int) -> Iterator[AgentProcess]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "plant.yaml").write_text(RULES, encoding="utf-8")
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(INPUTS, encoding="utf-8")
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-sparkplug",
        rules=rules,
        extra=f'[ingest]\ninputs_file = "{inputs}"\nunknown_subjects_max = 1000\n'
        f"[http]\nenabled = true\nport = {http_port}\nmax_message_age_s = 0\n",
    )
    running = AgentProcess(config, cwd=tmp_path)
    running.start()
    running.wait_for("mqtt_subscribed", timeout=30)
    yield running
    running.stop()


EXPECTED_ALERTS = [
    ("down", "down/plant1/press-01", "critical", "resolved", "press-01 is down", "press-01"),
    ("hot", "hot/plant1/press-01", "warning", "resolved", "press-01 at 95.0 °C", "press-01"),
    (
        "offline",
        "offline/plant1/press-01",
        "critical",
        "firing",
        "press-01 went offline",
        "press-01",
    ),
]
EXPECTED_ACTIONS = [
    (
        "work_order",
        "down",
        "work_order/plant1/press-01/repair",
        "open",
        "press-01",
        {"task": "repair", "priority": "urgent", "machine": "press-01"},
    ),
]


@pytest.mark.parametrize("plant", ["builtin", "sparkplug"])
def test_an_edge_node_makes_the_same_decisions_as_the_built_in_scheme(
    broker: Mosquitto, store: Store, agent: AgentProcess, plant: str
) -> None:
    publisher = Publisher(broker)
    try:
        for topic, payload in _day(plant, time.time()):
            publisher.send(topic, payload)
    finally:
        publisher.close()
    # The death comes last: once its alert is stored, the day is through.
    poll(lambda: [a for a in store.alerts() if a["rule_id"] == "offline"], 20.0, "offline")
    alerts, actions = _decisions(store)
    assert store.dead_letters() == []
    assert alerts == EXPECTED_ALERTS
    assert actions == EXPECTED_ACTIONS


def _events(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    prefix = 'factory_agent_sparkplug_events_total{event="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def test_data_the_agent_cannot_resolve_or_a_seq_gap_asks_the_node_for_a_rebirth(
    broker: Mosquitto, store: Store, agent: AgentProcess, http_port: int
) -> None:
    requests: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    listener = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="sparkplug-edge")
    listener.on_message = lambda _c, _u, m: requests.append((m.topic, bytes(m.payload)))
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.connect(broker.host, broker.port)
    listener.loop_start()
    try:
        listener.subscribe("spBv1.0/Plant1/NCMD/+", qos=1)
        assert subscribed.wait(5)
        publisher = Publisher(broker)
        ms = int(time.time() * 1000)
        try:  # the agent never saw this node's births: alias 1 means nothing to it
            publisher.send(DEVICE.format("DDATA"), _payload(9, ms, {"alias": 1, "double_value": 1}))
            poll(lambda: requests, 20.0, "a rebirth request")
            publisher.send(NODE.format("NBIRTH"), _payload(0, ms))  # born; then seq 1 is missed
            publisher.send(NODE.format("NDATA"), _payload(2, ms))
        finally:
            publisher.close()
        poll(lambda: len(requests) == 2, 20.0, "a second rebirth request, for the gap")
    finally:
        listener.loop_stop()
        listener.disconnect()
    for topic, payload in requests:
        assert topic == "spBv1.0/Plant1/NCMD/edge-1"
        request: Any = pb.Payload.FromString(payload)
        metrics = [(m.name, m.boolean_value) for m in request.metrics]
        assert metrics == [("Node Control/Rebirth", True)]
    expected = {"unknown_alias": 1.0, "rebirth_requested": 2.0, "seq_gap": 1.0}
    assert poll(lambda: _events(http_port) == expected, 10.0, "counted") is True
    [letter] = poll(store.dead_letters, 10.0, "the dead letter")
    assert letter["reason"] == (
        "input mapping 'line1-edge': alias 1 unknown: no DBIRTH names it (a rebirth is requested)"
    )


def test_inputs_try_reads_a_birth_from_standard_input(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(INPUTS, encoding="utf-8")
    birth = _payload(1, 1772431200000, {"name": "Temperature", "alias": 1, "double_value": 71.5})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    tail = [DEVICE.format("DBIRTH"), "-"]
    tried = subprocess.run(
        [sys.executable, "-m", "agent", "inputs", "try", "--file", str(inputs), "--json", *tail],
        input=birth,
        capture_output=True,
        env={**env, "PYTHONPATH": str(Path(__file__).parents[2])},
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert tried.returncode == 0, tried.stdout + tried.stderr
    shown = json.loads(tried.stdout)
    assert shown == {
        "mapping": "line1-edge",
        "kind": "telemetry",
        "site": "plant1",
        "subject": "press-01",
        "fields": {"temp_c": 71.5, "online": 1},
        "ts": "2026-03-02T06:00:00+00:00",
    }
