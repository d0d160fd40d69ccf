"""When readings arrived, beside when they were measured: the lag behind late data.

Each fact keeps `lag_s`, how long after its `ts` the last reading arrived (about 0 live, hours
while a gateway forwards its buffer). Pure arithmetic over facts and messages.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from agent.model import Fact, Message

LAG_S: Final = "lag_s"


def lag_between(ts: datetime, arrived: datetime) -> float:
    """Seconds a reading dated `ts` arrived after it (never negative), as `lag_s` keeps it.
    No lag (live data) is the one shared 0.0, not a float of its own in every fact."""
    lag = (arrived - ts).total_seconds()
    return round(lag, 3) if lag > 0.0 else 0.0


def arrival_lag(message: Message) -> float:
    """How far behind its arrival a reading is dated, in seconds (never negative)."""
    return lag_between(message.ts, message.received_at)


def lag_of(fact: Fact) -> float:
    """The fact's `lag_s` (0 when it has none)."""
    lag = fact.fields.get(LAG_S)
    if isinstance(lag, int | float) and not isinstance(lag, bool) and lag > 0:
        return float(lag)
    return 0.0


def arrived_at(fact: Fact) -> datetime:
    """When the fact's last reading arrived: its `ts` plus its lag."""
    return fact.updated_at + timedelta(seconds=lag_of(fact))


def plant_now(fact: Fact, now: datetime) -> datetime:
    """What `now` is in the fact's own time line: `now` less the lag of its last reading. Live
    that is `now`; while a gateway forwards its buffer it is about the newest reading's `ts`, so
    idle minutes, run hours, `seen_s` and `for` timers follow the readings, not the backlog's
    wall clock, and `seen_s` is the time since something last *arrived*."""
    lag = lag_of(fact)
    return max(now - timedelta(seconds=lag), fact.updated_at) if lag else now
