"""The inventory rules on the pure core: one reorder per shortage, receipts, escalation, sanity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.app.core import Core
from agent.decisions.build import conditions_hold
from agent.model import (
    ActionDecision,
    AlertDecision,
    Decision,
    Message,
    OpenReorder,
    ReceiptDecision,
    Value,
)
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.world.masterdata import MasterData, load_masterdata

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
BRG = "stock/plant1/BRG-6204"


def make_core(masterdata: MasterData | None = None) -> Core:
    masterdata = masterdata or load_masterdata(
        ROOT / "config/items.yaml", ROOT / "config/machines.yaml"
    )
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    return Core(load_rules([ROOT / "rules/inventory.yaml"], schema), masterdata)


@pytest.fixture
def core() -> Core:
    return make_core()


def stock(sku: str, on_hand: float, minutes: float = 0, **extra: Value) -> Message:
    at = T0 + timedelta(minutes=minutes)
    fields: dict[str, Value] = {"on_hand": on_hand, **extra}
    return Message("stock", f"factory/plant1/stock/{sku}", "plant1", sku, fields, at, at)


def receipt(sku: str, quantity: float, minutes: float, reference: str = "") -> Message:
    at = T0 + timedelta(minutes=minutes)
    fields: dict[str, Value] = {"quantity": quantity}
    if reference:
        fields["reference"] = reference
    return Message("receipt", f"factory/plant1/receipt/{sku}", "plant1", sku, fields, at, at)


def reorders(decisions: list[Decision]) -> list[ActionDecision]:
    return [d for d in decisions if isinstance(d, ActionDecision) and d.kind == "reorder"]


def alerts(decisions: list[Decision], rule: str) -> list[AlertDecision]:
    return [d for d in decisions if isinstance(d, AlertDecision) and d.rule_id == rule]


def receipts(decisions: list[Decision]) -> list[ReceiptDecision]:
    return [d for d in decisions if isinstance(d, ReceiptDecision)]


def test_reorder_opens_once_until_the_receipt_closes_it(core: Core) -> None:
    (first,) = reorders(core.process([stock("BRG-6204", 30)]))
    assert (first.params["quantity"], first.params["packs"]) == (120, 12)  # max(100, 150 - 30)
    assert first.params["cost"] == pytest.approx(120 * 4.80)
    repeats = core.process([stock("BRG-6204", 30 - n % 5, 1 + n) for n in range(1000)])
    assert reorders(repeats) == []
    (closed,) = receipts(core.process([receipt("BRG-6204", 120, 2000)]))
    assert [(line.dedup_key, line.received, line.closes) for line in closed.lines] == [
        ("reorder/plant1/BRG-6204", 120, True)
    ]
    assert closed.over_received == 0
    fact = core.world.get(BRG)
    assert fact is not None and (fact.fields["on_order"], fact.fields["on_hand"]) == (0, 146)
    # the next shortage is a new reorder
    (second,) = reorders(core.process([stock("BRG-6204", 35, 3000)]))
    assert second.params["quantity"] == 120  # max(100, 150 - 35) = 115, up to 12 packs of 10


def test_a_partial_receipt_reduces_what_is_on_order_and_keeps_the_reorder_open(
    core: Core,
) -> None:
    core.process([stock("BRG-6204", 30)])
    (part,) = receipts(core.process([receipt("BRG-6204", 50, 10, "DN-1")]))
    assert [(line.quantity, line.received, line.closes) for line in part.lines] == [(50, 50, False)]
    fact = core.world.get(BRG)
    assert fact is not None and fact.fields["on_order"] == 70
    assert reorders(core.process([stock("BRG-6204", 20, 20)])) == []  # 20 + 70 > 40
    (rest,) = receipts(core.process([receipt("BRG-6204", 80, 30, "DN-2")]))
    assert [(line.quantity, line.closes) for line in rest.lines] == [(70, True)]
    assert rest.over_received == 10
    decisions = core.process([stock("BRG-6204", 110, 40)])
    assert alerts(decisions, "over-receipt") == []  # the next count clears it
    assert core.world.reorders.outstanding("plant1", "BRG-6204") == 0


def test_a_receipt_nobody_ordered_is_an_over_receipt_alert(core: Core) -> None:
    core.process([stock("BRG-6204", 100)])
    decisions = core.process([receipt("BRG-6204", 30, 5)])
    (unexpected,) = receipts(decisions)
    assert (unexpected.lines, unexpected.over_received) == ((), 30)
    (alert,) = alerts(decisions, "over-receipt")
    assert alert.message == "BRG-6204: 30 pcs received beyond the open reorders"


def test_a_redelivered_receipt_is_applied_once(core: Core) -> None:
    core.process([stock("BRG-6204", 30)])
    message = receipt("BRG-6204", 60, 10, "DN-7")
    assert len(receipts(core.process([message]))) == 1
    assert core.process([message]) == []
    assert core.world.reorders.outstanding("plant1", "BRG-6204") == 60


def test_below_safety_stock_with_a_reorder_open_expedites_instead_of_ordering_again(
    core: Core,
) -> None:
    core.process([stock("BRG-6204", 30)])
    decisions = core.process([stock("BRG-6204", 10, 60)])  # safety stock 15
    assert reorders(decisions) == []
    (alert,) = alerts(decisions, "expedite")
    assert alert.severity == "warning"
    assert alert.message == (
        "BRG-6204: 10 pcs left, below safety stock 15, 120 pcs still on order from "
        "Nordlager GmbH: expedite"
    )


def test_the_erp_view_of_the_same_order_is_not_counted_twice(core: Core) -> None:
    core.process([stock("BRG-6204", 30)])  # reorder of 120
    assert reorders(core.process([stock("BRG-6204", 25, 60, on_order=120)])) == []
    fact = core.world.get(BRG)
    assert fact is not None and (fact.fields["on_order"], fact.fields["projected"]) == (120, 145)


def test_quantities_are_whole_packs(core: Core) -> None:
    # OIL-HLP46: reorder_point 416, max_level 1456, reorder_qty 1040, pack 208
    (oil,) = reorders(core.process([stock("OIL-HLP46", 300)]))
    assert (oil.params["quantity"], oil.params["packs"]) == (1248, 6)  # 1156 -> 6 drums
    assert oil.params["cost"] == pytest.approx(1248 * 3.10)


def test_a_quantity_of_zero_or_less_orders_nothing() -> None:
    item: dict[str, Value] = {"reorder_point": 40, "reorder_qty": 0, "max_level": 40}
    core = make_core(MasterData(items={"X-1": item}))
    decisions = core.process([stock("X-1", 40)])  # max(0, 40 - 40) = 0
    assert reorders(decisions) == []


def test_after_a_restart_the_seeded_reorder_still_counts_and_its_receipt_closes_it() -> None:
    before = make_core()
    (opened,) = reorders(before.process([stock("BRG-6204", 30)]))
    after = make_core()
    after.seed_reorders(
        [OpenReorder(opened.dedup_key, "plant1", "BRG-6204", 120, 0, opened.at)],
        receipts=[],
    )
    assert reorders(after.process([stock("BRG-6204", 28, 10)])) == []
    (closed,) = receipts(after.process([receipt("BRG-6204", 120, 20)]))
    assert closed.lines[0].closes


def test_days_of_cover_warns_when_demand_outruns_the_reorder_point(core: Core) -> None:
    # STL-2MM: reorder point 60, safety stock 25, lead time 10 days; 14 sheets a day
    for day in range(3):
        core.process([stock("STL-2MM", 181 - 14 * day, 60 * 24 * day)])
    decisions = core.process([stock("STL-2MM", 139, 60 * 24 * 3)])  # 139 / 14 < 10 days
    assert reorders(decisions) == []
    (alert,) = alerts(decisions, "days-of-cover")
    assert alert.message == (
        "STL-2MM: 139 sheet last 9.9 days at 14.0/day, lead time 10 days; "
        "learned reorder point 165, set 60"
    )


def test_overstock_and_implausible_counts_alert(core: Core) -> None:
    core.process([stock("BRG-6204", 160)])
    assert alerts(core.process([stock("BRG-6204", 158, 60 * 23)]), "overstock") == []
    (over,) = alerts(core.process([stock("BRG-6204", 157, 60 * 25)]), "overstock")
    assert over.message == "BRG-6204: 157 pcs on hand, above max level 150 for 25 h"
    (jump,) = alerts(core.process([stock("BRG-6204", 60, 60 * 26)]), "implausible-count")
    assert jump.message == "BRG-6204: count jumped to 60 pcs (62% of the usual level): recount"
    (negative,) = alerts(core.process([stock("BRG-6204", -3, 60 * 27)]), "negative-count")
    assert negative.severity == "warning"


def test_stale_count_holds_after_a_day_without_counts(core: Core) -> None:
    # The rule fires through the scheduler's tick (Core.tick); here its condition on the
    # refreshed fact.
    core.process([stock("BRG-6204", 100)])
    rule = core.ruleset.by_id()["stale-count"]
    ((_, fresh),) = core.world.refresh(T0 + timedelta(hours=23))
    assert not conditions_hold(rule, {"stock": fresh})
    ((_, stale),) = core.world.refresh(T0 + timedelta(hours=24, minutes=5))
    assert conditions_hold(rule, {"stock": stale})
