"""Durations (`30s`, `10m`, `1h30m`, `2d`) and cron timetables, as rule files and tests write them.

Pure parsing and arithmetic: a cron asks for the next time after a given one, never the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

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


@dataclass(frozen=True)
class Cron:
    """A five-field crontab line (minute hour day month weekday), in UTC."""

    text: str
    trigger: CronTrigger

    def next_at(self, at: datetime) -> datetime | None:
        """The first fire time at or after `at`."""
        found = self.trigger.get_next_fire_time(None, at)
        return found.astimezone(UTC) if found is not None else None

    def next_after(self, at: datetime) -> datetime | None:
        """The first fire time strictly after `at`."""
        return self.next_at(at + timedelta(seconds=1))


def parse_cron(text: object) -> Cron:
    """A `Cron` for a crontab line such as `0 6 * * mon-fri`; ValueError naming what is wrong."""
    if not isinstance(text, str) or len(text.split()) != 5:
        raise ValueError(
            f"bad schedule {text!r}: five fields, minute hour day month weekday, e.g. '0 6 * * *'"
        )
    try:
        trigger = crontab_trigger(text, timezone=UTC)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"bad schedule {text!r}: {exc}") from exc
    return Cron(text, trigger)
