"""Work orders people close reach the machine facts: the open count, and a service marked done
restarts `hours_since_service` (core + a real SQLite store, as the daemon wires them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.app import commands
from agent.app.core import Core
from agent.app.machinesync import sync_work_orders, work_order_closed
from agent.model import ActionDecision, Message, Outcome
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.store.repository import Store
from agent.world.masterdata import MasterData, load_masterdata

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def core() -> Core:
    shipped = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    machines = {k: dict(v) for k, v in shipped.machines.items()}
    machines["press-01"].update(service_interval_h=2, stale_after_s=86400)
    data = MasterData(shipped.items, machines, shipped.calendars)
    schema = build_schema(data.item_fields(), data.machine_fields())
    return Core(load_rules([ROOT / "rules/maintenance.yaml"], schema), data)


def running(minutes: float) -> Message:
    when = T0 + timedelta(minutes=minutes)
    topic = "factory/plant1/machine/press-01/telemetry"
    return Message("telemetry", topic, "plant1", "press-01", {"state": "running"}, when, when)


def hours_since_service(core: Core) -> object:
    fact = core.world.get("machine/plant1/press-01")
    assert fact is not None
    return fact.fields["hours_since_service"]


def test_a_service_marked_done_restarts_the_hours_and_resolves_its_alert(core: Core) -> None:
    with Store.open("sqlite://") as store:
        core.process([running(0)])
        decisions = core.tick(T0 + timedelta(hours=2))
        (order,) = [d for d in decisions if isinstance(d, ActionDecision)]
        assert order.params["service"] is True
        store.apply(Outcome(decisions))
        assert core.world.get("machine/plant1/press-01").fields["open_work_orders"] == 1  # type: ignore[union-attr]
        (row,) = store.work_orders()
        done_at = T0 + timedelta(hours=2, minutes=30)
        closed = commands.apply(store, commands.command("done", row["id"], "anna"), done_at)
        followed = work_order_closed(core, closed, done_at)
        assert hours_since_service(core) == 0
        assert core.world.get("machine/plant1/press-01").fields["open_work_orders"] == 0  # type: ignore[union-attr]
        assert [d.rule_id for d in followed] == ["service-due"]  # its alert resolves
        store.apply(Outcome(followed))
        (alert,) = store.alerts()
        assert alert["status"] == "resolved"
        # the hours count again from the service on
        core.tick(T0 + timedelta(hours=3, minutes=30))
        assert hours_since_service(core) == 1.0


def test_a_repair_marked_done_is_no_service(core: Core) -> None:
    with Store.open("sqlite://") as store:
        core.process([running(0)])
        when = T0 + timedelta(minutes=90)
        down = Message(
            "telemetry", "t", "plant1", "press-01", {"state": "down", "fault": "E17"}, when, when
        )
        store.apply(Outcome(core.process([down])))
        (row,) = store.work_orders()
        closed = commands.apply(store, commands.command("done", row["id"], "anna"), when)
        work_order_closed(core, closed, when)
        assert hours_since_service(core) == 1.5


def test_a_service_done_from_another_process_is_learned_by_the_resync_once(core: Core) -> None:
    with Store.open("sqlite://") as store:
        core.process([running(0)])
        store.apply(Outcome(core.tick(T0 + timedelta(hours=2))))
        (row,) = store.work_orders()
        done_at = T0 + timedelta(hours=2)
        commands.apply(store, commands.command("done", row["id"], "cli"), done_at)
        core.tick(T0 + timedelta(hours=2, minutes=10))
        assert hours_since_service(core) == pytest.approx(2 + 1 / 6, abs=1e-3)
        since = done_at - timedelta(minutes=2)
        sync_work_orders(core, store, since, T0 + timedelta(hours=2, minutes=10))
        assert hours_since_service(core) == pytest.approx(1 / 6, abs=1e-3)
        core.tick(T0 + timedelta(hours=2, minutes=40))
        sync_work_orders(core, store, since, T0 + timedelta(hours=2, minutes=40))  # again
        assert hours_since_service(core) == pytest.approx(4 / 6, abs=1e-3)
