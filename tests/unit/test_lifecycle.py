"""Alert lifecycle in the core: `for` (pending), `resolve_when` (hysteresis), `repeat`, schedules,
`any:` alternatives, publish and notify, and a reload that keeps pending timers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.app.core import Core
from agent.decisions.lifecycle import Lifecycle
from agent.model import (
    ActionDecision,
    AlertDecision,
    AlertResolved,
    Decision,
    Fact,
    Message,
    NotifyDecision,
    PublishDecision,
    Value,
)
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import parse_rule_sources
from agent.rulebook.rules import RuleSet
from agent.world.masterdata import MasterData
from tests.unit.test_states import MATCH_TRIPLES

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
MASTER = MasterData(
    items={"BRG-6204": {"reorder_point": 40, "reorder_qty": 100, "max_level": 150}},
    machines={"CNC-01": {"max_temp_c": 80.0, "max_idle_minutes": 20}},
)
SCHEMA = build_schema(MASTER.item_fields(), MASTER.machine_fields())

HOT = """
rules:
  - id: hot
    when:
      m: kind == "machine" and temp_c > max_temp_c
    for: 10m
    resolve_when: m.temp_c < m.max_temp_c - 5
    repeat: 1h
    then:
      - alert: {severity: warning, message: "{m.machine} at {m.temp_c}"}
      - notify: {route: maintenance}
      - publish: {topic: "andon/{m.machine}", payload: {temp: m.temp_c, lit: true}}
"""


def rules(text: str) -> RuleSet:
    return parse_rule_sources([("test.yaml", text)], SCHEMA)


def telemetry(minutes: float, **fields: Value) -> Message:
    at = T0 + timedelta(minutes=minutes)
    topic = "factory/plant1/machine/CNC-01/telemetry"
    return Message("telemetry", topic, "plant1", "CNC-01", fields, at, at)


def stock(minutes: float, on_hand: float) -> Message:
    at = T0 + timedelta(minutes=minutes)
    topic = "factory/plant1/stock/BRG-6204"
    return Message("stock", topic, "plant1", "BRG-6204", {"on_hand": on_hand}, at, at)


def of(kind: type, decisions: list[Decision]) -> list[Decision]:
    return [d for d in decisions if isinstance(d, kind)]


def test_a_condition_must_hold_for_its_for_duration_before_the_alert_fires() -> None:
    core = Core(rules(HOT), MASTER)
    assert core.process([telemetry(0, state="running", temp_c=90.0)]) == []
    assert core.tick(T0 + timedelta(minutes=9)) == []
    fired = core.tick(T0 + timedelta(minutes=10))
    (alert,) = of(AlertDecision, fired)
    assert alert.repeat_s == 3600
    assert alert.at == T0 + timedelta(minutes=10)
    (notify,) = of(NotifyDecision, fired)
    assert notify.route == "maintenance" and notify.dedup_key == alert.dedup_key
    (publish,) = of(PublishDecision, fired)
    assert publish.topic == "andon/CNC-01" and publish.payload == {"temp": 90.0, "lit": True}


def test_a_pending_condition_that_stops_holding_never_fires() -> None:
    core = Core(rules(HOT), MASTER)
    core.process([telemetry(0, state="running", temp_c=90.0)])
    core.process([telemetry(5, temp_c=70.0)])
    assert core.tick(T0 + timedelta(minutes=20)) == []
    assert core.lifecycle.tracks == {}


def test_firing_repeats_count_but_do_not_notify_or_publish_again() -> None:
    core = Core(rules(HOT), MASTER)
    core.process([telemetry(0, state="running", temp_c=90.0)])
    core.tick(T0 + timedelta(minutes=10))
    again = core.process([telemetry(11, temp_c=91.0)])
    assert [type(d) for d in again] == [AlertDecision]


def test_resolve_when_applies_hysteresis() -> None:
    core = Core(rules(HOT), MASTER)
    core.process([telemetry(0, state="running", temp_c=90.0)])
    (alert,) = of(AlertDecision, core.tick(T0 + timedelta(minutes=10)))
    assert core.process([telemetry(12, temp_c=78.0)]) == []  # below the limit, above 75
    (resolved,) = core.process([telemetry(13, temp_c=74.0)])
    assert isinstance(resolved, AlertResolved)
    assert resolved.dedup_key == alert.dedup_key and resolved.rule_id == "hot"
    assert "resolve_when" in resolved.reason


def test_any_alternatives_fire_once_per_match() -> None:
    text = """
rules:
  - id: trouble
    when:
      any:
        - m: kind == "machine" and state == "down"
        - m: kind == "machine" and exists(fault) and fault != ""
    then:
      - alert: {message: "{m.machine} needs attention"}
