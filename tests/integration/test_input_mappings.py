"""Input mappings on a real broker and a real agent: a plant publishing bare numbers per topic
(Fahrenheit, state codes) and one publishing nested JSON with millisecond times make the same
decisions as the same readings in the built-in scheme; and `inputs check` / `inputs try`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.store.repository import Store
from tests.integration.test_cli import cli
from tests.support.agent_process import AgentProcess, write_config
from tests.support.live import Publisher, poll
from tests.support.mosquitto import Mosquitto

RULES = """\
rules:
  - id: hot
    when:
      m: kind == "machine" and temp_c > max_temp_c
    resolve_when: m.temp_c < m.max_temp_c
    then:
      - alert: {severity: warning, message: "{m.machine} at {m.temp_c:.1f} °C"}
  - id: down
    when:
      m: kind == "machine" and state == "down"
    resolve_when: m.state == "running"
    then:
      - work_order: {task: repair, priority: urgent}
      - alert: {severity: critical, message: "{m.machine} is down"}
  - id: low
    when:
      s: kind == "stock" and projected <= reorder_point
    then:
      - reorder: {sku: s.sku, quantity: s.reorder_qty}
      - alert: {severity: info, message: "{s.sku}: {s.on_hand} left"}
"""

INPUTS = """\
inputs:
  # plant A: a bare number per topic
  - name: bare-temperature
    topic: plantA/{machine}/temperature
    kind: telemetry
    site: plant1
    fields:
      temp_c: {scale: 0.5555555555555556, offset: -17.77777777777778}
  - name: bare-state
    topic: plantA/{machine}/state
    kind: telemetry
    site: plant1
    fields:
      state: {map: {0: idle, 1: running, 2: down}}
  - name: bare-stock
    topic: plantA/stock/{sku}
    kind: stock
    site: plant1
    fields:
      on_hand:
  # plant B: nested JSON, times in milliseconds, state codes
  - name: json-status
    topic: plantB/{site}/line/+/{machine}/status
    kind: telemetry
    fields:
      state: {path: status.code, map: {0: idle, 1: running, 2: down}}
      temp_c: data.temp
    ts: {path: t, unit: ms}
  - name: json-stock
    topic: plantB/{site}/wms/{sku}
    kind: stock
    fields:
      on_hand: bin.qty
    ts: {path: t, unit: ms}
