"""Stock facts: the latest count of an SKU merged with its item master data, and derived values.

Pure functions of the previous fact, the message (or receipt, or time), the agent's own open
reorders and the master data: projected stock, learned daily usage, cover, EOQ, sanity signals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from sys import intern
from typing import Final, Literal

from agent.model import Fact, Message, Value
from agent.world.arrival import LAG_S, arrival_lag
from agent.world.masterfields import swap_fields

OnOrderSource = Literal["max", "agent", "erp", "sum"]
ON_ORDER_SOURCES: Final = ("max", "agent", "erp", "sum")
_DAY_S: Final = 86400.0
_HOUR_S: Final = 3600.0
# Bookkeeping fields kept in the fact (so a future snapshot keeps them) but not for rules.
USAGE_SUM: Final = "usage_sum"
USAGE_DAYS: Final = "usage_days"


@dataclass(frozen=True, slots=True)
class StockPolicy:
    """How stock facts are derived; the `[inventory]` settings.

    on_order_source: when the stock message reports the ERP's `on_order` too, `max` takes the
      larger of it and the agent's own open reorders (both describe the same orders: never
      counted twice), `agent` or `erp` trust one source, `sum` adds them (separate orders).
    usage_half_life_days: how fast old consumption stops counting in `daily_usage`.
    usage_min_days: observed time before `daily_usage` is given at all.
    jump_share: a count that differs from the level expected (the previous count plus receipts,
      minus `daily_usage` for the time between; only rises while usage is unknown) by more than
      this share of max(previous count, max_level) is `count_implausible` (likely a miscount)
      and does not teach consumption.
    max_reorder_factor: a rule's reorder above this many times the item's largest stock figure
      (max_level, reorder_point, reorder_qty) is refused with an error alert, not placed.
    """

    on_order_source: OnOrderSource = "max"
    usage_half_life_days: float = 7.0
    usage_min_days: float = 1.0
    jump_share: float = 0.5
    max_reorder_factor: float = 10.0


def _number(value: Value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _tidy(value: float) -> float | int:
    """Whole numbers as int (as they were counted), others rounded for readable provenance."""
    rounded = round(value, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def combined_on_order(agent: float, erp: float | None, source: OnOrderSource) -> float:
    """`on_order` from the agent's open reorders and the ERP's figure, without double counting."""
    if erp is None or source == "agent":
        return agent
    if source == "erp":
        return erp
    if source == "sum":
        return agent + erp
    return max(agent, erp)


def round_up_to_packs(quantity: float, pack_size: Value) -> tuple[int, int | None]:
    """(whole units, packs): a quantity rounded up to whole packs (to whole units without a
    usable `pack_size`). Zero or less stays zero: no reorder."""
    if not math.isfinite(quantity) or quantity <= 0:
        return 0, 0
    pack = _number(pack_size)
    if pack is None or pack <= 0:
        return math.ceil(quantity - 1e-9), None
    packs = math.ceil(quantity / pack - 1e-9)
    return _whole(packs * pack), packs


def _whole(value: float) -> int:
    return round(value)


def eoq(
    annual_demand: float, order_cost: float, holding_cost_pct: float, unit_cost: float
) -> float | None:
    """Economic order quantity sqrt(2·D·S / (h·C)); `holding_cost_pct` is percent per year."""
    holding = holding_cost_pct / 100.0 * unit_cost
    if annual_demand <= 0 or order_cost <= 0 or holding <= 0:
        return None
    return math.sqrt(2.0 * annual_demand * order_cost / holding)


def dynamic_reorder_point(daily_usage: float, lead_time_days: float, safety_stock: float) -> float:
    """The reorder point learned from demand: usage during the lead time plus safety stock."""
    return daily_usage * lead_time_days + safety_stock


def stock_fact(
    previous: Fact | None,
    message: Message,
    item: Mapping[str, Value],
    own_on_order: float = 0.0,
    open_reorders: int = 0,
    policy: StockPolicy = StockPolicy(),
) -> Fact:
    """The new fact for a stock count: message fields over master data, derived values."""
    payload = message.fields
    fields: dict[str, Value] = {**item}
    for name, value in payload.items():
        if name != "on_order":
            # one copy of a name for all facts, not one per message (a decoded payload's own)
            fields[intern(name)] = value
    fields["kind"] = "stock"
    fields["site"] = site = intern(message.site)
    fields["sku"] = message.subject
    fields["counted_at"] = message.ts.isoformat()
    fields["seen_h"] = 0.0
    fields["received_since_count"] = 0
    fields["over_received"] = 0
    fields[LAG_S] = arrival_lag(message)
    erp = _number(payload.get("on_order", None))
    if erp is not None:
        fields["on_order_erp"] = _tidy(erp)
    on_hand = _number(payload.get("on_hand"))
    _learn_usage(fields, previous, on_hand, message.ts, item, policy)
    _track_overstock(fields, previous, on_hand, message.ts)
    _derive(fields, own_on_order, open_reorders, policy)
    return Fact("stock", site, message.subject, fields, message.ts)


def receipt_fact(
    previous: Fact | None,
    message: Message,
    item: Mapping[str, Value],
    own_on_order: float,
    open_reorders: int,
    over_received: float,
    policy: StockPolicy = StockPolicy(),
) -> Fact:
    """The fact after goods arrived: on hand up by the receipt (until the next count says
    otherwise), the ERP's `on_order` down by it, the agent's own from the updated book."""
    quantity = _number(message.fields.get("quantity")) or 0.0
    fields: dict[str, Value] = dict(previous.fields) if previous else {**item}
    site = intern(message.site)
    fields.update({"kind": "stock", "site": site, "sku": message.subject})
    on_hand = _number(fields.get("on_hand"))
    if on_hand is not None:
        fields["on_hand"] = _tidy(on_hand + quantity)
        received = _number(fields.get("received_since_count")) or 0.0
        fields["received_since_count"] = _tidy(received + quantity)
    erp = _number(fields.get("on_order_erp"))
    if erp is not None:
        fields["on_order_erp"] = _tidy(max(erp - quantity, 0.0))
    fields["over_received"] = _tidy(over_received)
    fields["last_receipt_qty"] = _tidy(quantity)
    _derive(fields, own_on_order, open_reorders, policy)
    updated = max(previous.updated_at, message.ts) if previous else message.ts
    return Fact("stock", site, message.subject, fields, updated)


def with_own_orders(
    fact: Fact, own_on_order: float, open_reorders: int, policy: StockPolicy = StockPolicy()
) -> Fact | None:
    """The fact after the agent's open reorders changed (one opened); None if nothing did."""
    if (
        fact.fields.get("on_order_agent") == _tidy(own_on_order)
        and fact.fields.get("open_reorders") == open_reorders
    ):
        return None
    fields = dict(fact.fields)
    _derive(fields, own_on_order, open_reorders, policy)
    return Fact(fact.kind, fact.site, fact.subject, fields, fact.updated_at)