"""
    core = Core(rules(text), MASTER)
    assert len(core.process([telemetry(0, state="down", fault="E1")])) == 1
    assert len(core.process([telemetry(1, state="running", fault="E2")])) == 1
    assert core.process([telemetry(2, state="running", fault="")]) == []


def test_a_scheduled_rule_runs_on_its_timetable_against_current_facts() -> None:
    text = """
rules:
  - id: morning-check
    schedule: "0 7 * * *"
    when:
      stock: kind == "stock" and on_hand < reorder_point
    then:
      - alert: {severity: info, message: "{stock.sku} low at the morning check"}
"""
    core = Core(rules(text), MASTER)
    assert core.process([stock(0, 10)]) == []
    assert core.tick(T0 + timedelta(minutes=30)) == []
    (alert,) = core.tick(T0 + timedelta(hours=1))
    assert isinstance(alert, AlertDecision) and alert.at == T0 + timedelta(hours=1)
    assert core.tick(T0 + timedelta(hours=1, minutes=1)) == []
    assert len(core.tick(T0 + timedelta(hours=25))) == 1


def test_a_reload_keeps_the_pending_timer_of_an_unchanged_rule() -> None:
    core = Core(rules(HOT), MASTER)
    core.process([telemetry(0, state="running", temp_c=90.0)])
    other = (
        HOT
        + """
  - id: idle
    when:
      m: kind == "machine" and state == "idle"
    then:
      - idle_capacity: {}
"""
    )
    core.reload(rules(other))
    assert len(core.lifecycle.tracks) == 1
    assert of(AlertDecision, core.tick(T0 + timedelta(minutes=10)))


def test_a_reload_applies_a_changed_threshold_to_the_current_facts() -> None:
    text = """
rules:
  - id: low
    when:
      stock: kind == "stock" and on_hand < 20
    then:
      - reorder: {quantity: 10}
"""
    core = Core(rules(text), MASTER)
    assert core.process([stock(0, 30)]) == []
    (reorder,) = core.reload(rules(text.replace("< 20", "< 35")))
    assert isinstance(reorder, ActionDecision) and reorder.params["quantity"] == 10
    # The unchanged rule does not fire again on the next reload.
    assert core.reload(rules(text.replace("< 20", "< 35"))) == []


def test_a_relational_join_across_two_machines_is_checked_in_python() -> None:
    text = """
rules:
  - id: hotter-than-neighbour
    when:
      a: kind == "machine" and state == "running"
      b: kind == "machine" and line == a.line and machine != a.machine and a.temp_c > temp_c + 10
    then:
      - alert: {message: "{a.machine} runs 10 °C hotter than {b.machine}"}
"""
    master = MasterData(
        machines={"CNC-01": {"line": "A", "max_temp_c": 80.0}, "CNC-02": {"line": "A"}}
    )
    schema = build_schema(master.item_fields(), master.machine_fields())
    core = Core(parse_rule_sources([("t.yaml", text)], schema), master)

    def hot(machine: str, temp: float, minutes: float) -> Message:
        at = T0 + timedelta(minutes=minutes)
        topic = f"factory/plant1/machine/{machine}/telemetry"
        return Message(
            "telemetry", topic, "plant1", machine, {"state": "running", "temp_c": temp}, at, at
        )

    assert core.process([hot("CNC-01", 60.0, 0), hot("CNC-02", 55.0, 1)]) == []
    (alert,) = core.process([hot("CNC-01", 70.0, 2)])
    assert isinstance(alert, AlertDecision)
    assert alert.message == "CNC-01 runs 10 °C hotter than CNC-02"


MORNING = """
rules:
  - id: morning-low
    schedule: "0 7 * * *"
    when:
      s: kind == "stock" and on_hand < reorder_point
    resolve_when: s.on_hand >= s.reorder_point + 10
    then:
      - alert: {severity: info, message: "{s.sku} at {s.on_hand} at the morning check"}
      - notify: {route: stores}
