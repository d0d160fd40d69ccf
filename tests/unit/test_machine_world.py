"""Machine facts: run hours, service hours, windowed averages and trends, silence, scrap share,
shifts and utilisation, all from telemetry and the passing of time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from agent.errors import MasterDataError
from agent.model import Fact, Message, Value
from agent.world.machine import MetricWindows, machine_fact, refresh_machine, serviced
from agent.world.masterdata import parse_machine_calendars, parse_machines
from agent.world.metricwindow import BUCKETS, Window
from agent.world.shifts import ShiftCalendar, parse_calendars

MONDAY_6 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
CALENDARS = parse_calendars(
    {
        "two-shift": {
            "shifts": [
                {"name": "early", "days": "mon-fri", "start": "06:00", "end": "14:00"},
                {"name": "late", "days": "mon-fri", "start": "14:00", "end": "22:00"},
            ],
            "holidays": ["2026-03-03"],
            "planned_downtime": [
                {"start": "2026-03-02T10:00:00Z", "end": "2026-03-02T11:00:00Z", "note": "x"},
                {"days": "fri", "start": "20:00", "end": "22:00", "note": "cleaning"},
            ],
        },
        "night": {
            "shifts": [{"name": "night", "days": "sun-thu", "start": "22:00", "end": "06:00"}]
        },
    },
    "machines.yaml",
)
TWO_SHIFT = CALENDARS["two-shift"]


def at(minutes: float) -> datetime:
    return MONDAY_6 + timedelta(minutes=minutes)


def message(minutes: float, **fields: Value) -> Message:
    when = at(minutes)
    topic = "factory/plant1/machine/m1/telemetry"
    return Message("telemetry", topic, "plant1", "m1", fields, when, when)


class Machine:
    """Feeds one machine's fact as the world state would."""

    def __init__(self, calendar: ShiftCalendar | None = TWO_SHIFT, **master: Value) -> None:
        self.fact: Fact | None = None
        self.calendar = calendar
        self.windows = MetricWindows()
        self.master = master

    def send(self, minutes: float, **fields: Value) -> dict[str, Value]:
        self.fact = machine_fact(
            self.fact, message(minutes, **fields), self.master, self.calendar, self.windows
        )
        return dict(self.fact.fields)

    def wait(self, minutes: float) -> dict[str, Value]:
        assert self.fact is not None
        fresh = refresh_machine(self.fact, at(minutes), self.calendar, self.windows)
        self.fact = fresh or self.fact
        return dict(self.fact.fields)


def test_run_hours_count_only_running_time() -> None:
    m = Machine()
    m.send(0, state="running")
    m.send(60, state="idle")
    m.send(90, state="running")
    fields = m.wait(120)
    assert fields["run_hours"] == 1.5
    assert fields["hours_since_service"] == 1.5
    assert fields["state_minutes"] == 30


def test_a_service_restarts_hours_since_service_but_not_run_hours() -> None:
    m = Machine()
    m.send(0, state="running")
    assert m.fact is not None
    m.fact = serviced(m.fact, at(60), TWO_SHIFT)
    fields = m.wait(90)
    assert (fields["run_hours"], fields["hours_since_service"]) == (1.5, 0.5)
    assert fields["last_service"] == at(60).isoformat()


def test_idle_minutes_grow_only_while_idle() -> None:
    m = Machine()
    m.send(0, state="idle")
    assert m.wait(25)["idle_minutes"] == 25
    m.send(26, state="running")
    assert m.wait(30)["idle_minutes"] == 0


def test_average_is_over_the_window_and_keeps_the_last_value_when_silent() -> None:
    m = Machine(avg_window_min=10)
    m.send(0, state="running", temp_c=60)
    m.send(5, temp_c=70)
    assert m.send(8, temp_c=80)["temp_c_avg"] == 70
    assert m.wait(12)["temp_c_avg"] == 75  # the 0-minute sample left the window
    assert m.wait(60)["temp_c_avg"] == 80  # silent: the last value, not nothing


def test_trend_is_the_change_per_hour() -> None:
    m = Machine()
    m.send(0, temp_c=40.0)
    assert "temp_c_trend" not in m.fact.fields  # type: ignore[union-attr]
    for minute in range(10, 40, 10):
        fields = m.send(minute, temp_c=40.0 + minute / 10)
    assert fields["temp_c_trend"] == pytest.approx(6.0)


def test_counters_get_no_average_and_scrap_share_comes_from_good_and_scrap() -> None:
    fields = Machine().send(0, cycles=10, good=95, scrap=5)
    assert fields["scrap_pct"] == 5.0
    assert "cycles_avg" not in fields


def test_seconds_since_the_last_message_and_stale() -> None:
    m = Machine(stale_after_s=120)
    m.send(0, state="running")
    fields = m.wait(2)
    assert (fields["seen_s"], fields["stale"]) == (120, False)
    fields = m.wait(2.5)
    assert (fields["seen_s"], fields["stale"]) == (150, True)
    assert m.send(3)["stale"] is False


