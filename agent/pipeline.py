"""One batch of raw messages through decode and the core: the step `run` and `replay` share.

Raw (topic, bytes, time) in, an `Outcome` (decisions and dead letters) out; still no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from agent.core import Core
from agent.errors import EngineError
from agent.ingest.decode import decode
from agent.ingest.topics import TopicMap
from agent.model import Decision, Message, Outcome, Rejected

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Raw:
    topic: str
    payload: bytes
    received_at: datetime


class Pipeline:
    def __init__(self, core: Core, topics: TopicMap, max_payload_bytes: int) -> None:
        self.core = core
        self.topics = topics
        self.max_payload_bytes = max_payload_bytes

    def run(self, batch: Sequence[Raw]) -> Outcome:
        decisions: list[Decision] = []
        rejected: list[Rejected] = []
        commands: list[Message] = []
        for raw in batch:
            decoded = decode(
                raw.topic, raw.payload, raw.received_at, self.topics, self.max_payload_bytes
            )
            if isinstance(decoded, Rejected):
                rejected.append(decoded)
                continue
            if decoded.kind == "command":
                commands.append(decoded)  # people's commands change rows, not facts
                continue
            decisions.extend(self._process(decoded, raw, rejected))
        return Outcome(decisions, rejected, commands)

    def _process(self, message: Message, raw: Raw, rejected: list[Rejected]) -> list[Decision]:
        try:
            return self.core.process([message])
        except EngineError as exc:
            # Keep the message (as a dead letter, with the reason) rather than lose it silently.
            log.error("engine_failed", topic=raw.topic, error=str(exc))
            rejected.append(
                Rejected(raw.topic, raw.payload, f"rule engine: {exc}", raw.received_at)
            )
            return []
