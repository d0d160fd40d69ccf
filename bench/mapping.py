"""Cost of input mappings per message: `decode` of the built-in scheme against mapped shapes.

`PYTHONPATH=. python bench/mapping.py` prints µs/message: the fastest of 7 runs of 20,000, in
CPU time (other work on a busy machine does not count).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from agent.ingest.decode import decode
from agent.ingest.mapping_load import parse_inputs
from agent.ingest.topics import TopicMap

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


if __name__ == "__main__":
    main()
