"""`simulate --shape`: the same simulated plant as bare numbers per topic, nested JSON and
Sparkplug B. Each shape read through its example mapping (config/inputs.examples/) is the same
inputs as the built-in scheme; on a real broker and a real agent, the same decisions."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.ingest.decode import decode_all
from agent.ingest.mapping_load import parse_inputs
from agent.ingest.topics import TopicMap
from agent.model import Message
from agent.simulator.factory import Factory
from agent.simulator.shapes import SHAPES, Shaper
from agent.store.repository import Store
from agent.world.masterdata import load_masterdata
from tests.integration.test_cli import cli
from tests.integration.test_input_mappings import RULES, _decisions
from tests.support.agent_process import REPO, AgentProcess, write_config
from tests.support.live import poll
from tests.support.mosquitto import Mosquitto

EXAMPLES = REPO / "config/inputs.examples"
START = datetime(2026, 11, 2, 6, tzinfo=UTC)


def _inputs(shape: str) -> TopicMap:
    if shape == "builtin":
        return TopicMap("factory")
    path = EXAMPLES / f"{shape}.yaml"
    return TopicMap("factory", parse_inputs(path.read_text(encoding="utf-8"), str(path)))


def _readings(shape: str, reports: int) -> list[tuple[str, str, str, dict[str, Any], datetime]]:
    """What the agent decodes from `reports` reports of the plant (seed 5) in `shape`; the
    partial readings of one report (bare: a topic per field) merged into one."""
    masterdata = load_masterdata(REPO / "config/items.yaml", REPO / "config/machines.yaml")
    factory = Factory(
        random.Random(5), START, masterdata.machines, masterdata.items, machine_count=3, sku_count=4
    )
    shaper, topics = Shaper(shape), _inputs(shape)  # type: ignore[arg-type]
    out: list[tuple[str, str, str, dict[str, Any], datetime]] = []
    for tick in range(reports):
        now = START + timedelta(seconds=288 * tick)
        for report, payload in factory.step(now):
            merged: dict[str, Any] = {}
            first: Message | None = None
            for topic, body in shaper.messages(report, payload, now):
                for decoded in decode_all(topic, body, now, topics):
                    assert isinstance(decoded, Message), (topic, body, decoded)
                    first = first or decoded
                    merged.update(decoded.fields)
            assert first is not None
            merged.pop("online", None)  # a Sparkplug birth says the device is online
            out.append((first.kind, first.site, first.subject, merged, first.ts))
    return out


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "builtin"])
def test_every_shape_maps_back_to_the_builtin_inputs(shape: str) -> None:
    builtin = _readings("builtin", 1500)
    shaped = _readings(shape, 1500)
    assert {r[0] for r in builtin} == {"telemetry", "stock", "receipt"}
    assert any("fault" in r[3] for r in builtin)
    if shape == "bare":  # no time, and a bare count is on_hand alone (units from master data)
        builtin = [
            (
                k,
                site,
                s,
                {f: v for f, v in fields.items() if f not in ("on_order", "unit", "reference")},
                at,
            )
            for k, site, s, fields, at in builtin
        ]
    assert [r[:4] for r in shaped] == [r[:4] for r in builtin]
    if shape != "bare":
        assert [r[4] for r in shaped] == [r[4] for r in builtin]


def _record(tmp_path: Path, shape: str) -> list[dict[str, Any]]:
    path = tmp_path / f"{shape}.jsonl"
    result = cli(
        "simulate",
        "--offline",
        "--record",
        str(path),
        "--messages",
        "60",
        "--shape",
        shape,
        "--seed",
        "3",
        "--start",
        START.isoformat(),
    )
    assert result.returncode == 0, result.stderr
    assert "simulated 60 messages" in result.stderr
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_offline_record_works_for_every_shape(tmp_path: Path) -> None:
    builtin = _record(tmp_path, "builtin")
    assert len(builtin) == 60
    bare = _record(tmp_path, "bare")
    assert len(bare) > 60 and all(isinstance(e["payload"], int | float) for e in bare)
    nested = _record(tmp_path, "nested")
    assert len(nested) == 60 and nested[0]["topic"].startswith("plant/plant1/")
    spark = _record(tmp_path, "sparkplug")
    kinds = [e["topic"].split("/")[2] for e in spark if e["topic"].startswith("spBv1.0/")]
    assert kinds[0] == "NBIRTH" and kinds.count("DBIRTH") == 3 and "DDATA" in kinds
    assert all(base64.b64decode(e["payload_b64"]) for e in spark if "payload_b64" in e)


# On a real broker: the threshold rules of test_input_mappings, on `on_hand` (a bare count has no
# ERP `on_order`, so `projected` is the agent's own figure there).
LIVE_RULES = RULES.replace("projected <= reorder_point", "on_hand <= reorder_point")
LIVE = ["--seed", "11", "--start", START.isoformat(), "--speed", "60000", "--rate", "200"]
REPORTS = "600"  # 600 reports of 5 simulated minutes: two days and a bit


def _last_reports(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The last report of each subject (offline, the same seed): what the agent holds at the end."""
    path = tmp_path / "expected.jsonl"
    result = cli("simulate", "--offline", "--record", str(path), "--messages", REPORTS, *LIVE)
    assert result.returncode == 0, result.stderr
    last: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        _, _, kind, subject, *_ = entry["topic"].split("/")
        if kind == "machine":
            fields = ("state", "temp_c", "vibration_mm_s", "current_a", "cycles", "scrap")
            last[subject] = {f: entry["payload"][f] for f in fields}
        elif kind == "stock":
            last[subject] = {"on_hand": entry["payload"]["on_hand"]}
    return last


