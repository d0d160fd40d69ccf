"""The pure core: validated messages in, decisions out, through world state and the rule engine.

No sockets, no database, no clock: the daemon, `replay` and `rules test` all run this, and pass
the time in (`tick(now)`) for what time alone changes: derived values, `for`, schedules.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

import structlog

from agent.decisions.build import alert_key, conditions_hold, decide, resolve_holds
from agent.decisions.lifecycle import Lifecycle, Track
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
)
from agent.rulebook.compiler import EnginePlan, compile_rules
from agent.rulebook.engine import DurableEngine, Match, RuleEngine, update_many
from agent.rulebook.rules import Rule, RuleSet
from agent.rulebook.timing import Cron, parse_cron
from agent.world.masterdata import MasterData
from agent.world.state import WorldState
from agent.world.stock import StockPolicy

log = structlog.get_logger(__name__)

EngineFactory = Callable[[EnginePlan], RuleEngine]
# A scheduled rule over several aliases looks at every combination of facts: bound it.
MAX_SCHEDULED_TUPLES = 100_000


class Core:
    def __init__(
        self,
        ruleset: RuleSet,
        masterdata: MasterData,
        engine_factory: EngineFactory = DurableEngine,
        stock_policy: StockPolicy | None = None,
    ) -> None:
        self.world = WorldState(masterdata, stock_policy)
        self._engine_factory = engine_factory
        self.ruleset = ruleset
        self._rules: dict[str, Rule] = ruleset.by_id()
        self._engine = engine_factory(compile_rules(ruleset))
        self.lifecycle = Lifecycle()
        self._changed: set[str] = set()  # fact keys changed since `take_changed()`
        self._crons: dict[str, Cron] = {}
        self._next_run: dict[str, datetime] = {}
        self._set_schedules()

    def process(self, messages: Iterable[Message]) -> list[Decision]:
        """Apply messages in order; return the decisions they caused, in order."""
        decisions: list[Decision] = []
        for message in messages:
            if message.kind == "receipt":
                receipt, fact = self.world.receive(message)
                if receipt is not None:
                    decisions.append(receipt)
            else:
                fact = self.world.apply(message)
            if fact is None:
                continue
            decided = self._update(fact, fact.updated_at)
            decisions.extend(decided)
            self._book_reorders(decided)
        return decisions

    def process_many(self, messages: Sequence[Message]) -> list[list[Decision] | EngineError]:
        """`process` for a batch: one result per message, its decisions, or the EngineError the
        engine failed with on its fact (the pipeline dead-letters that message, not the batch).

        Messages go through one at a time: the rule lifecycle, receipts and reorder booking
        interleave with the engine per fact. (Feeding the engine the whole batch in one round
        trip, as the worker's `update_many` allows, is left for the performance work.)
        """
        results: list[list[Decision] | EngineError] = []
        for message in messages:
            try:
                results.append(self.process([message]))
            except EngineError as exc:
                results.append(exc)
        return results

    def restore(self, facts: Iterable[Fact]) -> int:
        """Put saved facts back into the world and the engine without deciding anything: a
        restart resumes where the last commit left off instead of re-firing every rule.

        The snapshot is committed with the decisions its facts caused, so a rule that holds on
        restored facts has fired already: the lifecycle learns that (its decisions are dropped),
        and the next message or tick repeats it instead of opening it anew. A rule with `for`
        starts pending again.
        """
        restored = [self.world.restore(fact) for fact in facts]
        answers = update_many(self._engine, [(f.key, f.fields) for f in restored])
        failed: list[str] = []
        for fact, answer in zip(restored, answers, strict=True):
            if isinstance(answer, EngineError):
                failed.append(fact.key)
                continue
            self._decide(answer, fact.updated_at)  # already told: only the lifecycle keeps it
        if failed:
            log.warning("facts_not_restored_in_engine", count=len(failed), first=failed[0])
        self._changed.clear()
        return len(restored)

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

    def _book_reorders(self, decisions: list[Decision]) -> None:
        """A reorder a rule opened is on order from now on, and a work order is open on its
        machine: the fact shows it at once. It is re-posted without deciding again:
        bookkeeping, not a new observation."""
        for decision in decisions:
            if isinstance(decision, ActionDecision) and decision.kind == "work_order":
                fact = self.world.work_order_opened(
                    decision.site, decision.subject, decision.dedup_key
                )
                if fact is not None:
                    self._changed.add(fact.key)
                    self._engine.update(fact.key, fact.fields)
            if not (isinstance(decision, ActionDecision) and decision.kind == "reorder"):
                continue
            fact = self.world.reorder_opened(_open_reorder(decision))
            if fact is not None:
                self._changed.add(fact.key)
                self._engine.update(fact.key, fact.fields)

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
        """What time alone changes at `now`: derived values, due `for` timers, schedules."""
        decisions: list[Decision] = []
        for fact in self.world.refresh(now):
            decisions.extend(self._update(fact, now, ticked=True))
        for track in self.lifecycle.pending():
            rule = self._rules.get(track.rule_id)
            if rule is not None and track.due(rule, now):
                decisions.extend(self._recheck(track, rule, now, ticked=True))
        decisions.extend(self._run_schedules(now))
        self._book_reorders(decisions)
        return decisions

    def reload(self, ruleset: RuleSet, now: datetime | None = None) -> list[Decision]:
        """Swap to a new rule set: a new engine re-seeded from the world state.

        Pending and firing matches of unchanged rules carry over; new or changed rules are
        evaluated against the current facts at once, at `now` (default: each fact's time);
        unchanged ones do not fire again.
        """
        engine = self._engine_factory(compile_rules(ruleset))
        old_rules, old_engine = self._rules, self._engine
        self._engine, self.ruleset, self._rules = engine, ruleset, ruleset.by_id()
        old_engine.close()
        kept = self.lifecycle.keep_only(self._rules)
        changed = {
            rule.id
            for rule in ruleset.rules
            if rule.id not in old_rules or old_rules[rule.id].fingerprint != rule.fingerprint
        }
        decisions: list[Decision] = []
        for fact in list(self.world):
            matches = [m for m in engine.update(fact.key, fact.fields) if m.rule_id in changed]
            decisions.extend(self._decide(matches, now or fact.updated_at))
        self._set_schedules(keep=self._next_run)
        self._book_reorders(decisions)
        log.info("rules_swapped", rule_set=ruleset.hash, changed=len(changed), tracks_kept=kept)
        return decisions

    def _update(self, fact: Fact, at: datetime, ticked: bool = False) -> list[Decision]:
        self._changed.add(fact.key)
        matches = self._engine.update(fact.key, fact.fields)
        seen: set[tuple[str, tuple[str, ...]]] = set()
        decisions = self._decide(matches, at, seen, ticked)
        for track in self.lifecycle.involving(fact.key):
            if track.key in seen:
                continue
            rule = self._rules.get(track.rule_id)
            if rule is not None:
                decisions.extend(self._recheck(track, rule, at, ticked))
        return decisions

    def _facts(self, keys: Mapping[str, str]) -> dict[str, Fact] | None:
        facts = {alias: self.world.get(key) for alias, key in keys.items()}
        if any(fact is None for fact in facts.values()):
            return None
        return {alias: fact for alias, fact in facts.items() if fact is not None}

    def _decide(
        self,
        matches: list[Match],
        at: datetime,
        held: set[tuple[str, tuple[str, ...]]] | None = None,
        ticked: bool = False,
    ) -> list[Decision]:
        """Decide on the engine's candidate matches; add the keys of those that hold to `held`."""
        decisions: list[Decision] = []
        done: set[tuple[str, tuple[str, ...]]] = set()
        for match in matches:
            rule = self._rules.get(match.rule_id)
            facts = self._facts(match.facts)
            if rule is None or facts is None:
                continue
            ordered = {c.alias: match.facts[c.alias] for c in rule.conditions}
            key = Lifecycle.key(rule, ordered)
            if key in done:  # two `any:` alternatives matched the same facts
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
        step = self.lifecycle.holds(rule, keys, at)
        if step == "pending" or (step == "repeat" and ticked):
            return []
        made = decide(rule, facts, at, self.ruleset.hash)
        if step == "repeat":
            return [d for d in made if not isinstance(d, (PublishDecision, NotifyDecision))]
        log.info("rule_fired", rule=rule.id, facts=list(keys.values()), pending_s=rule.for_s)
        self.lifecycle.fired(
            rule, keys, [d.dedup_key for d in made if isinstance(d, AlertDecision)]
        )
        return made

    def _recheck(
        self, track: Track, rule: Rule, at: datetime, ticked: bool = False
    ) -> list[Decision]:
        """A tracked match whose facts changed (or whose `for` is due): hold, wait or resolve."""
        facts = self._facts(track.facts)
        if facts is not None and conditions_hold(rule, facts):
            return self._holds(rule, track.facts, facts, at, ticked)
        if not track.firing:
            self.lifecycle.drop(track)  # pending, and no longer true: it never fires
            return []
        if rule.resolve_when is None:
            self.lifecycle.drop(track)  # no auto-resolve: the alert stays for a person to close
            return []
        if facts is None or not resolve_holds(rule, facts):
            return []  # between the condition and resolve_when (hysteresis): still firing
        self.lifecycle.drop(track)
        keys = track.alert_keys or (alert_key(rule, facts),)
        log.info("rule_resolved", rule=rule.id, facts=list(track.facts.values()))
        reason = f"resolve_when: {rule.resolve_text}"
        resolved: list[Decision] = [
            AlertResolved(key, at, rule.id, self.ruleset.hash, reason) for key in keys
        ]
        return resolved + closed_records(rule, facts, at, self.ruleset.hash, reason)

    def _set_schedules(self, keep: Mapping[str, datetime] | None = None) -> None:
        self._crons = {r.id: parse_cron(r.schedule) for r in self.ruleset.rules if r.schedule}
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
        """A scheduled rule against the current facts: every tuple of facts that satisfies it."""
        by_kind = {c.alias: [f for f in self.world if f.kind == c.kind] for c in rule.conditions}
        aliases = list(by_kind)
        decisions: list[Decision] = []
        combos = itertools.product(*(by_kind[a] for a in aliases))
        for combo in itertools.islice(combos, MAX_SCHEDULED_TUPLES):
            facts = dict(zip(aliases, combo, strict=True))
            if conditions_hold(rule, facts):
                decisions.extend(decide(rule, facts, now, self.ruleset.hash))
        log.info("schedule_ran", rule=rule.id, decisions=len(decisions))
        return decisions

    def close(self) -> None:
        self._engine.close()


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
