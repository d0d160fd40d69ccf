"""The simulated plant's reports in the shapes plants publish (docs/inputs.md): the built-in
scheme, a bare number per topic, nested JSON with millisecond times and codes, Sparkplug B.

Pure: a report is the built-in (topic, payload) the factory makes; out come the MQTT messages
(topic, bytes) that carry the same readings in the chosen shape. The example mappings in
config/inputs.examples/ take them back to the same inputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal

from agent.ingest import sparkplug_pb as pb

Shape = Literal["builtin", "bare", "nested", "sparkplug"]
SHAPES: Final[tuple[Shape, ...]] = ("builtin", "bare", "nested", "sparkplug")

# The codes of config/inputs.examples/*.yaml (`map:`): states and faults as a PLC reports them.
STATE_CODES: Final = {"idle": 0, "running": 1, "down": 2, "setup": 3, "maintenance": 4}
FAULT_CODES: Final = {
    "HYD-PRESSURE": 1,
    "E-STOP": 2,
    "SPINDLE-OVERLOAD": 3,
    "SENSOR-LOST": 4,
    "BEARING-FAILURE": 5,
}
# Telemetry numbers, in the order the factory reports them: the Sparkplug metric names.
METRICS: Final = ("temp_c", "vibration_mm_s", "current_a", "cycles", "good", "scrap")
SPARKPLUG_NAMES: Final = {
    "state": "State",
    "fault": "Fault",
    "temp_c": "Temperature",
    "vibration_mm_s": "Vibration",
    "current_a": "Motor/Current",
    "cycles": "Counts/Cycles",
    "good": "Counts/Good",
    "scrap": "Counts/Scrap",
}
EDGE: Final = "edge-1"

Message = tuple[str, bytes]


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _ms(now: datetime) -> int:
    return round(now.timestamp() * 1000)


class Shaper:
    """Turns built-in reports into one shape's messages; Sparkplug keeps its births and seq."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self._seq = 0
        self._born: set[str] = set()  # devices whose DBIRTH went out
        self._node_born = False

    def messages(self, topic: str, payload: Mapping[str, Any], now: datetime) -> list[Message]:
        if self.shape == "builtin":
            return [(topic, _json(payload))]
        # {prefix}/{site}/machine/{machine}/telemetry, {prefix}/{site}/stock|receipt/{sku}
        _, site, kind, subject, *_ = topic.split("/")
        if self.shape == "bare":
            return _bare(site, kind, subject, payload)
        if self.shape == "nested" or kind != "machine":
            # Sparkplug carries the machines; the plant's stores report in nested JSON.
            return _nested(site, kind, subject, payload, now)
        return self._sparkplug(site, subject, payload, now)

    # -- Sparkplug B ----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    def _sparkplug(
        self, site: str, machine: str, payload: Mapping[str, Any], now: datetime
    ) -> list[Message]:
        out: list[Message] = []
        if not self._node_born:
            self._node_born = True
            birth: Any = pb.Payload(timestamp=_ms(now), seq=self._next_seq())
            birth.metrics.add(name="bdSeq", datatype=pb.INT64, long_value=0)
            out.append((f"spBv1.0/{site}/NBIRTH/{EDGE}", bytes(birth.SerializeToString())))
        device = f"spBv1.0/{site}/{{}}/{EDGE}/{machine}"
        born = machine in self._born
        message: Any = pb.Payload(timestamp=_ms(now), seq=self._next_seq())
        for alias, field in enumerate(SPARKPLUG_NAMES, start=1):
            value = payload.get(field)
            if value is None and born:
                continue  # DATA carries what changed; a birth names every metric
            metric = message.metrics.add(alias=alias)
            if not born:
                metric.name = SPARKPLUG_NAMES[field]
            _set_value(metric, field, value)
        self._born.add(machine)
        out.append(
            (device.format("DDATA" if born else "DBIRTH"), bytes(message.SerializeToString()))
        )
        return out


def _set_value(metric: Any, field: str, value: object) -> None:
    if field in ("state", "fault"):
        codes = STATE_CODES if field == "state" else FAULT_CODES
        metric.datatype = pb.INT32
        if value is None:
            metric.is_null = True
        else:
            metric.int_value = codes[str(value)]
    elif field in ("cycles", "good", "scrap"):
        metric.datatype = pb.UINT64
        if value is None:
            metric.is_null = True
        else:
            metric.long_value = int(value)  # type: ignore[call-overload]
    else:
        metric.datatype = pb.DOUBLE
        if value is None:
            metric.is_null = True
        else:
            metric.double_value = float(value)  # type: ignore[arg-type]


def _bare(site: str, kind: str, subject: str, payload: Mapping[str, Any]) -> list[Message]:
    """A number per topic, no time (the agent dates it on arrival); states and faults as codes.
    A stock count is `on_hand` alone: what is on order is the agent's own reorders then."""
    if kind == "stock":
        return [(f"{site}/stock/{subject}", _json(payload["on_hand"]))]
    if kind == "receipt":
        return [(f"{site}/receipt/{subject}", _json(payload["quantity"]))]
    out = [(f"{site}/{subject}/state", _json(STATE_CODES[payload["state"]]))]
    if "fault" in payload:
        out.append((f"{site}/{subject}/fault", _json(FAULT_CODES[payload["fault"]])))
    out.extend((f"{site}/{subject}/{name}", _json(payload[name])) for name in METRICS)
    return out


def _nested(
    site: str, kind: str, subject: str, payload: Mapping[str, Any], now: datetime
) -> list[Message]:
    """A gateway's JSON: values under paths, the time in epoch milliseconds, codes for states."""
    t = _ms(now)
    if kind == "stock":
        body = {"on_hand": payload["on_hand"], "on_order": payload["on_order"]}
        return [
            (f"plant/{site}/wms/{subject}", _json({"t": t, "bin": body, "uom": payload["unit"]}))
        ]
    if kind == "receipt":
        receipt = {"t": t, "goods_in": {"qty": payload["quantity"], "po": payload["reference"]}}
        return [(f"plant/{site}/wms/{subject}/receipt", _json(receipt))]
    status: dict[str, int] = {"code": STATE_CODES[payload["state"]]}
    if "fault" in payload:
        status["fault"] = FAULT_CODES[payload["fault"]]
    data = {name: payload[name] for name in METRICS}
    return [
        (f"plant/{site}/line/1/{subject}/status", _json({"t": t, "status": status, "data": data}))
    ]