"""

PRESS = "factory/plant1/machine/press-01/telemetry"
STOCK = "factory/plant1/stock/BRG-6204"


def _day(plant: str, now: float) -> list[tuple[str, bytes]]:
    """One short plant day, the same readings in three shapes."""
    ms = int(now * 1000)
    if plant == "builtin":
        readings: list[tuple[str, Any]] = [
            (PRESS, {"state": "running", "temp_c": 70.0, "ts": now}),
            (PRESS, {"temp_c": 95.0, "ts": now + 1}),
            (PRESS, {"state": "down", "ts": now + 2}),
            (PRESS, {"state": "running", "temp_c": 60.0, "ts": now + 3}),
            (STOCK, {"on_hand": 12, "ts": now + 4}),
        ]
    elif plant == "bare":
        readings = [
            ("plantA/press-01/state", 1),
            ("plantA/press-01/temperature", 158.0),
            ("plantA/press-01/temperature", 203.0),
            ("plantA/press-01/state", 2),
            ("plantA/press-01/state", 1),
            ("plantA/press-01/temperature", 140.0),
            ("plantA/stock/BRG-6204", 12),
        ]
    else:
        line = "plantB/plant1/line/2/press-01/status"
        readings = [
            (line, {"t": ms, "status": {"code": 1}, "data": {"temp": 70.0}}),
            (line, {"t": ms + 1000, "data": {"temp": 95.0}}),
            (line, {"t": ms + 2000, "status": {"code": 2}}),
            (line, {"t": ms + 3000, "status": {"code": 1}, "data": {"temp": 60.0}}),
            ("plantB/plant1/wms/BRG-6204", {"t": ms + 4000, "bin": {"qty": 12}}),
        ]
    return [(topic, json.dumps(payload).encode()) for topic, payload in readings]


@pytest.fixture
def agent(broker: Mosquitto, tmp_path: Path) -> Iterator[AgentProcess]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "plant.yaml").write_text(RULES, encoding="utf-8")
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(INPUTS, encoding="utf-8")
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-inputs",
        rules=rules,
        extra=f'[ingest]\ninputs_file = "{inputs}"\nunknown_subjects_max = 1000\n',
    )
    running = AgentProcess(config, cwd=tmp_path)
    running.start()
    running.wait_for("mqtt_subscribed", timeout=30)
    yield running
    running.stop()


def _decisions(store: Store) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    alerts = sorted(
        (a["rule_id"], a["dedup_key"], a["severity"], a["status"], a["message"], a["subject"])
        for a in store.alerts()
    )
    actions = sorted(
        (a["kind"], a["rule_id"], a["dedup_key"], a["status"], a["subject"], a["params"])
        for a in store.actions()
    )
    return alerts, actions


def _run_day(broker: Mosquitto, store: Store, plant: str) -> tuple[list[Any], list[Any]]:
    publisher = Publisher(broker)
    try:
        for topic, payload in _day(plant, time.time()):
            publisher.send(topic, payload)
    finally:
        publisher.close()
    # The stock count comes last: once its reorder is stored, the day is through.
    poll(lambda: [a for a in store.actions() if a["kind"] == "reorder"], 20.0, "the reorder")
    poll(
        lambda: [a for a in store.alerts() if a["rule_id"] == "hot" and a["status"] == "resolved"],
        10.0,
        "the hot alert resolved",
    )
    return _decisions(store)


# What the built-in scheme's plant day decides (the first case below shows it still does).
EXPECTED_ALERTS = [
    ("down", "down/plant1/press-01", "critical", "resolved", "press-01 is down", "press-01"),
    ("hot", "hot/plant1/press-01", "warning", "resolved", "press-01 at 95.0 °C", "press-01"),
    ("low", "low/plant1/BRG-6204", "info", "firing", "BRG-6204: 12 left", "BRG-6204"),
]
REORDER = {
    "sku": "BRG-6204",
    "quantity": 100,
    "priority": "normal",
    "packs": 10,
    "supplier": "Nordlager GmbH",
    "unit": "pcs",
    "unit_cost": 4.8,
    "cost": 480.0,
}
EXPECTED_ACTIONS = [
    ("reorder", "low", "reorder/plant1/BRG-6204", "open", "BRG-6204", REORDER),
    (
        "work_order",
        "down",
        "work_order/plant1/press-01/repair",
        "open",
        "press-01",
        {"task": "repair", "priority": "urgent", "machine": "press-01"},
    ),
]


@pytest.mark.parametrize("plant", ["builtin", "bare", "nested"])
def test_a_plant_day_makes_the_same_decisions_in_every_shape(
    broker: Mosquitto, store: Store, agent: AgentProcess, plant: str
) -> None:
    alerts, actions = _run_day(broker, store, plant)
    assert store.dead_letters() == []
    assert alerts == EXPECTED_ALERTS
    assert actions == EXPECTED_ACTIONS


def test_a_message_that_fails_its_mapping_is_a_dead_letter_naming_it(
    broker: Mosquitto, store: Store, agent: AgentProcess
) -> None:
    publisher = Publisher(broker)
    try:
        publisher.send("plantA/press-01/state", b"7")
        publisher.send("plantB/plant1/line/2/press-01/status", b'{"t": 1772431200, "status": {}}')
    finally:
        publisher.close()
    letters = poll(
        lambda: store.dead_letters() if len(store.dead_letters()) == 2 else [], 20.0, "2"
    )
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons == [
        "input mapping 'bare-state': field 'state': 7 is not in its map (0, 1, 2)",
        "input mapping 'json-status': field 'ts': epoch seconds 1772431.2 are outside "
        "2000-01-01..2100-01-01",
    ]


def test_inputs_check_and_try_on_the_command_line(tmp_path: Path) -> None:
    good = tmp_path / "inputs.yaml"
    good.write_text(INPUTS, encoding="utf-8")
    ok = cli("inputs", "check", str(good), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout == f"ok: 5 input mapping(s) in {good}, then the built-in topic scheme\n"

    bad = tmp_path / "bad.yaml"
    bad.write_text(INPUTS.replace("kind: stock\n    site: plant1", "kind: stok\n    site: plant1"))
    refused = cli("inputs", "check", str(bad), cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        f"{bad}:17: bare-stock: 'kind' must be one of stock, receipt, telemetry, got 'stok'",
        "1 problem(s) found",
    ]

    tried = cli(
        "inputs",
        "try",
        "--file",
        str(good),
        "--json",
        "plantA/press-01/temperature",
        "203",
        cwd=tmp_path,
    )
    assert tried.returncode == 0, tried.stdout + tried.stderr
    shown = json.loads(tried.stdout)
    assert shown["mapping"] == "bare-temperature"
    assert (shown["kind"], shown["site"], shown["subject"]) == ("telemetry", "plant1", "press-01")
    assert shown["fields"]["temp_c"] == pytest.approx(95.0)

    nope = cli("inputs", "try", "--file", str(good), "plantA/press-01/state", "9", cwd=tmp_path)
    assert nope.returncode == 1
    assert nope.stdout == (
        "refused: input mapping 'bare-state': field 'state': 9 is not in its map (0, 1, 2)\n"
    )
    builtin = cli("inputs", "try", "factory/plant1/stock/BRG-6204", '{"on_hand": 3}', cwd=tmp_path)
    assert builtin.returncode == 0 and "mapping:  built-in" in builtin.stdout


def test_an_edit_of_the_inputs_file_is_reloaded_and_a_bad_one_keeps_the_last_good(
    broker: Mosquitto, store: Store, agent: AgentProcess, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs.yaml"
    publisher = Publisher(broker)
    try:
        inputs.write_text(INPUTS.replace("2: down}", "5: down}", 1), encoding="utf-8")
        agent.wait_for("inputs_reloaded", timeout=20)
        publisher.send("plantA/press-01/state", b"5")
        poll(lambda: [a for a in store.alerts() if a["rule_id"] == "down"], 20.0, "down by 5")

        inputs.write_text(
            INPUTS.replace("kind: stock\n    site: plant1", "kind: stok\n    site: plant1")
        )
        refused = agent.wait_for("inputs_reload_refused", timeout=20)
        assert refused["problems"] == [
            f"{inputs}:17: bare-stock: 'kind' must be one of stock, receipt, telemetry, got 'stok'"
        ]
        (alert,) = poll(
            lambda: [a for a in store.alerts() if a["rule_id"] == "inputs-reload"], 20.0, "alert"
        )
        assert alert["status"] == "firing"
        assert f"{inputs}:17: bare-stock:" in alert["message"]
        publisher.send("plantA/press-01/state", b"1")  # the last good mappings still run
        poll(
            lambda: [
                a for a in store.alerts() if a["rule_id"] == "down" and a["status"] == "resolved"
            ],
            20.0,
            "down resolved by 1",
        )

        new_topic = INPUTS.replace("plantA/stock/{sku}", "plantC/stock/{sku}")
        inputs.write_text(new_topic, encoding="utf-8")
        refused = agent.wait_for("inputs_reload_refused", timeout=20, count=2)
        assert (
            "new topic patterns need a restart to be subscribed: plantC/stock/+"
            in (refused["problems"][0])
        )

        inputs.write_text(INPUTS.replace("2: down}", "5: down}", 1), encoding="utf-8")
        poll(
            lambda: [a for a in store.alerts(status="resolved") if a["rule_id"] == "inputs-reload"],
            20.0,
            "the reload alert resolved",
        )
    finally:
        publisher.close()
    assert store.dead_letters() == []