@pytest.fixture
def agents(broker: Mosquitto, tmp_path: Path) -> Iterator[Any]:
    """`start(shape)`: an agent reading the shape's example mapping, with its own database."""
    running: list[AgentProcess] = []

    def start(shape: str) -> tuple[AgentProcess, Store]:
        home = tmp_path / shape
        (home / "rules").mkdir(parents=True)
        (home / "rules/plant.yaml").write_text(LIVE_RULES, encoding="utf-8")
        inputs = EXAMPLES / f"{shape}.yaml" if shape != "builtin" else home / "none.yaml"
        config = write_config(
            home,
            port=broker.port,
            database_url=f"sqlite:///{home}/agent.db",
            client_id=f"agent-{shape}",
            rules=home / "rules",
            extra=f'[ingest]\ninputs_file = "{inputs}"\n',
        )
        agent = AgentProcess(config, cwd=home)
        running.append(agent)
        agent.start()
        agent.wait_for("mqtt_subscribed", timeout=30)
        return agent, Store.open(f"sqlite:///{home}/agent.db")

    yield start
    for agent in running:
        agent.stop()


def _plant_day(broker: Mosquitto, store: Store, shape: str, last: dict[str, Any]) -> Any:
    env = {"AGENT_MQTT__PORT": str(broker.port)}
    result = cli("simulate", "--shape", shape, "--messages", REPORTS, *LIVE, env=env)
    assert result.returncode == 0, result.stderr

    def through() -> bool:
        facts = {fact.subject: fact.fields for fact in store.facts()}
        return all(
            all(facts.get(subject, {}).get(f) == v for f, v in fields.items())
            for subject, fields in last.items()
        )

    poll(through, 60.0, f"the last report of every subject ({shape})", every_s=0.2)
    return _decisions(store)


@pytest.mark.parametrize("shape", ["bare", "nested", "sparkplug"])
def test_a_simulated_plant_makes_the_same_decisions_in_every_shape(
    broker: Mosquitto, agents: Any, tmp_path: Path, shape: str
) -> None:
    last = _last_reports(tmp_path)
    builtin_agent, builtin_store = agents("builtin")
    expected = _plant_day(broker, builtin_store, "builtin", last)
    builtin_agent.stop()
    alerts, actions = expected
    assert {a[0] for a in alerts} >= {"hot", "down", "low"}
    assert {a[0] for a in actions} == {"reorder", "work_order"}

    _, store = agents(shape)
    got = _plant_day(broker, store, shape, last)
    assert store.dead_letters() == []
    assert got == expected
