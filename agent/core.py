"""The pure core: validated messages in, decisions out, through world state and the rule engine.

No sockets, no database, no clock: the daemon, `replay` and (later) `rules test` all run this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from agent.decisions.build import conditions_hold, decide
from agent.model import (
    ActionDecision,
    AppliedReceipt,
    Decision,
    Fact,
    Message,
    OpenReorder,
)
from agent.rulebook.compiler import EnginePlan, compile_rules
from agent.rulebook.engine import DurableEngine, Match, RuleEngine
from agent.rulebook.rules import Rule, RuleSet
from agent.world.masterdata import MasterData
from agent.world.state import WorldState
from agent.world.stock import StockPolicy

log = structlog.get_logger(__name__)

EngineFactory = Callable[[EnginePlan], RuleEngine]


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
            matches = self._engine.update(fact.key, fact.fields)
            decided = self._decide(matches, fact)
            decisions.extend(decided)
            self._book_reorders(decided)
        return decisions

    def seed_reorders(
        self, reorders: Iterable[OpenReorder], receipts: Iterable[AppliedReceipt] = ()
    ) -> None:
        """Learn the store's open reorders and applied receipts (at start, or to resync)."""
        for fact in self.world.seed_reorders(reorders, receipts):
            self._engine.update(fact.key, fact.fields)

    def _book_reorders(self, decisions: list[Decision]) -> None:
        """A reorder a rule opened is on order from now on: the SKU's fact shows it at once.
        The fact is re-posted without deciding again: bookkeeping, not a new observation."""
        for decision in decisions:
            if not (isinstance(decision, ActionDecision) and decision.kind == "reorder"):
                continue
            fact = self.world.reorder_opened(_open_reorder(decision))
            if fact is not None:
                self._engine.update(fact.key, fact.fields)

    def _decide(self, matches: list[Match], trigger: Fact) -> list[Decision]:
        decisions: list[Decision] = []
        for match in matches:
            rule = self._rules.get(match.rule_id)
            facts = {alias: self.world.get(key) for alias, key in match.facts.items()}
            if rule is None or any(fact is None for fact in facts.values()):
                continue
            resolved: dict[str, Fact] = {a: f for a, f in facts.items() if f is not None}
            if not conditions_hold(rule, resolved):
                continue
            decisions.extend(decide(rule, resolved, trigger.updated_at, self.ruleset.hash))
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
