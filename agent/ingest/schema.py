"""What each message kind may carry, as data: the decoder enforces it, the rule validator reads it.

`ts` is accepted by every kind and handled by the decoder, so it is not listed in the fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from agent.model import MessageKind

FieldType = Literal["number", "integer", "string", "bool"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One payload field: its type, whether it must be present, and the values it may take."""

    type: FieldType
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # inclusive
    exclusive_minimum: float | None = None


MACHINE_STATES: Final = ("running", "idle", "down", "setup", "maintenance")
COMMANDS: Final = ("ack", "resolve", "done", "cancel")

_COUNTER: Final = FieldSpec("number", minimum=0)

SCHEMAS: Final[Mapping[MessageKind, Mapping[str, FieldSpec]]] = MappingProxyType(
    {
        "stock": MappingProxyType(
            {
                "on_hand": FieldSpec("number", required=True),
                "on_order": FieldSpec("number", minimum=0),
                "unit": FieldSpec("string"),
            }
        ),
        "receipt": MappingProxyType(
            {
                "quantity": FieldSpec("number", required=True, exclusive_minimum=0),
                "reference": FieldSpec("string"),
            }
        ),
        "telemetry": MappingProxyType(
            {
                "state": FieldSpec("string", choices=MACHINE_STATES),
                "fault": FieldSpec("string"),
                "cycles": _COUNTER,
                "good": _COUNTER,
                "scrap": _COUNTER,
            }
        ),
        "command": MappingProxyType(
            {
                "command": FieldSpec("string", required=True, choices=COMMANDS),
                "id": FieldSpec("integer", required=True, minimum=1),
                "by": FieldSpec("string", required=True),
                "note": FieldSpec("string"),
                "type": FieldSpec("string", choices=("alert", "action")),
            }
        ),
    }
)

# Kinds whose payload may carry further keys, each a finite number: a telemetry metric.
OPEN_NUMERIC_KINDS: Final[frozenset[MessageKind]] = frozenset({"telemetry"})

# Metrics gateways commonly send; any other metric name is accepted too.
KNOWN_METRICS: Final = (
    "temp_c",
    "vibration_mm_s",
    "current_a",
    "pressure_bar",
    "speed_rpm",
    "power_kw",
    "humidity_pct",
    "flow_l_min",
    "online",  # 1 after a Sparkplug B BIRTH, 0 at once after its DEATH (docs/inputs.md)
)

# A metric name must be usable in a rule expression (an identifier) and must not take the place
# of the subject's identity, which the world state puts into every fact.
METRIC_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
RESERVED_FIELDS: Final = frozenset({"kind", "site", "sku", "machine", "topic", "ts"})
