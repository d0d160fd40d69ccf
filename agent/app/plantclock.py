"""The plant's own time for a daemon fed a recorded day: each message is dated by the `ts` it
carries and the clock stands at the latest of them, so ticks fall where `replay` puts them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


class PlantClock:
    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("PlantClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def date(self, payload: bytes, received_at: datetime) -> datetime:
        """The message's own `ts` (the clock moves up to it), else the clock's time."""
        when = carried_ts(payload) or self._now
        self._now = max(self._now, when)
        return when


def carried_ts(payload: bytes) -> datetime | None:
    """The `ts` of a JSON object payload (ISO 8601 or epoch seconds), None if it has none."""
    try:
        document: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    value = document.get("ts") if isinstance(document, dict) else None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None
