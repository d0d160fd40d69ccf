"""A noisy plant for the drain benchmark (bench/drain.py): the shipped rules decide on it.

Master data is bench/workload.py's (10k SKUs and 1k machines by default, reorder points 40..59,
safety stock 15, max level 200, machine limits 80 °C and 7.1 mm/s, two spare parts each); the
rules are the repository's rules/ folder, not the benchmark's synthetic ones.

The stream, deterministic for a seed, half stock counts and half telemetry:

- every SKU's true level starts a little above its reorder point and wanders down (consumption,
  a unit or two per count, now and then a bigger draw); the count reports it with a miscount of
  a unit or two, and now and then a scanner glitch reads 0 (a stock-out that resolves at the next
  count). Crossing the reorder point places a reorder (`reorder-point`): some counts later its
  goods arrive as a receipt (rare: well under 1% of the messages) and the level goes back up;
- every machine runs at a temperature and vibration of its own with noise, a few run hot or
  shake; now and then one goes down (sometimes with a hydraulic fault code E4xx) or idle for a
  few messages and then runs again.

About 4% of the messages make a decision with the shipped rules (bench/drain.py counts the rows
the agent wrote and prints the share). Payloads are JSON objects without `ts`: the publisher
stamps each with its own recent `ts` (`stamp`), so the same list can be published again later.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from workload import PREFIX, SITE, machine_name, sku_name

STOCK_SHARE = 0.5  # of the messages: stock counts (and their receipts); the rest telemetry
START_ABOVE = 50  # a SKU's level starts 1..START_ABOVE above its reorder point
GLITCH = 0.002  # of the counts: the scanner reads 0
BIG_DRAW = 0.05  # of the counts: a bigger draw (5..15 units) since the last one
DRAWS = (0, 1, 1, 2)  # else units drawn since the last count
RECEIPT_AFTER = (2, 6)  # counts of the SKU between its reorder and the receipt
DOWN = 0.004  # of a machine's messages: it goes down (for DOWN_FOR messages)
IDLE = 0.004  # ... or idle
DOWN_FOR = (3, 12)
HYDRAULIC = 0.3  # of the breakdowns: with a fault code E4xx (else M1xx)
HOT = 0.02  # of the machines run over their 80 °C limit
SHAKY = 0.02  # of the machines vibrate over their 7.1 mm/s limit


def reorder_point(sku: int) -> int:
    """As bench/workload.py's write_masterdata sets it."""
    return 40 + sku % 20


@dataclass(slots=True)
class _Machine:
    temp_c: float
    vibration: float
    state: str = "running"
    fault: str = ""
    left: int = 0  # messages until it runs again


class NoisyPlant:
    """Message i of the noisy stream, in order; `messages(n)` the first n."""

    def __init__(self, skus: int, machines: int, seed: int = 1) -> None:
        self.skus, self.machines = skus, machines
        rng = self.rng = random.Random(seed)
        self.level = [reorder_point(i) + rng.randint(1, START_ABOVE) for i in range(skus)]
        # SKU -> (its counts until the receipt, the quantity): the agent's open reorder.
        self.receipt_in: dict[int, tuple[int, int]] = {}
        self.reorders = self.receipts = 0  # what the stream expects the agent to order
        self.machine = [
            _Machine(
                temp_c=rng.uniform(82, 90) if rng.random() < HOT else rng.uniform(45, 65),
                vibration=rng.uniform(7.5, 9) if rng.random() < SHAKY else rng.uniform(1, 4),
            )
            for _ in range(machines)
        ]

    def messages(self, count: int) -> list[tuple[str, bytes]]:
        return [self.message() for _ in range(count)]

    def message(self) -> tuple[str, bytes]:
        if self.skus and (not self.machines or self.rng.random() < STOCK_SHARE):
            return self._stock(self.rng.randrange(self.skus))
        return self._telemetry(self.rng.randrange(self.machines))

    def _stock(self, sku: int) -> tuple[str, bytes]:
        rng, name = self.rng, sku_name(sku)
        waiting = self.receipt_in.get(sku)
        if waiting is not None:
            counts, quantity = waiting
            if counts <= 0:  # the reorder's goods arrive
                del self.receipt_in[sku]
                self.level[sku] += quantity
                self.receipts += 1
                return f"{PREFIX}/{SITE}/receipt/{name}", b'{"quantity":%d}' % quantity
            self.receipt_in[sku] = (counts - 1, quantity)
        draw = rng.randint(5, 15) if rng.random() < BIG_DRAW else rng.choice(DRAWS)
        self.level[sku] = max(0, self.level[sku] - draw)
        counted = 0 if rng.random() < GLITCH else max(0, self.level[sku] + rng.randint(-2, 2))
        if counted <= reorder_point(sku) and sku not in self.receipt_in:
            # What the agent orders (reorder-point: up to max_level, whole packs of 10).
            quantity = -(-max(100, 200 - counted) // 10) * 10
            self.receipt_in[sku] = (rng.randint(*RECEIPT_AFTER), quantity)
            self.reorders += 1
        return f"{PREFIX}/{SITE}/stock/{name}", b'{"on_hand":%d}' % counted

    def _telemetry(self, index: int) -> tuple[str, bytes]:
        rng, m = self.rng, self.machine[index]
        if m.left > 0:
            m.left -= 1
            if m.left == 0:
                m.state, m.fault = "running", ""
        elif rng.random() < DOWN:
            m.state, m.left = "down", rng.randint(*DOWN_FOR)
            m.fault = f"E4{rng.randint(0, 99):02d}" if rng.random() < HYDRAULIC else "M101"
        elif rng.random() < IDLE:
            m.state, m.left = "idle", rng.randint(*DOWN_FOR)
        working = m.state == "running"
        temp = m.temp_c + rng.uniform(-2, 2) - (0 if working else 10)
        vibration = max(0.0, m.vibration + rng.uniform(-0.5, 0.5)) if working else 0.1
        fault = b',"fault":"%s"' % m.fault.encode() if m.fault else b""
        payload = b'{"state":"%s","temp_c":%.1f,"vibration_mm_s":%.2f%s}' % (
            m.state.encode(),
            temp,
            vibration,
            fault,
        )
        return f"{PREFIX}/{SITE}/machine/{machine_name(index)}/telemetry", payload


def stamp(payload: bytes, ts: float) -> bytes:
    """The JSON object `payload` with `"ts": ts` (epoch seconds) added."""
    return payload[:-1] + b',"ts":%.3f}' % ts
