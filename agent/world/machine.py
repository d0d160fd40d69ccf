"""Machine facts: telemetry merged over the last known values, master data, derived values.

Pure functions of the previous fact, the message (or the time) and the master data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from agent.model import Fact, Message, Value


def machine_fact(previous: Fact | None, message: Message, machine: Mapping[str, Value]) -> Fact:
    """The new fact for a telemetry message. Telemetry often carries a few metrics at a time:
    the last known value of the others is kept."""
    merged: dict[str, Value] = dict(previous.fields) if previous else {}
    merged.update(machine)
    merged.update(message.fields)
    merged.update({"kind": "machine", "site": message.site, "machine": message.subject})
    old_state = previous.fields.get("state") if previous else None
    since = _state_since(previous)
    if previous is None or since is None or merged.get("state") != old_state:
        since = message.ts
    merged["state_since"] = since.isoformat()
    merged["state_minutes"] = _minutes(message.ts - since)
    return Fact("machine", message.site, message.subject, merged, message.ts)


def refresh_machine(fact: Fact, now: datetime) -> Fact | None:
    """Time-derived values of a machine fact at `now` (no message needed); None if unchanged."""
    since = _state_since(fact)
    if since is None or now <= fact.updated_at:
        return None
    minutes = _minutes(now - since)
    if minutes == fact.fields.get("state_minutes"):
        return None
    return Fact(
        fact.kind,
        fact.site,
        fact.subject,
        {**fact.fields, "state_minutes": minutes},
        fact.updated_at,
    )


def _state_since(fact: Fact | None) -> datetime | None:
    if fact is None:
        return None
    value = fact.fields.get("state_since")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60.0, 3)
