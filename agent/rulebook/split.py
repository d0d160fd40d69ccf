"""One `RuleEngine` for a rule set: one-fact rules in process, joins in the rule engine.

A rule over one fact is matched here as compiled Python (`LocalRules`): no engine, no worker
round trip, and its answer is exact. A rule over several facts goes to the engine the factory
makes (durable-rules, fenced in its worker process by default), which sees only the facts a join
could use (`JoinGate`) and those it holds already (so it can let them go). Without joins, no
engine is made at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent.errors import EngineError
from agent.rulebook.compiler import EnginePlan, compile_rules
from agent.rulebook.engine import Match, RuleEngine, update_many
from agent.rulebook.local import JoinGate, LocalRules
from agent.rulebook.rules import RuleSet

EngineFactory = Callable[[EnginePlan], RuleEngine]


class SplitEngine:
    def __init__(self, ruleset: RuleSet, factory: EngineFactory) -> None:
        self._local = LocalRules(ruleset)
        self._gate = JoinGate(ruleset)
        plan = compile_rules(ruleset, joins_only=True)
        # Made last: a factory that fails (the engine refused the joins) leaves nothing running.
        self._joins: RuleEngine | None = factory(plan) if plan.definitions else None
        self._sent: set[str] = set()  # fact keys the join engine was last given (it may hold)

    @property
    def joins(self) -> RuleEngine | None:
        """The engine of the rules over several facts (None: the rule set has none)."""
        return self._joins

    def update(self, key: str, fields: Mapping[str, Any]) -> list[Match]:
        result = self.update_many([(key, fields)])[0]
        if isinstance(result, EngineError):
            raise result
        return result

    def update_many(
        self, items: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[list[Match] | EngineError]:
        """One answer per fact, in order; the join engine gets its facts in one call."""
        results: list[list[Match] | EngineError] = [
            self._local.match(key, fields) for key, fields in items
        ]
        engine = self._joins
        if engine is None:
            return results
        sent = self._sent
        asked: list[int] = []
        for index, (key, fields) in enumerate(items):
            if self._gate.wants(fields):
                sent.add(key)
            elif key in sent:
                # Posted once more, in its place: the engine lets go of a fact that no longer
                # passes its gates (in the same round trip as the others, and in order).
                sent.discard(key)
            else:
                continue
            asked.append(index)
        self._ask(engine, items, asked, results)
        return results

    def in_joins(self, key: str) -> bool:
        """Whether the join engine may hold the fact (its answers for others may depend on it)."""
        return key in self._sent

    def _ask(
        self,
        engine: RuleEngine,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        asked: list[int],
        results: list[list[Match] | EngineError],
    ) -> None:
        if not asked:
            return
        answers = update_many(engine, [items[index] for index in asked])
        for index, answer in zip(asked, answers, strict=True):
            if isinstance(answer, EngineError):
                self._sent.discard(items[index][0])
                results[index] = answer
            else:
                local = results[index]
                assert not isinstance(local, EngineError)
                local.extend(answer)

    def remove(self, key: str) -> None:
        if self._joins is not None and key in self._sent:
            self._sent.discard(key)
            self._joins.remove(key)

    def close(self) -> None:
        if self._joins is not None:
            self._joins.close()
        self._sent.clear()
