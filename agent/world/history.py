"""Readings downsampled for history: per subject, metric and time bucket, min/max/mean/last/count.

Pure: messages in, one `Reading` per (subject, metric, bucket) out. A machine's numeric metrics
(not its counters) are kept, and a stock count's `on_hand`. The bucket is the reading's own time
(`ts`), so a gateway's backfill lands where it happened, not when it arrived.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from agent.model import Message, Value
from agent.world.machine import COUNTERS

STOCK_METRICS: Final = ("on_hand",)


@dataclass(frozen=True, slots=True)
class Reading:
    """The samples of one metric of one subject in the bucket starting at `bucket`."""

    kind: str  # "machine" or "stock"
    site: str
    subject: str
    metric: str
    bucket: datetime
    count: int
    min: float
    max: float
    mean: float
    last: float
    last_at: datetime

    def merged(self, other: Reading) -> Reading:
        """Both summaries as one (same subject, metric and bucket)."""
        count = self.count + other.count
        newer = other if other.last_at >= self.last_at else self
        return Reading(
            self.kind,
            self.site,
            self.subject,
            self.metric,
            self.bucket,
            count,
            min(self.min, other.min),
            max(self.max, other.max),
            (self.mean * self.count + other.mean * other.count) / count,
            newer.last,
            newer.last_at,
        )


def bucket_of(at: datetime, resolution_s: int) -> datetime:
    """The start of the bucket `at` falls in (buckets are aligned on the epoch)."""
    seconds = int(at.timestamp() // resolution_s) * resolution_s
    return datetime.fromtimestamp(seconds, UTC)


def summarize(messages: Iterable[Message], resolution_s: int) -> list[Reading]:
    """The readings of a batch of messages, one per subject, metric and bucket."""
    # per key: count, min, max, sum, last, last_at (plain lists: 9 µs a message as Readings)
    sums: dict[tuple[str, str, str, str, float], list[Any]] = {}
    for message in messages:
        at = message.ts
        bucket_s = at.timestamp() // resolution_s * resolution_s
        for kind, metric, value in _samples(message):
            key = (kind, message.site, message.subject, metric, bucket_s)
            seen = sums.get(key)
            if seen is None:
                sums[key] = [1, value, value, value, value, at]
                continue
            seen[0] += 1
            seen[1] = min(seen[1], value)
            seen[2] = max(seen[2], value)
            seen[3] += value
            if at >= seen[5]:
                seen[4], seen[5] = value, at
    starts = {b: datetime.fromtimestamp(b, UTC) for (*_, b) in sums}
    return [
        Reading(kind, site, subject, metric, starts[bucket_s],
                n, low, high, total / n, last, last_at)
        for (kind, site, subject, metric, bucket_s), (n, low, high, total, last, last_at)
        in sums.items()
    ]  # fmt: skip


def _samples(message: Message) -> Iterable[tuple[str, str, float]]:
    if message.kind == "telemetry":
        for name, value in message.fields.items():
            if name not in COUNTERS and _is_number(value):
                yield "machine", name, float(value)  # type: ignore[arg-type]
    elif message.kind == "stock":
        for name in STOCK_METRICS:
            value = message.fields.get(name)
            if _is_number(value):
                yield "stock", name, float(value)  # type: ignore[arg-type]


def _is_number(value: Value | None) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
