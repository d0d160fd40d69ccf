"""Feed a recorded stream through the same pipeline as the daemon, on the recorded time.

`{"ts": ..., "topic": ..., "payload": {...}}` per line in; stored decisions out, by default into
an in-memory database, so nothing outside is touched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.app.core import EngineFactory
from agent.app.pipeline import Pipeline, Raw
from agent.app.policy import Policy
from agent.app.stocksync import seed_reorders
from agent.config import IngestSettings, InventorySettings, Settings
from agent.errors import AgentError
from agent.model import Outcome
from agent.rulebook.engine import DurableEngine
from agent.store.repository import Store, StoredChange


class ReplayError(AgentError):
    pass


@dataclass(frozen=True, slots=True)
class ReplayResult:
    changes: list[StoredChange]
    messages: int
    dead_letters: int
    seconds: float


def read_recording(path: Path) -> Iterator[Raw]:
    """Lines of `{"ts", "topic", "payload"}`; payload an object (encoded) or a string (raw)."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"{path}: {exc.strerror}") from exc
    with handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            yield _parse_line(path, number, text)


def _parse_line(path: Path, number: int, text: str) -> Raw:
    try:
        entry: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{path}:{number}: not JSON: {exc.msg}") from exc
    if not isinstance(entry, dict) or not isinstance(entry.get("topic"), str):
        raise ReplayError(f"{path}:{number}: expected an object with `topic`, `ts`, `payload`")
    payload = entry.get("payload")
    raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return Raw(entry["topic"], raw, _timestamp(path, number, entry.get("ts")))


def _timestamp(path: Path, number: int, value: Any) -> datetime:
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise ReplayError(f"{path}:{number}: bad ts {value!r}: {exc}") from exc
    raise ReplayError(f"{path}:{number}: `ts` must be ISO 8601 or epoch seconds, got {value!r}")


def replay(
    path: Path,
    policy: Policy,
    store: Store,
    topic_prefix: str,
    max_payload_bytes: int,
    tick_s: float = 30.0,
    inventory: InventorySettings | None = None,
    engine_factory: EngineFactory = DurableEngine,
    ingest: IngestSettings | None = None,
) -> ReplayResult:
    """`replay_with` on default settings but these (for tests and benchmarks)."""
    base = Settings()
    settings = base.model_copy(
        update={
            "mqtt": base.mqtt.model_copy(update={"topic_prefix": topic_prefix}),
            "rules": base.rules.model_copy(update={"tick_s": tick_s}),
            "ingest": (ingest or base.ingest).model_copy(
                update={"max_payload_bytes": max_payload_bytes}
            ),
            "inventory": inventory or base.inventory,
        }
    )
    return replay_with(path, policy, store, settings, engine_factory)


def replay_with(
    path: Path,
    policy: Policy,
    store: Store,
    settings: Settings,
    engine_factory: EngineFactory = DurableEngine,
) -> ReplayResult:
    """Run the recording through the pipeline the settings describe (topics, limits, stock
    policy) in batches of `ingest.batch_size`, storing as the daemon would, with a scheduler
    tick at least every `rules.tick_s` of recorded time (as the daemon's scheduler would).
    Reorders the store holds open (an earlier replay into the same `--db`) are known."""
    pipeline = Pipeline.of(policy.ruleset, policy.masterdata, settings, engine_factory)
    seed_reorders(pipeline.core, store, None)
    batch_size = settings.ingest.batch_size
    changes: list[StoredChange] = []
    messages = dead = 0
    started = time.perf_counter()
    batch: list[Raw] = []
    tick = timedelta(seconds=settings.rules.tick_s)
    next_tick: datetime | None = None
    try:
        for raw in read_recording(path):
            if next_tick is None:
                next_tick = raw.received_at + tick
            if raw.received_at >= next_tick:
                if batch:
                    dead += _flush(pipeline, store, batch, changes)
                    messages += len(batch)
                    batch = []
                while raw.received_at >= next_tick:
                    ticked = pipeline.core.tick(next_tick)
                    if ticked:
                        changes.extend(store.apply(Outcome(ticked)))
                    next_tick += tick
            batch.append(raw)
            if len(batch) >= batch_size:
                dead += _flush(pipeline, store, batch, changes)
                messages += len(batch)
                batch = []
        if batch:
            dead += _flush(pipeline, store, batch, changes)
            messages += len(batch)
    finally:
        pipeline.core.close()
    return ReplayResult(changes, messages, dead, time.perf_counter() - started)


def _flush(pipeline: Pipeline, store: Store, batch: list[Raw], changes: list[StoredChange]) -> int:
    outcome = pipeline.run(batch)
    changes.extend(store.apply(outcome))
    return len(outcome.rejected)