"""


def test_a_scheduled_rule_fires_once_repeats_quietly_and_resolves_at_a_later_run() -> None:
    core = Core(rules(MORNING), MASTER)
    core.process([stock(0, 10)])
    day = timedelta(days=1)
    first = core.tick(T0 + timedelta(hours=1))  # 07:00
    assert {type(d) for d in first} == {AlertDecision, NotifyDecision}
    # Still low at the next morning's run: the store counts a repeat, nobody is notified again.
    (repeat,) = core.tick(T0 + timedelta(hours=1) + day)
    assert (
        isinstance(repeat, AlertDecision)
        and repeat.dedup_key == of(AlertDecision, first)[0].dedup_key
    )
    # Stock comes back between runs: nothing happens until the next run, which resolves.
    assert core.process([stock(60 * 30, 45)]) == []  # above the point, below resolve_when
    assert core.tick(T0 + timedelta(hours=1) + 2 * day) == []  # hysteresis: still firing
    assert core.process([stock(60 * 50, 60)]) == []  # resolve_when holds, but not a run time
    (resolved,) = core.tick(T0 + timedelta(hours=1) + 3 * day)
    assert isinstance(resolved, AlertResolved) and resolved.rule_id == "morning-low"
    assert "resolve_when" in resolved.reason
    assert not core.lifecycle.tracks
    # Low again at a later run: a new firing, notified.
    core.process([stock(60 * 80, 5)])
    again = core.tick(T0 + timedelta(hours=1) + 4 * day)
    assert {type(d) for d in again} == {AlertDecision, NotifyDecision}


def test_a_scheduled_rule_without_resolve_when_leaves_its_alert_for_a_person() -> None:
    text = MORNING.replace("    resolve_when: s.on_hand >= s.reorder_point + 10\n", "")
    core = Core(rules(text), MASTER)
    core.process([stock(0, 10)])
    assert of(AlertDecision, core.tick(T0 + timedelta(hours=1)))
    core.process([stock(60, 90)])
    assert core.tick(T0 + timedelta(hours=1, days=1)) == []  # no resolve, the track is gone
    assert not core.lifecycle.tracks
    core.process([stock(60 * 30, 10)])
    again = core.tick(T0 + timedelta(hours=1, days=2))
    assert {type(d) for d in again} == {AlertDecision, NotifyDecision}


def test_a_scheduled_rule_in_a_time_zone_runs_on_the_zones_clock_across_dst() -> None:
    text = MORNING.replace(
        'schedule: "0 7 * * *"', 'schedule: "0 7 * * *"\n    timezone: Europe/Berlin'
    )
    core = Core(rules(text), MASTER)
    at = datetime(2026, 3, 27, 0, tzinfo=UTC)
    core.process([Message("stock", "t", "plant1", "BRG-6204", {"on_hand": 10}, at, at)])
    runs: list[str] = []
    while at < datetime(2026, 3, 31, tzinfo=UTC):
        at += timedelta(minutes=15)
        if of(AlertDecision, core.tick(at)):
            runs.append(at.strftime("%m-%d %H:%M"))
    # 07:00 in Berlin: 06:00 UTC before the spring change, 05:00 UTC after.
    assert runs == ["03-27 06:00", "03-28 06:00", "03-29 05:00", "03-30 05:00"]


def test_a_reload_that_moves_a_schedule_runs_it_at_the_new_time() -> None:
    core = Core(rules(MORNING), MASTER)
    core.process([stock(0, 10)])
    assert core.tick(T0 + timedelta(minutes=30)) == []  # 06:30: the next run is 07:00
    core.reload(rules(MORNING.replace('"0 7 * * *"', '"45 6 * * *"')))
    assert of(AlertDecision, core.tick(T0 + timedelta(minutes=45)))


@pytest.mark.parametrize(("state", "event", "guard", "outcome", "to"), MATCH_TRIPLES)
def test_the_lifecycle_moves_a_match_by_the_table(
    state: str, event: str, guard: str, outcome: str, to: str | None
) -> None:
    """Every (state, event, guard) of `states.MATCH_MOVES` on a real track: what `holds` or
    `stops` answers, the state it leaves, and the change the next commit saves."""
    text = (
        HOT
        if guard != "absent"
        else HOT.replace("    resolve_when: m.temp_c < m.max_temp_c - 5\n", "")
    )
    (rule,) = rules(text).rules
    keys = {"m": "machine/plant1/CNC-01"}
    lifecycle = Lifecycle()
    assert lifecycle.holds(rule, keys, T0) == "nothing"
    if state == "firing":
        assert lifecycle.holds(rule, keys, T0 + timedelta(minutes=10)) == "fire"
    lifecycle.take_changes()  # committed: as the store has it
    (track,) = lifecycle.tracks.values()
    if event == "stops":
        temp = 70.0 if guard == "met" else 78.0  # resolve_when: below 75
        fields: dict[str, Value] = {"kind": "machine", "temp_c": temp, "max_temp_c": 80.0}
        facts = {"m": Fact("machine", "plant1", "CNC-01", fields, T0)}
        assert lifecycle.stops(track, rule, facts) == outcome
    else:
        at = T0 + timedelta(minutes=10 if event == "due" else 5)
        assert lifecycle.holds(rule, keys, at) == outcome
    after = [t.firing for t in lifecycle]
    assert after == ([] if to is None else [to == "firing"])
    changes = lifecycle.take_changes()
    if to is None:
        assert (changes.saved, changes.removed) == ((), (track.key,))
    elif to != state:
        assert [t.firing for t in changes.saved] == [True] and changes.removed == ()
    else:
        assert (changes.saved, changes.removed) == ((), ())
