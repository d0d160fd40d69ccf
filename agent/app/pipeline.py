"""One batch of raw messages through decode and the core: the step `run` and `replay` share.

Raw (topic, bytes, time) in, an `Outcome` (decisions and dead letters) out; still no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from agent.app.core import Core, EngineFactory
from agent.app.stocksync import stock_policy
from agent.config import Settings
from agent.errors import EngineError
from agent.ingest.decode import MAX_LEVEL_CHARS, decode_all
from agent.ingest.mapping_load import load_inputs
from agent.ingest.partition import parse_sites
from agent.ingest.subjects import SubjectGate, SubjectLimits
from agent.ingest.topics import TopicMap
from agent.model import Decision, Fact, Message, Outcome, Rejected, SavedTrack
from agent.rulebook.disabled import DisabledRules
from agent.rulebook.engine import DurableEngine
from agent.rulebook.rules import RuleSet
from agent.world.masterdata import MasterData

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
        rules_disabled: DisabledRules | None = None,
    ) -> None:
        self.core = core
        # The rules the engine worker disabled (shared with its engines): their alerts go out here.
        self.rules_disabled = rules_disabled
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

    def run(self, batch: Sequence[Raw]) -> Outcome:
        """Decode the batch, then run its messages through the core; dead letters come first,
        then decisions in message order; commands are set aside for the daemon, and the
        messages the core took are handed back (`Outcome.taken`: the daemon's history)."""
        decisions: list[Decision] = []
        rejected: list[Rejected] = []
        commands: list[Message] = []
        accepted: list[tuple[Message, Raw]] = []
        for raw in batch:
            for decoded in decode_all(  # one message, but none or several for Sparkplug B
                raw.topic,
                raw.payload,
                raw.received_at,
                self.topics,
                self.max_payload_bytes,
                self.max_level_chars,
            ):
                self._sort(decoded, raw, rejected, commands, accepted)
        taken = [message for message, _ in accepted]
        results = self.core.process_many(taken)

        for (_, raw), result in zip(accepted, results, strict=True):
            if isinstance(result, EngineError):
                rejected.append(self._engine_failed(raw, result))
                continue
            decisions.extend(result)
        if batch:
            decisions.extend(self.subjects.alerts(batch[-1].received_at, self.core.ruleset.hash))
            if self.rules_disabled is not None:
                at = batch[-1].received_at
                decisions.extend(self.rules_disabled.alerts(at, self.core.ruleset.hash))
        return Outcome(decisions, rejected, commands, taken)

    @classmethod
    def of(
        cls,
        ruleset: RuleSet,
        masterdata: MasterData,
        settings: Settings,
        engine_factory: EngineFactory = DurableEngine,
        topics: TopicMap | None = None,
        rules_disabled: DisabledRules | None = None,
    ) -> Pipeline:
        """The pipeline the settings describe: topics (with the input mappings of
        `ingest.inputs_file`), ingest limits and batch size, and the `[inventory]` stock policy.
        The daemon (which passes its own `topics`, reloaded live), `replay` and `rules test` all
        build it here, so a recorded plant in its own topic shapes replays as it ran."""
        ingest = settings.ingest
        if topics is None:
            topics = TopicMap(settings.mqtt.topic_prefix, load_inputs(ingest.inputs_file))
        core = Core(
            ruleset,
            masterdata,
            engine_factory,
            stock_policy=stock_policy(settings.inventory),
            segment=ingest.batch_size,
            late_after_s=settings.notify.late_after_s,
        )
        return cls(
            core,
            topics,
            ingest.max_payload_bytes,
            SubjectLimits.of(ingest, parse_sites(settings.mqtt.sites)),
            ingest.max_topic_level_chars,
            rules_disabled,
        )

    def _sort(
        self,
        decoded: Message | Rejected,
        raw: Raw,
        rejected: list[Rejected],
        commands: list[Message],
        accepted: list[tuple[Message, Raw]],
    ) -> None:
        if isinstance(decoded, Rejected):
            rejected.append(decoded)
        elif decoded.kind == "command":
            commands.append(decoded)  # people's commands change rows, not facts
        else:
            refused = self.subjects.admit(decoded)
            if refused is not None:
                rejected.append(Rejected(raw.topic, raw.payload, refused, raw.received_at))
            else:
                accepted.append((decoded, raw))

    @staticmethod
    def _engine_failed(raw: Raw, exc: EngineError) -> Rejected:
        # Keep the message (as a dead letter, with the reason) rather than lose it silently.
        log.error("engine_failed", topic=raw.topic, error=str(exc))
        return Rejected(raw.topic, raw.payload, f"rule engine: {exc}", raw.received_at)
