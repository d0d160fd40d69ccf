"""Late data (issue 20): a gateway's backfill (readings with their original `ts`, arriving in
seconds after an outage) is judged on the readings' time, not on the backlog's wall clock.

The same plant morning runs through the core twice: live (each reading arrives at its `ts`, a
tick every 30 s) and as a backfill (the 2 hours arrive in 6 s, ticks go on by the wall clock).
Both must decide the same, at the same plant times; silence is judged by what *arrives*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.app.core import Core
from agent.model import AlertDecision, AlertResolved, Decision, Message, Value
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.world.masterdata import load_masterdata

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # Monday, the early shift starts (two-shift)
TICK = timedelta(seconds=30)
HOURS = 2


def make_core() -> Core:
    masterdata = load_masterdata(ROOT / "config/items.yaml", ROOT / "config/machines.yaml")
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    return Core(load_rules([ROOT / "rules"], schema), masterdata)


Reading = Callable[[int], dict[str, Value]]


def normal(_: int) -> dict[str, Value]:
    return {"state": "running", "temp_c": 70.0, "vibration_mm_s": 2.0}


def overheat_in_the_middle(i: int) -> dict[str, Value]:
    # Readings every 30 s: 10 minutes at 95 degrees from 60 minutes in.
    hot = 120 <= i < 140
    return {"state": "running", "temp_c": 95.0 if hot else 70.0, "vibration_mm_s": 2.0}


def readings(reading: Reading) -> list[tuple[datetime, dict[str, Value]]]:
    return [(T0 + i * TICK, reading(i)) for i in range(HOURS * 120 + 1)]


def message(at: datetime, arrived: datetime, fields: dict[str, Value]) -> Message:
    topic = "factory/plant1/machine/press-01/telemetry"
    return Message("telemetry", topic, "plant1", "press-01", fields, at, arrived)


def live(core: Core, reading: Reading) -> list[Decision]:
    decisions: list[Decision] = []
    for at, fields in readings(reading):
        decisions += core.process([message(at, at, fields)])
        decisions += core.tick(at + TICK / 2)
    return decisions


def backfill(core: Core, reading: Reading, arrive: datetime) -> list[Decision]:
    """The readings arrive from `arrive` on, 25 ms apart (2 hours in 6 s), in batches of 20;
    the scheduler ticks every 30 s of wall clock, during and after."""
    decisions: list[Decision] = []
    batch: list[Message] = []
    next_tick = arrive
    for n, (at, fields) in enumerate(readings(reading)):
        arrived = arrive + n * timedelta(milliseconds=25)
        while next_tick <= arrived:
            decisions += core.tick(next_tick)
            next_tick += timedelta(seconds=2)  # a tick every 2 s: harder than 30 s
        batch.append(message(at, arrived, fields))
        if len(batch) == 20:
            decisions += _many(core, batch)
            batch = []
    decisions += _many(core, batch)
    decisions += core.tick(next_tick)
    return decisions


def _many(core: Core, batch: list[Message]) -> list[Decision]:
    out: list[Decision] = []
    for result in core.process_many(batch):
        assert isinstance(result, list), result
        out += result
    return out


def summary(decisions: Iterable[Decision]) -> list[tuple[str, str, str]]:
    """(fired or resolved, rule, plant time) of each alert episode's start and end (a repeat
    of an open alert is not a new episode)."""
    out, open_keys = [], set()
    for d in decisions:
        if isinstance(d, AlertDecision) and d.dedup_key not in open_keys:
            open_keys.add(d.dedup_key)
            out.append(("fired", d.rule_id, d.at.isoformat()))
        elif isinstance(d, AlertResolved):
            open_keys.discard(d.dedup_key)
            out.append(("resolved", d.rule_id, d.at.isoformat()))
    return out


def same_within_a_tick(
    got: list[tuple[str, str, str]], expected: list[tuple[str, str, str]]
) -> None:
    """The same episodes in the same order, each at the same plant time give or take one live
    tick (live ticks fall between readings; a backfill's on them)."""
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    for g, e in zip(got, expected, strict=True):
        gap = abs(datetime.fromisoformat(g[2]) - datetime.fromisoformat(e[2]))
        assert gap <= TICK, (g, e)


def fact(core: Core) -> dict[str, Value]:
    found = core.world.get("machine/plant1/press-01")
    assert found is not None
    return dict(found.fields)


def test_a_backfill_of_normal_readings_is_not_silence_nor_idle_and_books_its_run_hours() -> None:
    core = make_core()
    decided = backfill(core, normal, T0 + timedelta(hours=HOURS, minutes=5))
    assert [s for s in summary(decided) if s[1] in ("sensor-stale", "machine-idle")] == []
    assert summary(decided) == []
    assert fact(core)["run_hours"] == pytest.approx(HOURS, abs=0.01)
    assert fact(core)["stale"] is False


def test_a_backfill_decides_what_live_decides_at_the_same_plant_times() -> None:
    for reading in (normal, overheat_in_the_middle):
        at_live, at_late = make_core(), make_core()
        expected = summary(live(at_live, reading))
        got = summary(backfill(at_late, reading, T0 + timedelta(hours=HOURS, minutes=5)))
        assert bool(expected) == (reading is overheat_in_the_middle)  # something to compare
        same_within_a_tick(got, expected)
        for name in ("run_hours", "temp_c_avg", "temp_c_trend", "utilization_pct", "idle_minutes"):
            assert fact(at_late)[name] == pytest.approx(fact(at_live)[name], abs=0.02), name


def test_the_overheat_inside_a_backfill_is_one_episode_at_its_plant_times() -> None:
    core = make_core()
    decided = summary(
        backfill(core, overheat_in_the_middle, T0 + timedelta(hours=HOURS, minutes=5))
    )
    hot = [s for s in decided if s[1] == "overheating"]
    assert [s[0] for s in hot] == ["fired", "resolved"]
    fired, resolved = (datetime.fromisoformat(s[2]) for s in hot)
    # Hot from 60 min in: the 10-minute average passes 80 after a few hot readings, `for: 5m`.
    assert T0 + timedelta(minutes=60) < fired < T0 + timedelta(minutes=75)
    assert fired < resolved < T0 + timedelta(minutes=90)


def test_a_real_outage_fires_one_stale_alert_that_the_backfill_resolves_when_it_arrives() -> None:
    core = make_core()
    decided: list[Decision] = []
    decided += core.process([message(T0, T0, normal(0))])
    # Nothing arrives for two hours: the wall-clock ticks see the silence.
    at = T0
    while at < T0 + timedelta(hours=HOURS):
        at += TICK
        decided += core.tick(at)
    arrive = T0 + timedelta(hours=HOURS, seconds=10)
    decided += backfill(core, lambda i: normal(i + 1), arrive)
    stale = [s for s in summary(decided) if s[1] == "sensor-stale"]
    assert [s[0] for s in stale] == ["fired", "resolved"]  # one episode, not one per tick
    fired, resolved = (datetime.fromisoformat(s[2]) for s in stale)
    assert fired == T0 + timedelta(seconds=330)  # stale after 300 s, seen at the next tick
    assert resolved >= arrive  # the episode covers the outage: it ends when data came
    assert not [s for s in summary(decided) if s[1] == "machine-idle"]
    # Run hours: the outage was booked once (running, as last known), not again by the backfill.
    assert fact(core)["run_hours"] == pytest.approx(HOURS + 0.5 / 60 * 2, abs=0.05)


def test_an_alert_fired_on_backfilled_readings_is_marked_late_and_a_live_one_is_not() -> None:
    live_core, late_core = make_core(), make_core()
    live_hot = [
        d
        for d in live(live_core, overheat_in_the_middle)
        if isinstance(d, AlertDecision) and d.rule_id == "overheating"
    ]
    late_hot = [
        d
        for d in backfill(late_core, overheat_in_the_middle, T0 + timedelta(hours=HOURS, minutes=5))
        if isinstance(d, AlertDecision) and d.rule_id == "overheating"
    ]
    assert live_hot and not any(d.late for d in live_hot)
    assert late_hot[0].late  # the firing; its repeats are counts on the same row


def plant_day(i: int) -> dict[str, Value]:
    """press-01 over 16 hours (both shifts), a reading every 30 s: running, a 40-minute idle
    spell at 09:00 (idle capacity), a 15-minute overheat at 10:30 and a stop at 13:00."""
    minute = i / 2
    state = "running"
    if 180 <= minute < 220 or 420 <= minute < 440:
        state = "idle"
    temp = 95.0 if 270 <= minute < 285 else 70.0
    return {"state": state, "temp_c": temp, "vibration_mm_s": 2.0}


def test_a_plant_day_with_two_hours_backfilled_decides_as_the_day_live() -> None:
    """One plant day live, and the same day with 10:00-12:00 held by the gateway and forwarded
    in 6 s at 12:00 (ticks going on every 30 s of wall clock meanwhile): every episode at the
    same plant time (within a tick) and the same derived values at the end."""
    day = [(T0 + i * TICK, plant_day(i)) for i in range(16 * 120)]
    gap_from, gap_to = T0 + timedelta(hours=4), T0 + timedelta(hours=6)

    def run(backfilled: bool) -> tuple[Core, list[Decision]]:
        core, decided = make_core(), []
        held: list[Message] = []
        for at, fields in day:
            if backfilled and gap_from <= at < gap_to:
                held.append(message(at, at, fields))  # buffered at the gateway
                decided += core.tick(at + TICK / 2)  # the agent's clock goes on, silence
                continue
            if held:  # the network is back: the buffer arrives in 6 s, then this reading
                for n, late in enumerate(held):
                    arrived = at + n * timedelta(milliseconds=25)
                    decided += _many(core, [message(late.ts, arrived, dict(late.fields))])
                held = []
            decided += core.process([message(at, at, fields)])
            decided += core.tick(at + TICK / 2)
        return core, decided

    live_core, live_decided = run(False)
    late_core, late_decided = run(True)
    expected = [s for s in summary(live_decided) if s[1] != "sensor-stale"]
    got = [s for s in summary(late_decided) if s[1] != "sensor-stale"]
    assert {s[1] for s in expected} >= {"machine-idle", "overheating"}
    same_within_a_tick(got, expected)
    # The outage itself is one stale episode (silence as it happened), ended by the backfill.
    stale = [s for s in summary(late_decided) if s[1] == "sensor-stale"]
    assert [s[0] for s in stale] == ["fired", "resolved"]
    for name in ("run_hours", "temp_c_avg", "utilization_pct", "idle_minutes", "state_minutes"):
        assert fact(late_core)[name] == pytest.approx(fact(live_core)[name], abs=0.02), name


def test_an_out_of_order_reading_is_counted_and_is_an_arrival_not_a_new_state() -> None:
    core = make_core()
    core.process([message(T0, T0, normal(0))])
    arrived = T0 + timedelta(minutes=10)
    older = {"state": "idle", "temp_c": 20.0, "vibration_mm_s": 2.0}
    assert core.process([message(T0 - timedelta(minutes=1), arrived, older)]) == []
    assert core.world.out_of_order == 1
    assert fact(core)["state"] == "running"  # the newer state stands
    # It arrived: ten minutes on from the first reading, the machine is not silent.
    decided = core.tick(arrived + timedelta(seconds=30))
    assert not [d for d in decided if isinstance(d, AlertDecision) and d.rule_id == "sensor-stale"]
    assert fact(core)["stale"] is False
