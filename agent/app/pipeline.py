"""One batch of raw messages through decode and the core: the step `run` and `replay` share.

Raw (topic, bytes, time) in, an `Outcome` (decisions and dead letters) out; still no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from agent.app.core import Core
from agent.errors import EngineError
from agent.ingest.decode import MAX_LEVEL_CHARS, decode
from agent.ingest.subjects import SubjectGate, SubjectLimits
from agent.ingest.topics import TopicMap
from agent.model import Decision, Fact, Message, Outcome, Rejected, SavedTrack

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Raw:
    topic: str
    payload: bytes
    received_at: datetime


class Pipeline:
    def __init__(
        self,
        core: Core,
        topics: TopicMap,
        max_payload_bytes: int,
        subjects: SubjectLimits | None = None,
        max_level_chars: int = MAX_LEVEL_CHARS,
    ) -> None:
        self.core = core
        self.topics = topics
        self.max_payload_bytes = max_payload_bytes
        self.max_level_chars = max_level_chars
        self.subjects = SubjectGate(core.world.masterdata, subjects)
        self.subjects.seed(core.world)

    def restore(
        self,
        facts: Iterable[Fact],
        tracks: Iterable[SavedTrack] = (),
        firing_alert_keys: Collection[str] = (),
    ) -> int:
        """`Core.restore`, and the unknown subjects among the facts counted against the cap."""
        restored = self.core.restore(facts, tracks, firing_alert_keys)
        self.subjects.seed(self.core.world)
        return restored

    def run(self, batch: Sequence[Raw], readings: list[Message] | None = None) -> Outcome:
        """Decode the batch, then run its messages through the core; dead letters come first,
        then decisions in message order; commands are set aside for the daemon. The messages
        the core took are appended to `readings` if given (the daemon's history)."""
        decisions: list[Decision] = []
        rejected: list[Rejected] = []
        commands: list[Message] = []
        accepted: list[tuple[Message, Raw]] = []
        for raw in batch:
            decoded = decode(
                raw.topic,
                raw.payload,
                raw.received_at,
                self.topics,
                self.max_payload_bytes,
                self.max_level_chars,
            )
            if isinstance(decoded, Rejected):
                rejected.append(decoded)
                continue
            if decoded.kind == "command":
                commands.append(decoded)  # people's commands change rows, not facts
                continue
            refused = self.subjects.admit(decoded)
            if refused is not None:
                rejected.append(Rejected(raw.topic, raw.payload, refused, raw.received_at))
                continue
            accepted.append((decoded, raw))
        if readings is not None:
            readings.extend(message for message, _ in accepted)
        results = self.core.process_many([message for message, _ in accepted])
        for (_, raw), result in zip(accepted, results, strict=True):
            if isinstance(result, EngineError):
                rejected.append(self._engine_failed(raw, result))
                continue
            decisions.extend(result)
        if batch:
            decisions.extend(self.subjects.alerts(batch[-1].received_at, self.core.ruleset.hash))
        return Outcome(decisions, rejected, commands)

    @staticmethod
    def _engine_failed(raw: Raw, exc: EngineError) -> Rejected:
        # Keep the message (as a dead letter, with the reason) rather than lose it silently.
        log.error("engine_failed", topic=raw.topic, error=str(exc))
        return Rejected(raw.topic, raw.payload, f"rule engine: {exc}", raw.received_at)
