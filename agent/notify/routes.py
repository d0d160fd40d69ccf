"""Which routes a stored decision goes to, and until when quiet hours hold a message.

Pure: a decision's row and the configured routes in, route names and times out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import RouteSettings


@dataclass(frozen=True, slots=True)
class Subject:
    """What route filters look at: kind (`alert` or the action kind), severity, site, rule, tags."""

    kind: str
    severity: str | None
    site: str
    rule: str
    tags: frozenset[str]


def subject_of(table: str, row: Mapping[str, Any]) -> Subject:
    """A stored alert or action row as route filters see it; tags come from the matched facts'
    `tags` field (master data), so one route can serve, say, every hydraulic machine."""
    tags: set[str] = set()
    for fields in (row.get("matched") or {}).values():
        found = fields.get("tags") if isinstance(fields, Mapping) else None
        if isinstance(found, list):
            tags.update(str(tag) for tag in found)
        elif isinstance(found, str):
            tags.add(found)
    return Subject(
        kind="alert" if table == "alert" else str(row.get("kind")),
        severity=row.get("severity") if table == "alert" else None,
        site=str(row.get("site")),
        rule=str(row.get("rule_id")),
        tags=frozenset(tags),
    )


def matches(route: RouteSettings, subject: Subject) -> bool:
    """All of the route's non-empty filters hold (an action has no severity)."""
    if route.kind and subject.kind not in route.kind:
        return False
    if route.severity and subject.severity not in route.severity:
        return False
    if route.site and subject.site not in route.site:
        return False
    if route.rule and subject.rule not in route.rule:
        return False
    return not route.tags or bool(subject.tags & set(route.tags))


def matching(routes: Sequence[RouteSettings], subject: Subject) -> list[RouteSettings]:
    return [route for route in routes if matches(route, subject)]


def quiet_until(route: RouteSettings, now: datetime) -> datetime | None:
    """The end of the route's quiet hours if `now` falls inside them, else None."""
    if route.quiet_hours is None:
        return None
    zone = ZoneInfo(route.timezone)
    local = now.astimezone(zone)
    start_text, end_text = route.quiet_hours.split("-")
    start, end = _clock(start_text), _clock(end_text)
    here = local.time().replace(tzinfo=None)
    if start == end:
        return None
    overnight = start > end
    inside = (here >= start or here < end) if overnight else (start <= here < end)
    if not inside:
        return None
    day = local.date()
    if overnight and here >= start:
        day += timedelta(days=1)
    ends = datetime.combine(day, end, tzinfo=zone)
    return ends.astimezone(now.tzinfo)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))
