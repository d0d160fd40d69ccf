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

from agent.app.core import Core, EngineFactory
from agent.app.pipeline import Pipeline, Raw
from agent.app.policy import Policy
from agent.app.stocksync import seed_reorders, stock_policy
from agent.config import IngestSettings, InventorySettings, Settings
from agent.errors import AgentError
from agent.ingest.subjects import SubjectLimits
from agent.ingest.topics import TopicMap
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
    """Run the recording through the pipeline in batches of `ingest.batch_size`, storing as the
    daemon would, with a scheduler tick at least every `tick_s` of recorded time (as the daemon's
    scheduler would). Reorders the store holds open (an earlier replay into the same `--db`) are
    known."""
    ingest = ingest or IngestSettings()
    core = Core(
        policy.ruleset,
        policy.masterdata,
        engine_factory,
        stock_policy=stock_policy(inventory or InventorySettings()),
        segment=ingest.batch_size,
    )
    seed_reorders(core, store, None)
    pipeline = Pipeline(
        core,
        TopicMap(topic_prefix),
        max_payload_bytes,
        SubjectLimits.of(ingest),
        ingest.max_topic_level_chars,
    )
    changes: list[StoredChange] = []
    messages = dead = 0
    started = time.perf_counter()
    batch: list[Raw] = []
    tick = timedelta(seconds=tick_s)
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
            if len(batch) >= ingest.batch_size:
                dead += _flush(pipeline, store, batch, changes)
                messages += len(batch)
                batch = []
        if batch:
            dead += _flush(pipeline, store, batch, changes)
            messages += len(batch)
    finally:
        pipeline.core.close()
    return ReplayResult(changes, messages, dead, time.perf_counter() - started)


def replay_with(path: Path, policy: Policy, store: Store, settings: Settings) -> ReplayResult:
    """`replay` on the settings the daemon runs with (topics, limits, tick, stock policy)."""
    return replay(
        path,
        policy,
        store,
        settings.mqtt.topic_prefix,
        settings.ingest.max_payload_bytes,
        settings.rules.tick_s,
        settings.inventory,
        ingest=settings.ingest,
    )


def _flush(pipeline: Pipeline, store: Store, batch: list[Raw], changes: list[StoredChange]) -> int:
    outcome = pipeline.run(batch)
    changes.extend(store.apply(outcome))
    return len(outcome.rejected)
