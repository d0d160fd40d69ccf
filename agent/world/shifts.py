"""Shift calendars: named shifts by weekday and time of day, holidays, planned downtime windows.

Parsed from the `calendars:` table of config/machines.yaml; pure lookups of a time after that.
Shift times are wall-clock times in the calendar's `timezone` (an IANA name, UTC by default), so a
06:00 shift in Berlin starts at 06:00 Berlin time on both sides of a daylight-saving change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.errors import MasterDataError

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK: Final = re.compile(r"^([01]?[0-9]|2[0-4]):([0-5][0-9])$")
_DAY_MIN: Final = 24 * 60


@dataclass(frozen=True, slots=True)
class Shift:
    """A shift starting on `days` (0 = Monday) at `start_min` after midnight, `length_min` long
    (a night shift runs past midnight and belongs to the day it starts)."""

    name: str
    days: frozenset[int]
    start_min: int
    length_min: int


@dataclass(frozen=True, slots=True)
class CurrentShift:
    name: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Downtime:
    """Planned downtime: a one-off window (`start`/`end` set) or a weekly one (`days`, minutes)."""

    note: str
    start: datetime | None = None
    end: datetime | None = None
    days: frozenset[int] = frozenset()
    start_min: int = 0
    length_min: int = 0
    zone: tzinfo = UTC

    def covers(self, at: datetime) -> bool:
        if self.start is not None and self.end is not None:
            return self.start <= at < self.end
        local = at.astimezone(self.zone).date()
        for back in (0, 1):
            day = local - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            if (
                _at(day, self.start_min, self.zone)
                <= at
                < _at(day, self.start_min + self.length_min, self.zone)
            ):
                return True
        return False


@dataclass(frozen=True, slots=True)
class ShiftCalendar:
    name: str
    shifts: tuple[Shift, ...]
    holidays: frozenset[date] = frozenset()
    downtime: tuple[Downtime, ...] = ()
    zone: tzinfo = UTC

    def shift_at(self, at: datetime) -> CurrentShift | None:
        """The shift working at `at`, or None (no shift, or a holiday: by the shift's start day,
        both in the calendar's time zone). The shift's start and end come back in UTC."""
        local = at.astimezone(self.zone).date()
        for back in (0, 1):
            day = local - timedelta(days=back)
            if day in self.holidays:
                continue
            for shift in self.shifts:
                if day.weekday() not in shift.days:
                    continue
                start = _at(day, shift.start_min, self.zone)
                end = _at(day, shift.start_min + shift.length_min, self.zone)
                if start <= at < end:
                    return CurrentShift(shift.name, start, end)
        return None

    def planned_downtime(self, at: datetime) -> bool:
        return any(window.covers(at) for window in self.downtime)


def _at(day: date, minutes: int, zone: tzinfo = UTC) -> datetime:
    """The instant (UTC) of wall-clock `minutes` after midnight of `day` in `zone`; minutes past
    a day roll over to the next day's wall clock (a night shift ending at 06:00)."""
    wall = datetime.combine(day, time(), tzinfo=zone) + timedelta(minutes=minutes)
    return wall.astimezone(UTC)


# --- parsing -----------------------------------------------------------------------------------


def parse_calendars(raw: Any, source: str) -> dict[str, ShiftCalendar]:
    """`calendars:` name -> {timezone, shifts, holidays, planned_downtime}; every problem in one
    error."""
    problems: list[str] = []
    calendars: dict[str, ShiftCalendar] = {}
    if raw is None:
        return calendars
    if not isinstance(raw, Mapping):
        raise MasterDataError(f"{source}: calendars: expected a mapping of name -> calendar")
    for name, spec in raw.items():
        where = f"{source}: calendars.{name}"
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: expected shifts, holidays, planned_downtime")
            continue
        unknown = set(spec) - {"timezone", "shifts", "holidays", "planned_downtime"}
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        zone = _zone(spec.get("timezone", "UTC"), f"{where}.timezone", problems)
        shifts = [
            _shift(s, f"{where}.shifts[{i}]", problems)
            for i, s in enumerate(_list(spec, "shifts", where, problems))
        ]
        holidays = [
            _day(d, f"{where}.holidays[{i}]", problems)
            for i, d in enumerate(_list(spec, "holidays", where, problems))
        ]
        downtime = [
            _downtime(w, f"{where}.planned_downtime[{i}]", zone, problems)
            for i, w in enumerate(_list(spec, "planned_downtime", where, problems))
        ]
        calendars[str(name)] = ShiftCalendar(
            str(name),
            tuple(s for s in shifts if s is not None),
            frozenset(d for d in holidays if d is not None),
            tuple(w for w in downtime if w is not None),
            zone,
        )
    if problems:
        raise MasterDataError("\n".join(problems))
    return calendars


def _list(spec: Mapping[str, Any], key: str, where: str, problems: list[str]) -> list[Any]:
    value = spec.get(key) or []
    if not isinstance(value, list):
        problems.append(f"{where}.{key}: expected a list")
        return []
    return value


def _shift(spec: Any, where: str, problems: list[str]) -> Shift | None:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        problems.append(f"{where}: expected {{name, days, start, end}}")
        return None
    days = _days(spec.get("days", "mon-fri"), where, problems)
    start, end = (_clock(spec.get(k), f"{where}.{k}", problems) for k in ("start", "end"))
    if days is None or start is None or end is None:
        return None
    length = (end - start) % _DAY_MIN or _DAY_MIN  # 22:00-06:00 runs over midnight
    return Shift(spec["name"], days, start, length)


def _zone(value: Any, where: str, problems: list[str]) -> tzinfo:
    if value in ("UTC", "utc", "Z"):
        return UTC
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}: unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)")
        return UTC


