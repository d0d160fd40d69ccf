"""A sliding time window over one machine metric: its mean and its least-squares trend per hour.

Samples are kept as sums per time bucket (a twentieth of the window), not one by one: memory is
bounded by the window's length, not by how often a gateway sends (1,000 machines sending every
second used to keep up to 2,000 samples per window, about 1.3 GB). Mean and least-squares slope
need only the sums, so they are exact over the samples kept; the window's old edge moves a
bucket at a time (a sample leaves when every sample of its bucket is older than the window).
The newest bucket is never expired, so a silent sensor keeps its last value (no data is not a
change).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

_HOUR_S = 3600.0
BUCKETS = 20
# A bucket: its number, the time of its newest sample, then n, Σt, Σv, Σt², Σtv of its samples.
_WIDTH = 7


@dataclass
class Window:
    """Sums of the samples (hours since `origin`, value) of the last `span_s` seconds."""

    span_s: float
    origin: float | None = None
    buckets: array[float] = field(default_factory=lambda: array("d"))
    _n: float = 0.0
    _t: float = 0.0
    _v: float = 0.0
    _tt: float = 0.0
    _tv: float = 0.0

    def add(self, at_s: float, value: float, count: int = 1) -> None:
        """A sample at `at_s`; with `count`, that many samples of mean `value` at `at_s` (a
        saved reading's summary, when the window is refilled at start)."""
        buckets = self.buckets
        if self.origin is None or not buckets:
            self.origin = at_s
            self._reset()
        elapsed = at_s - self.origin
        number = float(int(elapsed * BUCKETS // self.span_s)) if self.span_s > 0 else 0.0
        t = elapsed / _HOUR_S
        n = float(count)
        sums = (n, n * t, n * value, n * t * t, n * t * value)
        if buckets and buckets[-_WIDTH] >= number:  # the newest bucket (samples come in order)
            last = len(buckets) - _WIDTH
            buckets[last + 1] = t
            for offset, amount in enumerate(sums, start=2):
                buckets[last + offset] += amount
        else:
            buckets.extend((number, t, *sums))
        self._sum(sums, 1.0)
        if len(buckets) > _WIDTH * (BUCKETS + 1):
            self._drop()

    def expire(self, now_s: float) -> None:
        if self.origin is None:
            return
        oldest = (now_s - self.span_s - self.origin) / _HOUR_S
        while len(self.buckets) > _WIDTH and self.buckets[1] < oldest:
            self._drop()

    def samples(self) -> int:
        return round(self._n)

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
        first = self.buckets[2:_WIDTH]
        del self.buckets[:_WIDTH]
        self._sum(tuple(first), -1.0)
        if not self.buckets:
            self._reset()

    def _sum(self, sums: tuple[float, ...], sign: float) -> None:
        n, t, v, tt, tv = sums
        self._n += sign * n
        self._t += sign * t
        self._v += sign * v
        self._tt += sign * tt
        self._tv += sign * tv

    def _reset(self) -> None:
        self._n = self._t = self._v = self._tt = self._tv = 0.0
