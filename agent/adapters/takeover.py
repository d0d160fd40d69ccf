"""Is another client using the agent's MQTT client id? The broker's drops of a live connection,
read as a session take-over: a pure decision on the times of the drops, tested without a broker.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# This many drops of a live connection within the window read as another client with our id.
FLAP_DROPS = 3
FLAP_WINDOW_S = 30.0
# A take-over is over when the connection has stayed up this long: the next one is news again.
QUIET_S = 120.0


@dataclass(slots=True)
class TakeoverWatch:
    """Says when the broker's drops mean that another client took the session: the broker says
    so (MQTT 5 reason 142, "Session taken over") or drops the connection `drops` times within
    `window_s` (some brokers just close it). Two agents sharing a client id take the session
    from each other every second or so; that is one take-over, reported once, until the
    connection has stayed up `quiet_s`."""

    drops: int = FLAP_DROPS
    window_s: float = FLAP_WINDOW_S
    quiet_s: float = QUIET_S
    _recent: deque[float] = field(default_factory=deque)
    _last_drop: float | None = None  # the latest drop of the take-over under way, if one is

    def dropped(self, now: float, taken_over: bool) -> bool:
        """Record a drop at `now` (monotonic seconds); `taken_over`: the broker said why.
        True when this drop starts a take-over: the one moment to warn and raise the alarm."""
        self._recent.append(now)
        while self._recent and now - self._recent[0] > self.window_s:
            self._recent.popleft()
        if self._last_drop is not None and now - self._last_drop <= self.quiet_s:
            self._last_drop = now  # the same take-over goes on
            return False
        self._last_drop = None
        if not taken_over and len(self._recent) < self.drops:
            return False
        self._last_drop = now
        return True

    @property
    def recent_drops(self) -> int:
        """The drops within the window, as of the last one."""
        return len(self._recent)
