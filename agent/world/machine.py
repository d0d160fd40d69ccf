"""Machine facts: telemetry merged over the last known values, master data, derived values.

Pure functions of the previous fact, the message (or the time), the master data, the shift
calendar and the metric windows: state and idle minutes, run hours, service hours, averages and
trends, silence, scrap share, shift and utilisation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from sys import intern
from typing import Final

from agent.model import Fact, Message, Value
from agent.world.arrival import LAG_S, arrival_lag
from agent.world.masterfields import swap_fields
from agent.world.metricwindow import Window
from agent.world.shifts import ShiftCalendar

COUNTERS: Final = frozenset({"cycles", "good", "scrap"})
AVG_WINDOW_MIN: Final = 10.0
TREND_WINDOW_MIN: Final = 60.0
STALE_AFTER_S: Final = 300.0
# Bookkeeping kept in the fact (so a snapshot keeps it), not meant for rules.
RUN_S: Final = "run_s"
SERVICE_RUN_S: Final = "service_run_s"
ACCOUNTED_AT: Final = "accounted_at"
SHIFT_START: Final = "shift_start"
SHIFT_END: Final = "shift_end"
SHIFT_FROM: Final = "shift_observed_from"
SHIFT_RUN_S: Final = "shift_run_s"


class MetricWindows:
    """The windows of one machine's metrics: `<metric>_avg` and `<metric>_trend` come from here."""

    __slots__ = ("averages", "trends")

    def __init__(self) -> None:
        # metric -> (its `<metric>_avg` name, its window); the names made once, not per message
        self.averages: dict[str, tuple[str, Window]] = {}
        self.trends: dict[str, tuple[str, Window]] = {}

    def add(
        self, name: str, at_s: float, value: float, avg_s: float, trend_s: float, count: int = 1
    ) -> None:
        average = self.averages.get(name)
        if average is None:
            average = self.averages[name] = (f"{name}_avg", Window(avg_s, slope=False))
        average[1].add(at_s, value, count)
        trend = self.trends.get(name)
        if trend is None:
            trend = self.trends[name] = (f"{name}_trend", Window(trend_s))
        trend[1].add(at_s, value, count)

    def values(self, now_s: float) -> dict[str, Value]:
        out: dict[str, Value] = {}
        for key, window in self.averages.values():
            window.expire(now_s)
            mean = window.mean()
            if mean is not None:
                out[key] = round(mean, 4)
        for key, window in self.trends.values():
            window.expire(now_s)
            slope = window.slope_per_hour()
            if slope is not None:
                out[key] = round(slope, 4)
        return out


def window_spans(machine: Mapping[str, Value]) -> tuple[float, float]:
    """The machine's average and trend window lengths in seconds (master data or defaults)."""
    avg_s = _number(machine.get("avg_window_min"), AVG_WINDOW_MIN) * 60.0
    trend_s = _number(machine.get("trend_window_min"), TREND_WINDOW_MIN) * 60.0
    return avg_s, trend_s


def refill_windows(
    windows: MetricWindows,
    machine: Mapping[str, Value],
    summaries: Iterable[tuple[str, float, int, float]],
) -> None:
    """Refill a machine's windows at start from saved readings: (metric, time in epoch seconds,
    count, mean), oldest first. A summary counts as `count` samples of its mean at its time, so
    averages come back exact and trends nearly so (a bucket's samples share one time)."""
    avg_s, trend_s = window_spans(machine)
    for name, at_s, count, mean in summaries:
        windows.add(name, at_s, mean, avg_s, trend_s, count)


def machine_fact(
    previous: Fact | None,
    message: Message,
    machine: Mapping[str, Value],
    calendar: ShiftCalendar | None = None,
    windows: MetricWindows | None = None,
    open_work_orders: int = 0,
) -> Fact:
    """The new fact for a telemetry message. Telemetry often carries a few metrics at a time:
    the last known value of the others is kept."""
    now = message.ts
    stamp = now.isoformat()
    merged: dict[str, Value] = dict(previous.fields) if previous else {}
    _accrue(merged, now, calendar, stamp)  # the time up to this message ran in the previous state
    merged.update(machine)
    payload = message.fields
    merged.update(payload)
    merged["kind"] = "machine"
    merged["site"] = site = intern(message.site)
    merged["machine"] = message.subject
    since = _state_since(previous)
    if since is None or previous is None or merged.get("state") != previous.fields.get("state"):
        since = now
        merged["state_since"] = stamp
    # else the state goes on: `state_since` is the previous fact's, as it was written
    merged["open_work_orders"] = open_work_orders
    if windows is not None:
        avg_s, trend_s = window_spans(machine)
        at_s = now.timestamp()
        for name, value in payload.items():
            if name not in COUNTERS and _is_number(value):
                windows.add(name, at_s, float(value), avg_s, trend_s)  # type: ignore[arg-type]
    merged["last_message_at"] = stamp
    merged[LAG_S] = arrival_lag(message)
    _scrap(merged)
    _derive(merged, now, windows, since, now)
    return Fact("machine", site, message.subject, merged, now)


