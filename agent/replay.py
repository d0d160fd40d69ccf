"""Feed a recorded stream through the same pipeline as the daemon, on the recorded time.

`{"ts": ..., "topic": ..., "payload": {...}}` per line in; stored decisions out, by default into
an in-memory database, so nothing outside is touched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.core import Core, EngineFactory
from agent.errors import AgentError
from agent.ingest.topics import TopicMap
from agent.pipeline import Pipeline, Raw
from agent.policy import Policy
from agent.rulebook.engine import DurableEngine
from agent.store.repository import Store, StoredChange

BATCH = 500


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
    engine_factory: EngineFactory = DurableEngine,
) -> ReplayResult:
    """Run the recording through the pipeline in batches, storing as the daemon would."""
    pipeline = Pipeline(
        Core(policy.ruleset, policy.masterdata, engine_factory),
        TopicMap(topic_prefix),
        max_payload_bytes,
    )
    changes: list[StoredChange] = []
    messages = dead = 0
    started = time.perf_counter()
    batch: list[Raw] = []
    try:
        for raw in read_recording(path):
            batch.append(raw)
            if len(batch) >= BATCH:
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
