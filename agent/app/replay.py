"""Feed a recorded stream through the same pipeline as the daemon, on the recorded time.

`{"ts": ..., "topic": ..., "payload": {...}}` per line in; stored decisions out, by default into
an in-memory database, so nothing outside is touched.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.app.commands import Command
from agent.app.commands import apply as apply_command
from agent.app.core import EngineFactory
from agent.app.pipeline import Pipeline, Raw
from agent.app.policy import Policy
from agent.app.runner import Runner
from agent.app.stocksync import seed_reorders
from agent.app.ticks import TickSchedule
from agent.config import IngestSettings, InventorySettings, Settings
from agent.errors import AgentError
from agent.model import Fact, Outcome, TrackChanges
from agent.rulebook.engine import DurableEngine
from agent.store.repository import Store, StoredChange

Progress = Callable[[int], None]


class ReplayError(AgentError):
    pass


@dataclass(frozen=True, slots=True)
class ReplayResult:
    changes: list[StoredChange]
    messages: int
    dead_letters: int
    seconds: float


def read_recording(path: Path, progress: Progress | None = None) -> Iterator[Raw]:
    """Lines of `{"ts", "topic", "payload"}`; payload an object (encoded) or a string (raw).
    `progress` is told the characters of each line read (for a progress bar)."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"{path}: {exc.strerror}") from exc
    with handle:
        for number, text in enumerate(handle, start=1):
            if progress is not None:
                progress(len(text))
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
    progress: Progress | None = None,
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
    return replay_with(path, policy, store, settings, progress, engine_factory)


def replay_with(
    path: Path,
    policy: Policy,
    store: Store,
    settings: Settings,
    progress: Progress | None = None,
    engine_factory: EngineFactory = DurableEngine,
) -> ReplayResult:
    """Run the recording through the daemon's runner on the recorded time: the pipeline the
    settings describe (topics, limits, stock policy), batches of `ingest.batch_size`, a tick
    every `rules.tick_s` of recorded time, commands applied. Reorders the store holds open (an
    earlier replay into the same `--db`) are known."""
    pipeline = Pipeline.of(policy.ruleset, policy.masterdata, settings, engine_factory)
    seed_reorders(pipeline.core, store, None)
    runner = Runner(
        pipeline,
        StoreWork(store, settings.ingest.dedup_window),
        TickSchedule(settings.rules.tick_s),
        settings.commands.allowed_by,
    )
    batch_size = settings.ingest.batch_size
    changes: list[StoredChange] = []
    messages = dead = 0
    started = time.perf_counter()
    try:
        for batch in _batches(read_recording(path, progress), batch_size):
            fed = runner.feed(batch)
            assert fed is not None  # the store here never asks to stop: it raises
            changes.extend(fed.changes)
            messages += len(batch)
            dead += len(fed.rejected) + len(fed.refused)
    finally:
        pipeline.core.close()
    return ReplayResult(changes, messages, dead, time.perf_counter() - started)


class StoreWork:
    """The runner's unit of work straight on a store: no outbox, no retry (errors raise)."""

    def __init__(self, store: Store, keep_processed: int = 100_000) -> None:
        self.store = store
        self.keep_processed = keep_processed

    def commit(
        self,
        outcome: Outcome,
        facts: Sequence[Fact],
        tracks: TrackChanges,
        processed: Sequence[str],
    ) -> list[StoredChange]:
        return self.store.apply(
            outcome,
            facts=facts,
            tracks=tracks,
            processed=processed,
            keep_processed=self.keep_processed,
        )

    def transition(self, command: Command, at: datetime) -> dict[str, Any]:
        return apply_command(self.store, command, at)


def _batches(raws: Iterator[Raw], size: int) -> Iterator[list[Raw]]:
    while batch := list(itertools.islice(raws, size)):
        yield batch
