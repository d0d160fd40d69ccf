"""The benchmark's factory: master data, rules of the shipped shapes, and a message stream.

Deterministic for a seed. 1% of messages are probes (a machine's `probe` metric set to 1): the
`bench-probe` rule fires on them, stores an alert and publishes the payload's send time back.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import yaml

SITE = "plant1"
PREFIX = "factory"
PROBE_TOPIC = "bench/probe"
PROBE_EVERY = 100  # 1% of messages produce a decision
LINES = 20
SUPPLIERS = 40


def sku_name(i: int) -> str:
    return f"S-{i:06d}"


def machine_name(i: int) -> str:
    return f"m-{i:05d}"


def write_masterdata(directory: Path, skus: int, machines: int) -> tuple[Path, Path]:
    """items.yaml and machines.yaml with `skus` and `machines` entries of the sample's shape."""
    items = {
        sku_name(i): {
            "supplier": f"SUP-{i % SUPPLIERS}",
            "unit": "pcs",
            "reorder_point": 40 + i % 20,
            "safety_stock": 15,
            "lead_time_days": 5,
            "reorder_qty": 100,
            "max_level": 200,
            "unit_cost": 4.8,
            "pack_size": 10,
        }
        for i in range(skus)
    }
    machine_rows = {
        machine_name(i): {
            "line": f"L{i % LINES}",
            "max_temp_c": 80,
            "max_vibration_mm_s": 7.1,
            "max_idle_minutes": 20,
            "cost_per_hour": 120,
            "max_probe": 0.5,  # declares the benchmark's metrics `probe` and `sent_us`
            "min_sent_us": 0,
            "spare_parts": [sku_name((i * 7) % max(skus, 1)), sku_name((i * 7 + 1) % max(skus, 1))],
        }
        for i in range(machines)
    }
    items_path, machines_path = directory / "items.yaml", directory / "machines.yaml"
    items_path.write_text(yaml.safe_dump({"items": items}, sort_keys=False), encoding="utf-8")
    machines_path.write_text(
        yaml.safe_dump({"machines": machine_rows}, sort_keys=False), encoding="utf-8"
    )
    return items_path, machines_path


PROBE_RULE = {
    "id": "bench-probe",
    "description": "The benchmark's probe: a decision for 1% of messages, published back.",
    "when": {"m": 'kind == "machine" and probe > max_probe'},
    "then": [
        {"alert": {"severity": "warning", "message": "probe on {m.machine}"}},
        {"publish": {"topic": PROBE_TOPIC + "/{m.machine}", "payload": {"sent": "m.sent_us"}}},
    ],
}


def _rule(n: int) -> dict[str, object]:
    """Rule number n, cycling through the shapes of the shipped rules (thresholds per line,
    reorder points per supplier, states held for a while, a join of a machine and its spares)."""
    shape, k = n % 6, n // 6
    line, supplier = f"L{k % LINES}", f"SUP-{k % SUPPLIERS}"
    if shape == 0:
        return {
            "id": f"hot-{n}",
            "description": "A machine of a line running hotter than its limit.",
            "when": {"m": f'kind == "machine" and line == "{line}" and temp_c > max_temp_c'},
            "then": [
                {"work_order": {"task": "check cooling", "priority": "high"}},
                {"alert": {"severity": "warning", "message": "{m.machine} at {m.temp_c:.1f} °C"}},
            ],
        }
    if shape == 1:
        return {
            "id": f"vibration-{n}",
            "description": "Vibration over the limit, sustained.",
            "when": {
                "m": f'kind == "machine" and line == "{line}" '
                "and vibration_mm_s > max_vibration_mm_s"
            },
            "for": "10m",
            "resolve_when": "m.vibration_mm_s < 0.8 * m.max_vibration_mm_s",
            "then": [{"alert": {"severity": "warning", "message": "{m.machine} vibrates"}}],
        }
    if shape == 2:
        return {
            "id": f"reorder-{n}",
            "description": "Stock of a supplier's item at its reorder point.",
            "when": {
                "s": f'kind == "stock" and supplier == "{supplier}" and projected <= reorder_point'
            },
            "then": [{"reorder": {"quantity": "s.reorder_qty"}}],
        }
    if shape == 3:
        return {
            "id": f"below-safety-{n}",
            "description": "Stock below its safety stock.",
            "when": {
                "s": f'kind == "stock" and supplier == "{supplier}" and on_hand < safety_stock'
            },
            "then": [{"alert": {"severity": "critical", "message": "{s.sku} below safety"}}],
        }
    if shape == 4:
        return {
            "id": f"down-{n}",
            "description": "A machine of a line reports itself down.",
            "when": {"m": f'kind == "machine" and line == "{line}" and state == "down"'},
            "then": [{"work_order": {"task": "repair", "priority": "urgent"}}],
        }
    return {
        "id": f"no-spare-{n}",
        "description": "A machine is down and one of its spare parts is out of stock.",
        "when": {
            "m": f'kind == "machine" and line == "{line}" and state == "down"',
            "s": 'kind == "stock" and on_hand < 1 and sku in m.spare_parts',
        },
        "then": [{"reorder": {"sku": "s.sku", "quantity": "max(2, s.reorder_qty)"}}],
    }


