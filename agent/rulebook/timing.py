"""Durations (`30s`, `10m`, `1h30m`, `2d`) and cron timetables, as rule files and tests write them.

Pure parsing and arithmetic: a cron asks for the next time after a given one, never the clock.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.cron import CronTrigger

_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Crontab weekdays: 0 and 7 are Sunday, 1 is Monday. APScheduler 3 numbers Monday 0.
_WEEKDAYS: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_WEEKDAY_PART: Final = re.compile(r"(\*|\w+)(?:-(\w+))?(?:/(\d+))?")
MAX_DURATION_S: Final = 366 * 86400


def parse_duration(value: object) -> float:
    """Seconds for `90s`, `10m`, `1h30m`, `2d`, or a plain number of seconds; ValueError if bad."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s or 10m, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        while pos < len(text):
            m = _PART.match(text, pos)
            if m is None:
                raise ValueError(
                    f"bad duration {value!r}: write a number and a unit (ms s m h d w), e.g. 10m"
                )
            seconds += float(m.group(1)) * _SECONDS[m.group(2)]
            pos = m.end()
    else:
        raise ValueError(f"expected a duration such as 30s or 10m, got {value!r}")
    if not 0 <= seconds <= MAX_DURATION_S:
        raise ValueError(f"duration {value!r} out of range (0 to 366 days)")
    return seconds


def _crontab_weekday(text: str) -> int:
    name = text.lower()
    if name.isdigit() and 0 <= int(name) <= 7:
        return int(name) % 7
    if name[:3] in _WEEKDAYS and len(name) == 3:
        return _WEEKDAYS.index(name)
    raise ValueError(f"bad weekday {text!r}: 0-7 (0 and 7 are Sunday) or sun..sat")


def _weekday_field(field: str) -> str:
    """A crontab weekday field (0 or 7 = Sunday) in APScheduler 3's numbering (0 = Monday)."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        m = _WEEKDAY_PART.fullmatch(part)
        if m is None:
            raise ValueError(f"bad weekday field {field!r}")
        first_text, last_text, step_text = m.groups()
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in weekday field {field!r}")
        if first_text == "*":
            if last_text:
                raise ValueError(f"bad weekday field {field!r}")
            first, last = 0, 6
        else:
            first = _crontab_weekday(first_text)
            last = first if last_text is None else _crontab_weekday(last_text)
            if last_text is not None and last_text.strip() == "7":
                last = 7
            if last < first:
                raise ValueError(f"bad weekday range {part!r}: the first day comes after the last")
            if last_text is None and step_text:
                last = 6
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(str((day - 1) % 7) for day in sorted(days, key=lambda d: (d - 1) % 7))


def crontab_trigger(text: str, timezone: tzinfo | str = UTC) -> CronTrigger:
    """An APScheduler 3 trigger for a five-field crontab line, weekdays by the crontab convention
    (`1-5` is Monday to Friday; `CronTrigger.from_crontab` would read Tuesday to Saturday)."""
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekday_field(weekday),
        timezone=timezone,
    )


# How far a zone's clocks jump at most at a DST change (2 h: old double summer time): wall-clock
# candidates are searched from this much before `at`.
_MAX_SHIFT: Final = timedelta(hours=3)
_MAX_CANDIDATES: Final = 20_000


@dataclass(frozen=True)
class Cron:
    """A five-field crontab line (minute hour day month weekday) read in a time zone (UTC when
    `zone` is None), by the wall clock of that zone, as cron does across DST changes:

    - a time the spring change skips (02:30 on the night clocks go 02:00 -> 03:00) fires at the
      moment of the change, once however many skipped times the line names;
    - a time the autumn change repeats (02:30 twice) fires once, at its first occurrence; a line
      whose hour is `*` (every hour) fires in both passes of the repeated hour, like cron's
      wildcard jobs.

    APScheduler 3's own zone handling gets both wrong (it fires the repeated 02:30 twice and the
    skipped one an hour late), so its trigger is only asked about wall-clock times, in UTC.
    """

    text: str
    trigger: CronTrigger
    zone: ZoneInfo | None = None

    def next_at(self, at: datetime) -> datetime | None:
        """The first fire time at or after `at` (aware; returned in UTC)."""
        if self.zone is None:
            found = self.trigger.get_next_fire_time(None, at)
            return found.astimezone(UTC) if found is not None else None
        zone = self.zone
        at = at.astimezone(UTC)
        wall = at.astimezone(zone).replace(tzinfo=UTC) - _MAX_SHIFT
        both_folds = self.text.split()[1].startswith("*")
        best: datetime | None = None
        for _ in range(_MAX_CANDIDATES):
            found = self.trigger.get_next_fire_time(None, wall)
            if found is None:
                break
            naive = found.replace(tzinfo=None)
            first = _instant(naive, zone, fold=0)
            if best is not None and first - _MAX_SHIFT > best:
                break
            if not both_folds:
                if first >= at:
                    return first  # wall-clock order is time order with one pass per time
                wall = found + timedelta(minutes=1)
                continue
            instants = [first, _instant(naive, zone, fold=1)]
            for instant in instants:
                if instant >= at and (best is None or instant < best):
                    best = instant
            wall = found + timedelta(minutes=1)
        return best

    def next_after(self, at: datetime) -> datetime | None:
        """The first fire time strictly after `at`."""
        return self.next_at(at + timedelta(seconds=1))


def _instant(wall: datetime, zone: ZoneInfo, fold: int) -> datetime:
    """The UTC instant of a naive wall-clock time in `zone`. A time that does not exist (the
    spring gap) is the moment of the change; a repeated one is its pass `fold` (0 first)."""
    local = wall.replace(tzinfo=zone, fold=fold)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In the gap: zoneinfo reads it with the offset from before the change (fold=0) or after.
    # The change itself is the later of the two readings minus the gap: the first valid instant
    # after the skipped wall-clock times, i.e. the earliest instant whose wall clock is past it.
    before = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    after = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(before, after), max(before, after)
    # Find the transition between low and high to the minute, then the second.
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def zone_named(name: object) -> ZoneInfo:
    """The IANA time zone `name` (e.g. `Europe/Berlin`); ValueError with the closest names."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"expected an IANA time zone name such as 'Europe/Berlin', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    known = available_timezones()
    by_lower = {zone.lower(): zone for zone in known}
    close = by_lower.get(name.lower().replace(" ", "_"))
    suggestions = [close] if close else difflib.get_close_matches(name, sorted(known), n=3)
    hint = f"; did you mean {', '.join(repr(z) for z in suggestions)}?" if suggestions else ""
    raise ValueError(f"unknown time zone {name!r}{hint}")


def parse_cron(text: object, timezone: str | None = None) -> Cron:
    """A `Cron` for a crontab line such as `0 6 * * mon-fri`, in the IANA zone `timezone` (UTC
    when None); ValueError naming what is wrong."""
    if not isinstance(text, str) or len(text.split()) != 5:
        raise ValueError(
            f"bad schedule {text!r}: five fields, minute hour day month weekday, e.g. '0 6 * * *'"
        )
    zone = None if timezone in (None, "UTC", "Etc/UTC") else zone_named(timezone)
    try:
        trigger = crontab_trigger(text, timezone=UTC)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"bad schedule {text!r}: {exc}") from exc
    return Cron(text, trigger, zone)
