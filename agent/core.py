"""The pure core: validated messages in, decisions out, through world state and the rule engine.

No sockets, no database, no clock: the daemon, `replay` and (later) `rules test` all run this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from agent.decisions.build import conditions_hold, decide
from agent.model import Decision, Fact, Message
from agent.rulebook.compiler import EnginePlan, compile_rules
from agent.rulebook.engine import DurableEngine, Match, RuleEngine
from agent.rulebook.rules import Rule, RuleSet
from agent.world.masterdata import MasterData
from agent.world.state import WorldState

log = structlog.get_logger(__name__)

EngineFactory = Callable[[EnginePlan], RuleEngine]


class Core:
    def __init__(
        self,
        ruleset: RuleSet,
        masterdata: MasterData,
        engine_factory: EngineFactory = DurableEngine,
    ) -> None:
        self.world = WorldState(masterdata)
        self._engine_factory = engine_factory
        self.ruleset = ruleset
        self._rules: dict[str, Rule] = ruleset.by_id()
        self._engine = engine_factory(compile_rules(ruleset))

    def process(self, messages: Iterable[Message]) -> list[Decision]:
        """Apply messages in order; return the decisions they caused, in order."""
        decisions: list[Decision] = []
        for message in messages:
            fact = self.world.apply(message)
            if fact is None:
                continue
            matches = self._engine.update(fact.key, fact.fields)
            decisions.extend(self._decide(matches, fact))
        return decisions

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