def write_rules(directory: Path, count: int) -> Path:
    """`count` rules: the probe and count-1 of the shapes above."""
    directory.mkdir(parents=True, exist_ok=True)
    rules = [PROBE_RULE, *(_rule(n) for n in range(count - 1))]
    path = directory / "bench.yaml"
    path.write_text(
        yaml.safe_dump({"rules": rules}, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    return directory


class Stream:
    """Message i of the benchmark stream: half stock counts, half telemetry, every 100th a probe.

    Nothing but probes makes a decision: counts stay above reorder points, machines run cool.
    """

    def __init__(
        self, skus: int, machines: int, seed: int = 1, first_probe: int = 0, sweep: bool = False
    ) -> None:
        self.skus, self.machines = skus, machines
        self.rng = random.Random(seed)
        # Probes go round the machines from `first_probe`: a machine is probed again only after
        # every other one, by when telemetry with `probe` 0 has ended its last firing.
        self.probes = first_probe
        self.sweep = sweep  # the first skus + machines messages visit every subject once

    def _subject(self, i: int) -> tuple[bool, int]:
        """(stock?, index) of message i."""
        if self.sweep and i < self.skus + self.machines:
            return (True, i) if i < self.skus else (False, i - self.skus)
        if self.skus and self.rng.random() < 0.5:
            return True, self.rng.randrange(self.skus)
        return False, self.rng.randrange(self.machines)

    def message(self, i: int, sent_us: int) -> tuple[str, bytes]:
        rng = self.rng
        if i % PROBE_EVERY == PROBE_EVERY - 1:
            machine = machine_name(self.probes % self.machines)
            self.probes += 1
            return self._telemetry(machine, sent_us, 1)
        stock, index = self._subject(i)
        if stock:
            on_hand = rng.randint(70, 200)
            return f"{PREFIX}/{SITE}/stock/{sku_name(index)}", b'{"on_hand":%d}' % on_hand
        return self._telemetry(machine_name(index), sent_us, 0)

    def history(self, i: int, times: list[float]) -> tuple[str, bytes]:
        """Message i of the machines' past: each machine once at each of `times` (its `ts`, in
        epoch seconds, ascending), no probes."""
        round_, machine = divmod(i, self.machines)
        topic, payload = self._telemetry(machine_name(machine), 0, 0)
        return topic, payload[:-1] + b',"ts":%.3f}' % times[round_]

    def _telemetry(self, machine: str, sent_us: int, probe: int) -> tuple[str, bytes]:
        temp = 40 + self.rng.random() * 30
        payload = b'{"state":"running","temp_c":%.1f,"vibration_mm_s":%.2f,"probe":%d,"sent_us":%d}'
        return (
            f"{PREFIX}/{SITE}/machine/{machine}/telemetry",
            payload % (temp, 1 + self.rng.random() * 3, probe, sent_us),
        )

    def recording(self, count: int, start_s: float) -> Iterator[str]:
        """JSON lines for `factory-agent replay`, 20 ms of recorded time apart."""
        for i in range(count):
            sent_s = start_s + i * 0.02
            topic, payload = self.message(i, int(sent_s * 1e6))
            ts = sent_s
            yield json.dumps({"ts": ts, "topic": topic, "payload": json.loads(payload)}) + "\n"