def test_shift_fields_and_utilization_so_far() -> None:
    m = Machine()
    m.send(0, state="running")
    m.send(60, state="idle")
    fields = m.wait(120)
    assert (fields["in_shift"], fields["shift"], fields["shift_minutes"]) == (True, "early", 120)
    assert fields["utilization_pct"] == 50
    assert fields["planned_downtime"] is False
    assert m.wait(250)["planned_downtime"] is True  # 10:10, a one-off window


def test_a_new_shift_starts_its_utilization_from_zero() -> None:
    m = Machine()
    m.send(0, state="running")
    assert m.wait(8 * 60 - 1)["utilization_pct"] == 100
    m.send(8 * 60 + 30, state="idle")  # 14:30, late shift
    fields = m.wait(9 * 60)
    assert (fields["shift"], fields["utilization_pct"]) == ("late", 50)


def test_after_the_shift_utilization_keeps_the_shift_figure() -> None:
    m = Machine()
    m.send(8 * 60, state="running")  # 14:00
    m.send(12 * 60, state="idle")  # 18:00
    fields = m.wait(17 * 60)  # 23:00
    assert (fields["in_shift"], fields["shift"], fields["utilization_pct"]) == (False, "", 50)


def test_holidays_and_weekends_have_no_shift_and_night_shifts_cross_midnight() -> None:
    assert TWO_SHIFT.shift_at(datetime(2026, 3, 3, 8, tzinfo=UTC)) is None  # holiday
    assert TWO_SHIFT.shift_at(datetime(2026, 3, 7, 8, tzinfo=UTC)) is None  # Saturday
    night = CALENDARS["night"].shift_at(datetime(2026, 3, 2, 3, tzinfo=UTC))  # Monday 03:00
    assert night is not None and night.start.date() == date(2026, 3, 1)
    assert TWO_SHIFT.planned_downtime(datetime(2026, 3, 6, 21, tzinfo=UTC))  # weekly window


def test_a_machine_without_a_calendar_has_no_shift_fields() -> None:
    fields = Machine(calendar=None).send(0, state="idle")
    assert "in_shift" not in fields and "utilization_pct" not in fields


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (
            {"shifts": [{"name": "a", "days": "mon-fry", "start": "06:00", "end": "14:00"}]},
            "'mon-fry'",
        ),
        ({"shifts": [{"name": "a", "start": "6", "end": "14:00"}]}, "HH:MM"),
        ({"holidays": ["25.12.2026"]}, "YYYY-MM-DD"),
        (
            {"planned_downtime": [{"start": "2026-03-02T10:00Z", "end": "2026-03-02T09:00Z"}]},
            "after",
        ),
        ({"shift": []}, "unknown key"),
    ],
)
def test_a_wrong_calendar_is_refused_with_where_and_why(spec: dict[str, Value], says: str) -> None:
    with pytest.raises(MasterDataError) as caught:
        parse_calendars({"c": spec}, "machines.yaml")
    assert "machines.yaml: calendars.c" in str(caught.value) and says in str(caught.value)


def test_a_window_expires_old_samples_and_never_the_newest() -> None:
    window = Window(60.0)
    window.add(0.0, 1.0)
    window.add(30.0, 3.0)
    window.expire(75.0)
    assert window.mean() == 3.0 and window.slope_per_hour() is None
    window.expire(10_000.0)
    assert window.mean() == 3.0


def test_the_machines_file_holds_calendars_and_a_machine_must_name_a_known_one() -> None:
    text = """\
calendars:
  day: {shifts: [{name: day, days: mon-fri, start: "07:00", end: "15:00"}]}
machines:
  m1: {shift_calendar: day}
  m2: {shift_calendar: nights}
"""
    machines = parse_machines(text, "machines.yaml")
    with pytest.raises(MasterDataError) as caught:
        parse_machine_calendars(text, "machines.yaml", machines)
    assert "m2: shift_calendar 'nights' is not in calendars (known: day)" in str(caught.value)
    ok = text.replace("nights", "day")
    calendars = parse_machine_calendars(ok, "machines.yaml", parse_machines(ok, "machines.yaml"))
    assert calendars["day"].shift_at(datetime(2026, 3, 2, 8, tzinfo=UTC)) is not None


def test_a_window_keeps_sums_per_bucket_not_every_sample() -> None:
    """A gateway sending every second for three hours: the window's memory stays bounded, the
    trend of a straight line is its slope, and the mean is that of the samples of the last
    window give or take one bucket at the old edge."""
    window = Window(600.0)
    values = {}
    for second in range(3 * 3600):
        value = 50.0 + 0.01 * second  # 36 per hour
        values[second] = value
        window.add(float(second), value)
        window.expire(float(second))
    assert len(window.buckets) <= 7 * (BUCKETS + 1)
    assert window.slope_per_hour() == pytest.approx(36.0)
    now = 3 * 3600 - 1
    exact = [v for s, v in values.items() if s >= now - 600]
    longer = [v for s, v in values.items() if s >= now - 600 - 600 / BUCKETS]
    mean = window.mean()
    assert mean is not None
    assert sum(longer) / len(longer) <= mean <= sum(exact) / len(exact)
    assert len(exact) <= window.samples() <= len(longer)
