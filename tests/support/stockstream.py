"""A week of stock counts and receipts for many SKUs, with a seed: consumption at known true
rates, the static reorder policy played by hand (the oracle), receipts after the lead time."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ExpectedReorder:
    """What a buyer works out by hand from the master data and the counts."""

    sku: str
    at: datetime
    projected: int
    quantity: int
    received_at: datetime | None  # None: still in transit when the stream ends


@dataclass
class Stream:
    items: dict[str, dict[str, Any]]
    true_rates: dict[str, float]  # units per day
    messages: list[dict[str, Any]]  # {"ts", "topic", "payload"}, in time order
    expected: list[ExpectedReorder] = field(default_factory=list)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:  # normal approximation, plenty for hourly consumption
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _packs(quantity: float, pack: int) -> int:
    return math.ceil(quantity / pack) * pack if quantity > 0 else 0


def week_stream(
    skus: int = 200, days: int = 7, count_every_h: int = 3, seed: int = 4, site: str = "plant1"
) -> Stream:
    rng = random.Random(seed)
    items: dict[str, dict[str, Any]] = {}
    rates: dict[str, float] = {}
    for n in range(skus):
        sku = f"SKU-{n:03d}"
        rate = round(rng.uniform(4, 120), 1)
        lead = rng.choice((1, 2, 3))
        pack = rng.choice((1, 5, 10, 20))
        safety = math.ceil(rate * 1.0)
        point = math.ceil(rate * lead + safety)
        reorder_qty = _packs(rate * 3, pack)
        items[sku] = {
            "reorder_point": point,
            "safety_stock": safety,
            "lead_time_days": lead,
            "reorder_qty": reorder_qty,
            "max_level": point + reorder_qty,
            "pack_size": pack,
            "unit_cost": round(rng.uniform(0.5, 80), 2),
            "supplier": f"Supplier {n % 7}",
            "unit": "pcs",
        }
        rates[sku] = rate
    stream = Stream(items, rates, [])
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    end = START + timedelta(days=days)
    for index, (sku, item) in enumerate(items.items()):
        events.extend(_one_sku(rng, sku, item, rates[sku], index, end, count_every_h, site, stream))
    events.sort(key=lambda e: (e[0], e[1]))
    stream.messages = [message for _, _, message in events]
    return stream


def _one_sku(
    rng: random.Random,
    sku: str,
    item: dict[str, Any],
    rate: float,
    index: int,
    end: datetime,
    count_every_h: int,
    site: str,
    stream: Stream,
) -> list[tuple[datetime, int, dict[str, Any]]]:
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    on_hand = rng.randint(item["reorder_point"] + 1, item["max_level"])
    offset = timedelta(minutes=(index * 7) % (count_every_h * 60))
    in_transit: tuple[datetime, int] | None = None  # (arrives, quantity): one open reorder
    erp_knows = False
    now = START
    step = timedelta(hours=1)
    hours = 0
    last_count = on_hand

    def reorder_if_short(at: datetime, projected: int) -> tuple[datetime, int] | None:
        # The reorder-point rule: projected <= reorder_point and no reorder open, quantity
        # max(reorder_qty, max_level - projected) rounded up to whole packs.
        if projected > item["reorder_point"]:
            return None
        quantity = _packs(
            max(item["reorder_qty"], item["max_level"] - projected), item["pack_size"]
        )
        arrives = at + timedelta(days=item["lead_time_days"], minutes=30)
        received = arrives if arrives < end else None
        stream.expected.append(ExpectedReorder(sku, at, projected, quantity, received))
        if received is not None:
            topic = f"factory/{site}/receipt/{sku}"
            payload = {"quantity": quantity, "reference": f"PO-{sku}-{len(events)}"}
            events.append((arrives, 1, _message(arrives, topic, payload)))
            return arrives, quantity
        return end + timedelta(days=365), quantity  # arrives after the stream: never seen

    while now < end:
        at = now + offset
        if in_transit is not None and in_transit[0] <= at:
            # Goods in: the agent sees the receipt before the next count and judges by the
            # last count plus what came in (the projected stock does not change).
            arrived, quantity = in_transit
            on_hand += quantity
            last_count += quantity
            in_transit, erp_knows = reorder_if_short(arrived, last_count), False
        if hours % count_every_h == 0:
            payload: dict[str, Any] = {"on_hand": on_hand}
            if index % 2 == 0:  # the ERP reports the same orders, once it has booked them
                payload["on_order"] = in_transit[1] if in_transit and erp_knows else 0
            events.append((at, 0, _message(at, f"factory/{site}/stock/{sku}", payload)))
            erp_knows = in_transit is not None
            last_count = on_hand
            if in_transit is None:
                in_transit = reorder_if_short(at, on_hand)
        on_hand = max(on_hand - _poisson(rng, rate / 24), 0)
        now += step
        hours += 1
    return events


def _message(at: datetime, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"ts": at.isoformat(), "topic": topic, "payload": payload}
