"""The loop the daemon, `replay` and `rules test` share: batches and ticks through the pipeline,
each result committed, then people's commands applied, as the daemon applies them.

No I/O here: the store (with the outbox) is a `UnitOfWork` port, the time comes in with the
messages and `tick_until(now)`; the engine sits inside the pipeline's core. The daemon wires MQTT,
the database and the wall clock to it; replay and rule tests a recording and a simulated clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from agent.app.machinesync import work_order_closed
from agent.app.pipeline import Pipeline, Raw
from agent.app.ticks import TickSchedule
from agent.decisions import commands
from agent.errors import EngineError, TransitionError
from agent.model import Decision, Fact, Message, Outcome, Rejected, TrackChanges

if TYPE_CHECKING:
    from agent.store.repository import StoredChange

log = structlog.get_logger(__name__)


class UnitOfWork(Protocol):
    """The store and the outbox, each call one transaction; None: stopping, nothing stored."""

    def commit(
        self,
        outcome: Outcome,
        facts: Sequence[Fact],
        tracks: TrackChanges,
        processed: Sequence[str],
    ) -> list[StoredChange] | None: ...

    def transition(self, command: commands.Command, at: datetime) -> dict[str, Any] | None:
        """Apply a person's command to its row; raise TransitionError when it is illegal."""
        ...


@dataclass(slots=True)
class Fed:
    """What one call did: the stored changes, the decisions behind them (published and
    notified ones too), the messages dead-lettered, the commands applied or refused (dead
    letters too), and the time spent."""

    changes: list[StoredChange] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    refused: list[Rejected] = field(default_factory=list)
    commands: int = 0
    evaluation_s: float = 0.0
    commit_s: float = 0.0


class Runner:
    def __init__(
        self,
        pipeline: Pipeline,
        work: UnitOfWork,
        ticks: TickSchedule,
        allowed_by: Sequence[str] = (),
        stopwatch: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.pipeline = pipeline
        self.core = pipeline.core
        self.work = work
        self.ticks = ticks
        self.allowed_by = tuple(allowed_by)
        self._stopwatch = stopwatch  # only for the daemon's metrics

    def feed(self, batch: Sequence[Raw], processed: Sequence[str] = ()) -> Fed | None:
        """The batch in order, a tick before the first message at or after each tick instant;
        `processed` (the messages' digests, if any) is committed with its part. None when the
        unit of work is stopping: what was not committed must not be acknowledged."""
        fed = Fed()
        start = 0
        for index, raw in enumerate(batch):
            due = self.ticks.due(raw.received_at)
            if not due:
                continue
            if index > start and not self._run(batch[start:index], processed[start:index], fed):
                return None
            start = index
            if not all(self._tick(at, fed) for at in due):
                return None
        if start < len(batch) and not self._run(batch[start:], processed[start:], fed):
            return None
        return fed

    def tick_until(self, now: datetime) -> Fed | None:
        """The ticks due by `now` (time passing without messages); None when stopping."""
        fed = Fed()
        if not all(self._tick(at, fed) for at in self.ticks.due(now)):
            return None
        return fed

    def commit(self, decisions: list[Decision], fed: Fed | None = None) -> Fed | None:
        """Decisions made outside a batch (a reload, a resync) stored like the rest."""
        fed = fed or Fed()
        return fed if self._commit(Outcome(decisions), fed) else None

    def _run(self, part: Sequence[Raw], processed: Sequence[str], fed: Fed) -> bool:
        started = self._stopwatch()
        outcome = self.pipeline.run(part)
        evaluated = self._stopwatch()
        fed.evaluation_s += evaluated - started
        if not self._commit(outcome, fed, processed):
            return False
        fed.commit_s += self._stopwatch() - evaluated
        fed.rejected.extend(outcome.rejected)
        return not outcome.commands or self._commands(outcome.commands, fed)

    def _tick(self, at: datetime, fed: Fed) -> bool:
        try:
            decisions = self.core.tick(at)
        except EngineError as exc:
            log.error("tick_failed", error=str(exc))
            return True
        if not decisions and not self.core.tracks_changed():
            return True
        return self._commit(Outcome(decisions), fed)  # a `for` started or ended: it is saved

    def _commit(self, outcome: Outcome, fed: Fed, processed: Sequence[str] = ()) -> bool:
        """The outcome with the facts and tracked matches it changed, in one transaction."""
        facts = self.core.take_changed()
        tracks = self.core.take_tracks()
        changes = self.work.commit(outcome, facts, tracks, processed)
        if changes is None:
            return False
        fed.changes.extend(changes)
        fed.decisions.extend(outcome.decisions)
        return True

    def _commands(self, received: list[Message], fed: Fed) -> bool:
        """People's commands, after the decisions of their batch; refused ones become dead
        letters with the reason. A work order closed re-evaluates its machine at once."""
        refused: list[Rejected] = []
        for message in received:
            try:
                command = commands.from_message(message, self.allowed_by)
                row = self.work.transition(command, message.received_at)
            except TransitionError as exc:
                refused.append(commands.refused(message, str(exc)))
                log.warning("command_refused", topic=message.topic, reason=str(exc))
                continue
            if row is None:
                return False
            fed.commands += 1
            log.info(
                "command_applied",
                command=command.command,
                table=command.target,
                id=command.id,
                by=command.by,
                status=row["status"],
            )
            closed = work_order_closed(self.core, row, message.received_at)
            if closed and not self._commit(Outcome(closed), fed):
                return False
        fed.refused.extend(refused)
        return not refused or self._commit(Outcome(rejected=refused), fed)
