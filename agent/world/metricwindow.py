"""A sliding time window over one machine metric: its mean and its least-squares trend per hour.

Samples are kept as sums per time bucket (a twentieth of the window), not one by one: memory is
bounded by the window's length, not by how often a gateway sends (1,000 machines sending every
second used to keep up to 2,000 samples per window, about 1.3 GB). Mean and least-squares slope
need only the sums, so they are exact over the samples kept; the window's old edge moves a
bucket at a time (a sample leaves when every sample of its bucket is older than the window).
The newest bucket is never expired, so a silent sensor keeps its last value (no data is not a
change). A window for the mean only (`slope=False`, the `<metric>_avg` ones) keeps n and Σv
per bucket, not the time sums a slope needs: 4 numbers a bucket instead of 7.
"""

from __future__ import annotations

from array import array

_HOUR_S = 3600.0
BUCKETS = 20
# A bucket: its number, the time of its newest sample, then n, Σv, and with a slope Σt, Σt², Σtv
# of its samples.
_MEAN_WIDTH = 4
_SLOPE_WIDTH = 7


class Window:
    """Sums of the samples (hours since `origin`, value) of the last `span_s` seconds."""

    __slots__ = ("_n", "_t", "_tt", "_tv", "_v", "_width", "buckets", "origin", "span_s")

    def __init__(self, span_s: float, slope: bool = True) -> None:
        self.span_s = span_s
        self.origin: float | None = None
        self.buckets: array[float] = array("d")
        self._width = _SLOPE_WIDTH if slope else _MEAN_WIDTH
        self._n = self._t = self._v = self._tt = self._tv = 0.0

    def add(self, at_s: float, value: float, count: int = 1) -> None:
        """A sample at `at_s`; with `count`, that many samples of mean `value` at `at_s` (a
        saved reading's summary, when the window is refilled at start)."""
        buckets = self.buckets
        if self.origin is None or not buckets:
            self.origin = at_s
            self._reset()
        elapsed = at_s - self.origin
        span_s = self.span_s
        number = float(int(elapsed * BUCKETS // span_s)) if span_s > 0 else 0.0
        t = elapsed / _HOUR_S
        n = float(count)
        nv = n * value
        width = self._width
        self._n += n
        self._v += nv
        if width == _SLOPE_WIDTH:
            nt = n * t
            ntt, ntv = nt * t, nt * value
            self._t += nt
            self._tt += ntt
            self._tv += ntv
            if buckets and buckets[-_SLOPE_WIDTH] >= number:  # the newest (samples come in order)
                last = len(buckets) - _SLOPE_WIDTH
                buckets[last + 1] = t
                buckets[last + 2] += n
                buckets[last + 3] += nv
                buckets[last + 4] += nt
                buckets[last + 5] += ntt
                buckets[last + 6] += ntv
            else:
                buckets.extend((number, t, n, nv, nt, ntt, ntv))
        elif buckets and buckets[-_MEAN_WIDTH] >= number:
            last = len(buckets) - _MEAN_WIDTH
            buckets[last + 1] = t
            buckets[last + 2] += n
            buckets[last + 3] += nv
        else:
            buckets.extend((number, t, n, nv))
        if len(buckets) > width * (BUCKETS + 1):
            self._drop()

    def expire(self, now_s: float) -> None:
        if self.origin is None:
            return
        oldest = (now_s - self.span_s - self.origin) / _HOUR_S
        buckets, width = self.buckets, self._width
        while len(buckets) > width and buckets[1] < oldest:
            self._drop()

    def samples(self) -> int:
        return round(self._n)

    def mean(self) -> float | None:
        return self._v / self._n if self._n > 0 else None

    def slope_per_hour(self) -> float | None:
        """Least-squares change per hour; None with fewer than two samples or no time between
        (and always None for a window of the mean only)."""
        if self._n < 2 or self._width != _SLOPE_WIDTH:
            return None
        spread = self._n * self._tt - self._t * self._t
        if spread <= 1e-12:
            return None
        return (self._n * self._tv - self._t * self._v) / spread

    def _drop(self) -> None:
        buckets, width = self.buckets, self._width
        self._n -= buckets[2]
        self._v -= buckets[3]
        if width == _SLOPE_WIDTH:
            self._t -= buckets[4]
            self._tt -= buckets[5]
            self._tv -= buckets[6]
        del buckets[:width]
        if not buckets:
            self._reset()

    def _reset(self) -> None:
        self._n = self._t = self._v = self._tt = self._tv = 0.0
