"""Cron lines in a time zone, across both DST changes (Europe/Berlin, 2026: clocks go 02:00 ->
03:00 on Sunday 29 March, 03:00 -> 02:00 on Sunday 25 October), read as cron reads them: by the
zone's wall clock, a skipped time firing at the change, a repeated time firing once.

APScheduler 3.11's own zone handling fires the repeated 02:30 twice and the skipped one an hour
late, so these also pin that the agent does not lean on it. Every instant is pinned.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.notify.digest import CronSchedule
from agent.rulebook.timing import parse_cron


def fires(line: str, start: datetime, end: datetime, zone: str = "Europe/Berlin") -> list[str]:
    """Every fire time of `line` in [start, end), as UTC `MM-DD HH:MM`."""
    cron = parse_cron(line, zone)
    found, out = cron.next_at(start), []
    while found is not None and found < end:
        out.append(found.strftime("%m-%d %H:%M"))
        found = cron.next_after(found)
    return out


SPRING = datetime(2026, 3, 27, tzinfo=UTC)
AUTUMN = datetime(2026, 10, 23, tzinfo=UTC)


def test_a_morning_time_keeps_its_local_hour_across_both_changes() -> None:
    # 06:00 in Berlin: 05:00 UTC in winter, 04:00 UTC in summer.
    assert fires("0 6 * * *", SPRING, SPRING + timedelta(days=4)) == [
        "03-27 05:00",
        "03-28 05:00",
        "03-29 04:00",
        "03-30 04:00",
    ]
    assert fires("0 6 * * *", AUTUMN, AUTUMN + timedelta(days=4)) == [
        "10-23 04:00",
        "10-24 04:00",
        "10-25 05:00",
        "10-26 05:00",
    ]


def test_a_time_the_spring_change_skips_fires_once_at_the_change() -> None:
    # 02:30 does not exist on 29 March: it fires when the clocks jump (01:00 UTC, 03:00 local).
    assert fires("30 2 * * *", SPRING, SPRING + timedelta(days=4)) == [
        "03-27 01:30",
        "03-28 01:30",
        "03-29 01:00",
        "03-30 00:30",
    ]
    # Several skipped times (02:00, 02:15, 02:30, 02:45) still fire once.
    assert fires("*/15 2 * * *", SPRING + timedelta(days=2), SPRING + timedelta(days=3)) == [
        "03-29 01:00"
    ]


def test_a_time_the_autumn_change_repeats_fires_once_at_its_first_pass() -> None:
    assert fires("30 2 * * *", AUTUMN, AUTUMN + timedelta(days=4)) == [
        "10-23 00:30",
        "10-24 00:30",
        "10-25 00:30",
        "10-26 01:30",
    ]


def test_an_every_hour_line_fires_in_both_passes_of_the_repeated_hour() -> None:
    night = datetime(2026, 10, 24, 23, tzinfo=UTC)
    assert fires("*/30 * * * *", night, night + timedelta(hours=4)) == [
        "10-24 23:00",
        "10-24 23:30",
        "10-25 00:00",
        "10-25 00:30",
        "10-25 01:00",  # 02:00 again, now CET
        "10-25 01:30",
        "10-25 02:00",
        "10-25 02:30",
    ]
    spring = datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert fires("*/30 * * * *", spring, spring + timedelta(hours=3)) == [
        "03-28 23:00",
        "03-28 23:30",
        "03-29 00:00",
        "03-29 00:30",
        "03-29 01:00",  # 02:00 and 02:30 are skipped: once, at the change
        "03-29 01:30",
    ]


def test_weekdays_are_the_zones_local_weekdays() -> None:
    # Monday 00:30 in Tokyo is Sunday 15:30 UTC.
    assert fires(
        "30 0 * * 1",
        datetime(2026, 11, 29, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
        "Asia/Tokyo",
    ) == ["11-29 15:30"]


def test_the_apscheduler_trigger_follows_the_same_rules() -> None:
    trigger = CronSchedule(parse_cron("30 2 * * *", "Europe/Berlin"))
    first = trigger.get_next_fire_time(None, AUTUMN + timedelta(days=2))
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    again = trigger.get_next_fire_time(first, first)
    assert again == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "hint"),
    [("Europe/Berln", "Europe/Berlin"), ("europe/berlin", "Europe/Berlin"), ("CET+1", "")],
)
def test_an_unknown_zone_is_refused_with_the_closest_names(name: str, hint: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone") as caught:
        parse_cron("0 6 * * *", name)
    assert hint in str(caught.value)
