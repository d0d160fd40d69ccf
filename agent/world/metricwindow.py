"""A sliding time window over one machine metric: its mean and its least-squares trend per hour.

Running sums make adding and expiring a sample O(1); the newest sample is never expired, so a
silent sensor keeps its last value (no data is not a change).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

_HOUR_S = 3600.0
MAX_SAMPLES = 2000  # a chatty gateway cannot grow a window without bound


@dataclass
class Window:
    """Samples (seconds since `origin`, value) of the last `span_s` seconds."""

    span_s: float
    origin: float | None = None
    samples: deque[tuple[float, float]] = field(default_factory=deque)
    _n: float = 0.0
    _t: float = 0.0
    _v: float = 0.0
    _tt: float = 0.0
    _tv: float = 0.0

    def add(self, at_s: float, value: float) -> None:
        if self.origin is None or not self.samples:
            self.origin = at_s
            self._reset()
        t = (at_s - self.origin) / _HOUR_S
        self.samples.append((t, value))
        self._sum(t, value, 1.0)
        if len(self.samples) > MAX_SAMPLES:
            self._drop()

    def expire(self, now_s: float) -> None:
        if self.origin is None:
            return
        oldest = (now_s - self.span_s - self.origin) / _HOUR_S
        while len(self.samples) > 1 and self.samples[0][0] < oldest:
            self._drop()

    def mean(self) -> float | None:
        return self._v / self._n if self._n > 0 else None

    def slope_per_hour(self) -> float | None:
        """Least-squares change per hour; None with fewer than two samples or no time between."""
        if self._n < 2:
            return None
        spread = self._n * self._tt - self._t * self._t
        if spread <= 1e-12:
            return None
        return (self._n * self._tv - self._t * self._v) / spread

    def _drop(self) -> None:
        t, value = self.samples.popleft()
        self._sum(t, value, -1.0)

    def _sum(self, t: float, value: float, sign: float) -> None:
        self._n += sign
        self._t += sign * t
        self._v += sign * value
        self._tt += sign * t * t
        self._tv += sign * t * value

    def _reset(self) -> None:
        self._n = self._t = self._v = self._tt = self._tv = 0.0