def with_item(
    fact: Fact,
    old_item: Mapping[str, Value],
    item: Mapping[str, Value],
    now: datetime,
    policy: StockPolicy = StockPolicy(),
) -> Fact | None:
    """The fact under changed item master data (a reload), None if nothing changed: the item's
    fields swapped (a count's own fields stay), and what is derived from them again: the learned
    reorder point, EOQ, and the time over `max_level` (counted from `now` if newly over it)."""
    fields = dict(fact.fields)
    swap_fields(fields, old_item, item)
    on_hand = _number(fields.get("on_hand"))
    usage_sum = _number(fields.get(USAGE_SUM)) or 0.0
    usage_days = _number(fields.get(USAGE_DAYS)) or 0.0
    _usage_figures(fields, usage_sum, usage_days, on_hand, item, policy)
    _track_overstock(fields, fact, on_hand, max(now, fact.updated_at))
    if fields == fact.fields:
        return None
    return Fact(fact.kind, fact.site, fact.subject, fields, fact.updated_at)


def refresh_stock(fact: Fact, now: datetime) -> Fact | None:
    """Time-derived values of a stock fact at `now` (hours since the last count, hours over
    max_level); None when nothing changed."""
    counted_at = _time(fact.fields.get("counted_at"))
    if counted_at is None or now <= counted_at:
        return None
    changes: dict[str, Value] = {"seen_h": round((now - counted_at).total_seconds() / _HOUR_S, 1)}
    since = _time(fact.fields.get("over_max_since"))
    if since is not None:
        changes["overstock_h"] = round((now - since).total_seconds() / _HOUR_S, 1)
    if all(fact.fields.get(name) == value for name, value in changes.items()):
        return None
    return Fact(fact.kind, fact.site, fact.subject, {**fact.fields, **changes}, fact.updated_at)


