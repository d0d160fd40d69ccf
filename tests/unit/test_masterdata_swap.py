"""Master data swapped into a running core (a reload): the facts it changes are derived again and
the rules re-evaluated on them at once, as after a rule reload; no restart, no new message."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.app.core import Core
from agent.model import (
    ActionDecision,
    AlertDecision,
    AlertResolved,
    Decision,
    Message,
    Value,
)
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.world.masterdata import MasterData, load_masterdata
from agent.world.masterfields import swap_fields

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday, the early shift starts (UTC calendars)


@pytest.fixture
def masterdata() -> MasterData:
    return load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")


@pytest.fixture
def core(masterdata: MasterData) -> Core:
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    return Core(load_rules([ROOT / "rules"], schema), masterdata)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stock(sku: str, on_hand: float, minutes: float = 0) -> Message:
    topic = f"factory/plant1/stock/{sku}"
    when = at(minutes)
    return Message("stock", topic, "plant1", sku, {"on_hand": on_hand}, when, when)


def telemetry(machine: str, minutes: float = 0, **fields: Value) -> Message:
    topic = f"factory/plant1/machine/{machine}/telemetry"
    when = at(minutes)
    return Message("telemetry", topic, "plant1", machine, fields, when, when)


def with_item(masterdata: MasterData, sku: str, **fields: Value) -> MasterData:
    items = {**masterdata.items, sku: {**masterdata.items[sku], **fields}}
    return replace(masterdata, items=items)


def with_machine(masterdata: MasterData, machine: str, **fields: Value) -> MasterData:
    machines = {**masterdata.machines, machine: {**masterdata.machines[machine], **fields}}
    return replace(masterdata, machines=machines)


def actions(decisions: list[Decision], kind: str = "reorder") -> list[ActionDecision]:
    return [d for d in decisions if isinstance(d, ActionDecision) and d.kind == kind]


def fired(decisions: list[Decision], rule: str) -> list[AlertDecision]:
    return [d for d in decisions if isinstance(d, AlertDecision) and d.rule_id == rule]


def resolved(decisions: list[Decision], rule: str) -> list[AlertResolved]:
    return [d for d in decisions if isinstance(d, AlertResolved) and d.rule_id == rule]


def test_a_reorder_point_raised_above_the_stock_fires_a_reorder_at_once(
    core: Core, masterdata: MasterData
) -> None:
    # BRG-6204: reorder_point 40, max_level 150, reorder_qty 100, pack_size 10
    assert core.process([stock("BRG-6204", 50)]) == []
    decisions = core.swap_masterdata(with_item(masterdata, "BRG-6204", reorder_point=60), at(5))
    (reorder,) = actions(decisions)
    assert reorder.params["quantity"] == 100  # max(100, 150 - 50)
    assert reorder.at == at(5)
    fact = core.world.get("stock/plant1/BRG-6204")
    assert fact is not None and fact.fields["reorder_point"] == 60
    assert fact.fields["on_order"] == 100  # booked at once, as a reorder a count caused
    assert fact.updated_at == at(0)  # master data is not a new observation


def test_a_reorder_point_lowered_below_the_stock_stops_a_reorder_the_next_count_would_ask(
    core: Core, masterdata: MasterData
) -> None:
    assert core.process([stock("BRG-6204", 45)]) == []
    assert core.swap_masterdata(with_item(masterdata, "BRG-6204", reorder_point=20), at(1)) == []
    assert actions(core.process([stock("BRG-6204", 30, minutes=2)])) == []  # 30 > 20 now


def test_a_changed_pack_size_rounds_the_next_reorder(core: Core, masterdata: MasterData) -> None:
    assert core.process([stock("BRG-6204", 45)]) == []
    changed = with_item(masterdata, "BRG-6204", pack_size=40, reorder_qty=120)
    assert core.swap_masterdata(changed, at(1)) == []
    (reorder,) = actions(core.process([stock("BRG-6204", 38, minutes=2)]))
    assert reorder.params["quantity"] == 120  # max(120, 150 - 38) = 120: 3 packs of 40
    assert reorder.params["packs"] == 3


def test_a_safety_stock_lowered_below_the_stock_resolves_the_expedite_alert(
    core: Core, masterdata: MasterData
) -> None:
    # safety_stock 15: a count of 10 orders; the next one, still below, asks to expedite
    core.process([stock("BRG-6204", 10), stock("BRG-6204", 9, minutes=1)])
    decisions = core.swap_masterdata(with_item(masterdata, "BRG-6204", safety_stock=5), at(2))
    (done,) = resolved(decisions, "expedite")
    assert done.dedup_key.startswith("expedite") or "BRG-6204" in done.dedup_key
    assert done.at == at(2)


def test_a_shorter_idle_limit_records_idle_capacity_at_once(
    core: Core, masterdata: MasterData
) -> None:
    core.process([telemetry("press-01", state="idle")])  # press-01: max_idle_minutes 20
    assert actions(core.tick(at(10)), "idle_capacity") == []
    decisions = core.swap_masterdata(
        with_machine(masterdata, "press-01", max_idle_minutes=5), at(11)
    )
    (record,) = actions(decisions, "idle_capacity")
    assert record.subject == "press-01"
    assert fired(decisions, "machine-idle")


def test_a_calendar_moved_to_another_time_zone_takes_the_machine_out_of_its_shift_at_once(
    core: Core, masterdata: MasterData
) -> None:
    core.process([telemetry("press-01", state="idle")])
    assert fired(core.tick(at(25)), "machine-idle")  # 25 min idle in the early shift (UTC)
    calendars = dict(masterdata.calendars)
    # 06:25 UTC is 01:25 in New York: no shift there yet
    calendars["two-shift"] = replace(calendars["two-shift"], zone=ZoneInfo("America/New_York"))
    decisions = core.swap_masterdata(replace(masterdata, calendars=calendars), at(26))
    assert resolved(decisions, "machine-idle")
    fact = core.world.get("machine/plant1/press-01")
    assert fact is not None and fact.fields["in_shift"] is False and fact.fields["shift"] == ""


def test_a_machine_without_a_calendar_any_more_loses_its_shift_fields(
    core: Core, masterdata: MasterData
) -> None:
    core.process([telemetry("press-01", state="running")])
    core.tick(at(5))
    machines = {**masterdata.machines}
    machines["press-01"] = {k: v for k, v in machines["press-01"].items() if k != "shift_calendar"}
    core.swap_masterdata(replace(masterdata, machines=machines), at(6))
    fact = core.world.get("machine/plant1/press-01")
    assert fact is not None
    assert "shift_calendar" not in fact.fields and "in_shift" not in fact.fields
    assert fact.fields["run_hours"] == pytest.approx(6 / 60, abs=1e-3)  # the run time is kept


def test_an_item_removed_from_master_data_keeps_its_fact_as_an_unknown_sku(
    core: Core, masterdata: MasterData
) -> None:
    core.process([stock("BRG-6204", 50)])
    items = {k: v for k, v in masterdata.items.items() if k != "BRG-6204"}
    assert core.swap_masterdata(replace(masterdata, items=items), at(1)) == []
    fact = core.world.get("stock/plant1/BRG-6204")
    assert fact is not None and fact.fields["on_hand"] == 50  # kept, counts still taken
    assert "reorder_point" not in fact.fields and "supplier" not in fact.fields
    assert core.process([stock("BRG-6204", 1, minutes=2)]) == []  # no reorder point: no reorder
    # Listed again, it is judged again at once.
    assert actions(core.swap_masterdata(masterdata, at(3)))


def test_unchanged_master_data_changes_no_fact(core: Core, masterdata: MasterData) -> None:
    core.process([stock("BRG-6204", 50), telemetry("press-01", state="idle")])
    before = dict(core.world.snapshot())
    again = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    assert core.swap_masterdata(again, at(5)) == []
    assert dict(core.world.snapshot()) == before


def test_a_field_a_message_set_wins_over_master_data_as_when_the_fact_was_built() -> None:
    fields: dict[str, Value] = {"on_hand": 5, "reorder_point": 40, "unit": "box", "old": 1}
    old: dict[str, Value] = {"reorder_point": 40, "unit": "pcs", "old": 1}
    new: dict[str, Value] = {"reorder_point": 60, "unit": "kg", "on_hand": 99, "extra": "x"}
    swap_fields(fields, old, new)
    assert fields == {"on_hand": 5, "reorder_point": 60, "unit": "box", "extra": "x"}
