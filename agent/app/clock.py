"""Time as a value passed in: the real clock for the daemon, a simulated one for tests and replay.

Nothing in the core reads the system clock; it asks the `Clock` it was given.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that only moves when told to: `rules test` and `replay` run on it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("SimulatedClock needs a timezone-aware start time")

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("SimulatedClock.set needs a timezone-aware time")
        if when > self._now:
            self._now = when

    def advance(self, delta: timedelta) -> None:
        self._now += delta
