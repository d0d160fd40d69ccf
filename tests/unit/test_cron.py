"""Cron lines read by the crontab convention: 0 and 7 are Sunday, 1-5 is Monday to Friday.

APScheduler 3's `CronTrigger.from_crontab` numbers Monday 0, so `1-5` fired Tuesday to Saturday.
Every instant here is pinned; nothing reads today's date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.rulebook.timing import crontab_trigger, parse_cron

# Monday 2026-11-30 to Sunday 2026-12-06, each at 12:00 UTC.
WEEK = [datetime(2026, 11, 30, 12, tzinfo=UTC) + timedelta(days=n) for n in range(7)]
NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def fire_days(line: str) -> list[str]:
    """The weekdays on which `line` (at 13:00) fires during the pinned week."""
    cron = parse_cron(line)
    days = []
    at = WEEK[0] - timedelta(hours=12)  # Monday 00:00
    while (found := cron.next_after(at)) is not None and found < WEEK[-1] + timedelta(hours=12):
        days.append(NAMES[found.weekday()])
        at = found
    return days


@pytest.mark.parametrize(
    ("weekdays", "expected"),
    [
        ("1-5", ["mon", "tue", "wed", "thu", "fri"]),
        ("mon-fri", ["mon", "tue", "wed", "thu", "fri"]),
        ("0", ["sun"]),
        ("7", ["sun"]),
        ("sun", ["sun"]),
        ("6,0", ["sat", "sun"]),
        ("5-7", ["fri", "sat", "sun"]),
        ("0-6", NAMES),
        ("*", NAMES),
        ("*/2", ["tue", "thu", "sat", "sun"]),
        ("1-5/2", ["mon", "wed", "fri"]),
        ("1", ["mon"]),
        ("4", ["thu"]),
    ],
)
def test_weekdays_follow_the_crontab_convention(weekdays: str, expected: list[str]) -> None:
    assert fire_days(f"0 13 * * {weekdays}") == expected


@pytest.mark.parametrize("start", WEEK, ids=NAMES)
def test_a_workday_line_fires_next_on_the_next_workday(start: datetime) -> None:
    found = parse_cron("0 7 * * 1-5").next_at(start)
    assert found is not None
    assert found.weekday() < 5 and (found.hour, found.minute) == (7, 0)
    assert found - start < timedelta(days=3, hours=20)


def test_a_trigger_in_a_time_zone_fires_on_its_local_weekday() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    trigger = crontab_trigger("30 6 * * 1-5", timezone="Asia/Tokyo")
    # Friday 22:00 UTC is Saturday 07:00 in Tokyo: the next run is Monday 06:30 there.
    found = trigger.get_next_fire_time(None, datetime(2026, 12, 4, 22, tzinfo=UTC))
    local = found.astimezone(tokyo)
    assert (local.strftime("%a"), local.hour, local.minute) == ("Mon", 6, 30)


@pytest.mark.parametrize("weekdays", ["8", "fri-mon", "x", "1-", "*/0"])
def test_bad_weekday_fields_are_refused(weekdays: str) -> None:
    with pytest.raises(ValueError, match="bad"):
        parse_cron(f"0 7 * * {weekdays}")