def _downtime(spec: Any, where: str, zone: tzinfo, problems: list[str]) -> Downtime | None:
    if not isinstance(spec, Mapping):
        problems.append(f"{where}: expected {{start, end, note}} (and `days` for a weekly one)")
        return None
    note = str(spec.get("note", ""))
    if "days" in spec:
        days = _days(spec["days"], where, problems)
        start, end = (_clock(spec.get(k), f"{where}.{k}", problems) for k in ("start", "end"))
        if days is None or start is None or end is None:
            return None
        length = (end - start) % _DAY_MIN
        return Downtime(note, days=days, start_min=start, length_min=length, zone=zone)
    start_at, end_at = (
        _instant(spec.get(k), f"{where}.{k}", zone, problems) for k in ("start", "end")
    )
    if start_at is None or end_at is None:
        return None
    if end_at <= start_at:
        problems.append(f"{where}: end must be after start")
        return None
    return Downtime(note, start=start_at, end=end_at)


def _days(value: Any, where: str, problems: list[str]) -> frozenset[int] | None:
    words = value if isinstance(value, list) else str(value).replace(" ", "").split(",")
    found: set[int] = set()
    for word in (str(w).lower() for w in words):
        if word in ("daily", "*"):
            found.update(range(7))
        elif "-" in word and all(p in DAYS for p in word.split("-", 1)):
            first, last = (DAYS.index(p) for p in word.split("-", 1))
            found.update(d % 7 for d in range(first, last + 1 + (7 if last < first else 0)))
        elif word in DAYS:
            found.add(DAYS.index(word))
        else:
            problems.append(f"{where}.days: {word!r} is not a day (mon..sun, mon-fri, daily)")
            return None
    return frozenset(found)


def _clock(value: Any, where: str, problems: list[str]) -> int | None:
    match = _CLOCK.match(str(value)) if isinstance(value, str) else None
    if match is None:
        problems.append(f'{where}: expected a time of day "HH:MM" (quoted), got {value!r}')
        return None
    return int(match.group(1)) * 60 + int(match.group(2))


def _day(value: Any, where: str, problems: list[str]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{where}: expected a date YYYY-MM-DD, got {value!r}")
        return None


def _instant(value: Any, where: str, zone: tzinfo, problems: list[str]) -> datetime | None:
    try:
        if isinstance(value, datetime):
            parsed = value
        else:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"{where}: expected a time like 2026-03-04T06:00:00Z, got {value!r}")
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(UTC)
