"""Stock facts: on order without double counting, learned usage, cover, EOQ, packs, sanity."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from agent.model import Fact, Message, Value
from agent.world.stock import (
    StockPolicy,
    combined_on_order,
    eoq,
    receipt_fact,
    refresh_stock,
    round_up_to_packs,
    stock_fact,
)

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ITEM: dict[str, Value] = {
    "reorder_point": 40,
    "safety_stock": 15,
    "lead_time_days": 5,
    "reorder_qty": 100,
    "max_level": 150,
    "unit_cost": 4.8,
    "pack_size": 10,
    "order_cost": 40,
    "holding_cost_pct": 25,
}


def count(on_hand: float, hours: float = 0, **extra: Value) -> Message:
    at = T0 + timedelta(hours=hours)
    fields: dict[str, Value] = {"on_hand": on_hand, **extra}
    return Message("stock", "factory/p/stock/BRG", "p", "BRG", fields, at, at)


def receipt(quantity: float, hours: float) -> Message:
    at = T0 + timedelta(hours=hours)
    return Message("receipt", "factory/p/receipt/BRG", "p", "BRG", {"quantity": quantity}, at, at)


def counts(
    levels: list[tuple[float, float]], policy: StockPolicy | None = None, own: float = 0
) -> Fact:
    policy = policy or StockPolicy()
    fact: Fact | None = None
    for hours, on_hand in levels:
        fact = stock_fact(fact, count(on_hand, hours), ITEM, own, 0, policy)
    assert fact is not None
    return fact


@pytest.mark.parametrize(
    ("source", "agent", "erp", "expected"),
    [
        ("max", 110, 110, 110),  # the same order seen by both: counted once
        ("max", 110, 0, 110),  # the ERP has not booked it yet
        ("max", 110, 160, 160),  # the ERP knows of another 50
        ("agent", 110, 160, 110),
        ("erp", 110, 160, 160),
        ("sum", 110, 50, 160),
        ("erp", 110, None, 110),  # no ERP figure: the agent's own
    ],
)
def test_on_order_combines_both_sources_as_configured(
    source: str, agent: float, erp: float | None, expected: float
) -> None:
    assert combined_on_order(agent, erp, source) == expected  # type: ignore[arg-type]


def test_projected_is_on_hand_plus_on_order() -> None:
    fact = stock_fact(None, count(30, on_order=10), ITEM, 110, 1)
    assert (fact.fields["on_order"], fact.fields["projected"]) == (110, 140)
    assert (fact.fields["on_order_agent"], fact.fields["on_order_erp"]) == (110, 10)
    assert fact.fields["open_reorders"] == 1


@pytest.mark.parametrize(
    ("quantity", "pack", "expected"),
    [
        (101, 10, (110, 11)),
        (110, 10, (110, 11)),
        (1, 208, (208, 1)),
        (0.2, None, (1, None)),
        (0, 10, (0, 0)),
        (-30, 10, (0, 0)),
        (12.5, 0, (13, None)),
    ],
)
def test_quantities_round_up_to_whole_packs(
    quantity: float, pack: Value, expected: tuple[int, int | None]
) -> None:
    assert round_up_to_packs(quantity, pack) == expected


def test_eoq_is_the_textbook_formula() -> None:
    # D = 1000/year, S = 40 per order, h = 25 % of 4.80 per year: sqrt(2·1000·40 / 1.2)
    assert eoq(1000, 40, 25, 4.8) == pytest.approx(math.sqrt(80000 / 1.2))
    assert eoq(0, 40, 25, 4.8) is None


def test_daily_usage_is_learned_from_falling_counts() -> None:
    # 12 units a day, counted every 6 hours for three days
    fact = counts([(h, 150 - 0.5 * h) for h in range(0, 73, 6)])
    assert fact.fields["daily_usage"] == pytest.approx(12.0)
    assert fact.fields["days_of_cover"] == pytest.approx(114 / 12, abs=0.01)
    assert fact.fields["dynamic_reorder_point"] == pytest.approx(12 * 5 + 15)
    assert fact.fields["eoq"] == pytest.approx(math.sqrt(2 * 12 * 365 * 40 / 1.2), abs=0.1)


def test_no_daily_usage_before_a_day_of_counts() -> None:
    fact = counts([(0, 150), (6, 147), (12, 144)])
    assert "daily_usage" not in fact.fields and "days_of_cover" not in fact.fields


def test_a_receipt_is_not_consumption() -> None:
    policy = StockPolicy()
    fact = counts([(h, 150 - 0.5 * h) for h in range(0, 25, 6)])  # 12/day
    fact = receipt_fact(fact, receipt(100, 25), ITEM, 0, 0, 0, policy)
    assert fact.fields["on_hand"] == 238  # 138 counted + 100 received, until the next count
    fact = stock_fact(fact, count(238 - 0.5 * 6, 30), ITEM, 0, 0, policy)  # 6 h at 12/day
    assert fact.fields["daily_usage"] == pytest.approx(12.0)
    assert fact.fields["count_implausible"] is False


def test_an_upward_correction_teaches_nothing_and_a_wild_jump_is_implausible() -> None:
    steady = [(h, 150 - 0.5 * h) for h in range(0, 49, 6)]  # 12/day, ends at 126
    fact = counts([*steady, (54, 130)])  # +4: a recount, not negative consumption
    assert fact.fields["daily_usage"] == pytest.approx(12.0)
    assert fact.fields["count_implausible"] is False
    fact = counts([*steady, (54, 20)])  # 123 expected after 6 hours at 12/day: 103 missing
    assert fact.fields["count_implausible"] is True
    assert fact.fields["jump_share"] == pytest.approx(103 / 150, abs=0.001)
    assert fact.fields["daily_usage"] == pytest.approx(12.0)


def test_while_demand_is_unknown_only_a_rise_is_a_jump() -> None:
    fall = counts([(0, 140), (72, 20)])  # three days of unknown demand may explain it
    assert (fall.fields["count_implausible"], fall.fields["jump_share"]) == (False, 0)
    rise = counts([(0, 20), (1, 120)])  # no receipt in between: a miscount
    assert rise.fields["count_implausible"] is True
    assert rise.fields["jump_share"] == pytest.approx(100 / 150, abs=0.001)


def test_overstock_hours_count_from_the_first_count_above_max_level() -> None:
    fact = counts([(0, 160), (10, 158)])
    assert fact.fields["overstock_h"] == 10
    later = refresh_stock(fact, T0 + timedelta(hours=30))
    assert later is not None and later.fields["overstock_h"] == 30
    assert "overstock_h" not in counts([(0, 160), (10, 140)]).fields


def test_hours_since_the_last_count_grow_with_time_alone() -> None:
    fact = counts([(0, 100)])
    assert fact.fields["seen_h"] == 0
    stale = refresh_stock(fact, T0 + timedelta(hours=25))
    assert stale is not None and stale.fields["seen_h"] == 25
    assert refresh_stock(stale, T0 + timedelta(hours=25)) is None


def test_the_inventory_settings_become_the_stock_policy() -> None:
    from agent.app.stocksync import stock_policy
    from agent.config import InventorySettings

    settings = InventorySettings(on_order_source="sum", usage_half_life_days=3, jump_share=0.8)
    assert stock_policy(settings) == StockPolicy("sum", 3.0, 1.0, 0.8)
    fact = stock_fact(None, count(30, on_order=50), ITEM, 110, 1, stock_policy(settings))
    assert fact.fields["on_order"] == 160