def _time(value: Value) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _learn_usage(
    fields: dict[str, Value],
    previous: Fact | None,
    on_hand: float | None,
    at: datetime,
    item: Mapping[str, Value],
    policy: StockPolicy,
) -> None:
    """Consumption since the last count teaches `daily_usage` (an exponentially weighted rate
    over irregular intervals). What went up (receipts are added to the expected level already,
    corrections) and implausible jumps teach nothing."""
    old = previous.fields if previous else {}
    usage_sum = _number(old.get(USAGE_SUM)) or 0.0
    usage_days = _number(old.get(USAGE_DAYS)) or 0.0
    expected = _number(old.get("on_hand"))
    last_count = _time(old.get("counted_at"))
    if on_hand is not None and expected is not None and last_count is not None:
        elapsed = (at - last_count).total_seconds() / _DAY_S
        consumed = expected - on_hand
        # Judged against the level demand alone would leave; while demand is not known yet, a
        # fall cannot be told from consumption, so only a rise counts as a jump.
        usage_known = _number(old.get("daily_usage"))
        if usage_known is not None:
            deviation = abs(consumed - usage_known * max(elapsed, 0.0))
        else:
            deviation = max(-consumed, 0.0)
        scale = max(abs(expected), _number(item.get("max_level")) or 0.0, 1.0)
        share = deviation / scale
        fields["jump_share"] = round(share, 3)
        fields["count_implausible"] = share > policy.jump_share
        if elapsed > 0 and consumed >= 0 and share <= policy.jump_share:
            decay = 0.5 ** (elapsed / policy.usage_half_life_days)
            usage_sum = usage_sum * decay + consumed
            usage_days = usage_days * decay + elapsed
    else:
        fields["jump_share"] = 0
        fields["count_implausible"] = False
    # never -0.0 (`or 0.0` above, consumption >= 0): a zero is the one shared 0.0
    fields[USAGE_SUM] = round(usage_sum, 6) if usage_sum else 0.0
    fields[USAGE_DAYS] = round(usage_days, 6) if usage_days else 0.0
    _usage_figures(fields, usage_sum, usage_days, on_hand, item, policy)


def _usage_figures(
    fields: dict[str, Value],
    usage_sum: float,
    usage_days: float,
    on_hand: float | None,
    item: Mapping[str, Value],
    policy: StockPolicy,
) -> None:
    """Daily usage from the learned sums, and what it gives with the item's parameters: cover,
    the learned reorder point, the economic order quantity."""
    for name in ("daily_usage", "days_of_cover", "dynamic_reorder_point", "eoq"):
        fields.pop(name, None)
    if usage_days < policy.usage_min_days or usage_days <= 0:
        return
    usage = usage_sum / usage_days
    fields["daily_usage"] = round(usage, 3)
    if on_hand is not None and usage > 0:
        fields["days_of_cover"] = round(on_hand / usage, 2)
    lead_time = _number(item.get("lead_time_days"))
    if lead_time is not None:
        safety = _number(item.get("safety_stock")) or 0.0
        fields["dynamic_reorder_point"] = round(dynamic_reorder_point(usage, lead_time, safety), 1)
    annual = _number(item.get("annual_demand"))
    order_cost = _number(item.get("order_cost"))
    holding = _number(item.get("holding_cost_pct"))
    cost = _number(item.get("unit_cost"))
    if order_cost is not None and holding is not None and cost is not None:
        quantity = eoq(annual if annual is not None else usage * 365.0, order_cost, holding, cost)
        if quantity is not None:
            fields["eoq"] = round(quantity, 1)


def _track_overstock(
    fields: dict[str, Value], previous: Fact | None, on_hand: float | None, at: datetime
) -> None:
    """Since when on_hand has been above max_level: `overstock_h` grows with time (refresh)."""
    most = _number(fields.get("max_level"))
    fields.pop("over_max_since", None)
    fields.pop("overstock_h", None)
    if on_hand is None or most is None or on_hand <= most:
        return
    since = _time(previous.fields.get("over_max_since")) if previous else None
    since = since or at
    fields["over_max_since"] = since.isoformat()
    fields["overstock_h"] = round((at - since).total_seconds() / _HOUR_S, 1)


def _derive(
    fields: dict[str, Value], own_on_order: float, open_reorders: int, policy: StockPolicy
) -> None:
    erp = _number(fields.get("on_order_erp"))
    on_order = combined_on_order(own_on_order, erp, policy.on_order_source)
    fields["on_order_agent"] = _tidy(own_on_order)
    fields["open_reorders"] = open_reorders
    fields["on_order"] = _tidy(on_order)
    on_hand = _number(fields.get("on_hand"))
    if on_hand is not None:
        fields["projected"] = _tidy(on_hand + on_order)
