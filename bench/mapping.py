"""Cost of input mappings per message: `decode` of the built-in scheme against mapped shapes.

`PYTHONPATH=. python bench/mapping.py` prints µs/message: the fastest of 7 runs of 20,000, in
CPU time (other work on a busy machine does not count). A second table: the simulated plant
(`simulate --shape`) in each shape through its example mapping (config/inputs.examples/), per
MQTT message and per report of the plant (a bare report is one message per field).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.ingest.decode import decode, decode_all
from agent.ingest.mapping_load import parse_inputs
from agent.ingest.topics import TopicMap
from agent.simulator.factory import Factory
from agent.simulator.shapes import SHAPES, Shaper
from agent.world.masterdata import load_masterdata

REPO = Path(__file__).resolve().parents[1]

RUNS = 7
MESSAGES = 20_000
AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)

INPUTS = """\
inputs:
  - name: press-temperature
    topic: plant1/{machine}/temperature
    kind: telemetry
    site: plant1
    fields:
      temp_c: {scale: 0.5555555555555556, offset: -17.77777777777778}
  - name: press-state
    topic: plant1/{machine}/state
    kind: telemetry
    site: plant1
    fields:
      state: {map: {0: idle, 1: running, 2: down}}
  - name: press-metrics
    topic: plant1/{machine}/{metric}
    kind: telemetry
    site: plant1
    fields:
      "{metric}":
  - name: line-status
    topic: plant/{site}/line/+/{machine}/status
    kind: telemetry
    fields:
      state: {path: status.code, map: {0: idle, 1: running, 2: down}}
      temp_c: data.temp
    ts: {path: t, unit: ms}
  - name: wms-stock
    topic: wms/{site}/bins/{sku}
    kind: stock
    fields:
      on_hand: qty
    ts: {path: at, unit: iso}
  - name: gateway-tags
    topic: gw/{machine}/tags
    kind: telemetry
    site: plant1
    fields:
      temp_c: "values[?name=='temp'].v | [0]"
"""

CASES: list[tuple[str, bool, str, bytes]] = [
    (
        "built-in telemetry, no inputs file",
        False,
        "factory/plant1/machine/press-01/telemetry",
        b'{"state": "running", "temp_c": 71.3, "ts": 1772431200}',
    ),
    (
        "built-in telemetry, 6 mappings tried first",
        True,
        "factory/plant1/machine/press-01/telemetry",
        b'{"state": "running", "temp_c": 71.3, "ts": 1772431200}',
    ),
    ("bare number, °F -> °C (1st mapping)", True, "plant1/press-01/temperature", b"160.3"),
    ("bare number, {metric} level (3rd)", True, "plant1/press-01/speed_rpm", b"1200"),
    (
        "nested JSON, JMESPath x2, code map, ms (4th)",
        True,
        "plant/north/line/3/press-07/status",
        b'{"t": 1772431200500, "status": {"code": 1}, "data": {"temp": 71.3}}',
    ),
    (
        "JSON array, a JMESPath filter (6th)",
        True,
        "gw/press-01/tags",
        b'{"values": [{"name": "rpm", "v": 1200}, {"name": "temp", "v": 71.3}]}',
    ),
]


def best_us(call: Callable[[], object]) -> float:
    costs = []
    for _ in range(RUNS):
        started = time.process_time()
        for _ in range(MESSAGES):
            call()
        costs.append((time.process_time() - started) / MESSAGES * 1e6)
    return min(costs)


@functools.cache
def _masterdata() -> Any:
    return load_masterdata(REPO / "config/items.yaml", REPO / "config/machines.yaml")


def _plant_stream(shape: str, reports: int) -> list[tuple[str, bytes, datetime]]:
    """The simulator's first `reports` reports (seed 1, 3 machines, 4 SKUs) in `shape`."""
    masterdata = _masterdata()
    factory = Factory(
        random.Random(1), AT, masterdata.machines, masterdata.items, machine_count=3, sku_count=4
    )
    shaper = Shaper(shape)  # type: ignore[arg-type]
    out: list[tuple[str, bytes, datetime]] = []
    for tick in range(reports):
        now = AT + timedelta(seconds=180 * tick)
        for report, payload in factory.step(now):
            out.extend((topic, body, now) for topic, body in shaper.messages(report, payload, now))
    return out


def shape_costs(reports: int = 1_000, runs: int = RUNS) -> dict[str, tuple[float, float]]:
    """shape → (µs per MQTT message, µs per report): `decode_all` of the simulated plant through
    the shape's example mapping (the built-in scheme without an inputs file)."""
    costs: dict[str, tuple[float, float]] = {}
    for shape in SHAPES:
        if shape == "builtin":
            topics = TopicMap("factory")
        else:
            path = REPO / "config/inputs.examples" / f"{shape}.yaml"
            topics = TopicMap("factory", parse_inputs(path.read_text(encoding="utf-8"), str(path)))
        stream = _plant_stream(shape, reports)
        best = float("inf")
        for _ in range(runs):
            started = time.process_time()
            for topic, body, now in stream:
                decode_all(topic, body, now, topics)
            best = min(best, time.process_time() - started)
        costs[shape] = (best / len(stream) * 1e6, best / reports * 1e6)
    return costs


def main() -> None:
    mapped = TopicMap("factory", parse_inputs(INPUTS, "bench"))
    plain = TopicMap("factory")
    print(f"{'case':48} µs/message")
    for name, with_inputs, topic, payload in CASES:
        topics = mapped if with_inputs else plain
        decoded = decode(topic, payload, AT, topics)
        assert type(decoded).__name__ == "Message", decoded
        cost = best_us(lambda t=topics, tp=topic, p=payload: decode(tp, p, AT, t))
        print(f"{name:48} {cost:6.2f}")
    print(f"\n{'simulated plant, --shape':48} µs/message  µs/report")
    for shape, (per_message, per_report) in shape_costs().items():
        print(f"{shape:48} {per_message:6.2f}      {per_report:6.2f}")


if __name__ == "__main__":
    main()
