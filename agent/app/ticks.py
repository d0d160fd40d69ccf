"""When the scheduler ticks: one answer for the daemon, `replay` and `rules test`.

Ticks fall every `every` after an anchor (the start of a rule test, the first message of a
recording, the daemon's start). A tick at instant T comes before a message received at T: the
message sees what time alone changed up to its own time, as it would have live.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class TickSchedule:
    """The scheduler's instants; `due(now)` hands out the ones reached, each once."""

    __slots__ = ("_coalesce", "_every", "_next")

    def __init__(
        self, every_s: float, anchor: datetime | None = None, coalesce: bool = False
    ) -> None:
        """`anchor` None: the first `due(now)` anchors at `now`. With `coalesce` (the daemon on
        the wall clock), a loop that fell behind gets the latest instant only, not a backlog."""
        if every_s <= 0:
            raise ValueError(f"a tick must be longer than 0 s, got {every_s}")
        self._every = timedelta(seconds=every_s)
        self._next = None if anchor is None else anchor + self._every
        self._coalesce = coalesce

    @property
    def next_at(self) -> datetime | None:
        return self._next

    def due(self, now: datetime) -> list[datetime]:
        """The tick instants at or before `now` not handed out yet, in order."""
        if self._next is None:
            self._next = now + self._every
            return []
        if now < self._next:
            return []
        count = (now - self._next) // self._every + 1
        first, self._next = self._next, self._next + count * self._every
        if self._coalesce:
            return [self._next - self._every]
        return [first + i * self._every for i in range(count)]
