"""Cost of a Sparkplug B message per `decode_all`: DDATA by alias, against the built-in scheme.

`PYTHONPATH=. python bench/sparkplug.py` prints µs/message: the fastest of 7 runs of 20,000, in
CPU time. The seq number is the same in every run, so each message after the first counts a gap
(and queues one rebirth request, replaced each time): the cost of the worst case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.ingest import sparkplug_pb as pb
from agent.ingest.decode import decode_all
from agent.ingest.mapping_load import parse_inputs
from agent.ingest.topics import TopicMap
from agent.simulator.shapes import Shaper
from bench.mapping import REPO, best_us

AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
INPUTS = """\
inputs:
  - name: edge
    sparkplug: {group: Plant1}
    site: plant1
    fields:
      temp_c: Temperature
      state: {metric: State, map: {0: idle, 1: running, 2: down}}
"""
DEVICE = "spBv1.0/Plant1/{}/edge-1/press-01"


def _payload(seq: int, *metrics: dict[str, Any]) -> bytes:
    message: Any = pb.Payload(timestamp=1772431200500, seq=seq)
    for metric in metrics:
        message.metrics.add(**metric)
    return bytes(message.SerializeToString())


def main() -> None:
    topics = TopicMap("factory", parse_inputs(INPUTS, "bench"))
    birth = _payload(
        0,
        {"name": "Temperature", "alias": 1, "datatype": pb.DOUBLE, "double_value": 70.0},
        {"name": "State", "alias": 2, "datatype": pb.INT32, "int_value": 1},
    )
    decode_all(DEVICE.format("DBIRTH"), birth, AT, topics)
    cases = [
        (
            "DDATA, 2 metrics by alias",
            _payload(1, {"alias": 1, "double_value": 71.3}, {"alias": 2, "int_value": 1}),
        ),
        ("DDATA, 1 metric by alias", _payload(1, {"alias": 1, "double_value": 71.3})),
    ]
    builtin = TopicMap("factory")
    line = b'{"state": "running", "temp_c": 71.3, "ts": 1772431200}'
    topic = "factory/plant1/machine/press-01/telemetry"
    print(f"{'case':48} µs/message")
    cost = best_us(lambda: decode_all(topic, line, AT, builtin))
    print(f"{'built-in telemetry, no inputs file':48} {cost:6.2f}")
    for name, raw in cases:
        [decoded] = decode_all(DEVICE.format("DDATA"), raw, AT, topics)
        assert type(decoded).__name__ == "Message", decoded
        cost = best_us(lambda r=raw: decode_all(DEVICE.format("DDATA"), r, AT, topics))
        print(f"{name:48} {cost:6.2f}")
    _simulated()


def _simulated() -> None:
    """A DDATA of `simulate --shape sparkplug`: 7 metrics by alias, 2 through code maps."""
    path = REPO / "config/inputs.examples/sparkplug.yaml"
    topics = TopicMap("factory", parse_inputs(path.read_text(encoding="utf-8"), str(path)))
    shaper = Shaper("sparkplug")
    report = "factory/plant1/machine/press-01/telemetry"
    fields = {"state": "running", "temp_c": 71.3, "vibration_mm_s": 1.2, "current_a": 180.2}
    payload = {**fields, "cycles": 1200, "good": 1190, "scrap": 10}
    for topic, body in shaper.messages(report, payload, AT):  # NBIRTH, DBIRTH
        decode_all(topic, body, AT, topics)
    [(topic, body)] = shaper.messages(report, payload, AT)
    [decoded] = decode_all(topic, body, AT, topics)
    assert type(decoded).__name__ == "Message" and len(decoded.fields) == 7, decoded
    cost = best_us(lambda: decode_all(topic, body, AT, topics))
    print(f"{'DDATA of simulate --shape sparkplug, 7 metrics':48} {cost:6.2f}")


if __name__ == "__main__":
    main()
