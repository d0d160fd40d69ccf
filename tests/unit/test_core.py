"""The pure core on the shipped rules: messages in, decisions out, no broker, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.app.core import Core
from agent.model import ActionClosed, ActionDecision, AlertDecision, Decision, Message, Value
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.world.masterdata import load_masterdata

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def core() -> Core:
    masterdata = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    return Core(load_rules([ROOT / "rules"], schema), masterdata)


def stock(sku: str, on_hand: float, minutes: float = 0, **extra: Value) -> Message:
    at = T0 + timedelta(minutes=minutes)
    return Message(
        "stock", f"factory/plant1/stock/{sku}", "plant1", sku, {"on_hand": on_hand, **extra}, at, at
    )


def telemetry(machine: str, minutes: float = 0, **fields: Value) -> Message:
    at = T0 + timedelta(minutes=minutes)
    return Message(
        "telemetry",
        f"factory/plant1/machine/{machine}/telemetry",
        "plant1",
        machine,
        fields,
        at,
        at,
    )


def actions(decisions: list[Decision]) -> list[ActionDecision]:
    return [d for d in decisions if isinstance(d, ActionDecision)]


def alerts(decisions: list[Decision]) -> list[AlertDecision]:
    return [d for d in decisions if isinstance(d, AlertDecision)]


def test_stock_at_the_reorder_point_asks_to_fill_up_to_max_level(core: Core) -> None:
    # BRG-6204: reorder_point 40, reorder_qty 100, max_level 150, unit_cost 4.80
    (reorder,) = actions(core.process([stock("BRG-6204", 30, on_order=10)]))
    assert reorder.kind == "reorder"
    assert reorder.dedup_key == "reorder/plant1/BRG-6204"
    assert reorder.params["quantity"] == 110  # max(100, 150 - (30 + 10))
    assert reorder.params["cost"] == pytest.approx(110 * 4.80)
    assert reorder.params["supplier"] == "Nordlager GmbH"
    assert reorder.rule_id == "reorder-point"
    assert reorder.matched["stock"]["projected"] == 40
    assert reorder.at == T0


def test_stock_above_the_reorder_point_decides_nothing(core: Core) -> None:
    assert core.process([stock("BRG-6204", 35, on_order=10)]) == []


def test_an_unknown_sku_has_no_reorder_point_and_is_left_alone(core: Core) -> None:
    assert actions(core.process([stock("NOT-IN-MASTERDATA", 1)])) == []


def test_an_open_reorder_counts_as_on_order_so_later_counts_ask_nothing_more(core: Core) -> None:
    decisions = core.process([stock("BRG-6204", n) for n in (30, 29, 28)])
    assert [(d.dedup_key, d.params["quantity"]) for d in actions(decisions)] == [
        ("reorder/plant1/BRG-6204", 120)  # max(100, 150 - 30)
    ]
    fact = core.world.get("stock/plant1/BRG-6204")
    assert fact is not None and (fact.fields["on_order"], fact.fields["projected"]) == (120, 148)


def test_hot_machine_asks_for_a_work_order_and_warns(core: Core) -> None:
    assert core.process([telemetry("press-01", state="running", temp_c=85.25)]) == []
    decisions = core.tick(T0 + timedelta(minutes=5))  # hot on average for `for: 5m`
    (order,) = actions(decisions)
    assert (order.kind, order.subject, order.params["task"], order.params["priority"]) == (
        "work_order",
        "press-01",
        "check cooling and lubrication",
        "high",
    )
    (alert,) = alerts(decisions)
    assert alert.message == "press-01 at 85.2 °C on average (limit 80 °C)"
    assert alert.severity == "warning"
    assert alert.dedup_key == "overheating/plant1/press-01"


def test_metrics_are_remembered_between_partial_telemetry(core: Core) -> None:
    core.process([telemetry("press-01", state="running", temp_c=85)])
    core.process([telemetry("press-01", 1, vibration_mm_s=2.0)])
    fact = core.world.get("machine/plant1/press-01")
    assert fact is not None and (fact.fields["temp_c"], fact.fields["state"]) == (85, "running")
    decisions = core.tick(T0 + timedelta(minutes=5))
    assert [d.rule_id for d in actions(decisions)] == ["overheating"]


def test_down_machine_with_a_missing_spare_expedites_only_its_own_spares(core: Core) -> None:
    core.process([stock("FLT-HYD10", 0), stock("BLT-A42", 0)])  # press-01 needs FLT-HYD10 only
    decisions = core.process([telemetry("press-01", 1, state="down", fault="E42")])
    expedite = [a for a in actions(decisions) if a.rule_id == "no-spare-for-failing-machine"]
    assert [(a.subject, a.params["priority"]) for a in expedite] == [("FLT-HYD10", "expedite")]
    messages = [a.message for a in alerts(decisions)]
    assert "press-01 is down (fault E42)" in messages
    assert "press-01 is down and spare FLT-HYD10 is out of stock" in messages


def test_the_join_fires_from_the_stock_side_too(core: Core) -> None:
    core.process([telemetry("press-01", state="down")])
    decisions = core.process([stock("BRG-6204", 0, 1)])
    assert "no-spare-for-failing-machine" in {d.rule_id for d in decisions}


def test_idle_capacity_after_max_idle_minutes(core: Core) -> None:
    assert actions(core.process([telemetry("cnc-02", 0, state="idle")])) == []
    assert actions(core.process([telemetry("cnc-02", 19, state="idle")])) == []
    (idle,) = actions(core.process([telemetry("cnc-02", 21, state="idle")]))
    assert (idle.kind, idle.subject, idle.params["note"]) == (
        "idle_capacity",
        "cnc-02",
        "idle for 21 min in the early shift",
    )
    running = core.process([telemetry("cnc-02", 22, state="running")])
    assert actions(running) == []
    closed = [d for d in running if isinstance(d, ActionClosed)]
    assert [c.dedup_key for c in closed] == [idle.dedup_key]


def test_an_older_message_does_not_overwrite_newer_state(core: Core) -> None:
    core.process([stock("BRG-6204", 100, 10)])
    assert core.process([stock("BRG-6204", 1, 5)]) == []
    fact = core.world.get("stock/plant1/BRG-6204")
    assert fact is not None and fact.fields["on_hand"] == 100


def test_time_alone_moves_state_minutes(core: Core) -> None:
    core.process([telemetry("cnc-02", 0, state="idle")])
    ((_, fact),) = core.world.refresh(T0 + timedelta(minutes=25))
    assert fact.fields["state_minutes"] == 25
    assert core.world.refresh(T0 + timedelta(minutes=25)) == []


def test_a_batch_decides_as_message_by_message_would(core: Core) -> None:
    batch = [stock("BRG-6204", 30), stock("BRG-6204", 120, minutes=1), stock("OIL-HLP46", 1)]
    results = core.process_many(batch)
    # The low count decides even though the next message of the same batch refills the shelf.
    assert [[a.dedup_key for a in actions(r)] for r in results] == [  # type: ignore[arg-type]
        ["reorder/plant1/BRG-6204"],
        [],
        ["reorder/plant1/OIL-HLP46"],
    ]
    assert {fact.key for fact in core.take_changed()} == {
        "stock/plant1/BRG-6204",
        "stock/plant1/OIL-HLP46",
    }
    assert core.take_changed() == []


def test_restored_facts_are_known_without_deciding_again(core: Core) -> None:
    core.process([stock("BRG-6204", 30)])
    saved = core.take_changed()
    core.close()
    masterdata = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    restarted = Core(load_rules([ROOT / "rules"], schema), masterdata)
    assert restarted.restore(saved) == 1
    assert restarted.world.get("stock/plant1/BRG-6204") == saved[0]
    assert restarted.take_changed() == []