def refresh_machine(
    fact: Fact,
    now: datetime,
    calendar: ShiftCalendar | None = None,
    windows: MetricWindows | None = None,
) -> Fact | None:
    """Time-derived values of a machine fact at `now` (no message needed); None if unchanged."""
    if now <= fact.updated_at or _state_since(fact) is None:
        return None
    fields = dict(fact.fields)
    _accrue(fields, now, calendar)
    _derive(fields, now, windows)
    if fields == fact.fields:
        return None
    return Fact(fact.kind, fact.site, fact.subject, fields, fact.updated_at)


# What a shift calendar gives a machine fact: gone when the machine no longer has a calendar.
SHIFT_FIELDS: Final = (
    SHIFT_START,
    SHIFT_END,
    SHIFT_FROM,
    SHIFT_RUN_S,
    "in_shift",
    "shift",
    "planned_downtime",
    "shift_minutes",
    "utilization_pct",
)


def with_machine(
    fact: Fact,
    old: Mapping[str, Value],
    machine: Mapping[str, Value],
    old_calendar: ShiftCalendar | None,
    calendar: ShiftCalendar | None,
    now: datetime,
    windows: MetricWindows | None = None,
) -> Fact | None:
    """The fact under changed machine master data or shift calendar (a reload), None if nothing
    changed. The time up to `now` is booked under the old calendar; from `now` the new one
    says whether it is a shift (a different current shift counts from `now`), and the values
    derived from either (idle minutes, utilisation, stale) are computed again at `now`."""
    at = max(now, fact.updated_at)
    fields = dict(fact.fields)
    if _state_since_of(fields) is not None:
        _accrue(fields, at, old_calendar)
    swap_fields(fields, old, machine)
    if calendar is None:
        for name in SHIFT_FIELDS:
            fields.pop(name, None)
    elif calendar != old_calendar:
        _accrue(fields, at, calendar)
    _derive(fields, at, windows)
    if fields == fact.fields:
        return None
    return Fact(fact.kind, fact.site, fact.subject, fields, fact.updated_at)


def with_work_orders(fact: Fact, count: int) -> Fact | None:
    """The fact with its count of open work orders; None if unchanged."""
    if fact.fields.get("open_work_orders") == count:
        return None
    fields = {**fact.fields, "open_work_orders": count}
    return Fact(fact.kind, fact.site, fact.subject, fields, fact.updated_at)


def serviced(fact: Fact, at: datetime, calendar: ShiftCalendar | None = None) -> Fact:
    """A service was done at `at`: run hours since service start again from zero. Learned
    late (a resync), the running since `at` in the current state still counts after it."""
    fields = dict(fact.fields)
    accounted = _instant(fields.get(ACCOUNTED_AT), at)
    if at > accounted:
        _accrue(fields, at, calendar)
        accounted = at
    since = max(at, _state_since_of(fields) or at)
    after = (accounted - since).total_seconds() if fields.get("state") == "running" else 0.0
    fields[SERVICE_RUN_S] = max(_number(fields.get(RUN_S), 0.0) - max(after, 0.0), 0.0)
    fields["last_service"] = at.isoformat()
    _hours(fields)
    return Fact(fact.kind, fact.site, fact.subject, fields, fact.updated_at)


