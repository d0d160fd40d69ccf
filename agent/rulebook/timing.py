"""Durations (`30s`, `10m`, `1h30m`, `2d`) and cron timetables, as rule files and tests write them.

Pure parsing and arithmetic: a cron asks for the next time after a given one, never the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from apscheduler.triggers.cron import CronTrigger

_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
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
        trigger = CronTrigger.from_crontab(text, timezone=UTC)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"bad schedule {text!r}: {exc}") from exc
    return Cron(text, trigger)
