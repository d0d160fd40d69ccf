"""The pure core: validated messages in, decisions out, through world state and the rule engine.

No sockets, no database, no clock: the daemon, `replay` and (later) `rules test` all run this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import structlog

from agent.decisions.build import conditions_hold, decide
from agent.errors import EngineError
from agent.model import Decision, Fact, Message
from agent.rulebook.compiler import EnginePlan, compile_rules
from agent.rulebook.engine import DurableEngine, Match, RuleEngine, update_many
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
        self._changed: set[str] = set()  # fact keys changed since `take_changed()`

    def process(self, messages: Iterable[Message]) -> list[Decision]:
        """Apply messages in order; return the decisions they caused, in order."""
        decisions: list[Decision] = []
        for message in messages:
            fact = self.world.apply(message)
            if fact is None:
                continue
            self._changed.add(fact.key)
            matches = self._engine.update(fact.key, fact.fields)
            decisions.extend(self._decide(matches, fact))
        return decisions

    def process_many(self, messages: Sequence[Message]) -> list[list[Decision] | EngineError]:
        """Like `process`, with the engine fed the whole batch at once: one result per message,
        its decisions, or the EngineError the engine failed with on its fact.

        Each match is checked against the facts as they were right after its message, as
        `process` would: a later message of the batch does not undo an earlier decision.
        """
        before: dict[str, Fact | None] = {}
        steps: list[Fact | None] = []
        for message in messages:
            key = _fact_key(message)
            if key is not None and key not in before:
                before[key] = self.world.get(key)
            steps.append(self.world.apply(message))
        changed = [fact for fact in steps if fact is not None]
        self._changed.update(fact.key for fact in changed)
        answers = iter(update_many(self._engine, [(f.key, f.fields) for f in changed]))
        as_of: dict[str, Fact | None] = dict(before)

        def lookup(key: str) -> Fact | None:
            return as_of[key] if key in as_of else self.world.get(key)

        results: list[list[Decision] | EngineError] = []
        for fact in steps:
            if fact is None:
                results.append([])
                continue
            as_of[fact.key] = fact
            answer = next(answers)
            if isinstance(answer, EngineError):
                results.append(answer)
                continue
            results.append(self._decide(answer, fact, lookup))
        return results

    def restore(self, facts: Iterable[Fact]) -> int:
        """Put saved facts back into the world and the engine, without deciding anything: a
        restart resumes where the last commit left off instead of re-firing every rule."""
        restored = [self.world.restore(fact) for fact in facts]
        failed = [
            key
            for (key, _), answer in zip(
                [(f.key, f.fields) for f in restored],
                update_many(self._engine, [(f.key, f.fields) for f in restored]),
                strict=True,
            )
            if isinstance(answer, EngineError)
        ]
        if failed:
            log.warning("facts_not_restored_in_engine", count=len(failed), first=failed[0])
        return len(restored)

    def take_changed(self) -> list[Fact]:
        """The current facts changed since the last call (for the snapshot), and forget them."""
        keys, self._changed = self._changed, set()
        return [fact for key in sorted(keys) if (fact := self.world.get(key)) is not None]

    def _decide(
        self,
        matches: list[Match],
        trigger: Fact,
        lookup: Callable[[str], Fact | None] | None = None,
    ) -> list[Decision]:
        get = lookup or self.world.get
        decisions: list[Decision] = []
        for match in matches:
            rule = self._rules.get(match.rule_id)
            facts = {alias: get(key) for alias, key in match.facts.items()}
            if rule is None or any(fact is None for fact in facts.values()):
                continue
            resolved: dict[str, Fact] = {a: f for a, f in facts.items() if f is not None}
            if not conditions_hold(rule, resolved):
                continue
            decisions.extend(decide(rule, resolved, trigger.updated_at, self.ruleset.hash))
        return decisions

    def close(self) -> None:
        self._engine.close()


def _fact_key(message: Message) -> str | None:
    """The key of the fact a message would change (`Fact.key`), if it changes one."""
    kind = {"stock": "stock", "telemetry": "machine"}.get(message.kind)
    return f"{kind}/{message.site}/{message.subject}" if kind else None
