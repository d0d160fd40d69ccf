"""The pure core: validated messages in, decisions out, through world state and the rule engine.

No sockets, no database, no clock: the daemon, `replay` and `rules test` all run this, and pass
the time in (`tick(now)`) for what time alone changes: derived values, `for`, schedules.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import structlog

from agent.decisions.build import (
    alert_key,
    conditions_hold,
    decide,
    subject_param,
)
from agent.decisions.lifecycle import Lifecycle, Track, TrackKey
from agent.decisions.records import closed_records
from agent.errors import EngineError
from agent.model import (
    ActionDecision,
    AlertDecision,
    AlertResolved,
    AppliedReceipt,
    Decision,
    Fact,
    Message,
    NotifyDecision,
    OpenReorder,
    PublishDecision,
    SavedTrack,
    TrackChanges,
    Value,
)
from agent.rulebook import expr
from agent.rulebook.compiler import EnginePlan
from agent.rulebook.engine import DurableEngine, Match, RuleEngine, update_many
from agent.rulebook.rules import Rule, RuleSet
from agent.rulebook.split import SplitEngine
from agent.rulebook.timing import Cron, parse_cron
from agent.world.arrival import arrived_at, lag_of, plant_now
from agent.world.masterdata import MasterData
from agent.world.state import WorldState
from agent.world.stock import StockPolicy

log = structlog.get_logger(__name__)

EngineFactory = Callable[[EnginePlan], RuleEngine]
# A scheduled rule over several aliases looks at every combination of facts: bound it.
MAX_SCHEDULED_TUPLES = 100_000
# An alert fired on readings this late (arrival minus `ts`, seconds) is marked `late`.
LATE_AFTER_S = 300.0
# Messages per engine round trip at most (`process_many`) unless told otherwise: the default
# of `ingest.batch_size`, which the daemon, `replay` and `rules test` pass in.
SEGMENT = 500


@dataclass(slots=True)
class _Step:
    """One fact a message changed: its key, the fact before and after (None: no change), and
    what was decided before the rules (a receipt)."""

    key: str
    old: Fact | None
    fact: Fact | None
    first: list[Decision]
    message: Message | None = None


class Core:
    def __init__(
        self,
        ruleset: RuleSet,
        masterdata: MasterData,
        engine_factory: EngineFactory = DurableEngine,
        stock_policy: StockPolicy | None = None,
        segment: int = SEGMENT,
        late_after_s: float = LATE_AFTER_S,
    ) -> None:
        """`late_after_s`: an alert fired on readings that arrived this long after their `ts`
        (a gateway's backfill) is marked `late`."""
        if segment < 1:
            raise ValueError(f"segment must be at least 1, got {segment}")
        self.segment = segment
        self._late_after_s = late_after_s
        self.world = WorldState(masterdata, stock_policy)
        self._reorder_factor = (stock_policy or StockPolicy()).max_reorder_factor
        self._engine_factory = engine_factory
        self._engine = SplitEngine(ruleset, engine_factory)
        self._use(ruleset)
        self._ahead: dict[str, Fact | None] = {}  # facts a later step of `_run` changes
        self.lifecycle = Lifecycle()
        self._changed: set[str] = set()  # fact keys changed since `take_changed()`
        self._crons: dict[str, Cron] = {}
        self._next_run: dict[str, datetime] = {}
        self._set_schedules()

    def process(self, messages: Iterable[Message]) -> list[Decision]:
        """Apply messages in order; return the decisions they caused, in order.

        One message at a time, the engine's answer awaited for each: the reference that
        `process_many` must agree with. Raises the `EngineError` of a message the engine failed on.
        """
        decisions: list[Decision] = []
        for message in messages:
            result = self._run([self._apply(message)])[0]
            if isinstance(result, EngineError):
                raise result
            decisions.extend(result)
        return decisions

    def process_many(self, messages: Sequence[Message]) -> list[list[Decision] | EngineError]:
        """`process` for a batch: one result per message, its decisions, or the EngineError the
        engine failed on for its fact (the pipeline dead-letters that message, not the batch).

        The same decisions as `process` message by message, with one engine round trip per
        segment instead of one per message: see `_run`. A segment ends before a subject repeats,
        so every fact in it is changed once and its state before and after is known.
        """
        results: list[list[Decision] | EngineError] = []
        start = 0
        while start < len(messages):
            keys: set[str] = set()
            end = start
            while end < len(messages) and end - start < self.segment:
                key = self.world.key_of(messages[end])
                if key in keys or (end > start and messages[end].kind in self._first_only):
                    break
                keys.add(key)
                end += 1
            results.extend(self._run([self._apply(m) for m in messages[start:end]]))
            start = end
        return results

    def _apply(self, message: Message) -> _Step:
        """A message into the world state (no rules yet): the fact before and after it."""
        key = self.world.key_of(message)
        old = self.world.get(key)
        if message.kind == "receipt":
            receipt, fact = self.world.receive(message)
            return _Step(key, old, fact, [receipt] if receipt is not None else [], message)
        return _Step(key, old, self.world.apply(message), [], message)

    def _run(self, steps: list[_Step]) -> list[list[Decision] | EngineError]:
        """The rules over facts the world changed in order, one engine round trip for all.

        The engine takes the facts in order, so each answer is the one it gives one at a time.
        The Python side sees each fact as it was at its step: a fact a later step changes is
        read as it was before (`_ahead`). A reorder or work order booked at a step changes a fact
        and is posted at once, as one at a time would; when that can change what the engine
        answers for later steps (the booked fact is changed later in the segment, or a join
        could pair it with a later fact), the later steps are posted again from the state
        before them (`_rewind`), so their answers are exact.
        """
        posted = [i for i, step in enumerate(steps) if step.fact is not None]
        answers = dict(
            zip(
                posted,
                update_many(self._engine, [self._posting(steps[i]) for i in posted]),
                strict=True,
            )
        )
        self._ahead = {steps[i].key: steps[i].old for i in posted}
        results: list[list[Decision] | EngineError] = []
        try:
            for index, step in enumerate(steps):
                if step.fact is None:
                    results.append(step.first)
                    continue
                self._ahead.pop(step.key, None)
                answer = answers[index]
                if isinstance(answer, EngineError):
                    results.append(answer)
                    continue
                decided = self._after_update(step.fact, answer, step.fact.updated_at)
                results.append(step.first + decided)
                booked, joined = self._book(decided)
                if not booked:
                    continue
                # Later answers change if a later step's fact was booked, or if the join engine
                # held the booked fact before or after (a join could pair it with a later one).
                if self._redo(steps[index + 1 :], booked) or joined:
                    answers.update(self._rewind(steps, index + 1))
        finally:
            self._ahead = {}
        return results

    def _posting(self, step: _Step) -> tuple[str, Mapping[str, Value]]:
        assert step.fact is not None
        self._changed.add(step.key)
        return step.key, step.fact.fields

    def _redo(self, later: list[_Step], booked: set[str]) -> bool:
        """Apply again the later steps whose fact a booking just changed; True if there were."""
        redone = False
        for step in later:
            if step.key not in booked:
                continue
            assert step.message is not None and step.message.kind == "stock", step.key
            step.old, step.fact = self.world.reapply(step.message, step.old)
            self._ahead[step.key] = step.old
            redone = True
        return redone

    def _rewind(self, steps: list[_Step], start: int) -> dict[int, list[Match] | EngineError]:
        """Post `steps[start:]` again from the engine state before them: a booking came between."""
        later = [i for i in range(start, len(steps)) if steps[i].fact is not None]
        for i in later:
            old = steps[i].old
            if old is None:
                self._engine.remove(steps[i].key)
        update_many(
            self._engine,
            [(steps[i].key, old.fields) for i in later if (old := steps[i].old) is not None],
        )
        answers = update_many(self._engine, [self._posting(steps[i]) for i in later])
        return dict(zip(later, answers, strict=True))

    def restore(
        self,
        facts: Iterable[Fact],
        tracks: Iterable[SavedTrack] = (),
        firing_alert_keys: Collection[str] = (),
    ) -> int:
        """Put saved facts and tracked matches back without deciding anything: a restart
        resumes where the last commit left off instead of re-firing every rule.

        Facts, tracks and decisions are committed together, so the saved tracks are what the
        rules were doing: a pending `for` keeps its start (and fires at the first tick after it
        is due), a firing match stays firing and resolves when its facts say so. A match on the
        restored facts that has no saved track (a database from before tracks were kept, or a
        rule changed while the agent was down) has fired already, its decisions committed: the
        lifecycle learns that (the decisions are dropped). Such a match of a rule with `for` is
        pending anew from its fact's time, unless its alert is still firing in the store
        (`firing_alert_keys`): then it is firing.
        """
        restored = [self.world.restore(fact) for fact in facts]
        kept = self.lifecycle.restore(tracks, self._rules)
        answers = update_many(self._engine, [(f.key, f.fields) for f in restored])
        failed: list[str] = []
        before = set(self.lifecycle.tracks)
        for fact, answer in zip(restored, answers, strict=True):
            if isinstance(answer, EngineError):
                failed.append(fact.key)
                continue
            self._decide(answer, fact.updated_at, fresh_only=True)  # only the lifecycle keeps it
        self._adopt_firing(set(self.lifecycle.tracks) - before, set(firing_alert_keys))
        if failed:
            log.warning("facts_not_restored_in_engine", count=len(failed), first=failed[0])
        self._changed.clear()
        log.info("tracks_restored", kept=kept, new=len(self.lifecycle.tracks) - kept)
        return len(restored)

    def _adopt_firing(self, new: set[TrackKey], firing: set[str]) -> None:
        """Pending tracks the restore opened whose alert the store has firing: they fire."""
        for key in sorted(new):
            track = self.lifecycle.tracks.get(key)
            rule = self._rules.get(key[0])
            if track is None or track.firing or rule is None:
                continue
            facts = self._facts(track.facts)
            if facts is not None and (alert := alert_key(rule, facts)) in firing:
                self.lifecycle.mark_firing(track, (alert,))

    def take_tracks(self) -> TrackChanges:
        """The tracked matches changed since the last call (saved with the commit)."""
        return self.lifecycle.take_changes()

    def tracks_changed(self) -> bool:
        return self.lifecycle.has_changes()

    def take_changed(self) -> list[Fact]:
        """The current facts changed since the last call (for the snapshot), and forget them."""
        keys, self._changed = self._changed, set()
        return [fact for key in sorted(keys) if (fact := self.world.get(key)) is not None]

    def seed_reorders(
        self, reorders: Iterable[OpenReorder], receipts: Iterable[AppliedReceipt] = ()
    ) -> None:
        """Learn the store's open reorders and applied receipts (at start, or to resync)."""
        for fact in self.world.seed_reorders(reorders, receipts):
            self._changed.add(fact.key)
            self._engine.update(fact.key, fact.fields)

    def _book_reorders(self, decisions: list[Decision]) -> set[str]:
        """A reorder a rule opened is on order from now on, and a work order is open on its
        machine: the fact shows it at once. It is re-posted without deciding again:
        bookkeeping, not a new observation. Returns the keys of the facts it changed."""
        return self._book(decisions)[0]

    def _book(self, decisions: list[Decision]) -> tuple[set[str], bool]:
        """`_book_reorders`, and whether the join engine held a booked fact before or after."""
        joined = False
        booked: set[str] = set()
        for decision in decisions:
            if not isinstance(decision, ActionDecision):
                continue
            if decision.kind == "work_order":
                fact = self.world.work_order_opened(
                    decision.site, decision.subject, decision.dedup_key
                )
            elif decision.kind == "reorder":
                fact = self.world.reorder_opened(_open_reorder(decision))
            else:
                continue
            if fact is not None:
                booked.add(fact.key)
                self._changed.add(fact.key)
                joined = joined or self._engine.in_joins(fact.key)
                self._engine.update(fact.key, fact.fields)
                joined = joined or self._engine.in_joins(fact.key)
        return booked, joined

    def seed_work_orders(self, open_orders: Iterable[tuple[str, str, str]]) -> None:
        """Learn the store's open work orders, (site, machine, dedup key) (at start, to resync)."""
        for fact in self.world.seed_work_orders(open_orders):
            self._changed.add(fact.key)
            self._engine.update(fact.key, fact.fields)

    def work_order_closed(
        self, site: str, machine: str, dedup_key: str, service_done: bool, at: datetime
    ) -> list[Decision]:
        """A person closed a work order (done or cancelled); a service done restarts the
        machine's `hours_since_service`. The machine's rules are re-evaluated at `at`."""
        fact = self.world.work_order_closed(site, machine, dedup_key)
        if service_done:
            fact = self.world.service_done(site, machine, at) or fact
        if fact is None:
            return []
        decisions = self._update(fact, at, ticked=True)
        self._book_reorders(decisions)
        return decisions

    def tick(self, now: datetime) -> list[Decision]:
        """What time alone changes at `now`: derived values, due `for` timers, schedules.

        A fact whose refresh changed no field a rule reads (`seen_s` when no rule reads it) is
        kept, not re-evaluated: the rules would answer as before. The rest go to the engine in
        one round trip.
        """
        decisions: list[Decision] = []
        steps: list[_Step] = []
        for old, fact in self.world.refresh(now):
            # Only these go to the snapshot too: the rest (seen_s, run seconds) are recomputed
            # from the saved timestamps by the first tick after a restart, and writing all of
            # them every tick (11k rows) stalled the next batch's commit.
            if self._reads_change(old, fact):
                steps.append(_Step(fact.key, old, fact, []))
        decisions.extend(self._rejudge(steps, now, "tick_fact_failed"))
        for track in self.lifecycle.pending():
            rule = self._rules.get(track.rule_id)
            if rule is None:
                continue
            at = self._plant_now(track, now)  # a `for` runs on its readings' time line
            if track.due(rule, at):
                decisions.extend(self._recheck(track, rule, at, ticked=True))
        decisions.extend(self._run_schedules(now))
        self._book_reorders(decisions)
        return decisions

    def _rejudge(self, steps: list[_Step], now: datetime, failed: str) -> list[Decision]:
        """Facts re-derived without a new observation (a tick, a master-data swap) through the
        engine: decided as ticked, so a match that keeps holding is not repeated. A fact the
        engine fails on is logged as `failed` and skipped."""
        answers = update_many(self._engine, [self._posting(step) for step in steps])
        decisions: list[Decision] = []
        for step, answer in zip(steps, answers, strict=True):
            if isinstance(answer, EngineError):
                log.warning(failed, fact=step.key, error=str(answer))
                continue
            assert step.fact is not None
            at = plant_now(step.fact, now)
            decisions.extend(self._after_update(step.fact, answer, at, ticked=True))
        return decisions

    def _plant_now(self, track: Track, now: datetime) -> datetime:
        """`now` on the time line of a match's facts: the earliest of theirs (see `plant_now`)."""
        facts = [self.world.get(key) for key in track.facts.values()]
        return min((plant_now(fact, now) for fact in facts if fact is not None), default=now)

    def _reads_change(self, old: Fact, new: Fact) -> bool:
        before, after = old.fields, new.fields
        return any(before.get(name) != after.get(name) for name in self._read)

    def reload(self, ruleset: RuleSet, now: datetime | None = None) -> list[Decision]:
        """Swap to a new rule set: a new engine re-seeded from the world state.

        Pending and firing matches of unchanged rules carry over; new or changed rules are
        evaluated against the current facts at once, at `now` (default: each fact's time);
        unchanged ones do not fire again.
        """
        engine = SplitEngine(ruleset, self._engine_factory)
        old_rules, old_engine = self._rules, self._engine
        self._engine = engine
        self._use(ruleset)
        old_engine.close()
        kept = self.lifecycle.keep_only(self._rules)
        changed = {
            rule.id
            for rule in ruleset.rules
            if rule.id not in old_rules or old_rules[rule.id].fingerprint != rule.fingerprint
        }
        decisions: list[Decision] = []
        facts = list(self.world)
        answers = update_many(engine, [(fact.key, fact.fields) for fact in facts])
        for fact, answer in zip(facts, answers, strict=True):
            if isinstance(answer, EngineError):
                # The new set is in use already: a fact the engine fails on (a rule it hangs on is
                # disabled by the worker) is not evaluated now, rather than the reload undone.
                log.warning("fact_not_reevaluated", fact=fact.key, error=str(answer))
                continue
            matches = [m for m in answer if m.rule_id in changed]
            decisions.extend(self._decide(matches, now or fact.updated_at))
        # A changed rule's timetable (its schedule or timezone may differ) starts afresh.
        self._set_schedules(keep={k: v for k, v in self._next_run.items() if k not in changed})
        self._book_reorders(decisions)
        log.info("rules_swapped", rule_set=ruleset.hash, changed=len(changed), tracks_kept=kept)
        return decisions

    def swap_masterdata(self, masterdata: MasterData, now: datetime) -> list[Decision]:
        """Use new master data (validated already) from now on, between two batches.

        The facts of subjects whose master data changed are derived again at `now` and the rules
        re-evaluated on them, as for a tick: a reorder point raised above the stock fires at
        once, one lowered below it stops holding (and resolves where the rule says how). A match
        that keeps holding is not repeated: master data is not a new observation.
        """
        steps = [
            _Step(new.key, old, new, []) for old, new in self.world.swap_masterdata(masterdata, now)
        ]
        decisions = self._rejudge(steps, now, "masterdata_fact_failed")
        self._book_reorders(decisions)
        log.info("masterdata_swapped", facts=len(steps), decisions=len(decisions))
        return decisions

    def _use(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._rules: dict[str, Rule] = ruleset.by_id()
        self._order = {rule.id: index for index, rule in enumerate(ruleset.rules)}
        self._read = fields_read(ruleset)
        # Messages that must start a segment: a rule could book their fact from an earlier step
        # (a join, or an action naming another subject), and they change more than the fact (the
        # reorder book, metric windows), so they cannot be applied again: see `_redo`.
        books = {kind for rule in ruleset.rules for kind in _books_elsewhere(rule)}
        self._first_only = frozenset(
            ({"receipt"} if "reorder" in books else set())
            | ({"telemetry"} if "work_order" in books else set())
        )

    def _update(self, fact: Fact, at: datetime, ticked: bool = False) -> list[Decision]:
        self._changed.add(fact.key)
        return self._after_update(fact, self._engine.update(fact.key, fact.fields), at, ticked)

    def _after_update(
        self, fact: Fact, matches: list[Match], at: datetime, ticked: bool = False
    ) -> list[Decision]:
        """Decide on the engine's answer for a changed fact, then recheck the tracked matches
        the fact takes part in that the engine did not name."""
        seen: set[tuple[str, tuple[str, ...]]] = set()
        decisions = self._decide(matches, at, seen, ticked)
        for track in self.lifecycle.involving(fact.key):
            if track.key in seen:
                continue
            rule = self._rules.get(track.rule_id)
            if rule is not None and not rule.schedule:  # scheduled: at its times only
                decisions.extend(self._recheck(track, rule, at, ticked))
        return decisions

    def _facts(self, keys: Mapping[str, str]) -> dict[str, Fact] | None:
        """The facts of a match as the current step sees them (see `_run`)."""
        facts: dict[str, Fact] = {}
        ahead = self._ahead
        for alias, key in keys.items():
            fact = ahead[key] if key in ahead else self.world.get(key)
            if fact is None:
                return None
            facts[alias] = fact
        return facts

    def _decide(
        self,
        matches: list[Match],
        at: datetime,
        held: set[tuple[str, tuple[str, ...]]] | None = None,
        ticked: bool = False,
        fresh_only: bool = False,
    ) -> list[Decision]:
        """Decide on the engine's candidate matches; add the keys of those that hold to `held`.
        With `fresh_only`, matches the lifecycle tracks already are left as they are.

        In rule-file order, then by the facts' keys: not in the engine's order, which depends on
        the order it was given facts in (and so on how messages were batched).
        """
        decisions: list[Decision] = []
        done: set[tuple[str, tuple[str, ...]]] = set()
        if len(matches) > 1:
            order = self._order
            matches = sorted(matches, key=lambda m: (order[m.rule_id], sorted(m.facts.items())))
        for match in matches:
            rule = self._rules.get(match.rule_id)
            facts = self._facts(match.facts)
            if rule is None or facts is None:
                continue
            ordered = {c.alias: match.facts[c.alias] for c in rule.conditions}
            key = Lifecycle.key(rule, ordered)
            if key in done:  # two `any:` alternatives matched the same facts
                continue
            if fresh_only and key in self.lifecycle.tracks:
                continue
            done.add(key)
            if not conditions_hold(rule, facts):
                continue
            if held is not None:
                held.add(key)
            decisions.extend(self._holds(rule, ordered, facts, at, ticked))
        return decisions

    def _holds(
        self,
        rule: Rule,
        keys: Mapping[str, str],
        facts: Mapping[str, Fact],
        at: datetime,
        ticked: bool = False,
    ) -> list[Decision]:
        """The rule's condition holds on these facts at `at`: what to decide, given its past.

        A match that keeps holding is repeated for each new message (the store counts it), not
        for each tick, and it publishes and notifies only when it starts firing.
        """
        outcome = self.lifecycle.holds(rule, keys, at)
        if outcome == "nothing" or (outcome == "repeat" and ticked):
            return []
        made = decide(rule, facts, at, self.ruleset.hash, self._reorder_factor)
        if outcome == "repeat":
            return [d for d in made if not isinstance(d, (PublishDecision, NotifyDecision))]
        log.info("rule_fired", rule=rule.id, facts=list(keys.values()), pending_s=rule.for_s)
        self.lifecycle.fired(
            rule, keys, [d.dedup_key for d in made if isinstance(d, AlertDecision)]
        )
        if self._late(facts):
            made = [replace(d, late=True) if isinstance(d, AlertDecision) else d for d in made]
        return made

    def _late(self, facts: Mapping[str, Fact]) -> bool:
        """Whether the facts' last readings arrived long after their `ts` (late data)."""
        return any(lag_of(fact) > self._late_after_s for fact in facts.values())

    def _recheck(
        self, track: Track, rule: Rule, at: datetime, ticked: bool = False
    ) -> list[Decision]:
        """A tracked match whose facts changed (or whose `for` is due): hold, wait or resolve."""
        facts = self._facts(track.facts)
        if facts is not None and conditions_hold(rule, facts):
            return self._holds(rule, track.facts, facts, at, ticked)
        return self._stopped(track, rule, facts, at)

    def _stopped(
        self, track: Track, rule: Rule, facts: Mapping[str, Fact] | None, at: datetime
    ) -> list[Decision]:
        """A tracked match whose condition no longer holds at `at`: forget it, keep it firing
        (between the condition and `resolve_when`), or resolve its alerts, as the lifecycle's
        table (`states.MATCH_MOVES`) says.

        Readings dated before the match began (a gateway's backfill ending a `sensor-stale`
        alert raised while nothing arrived) resolve it when they arrived: an episode cannot end
        before it began, and it lasted until the data came."""
        if facts is not None and at < track.since:
            at = max(track.since, max(arrived_at(fact) for fact in facts.values()))
        if self.lifecycle.stops(track, rule, facts) != "resolve" or facts is None:
            return []  # forgotten (the row, if any, waits for a person), or still firing
        keys = track.alert_keys or (alert_key(rule, facts),)
        log.info("rule_resolved", rule=rule.id, facts=list(track.facts.values()))
        reason = f"resolve_when: {rule.resolve_text}"
        resolved: list[Decision] = [
            AlertResolved(key, at, rule.id, self.ruleset.hash, reason) for key in keys
        ]
        return resolved + closed_records(rule, facts, at, self.ruleset.hash, reason)

    def _set_schedules(self, keep: Mapping[str, datetime] | None = None) -> None:
        self._crons = {
            r.id: parse_cron(r.schedule, r.timezone or None)
            for r in self.ruleset.rules
            if r.schedule
        }
        self._next_run = {
            rule_id: at for rule_id, at in (keep or {}).items() if rule_id in self._crons
        }

    def _run_schedules(self, now: datetime) -> list[Decision]:
        decisions: list[Decision] = []
        for rule_id, cron in self._crons.items():
            due = self._next_run.get(rule_id)
            if due is None:
                due = cron.next_at(now)
                if due is None:
                    continue
                self._next_run[rule_id] = due
            if now < due:
                continue
            rule = self._rules[rule_id]
            decisions.extend(self._evaluate_now(rule, now))
            after = cron.next_after(now)
            if after is not None:
                self._next_run[rule_id] = after
            else:
                del self._next_run[rule_id]
        return decisions

    def _evaluate_now(self, rule: Rule, now: datetime) -> list[Decision]:
        """A scheduled rule against the current facts, through the lifecycle like any rule: a
        tuple of facts that satisfies it fires (or repeats, without notifying again, if it held
        at the last run too); a firing tuple that no longer does resolves by its `resolve_when`
        (without one, its alert stays for a person to close)."""
        by_kind = {c.alias: [f for f in self.world if f.kind == c.kind] for c in rule.conditions}
        aliases = list(by_kind)
        decisions: list[Decision] = []
        held: set[TrackKey] = set()
        combos = itertools.product(*(by_kind[a] for a in aliases))
        looked = 0
        for combo in itertools.islice(combos, MAX_SCHEDULED_TUPLES):
            looked += 1
            facts = dict(zip(aliases, combo, strict=True))
            if conditions_hold(rule, facts):
                keys = {c.alias: facts[c.alias].key for c in rule.conditions}
                held.add(Lifecycle.key(rule, keys))
                decisions.extend(self._holds(rule, keys, facts, now))
        if looked == MAX_SCHEDULED_TUPLES and next(combos, None) is not None:
            # Not every tuple was looked at: one not seen may still hold, so none resolves.
            log.warning("schedule_truncated", rule=rule.id, tuples=MAX_SCHEDULED_TUPLES)
            return decisions
        for track in self.lifecycle:
            if track.rule_id == rule.id and track.key not in held:
                decisions.extend(self._stopped(track, rule, self._facts(track.facts), now))
        log.info("schedule_ran", rule=rule.id, decisions=len(decisions))
        return decisions

    def close(self) -> None:
        self._engine.close()


# Actions whose subject is booked into the world state (`_book_reorders`).
_BOOKINGS: Final = frozenset({"reorder", "work_order"})


def _books_elsewhere(rule: Rule) -> set[str]:
    """The booking actions (reorder, work_order) of a rule that may book a subject other than
    the one fact it matched: over several facts, or naming the subject otherwise than
    `<alias>.sku` / `<alias>.machine`."""
    kinds: set[str] = set()
    for spec in rule.actions:
        if spec.kind not in _BOOKINGS:
            continue
        field = subject_param(spec.kind)
        param = spec.params.get(field)
        node = param.expr if param is not None else None
        own = (
            len(rule.conditions) == 1
            and not rule.alternatives
            and isinstance(node, expr.Field)
            and node.alias in (None, rule.conditions[0].alias)
            and node.name == field
        )
        if not own:
            kinds.add(spec.kind)
    return kinds


def fields_read(ruleset: RuleSet) -> frozenset[str]:
    """Every fact field a rule's conditions or `resolve_when` read, of any alias."""
    names = {"kind"}
    for rule in ruleset.rules:
        nodes = [c.expr for variant in rule.variants for c in variant]
        if rule.resolve_when is not None:
            nodes.append(rule.resolve_when)
        names.update(field.name for node in nodes for field in expr.fields(node))
    return frozenset(names)


def _open_reorder(decision: ActionDecision) -> OpenReorder:
    quantity = decision.params.get("quantity")
    return OpenReorder(
        dedup_key=decision.dedup_key,
        site=decision.site,
        sku=decision.subject,
        quantity=float(quantity) if isinstance(quantity, int | float) else 0.0,
        received=0.0,
        opened_at=decision.at,
    )
