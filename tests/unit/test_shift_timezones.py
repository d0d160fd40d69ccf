"""Shift calendars in a plant's own time zone, across both daylight-saving changes (Berlin 2026:
29 March 02:00 → 03:00, 25 October 03:00 → 02:00)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.errors import MasterDataError
from agent.world.shifts import CurrentShift, ShiftCalendar, parse_calendars

RAW = {
    "berlin": {
        "timezone": "Europe/Berlin",
        "shifts": [
            {"name": "early", "days": "daily", "start": "06:00", "end": "14:00"},
            {"name": "night", "days": "daily", "start": "22:00", "end": "06:00"},
        ],
        "holidays": ["2026-12-25"],
        "planned_downtime": [
            {"days": "sat", "start": "10:00", "end": "12:00", "note": "cleaning"},
            {"start": "2026-07-01T08:00:00", "end": "2026-07-01T09:00:00", "note": "audit"},
        ],
    }
}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture
def berlin() -> ShiftCalendar:
    return parse_calendars(RAW, "machines.yaml")["berlin"]


def working(calendar: ShiftCalendar, at: datetime) -> CurrentShift:
    shift = calendar.shift_at(at)
    assert shift is not None, f"no shift at {at}"
    return shift


@pytest.mark.parametrize(
    ("day", "start_utc"),
    [
        ((2026, 1, 15), utc(2026, 1, 15, 5)),  # winter: UTC+1
        ((2026, 3, 28), utc(2026, 3, 28, 5)),  # the day before summer time
        ((2026, 3, 29), utc(2026, 3, 29, 4)),  # summer time from 02:00 that night
        ((2026, 7, 15), utc(2026, 7, 15, 4)),  # summer: UTC+2
        ((2026, 10, 25), utc(2026, 10, 25, 5)),  # winter time again from 03:00
    ],
)
def test_the_early_shift_starts_at_six_local_time(
    berlin: ShiftCalendar, day: tuple[int, int, int], start_utc: datetime
) -> None:
    assert start_utc.date().timetuple()[:3] == day
    assert working(berlin, start_utc).name == "early"
    assert working(berlin, start_utc).start == start_utc
    assert working(berlin, start_utc - timedelta(minutes=1)).name == "night"


def test_a_night_shift_over_the_spring_change_is_seven_hours(berlin: ShiftCalendar) -> None:
    shift = working(berlin, utc(2026, 3, 29, 1, 30))
    assert shift.name == "night"
    assert (shift.start, shift.end) == (utc(2026, 3, 28, 21), utc(2026, 3, 29, 4))


def test_a_night_shift_over_the_autumn_change_is_nine_hours(berlin: ShiftCalendar) -> None:
    shift = working(berlin, utc(2026, 10, 25, 1, 30))
    assert shift.name == "night"
    assert (shift.start, shift.end) == (utc(2026, 10, 24, 20), utc(2026, 10, 25, 5))


def test_holidays_and_weekly_downtime_follow_the_local_date(berlin: ShiftCalendar) -> None:
    # 07:00 Berlin on the 25th is a holiday; 00:30 Berlin on the 25th (23:30 UTC on the 24th)
    # is still the night shift that began on the 24th, local time.
    assert berlin.shift_at(utc(2026, 12, 25, 6)) is None
    assert working(berlin, utc(2026, 12, 24, 23, 30)).name == "night"
    # Saturday 10:00-12:00 Berlin cleaning: 08:00-10:00 UTC in summer.
    assert berlin.planned_downtime(utc(2026, 7, 4, 8, 30))
    assert not berlin.planned_downtime(utc(2026, 7, 4, 10, 30))
    # A one-off window without an offset is read in the calendar's zone: 06:00-07:00 UTC.
    assert berlin.planned_downtime(utc(2026, 7, 1, 6, 30))
    assert not berlin.planned_downtime(utc(2026, 7, 1, 8, 30))


def test_a_calendar_without_a_time_zone_stays_in_utc() -> None:
    raw = {
        "plain": {"shifts": [{"name": "day", "days": "daily", "start": "06:00", "end": "14:00"}]}
    }
    calendar = parse_calendars(raw, "machines.yaml")["plain"]
    assert working(calendar, utc(2026, 7, 15, 6)).start == utc(2026, 7, 15, 6)


def test_an_unknown_time_zone_is_refused_with_its_place() -> None:
    raw = {"x": {"timezone": "Mars/Olympus", "shifts": []}}
    with pytest.raises(MasterDataError, match=r"machines.yaml: calendars.x.timezone: unknown time"):
        parse_calendars(raw, "machines.yaml")