def _accrue(
    fields: dict[str, Value],
    now: datetime,
    calendar: ShiftCalendar | None,
    stamp: str | None = None,
) -> None:
    """Book the time since the last accounting in the state the machine was in: run seconds,
    and run seconds in the current shift (a new shift starts counting from zero). Time already
    booked (ticks went on while a gateway held its readings back) is not booked again. `stamp`
    is `now.isoformat()` when the caller has it already."""
    last = _instant(fields.get(ACCOUNTED_AT), now)
    if now < last:
        return
    running = fields.get("state") == "running"
    span = max((now - last).total_seconds(), 0.0)
    fields[RUN_S] = round(_number(fields.get(RUN_S), 0.0) + (span if running else 0.0), 3)
    fields[ACCOUNTED_AT] = now.isoformat() if stamp is None else stamp
    if calendar is None:
        return
    shift = calendar.shift_at(now)
    if shift is not None and fields.get(SHIFT_START) != shift.start.isoformat():
        fields[SHIFT_START] = shift.start.isoformat()
        fields[SHIFT_END] = shift.end.isoformat()
        fields[SHIFT_FROM] = max(shift.start, last).isoformat()
        fields[SHIFT_RUN_S] = 0.0
        last = max(shift.start, last)
    start = _instant(fields.get(SHIFT_START), now)
    end = _instant(fields.get(SHIFT_END), now)
    overlap = (min(now, end) - max(last, start)).total_seconds()
    if running and overlap > 0:
        fields[SHIFT_RUN_S] = round(_number(fields.get(SHIFT_RUN_S), 0.0) + overlap, 3)
    fields["in_shift"] = shift is not None
    fields["shift"] = shift.name if shift is not None else ""
    fields["planned_downtime"] = calendar.planned_downtime(now)


def _derive(
    fields: dict[str, Value],
    now: datetime,
    windows: MetricWindows | None,
    since: datetime | None = None,
    seen: datetime | None = None,
) -> None:
    """The values derived from the fields at `now`. `since` and `seen` are `state_since` and
    `last_message_at` read as instants, when the caller has them already."""
    if since is None:
        since = _state_since_of(fields) or now
    fields["state_minutes"] = _minutes(now - since)
    fields["idle_minutes"] = _idle_minutes(fields, since, now)
    if seen is None:
        seen = _instant(fields.get("last_message_at"), now)
    seen_s = round(max((now - seen).total_seconds(), 0.0), 3)
    fields["seen_s"] = seen_s
    # Silent for `stale_after_s`, or said to be gone (a Sparkplug B DEATH sets `online` to 0:
    # stale at once, not after the wait; the BIRTH that brings it back sets it to 1).
    offline = fields.get("online") == 0 and fields.get("online") is not False
    fields["stale"] = offline or seen_s > _number(fields.get("stale_after_s"), STALE_AFTER_S)
    _hours(fields)
    if SHIFT_START in fields:
        begin = _instant(fields.get(SHIFT_FROM), now)
        end = min(now, _instant(fields.get(SHIFT_END), now))
        elapsed = (end - begin).total_seconds()
        # minutes of the shift seen so far: a machine first heard of mid-shift is judged on
        # what was seen of it, not on the hours before
        fields["shift_minutes"] = round(max(elapsed, 0.0) / 60.0, 3)
        if elapsed > 0:
            share = _number(fields.get(SHIFT_RUN_S), 0.0) / elapsed * 100.0
            fields["utilization_pct"] = round(min(share, 100.0), 2)
    if windows is not None:
        fields.update(windows.values(now.timestamp()))


def _idle_minutes(fields: Mapping[str, Value], since: datetime, now: datetime) -> float:
    """Minutes idle; in a shift, only those of the shift (idle all night is not idle capacity
    the moment the early shift starts)."""
    if fields.get("state") != "idle":
        return 0.0
    if fields.get("in_shift") is True and isinstance(fields.get(SHIFT_START), str):
        since = max(since, _instant(fields[SHIFT_START], since))
    return _minutes(now - since)


def _hours(fields: dict[str, Value]) -> None:
    run_s = _number(fields.get(RUN_S), 0.0)
    fields["run_hours"] = round(run_s / 3600.0, 4)
    service = _number(fields.get(SERVICE_RUN_S), 0.0)
    fields["hours_since_service"] = round(max(run_s - service, 0.0) / 3600.0, 4)


def _scrap(fields: dict[str, Value]) -> None:
    good, scrap = fields.get("good"), fields.get("scrap")
    if _is_number(good) and _is_number(scrap) and good + scrap > 0:  # type: ignore[operator]
        fields["scrap_pct"] = round(scrap / (good + scrap) * 100.0, 3)  # type: ignore[operator]


def _is_number(value: Value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Value, default: float) -> float:
    return float(value) if _is_number(value) else default  # type: ignore[arg-type]


def _instant(value: Value, default: datetime) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else default


def _state_since(fact: Fact | None) -> datetime | None:
    return None if fact is None else _state_since_of(fact.fields)


def _state_since_of(fields: Mapping[str, Value]) -> datetime | None:
    value = fields.get("state_since")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60.0, 3)
