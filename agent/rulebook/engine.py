"""The rule engine behind a small interface: facts in, candidate matches out.

`DurableEngine` owns a durable-rules `Host` (never the global one in `durable.lang`), with its
timer threads switched off: it runs only when called, on the caller's thread. Its types stay here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Protocol

import durable_rules_engine
import orjson
from durable.engine import Host

from agent.errors import EngineError
from agent.rulebook.compiler import EnginePlan, engine_alias

# (event, context): a line for the log. Logging is not imported here: the engine worker loads
# structlog only if it has something to say (see `agent/rulebook/child.py`).
Note = Callable[[str, dict[str, Any]], None]


def log_note(event: str, context: dict[str, Any]) -> None:
    """The default `Note`: an info line through structlog."""
    import structlog

    structlog.get_logger(__name__).info(event, **context)


RULESET: Final = "factory"
JOINS: Final = "factory_joins"
# The engine de-duplicates ids by a 32-bit hash, so two distinct ids can collide
# (MessageObservedException). A salted id is a different hash: retry a few times.
MAX_ID_SALTS: Final = 8


@dataclass(frozen=True, slots=True)
class Match:
    """The engine found facts that may satisfy a rule: alias -> fact key."""

    rule_id: str
    facts: Mapping[str, str]
    variant: int = 0  # which `when: any:` alternative matched


class RuleEngine(Protocol):
    def update(self, key: str, fields: Mapping[str, Any]) -> list[Match]:
        """Replace the fact `key` and return the rule matches the new fact takes part in."""
        ...

    def remove(self, key: str) -> None: ...

    def close(self) -> None: ...


def update_many(
    engine: RuleEngine, items: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[list[Match] | EngineError]:
    """Replace many facts, one result per fact: through the engine's own `update_many` (one round
    trip for a worker process) when it has one, else fact by fact."""
    batched = getattr(engine, "update_many", None)
    if batched is not None:
        return list(batched(items))
    results: list[list[Match] | EngineError] = []
    for key, fields in items:
        try:
            results.append(engine.update(key, fields))
        except EngineError as exc:
            results.append(exc)
    return results


class _OwnedHost(Host):  # type: ignore[misc]
    """A Host without the two self-rearming timer threads every Host starts (see the notes)."""

    def _run(self) -> None:
        return None


class DurableEngine:
    """durable-rules driven through its C module directly, in two rulesets.

    Rules over one fact ("single"): each fact is asserted, its matches read, and retracted at
    once, so the engine stores nothing for them. durable keeps about 10 KB per stored fact with
    100 rules (107 MB for 11k facts, measured), and a rule over one fact never needs the others.
    Rules over several facts ("joins") must hold facts: a fact is held there only while it
    passes its own engine terms in some join (a "gate" rule per join alias in the single
    ruleset tells), which is all a join can match it on.

    A match is read from the action queue the C core fills (`start_action_for_state` /
    `complete_and_start_action`) instead of through durable's Python action machinery, which
    builds a closure and writes the state back as JSON for every match: the rules' actions do
    nothing, so there is nothing to write back.
    """

    def __init__(self, plan: EnginePlan, note: Note = log_note) -> None:
        self._plan = plan
        self._note = note
        self._posted: dict[str, dict[str, Any]] = {}  # fact key -> what the join ruleset holds
        self._key_of: dict[str, str] = {}  # join engine id -> fact key
        # engine rule name -> (rule id, user alias per engine alias, `any:` variant); None: a gate
        self._actions: dict[str, tuple[str, tuple[tuple[str, str], ...], int] | None] = {
            name: (
                plan.rule_ids[name],
                tuple((engine_alias(i), alias) for i, alias in enumerate(plan.aliases[name])),
                plan.variants.get(name, 0),
            )
            for name in plan.definitions
        }
        single: dict[str, Any] = {}
        joins: dict[str, Any] = {}
        self._hold_all = False  # a join alias without terms of its own: every fact may join
        for name, body in plan.definitions.items():
            conditions = body.get("all")
            if not isinstance(conditions, list) or len(conditions) < 2:  # durable judges odd ones
                single[name] = {**body, "run": _ignore}
                continue
            joins[name] = {**body, "run": _ignore}
            for position, condition in enumerate(conditions):
                own = _own_terms(condition[engine_alias(position)])
                if own is None:
                    self._hold_all = True
                    continue
                gate = f"g{name}p{position}"
                single[gate] = {"all": [{engine_alias(0): own}], "run": _ignore}
                self._actions[gate] = None
        if not single:
            single = {"idle": {"all": [{"a0": {"kind": "\0never"}}], "run": _ignore}}
        rulesets = {RULESET: single, **({JOINS: joins} if joins else {})}
        self._host = _OwnedHost()
        try:
            self._host.register_rulesets(rulesets)
        except Exception as exc:  # the C core reports refusals as bare Exceptions with codes
            raise EngineError(f"the engine refused the compiled rules: {exc}") from exc
        self._single = self._host.get_ruleset(RULESET)._handle
        self._joins = self._host.get_ruleset(JOINS)._handle if joins else None

    def update(self, key: str, fields: Mapping[str, Any]) -> list[Match]:
        wanted = {name: value for name in self._plan.fields if _postable(value := fields.get(name))}
        try:
            fact, code, state = self._assert(self._single, key, wanted)
            matches, gated = self._single_matches(key, code, state)
            code, state = durable_rules_engine.retract_fact(self._single, encode_fact(fact))
            self._drain(self._single, code, state)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"the engine failed on fact {key}: {exc}") from exc
        if self._joins is None:
            return matches
        self.remove(key)
        if not (gated or self._hold_all):
            return matches
        try:
            fact, code, state = self._assert(self._joins, key, wanted)
            self._posted[key] = fact
            self._key_of[fact["id"]] = key
            matches.extend(self._join_matches(code, state))
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"the engine failed on fact {key}: {exc}") from exc
        return matches

    def _assert(
        self, handle: int, key: str, wanted: Mapping[str, Any]
    ) -> tuple[dict[str, Any], int, int]:
        """Assert the fact under its key, or a salted key if the key's 32-bit hash is taken."""
        for salt in range(MAX_ID_SALTS):
            fact = {**wanted, "id": key if salt == 0 else f"{key}#{salt}"}
            code, state = durable_rules_engine.assert_fact(handle, encode_fact(fact))
            if code == 2:  # another id with the same 32-bit hash is stored
                self._note("engine_id_collision", {"fact": key, "salt": salt})
                continue
            return fact, code, state
        raise EngineError(f"fact {key}: engine id collided {MAX_ID_SALTS} times")

    def _single_matches(self, key: str, code: int, state: int) -> tuple[list[Match], bool]:
        """The single-fact rules the fact matched, and whether it passed a join's gate."""
        matches: list[Match] = []
        gated = False
        for name, _ in self._queued(self._single, code, state):
            action = self._actions[name]
            if action is None:
                gated = True
                continue
            rule_id, aliases, variant = action
            matches.append(Match(rule_id, {aliases[0][1]: key}, variant))
        return matches, gated

    def _join_matches(self, code: int, state: int) -> list[Match]:
        assert self._joins is not None
        matches: list[Match] = []
        key_of = self._key_of
        for name, matched in self._queued(self._joins, code, state):
            action = self._actions[name]
            assert action is not None
            rule_id, aliases, variant = action
            facts = {alias: key_of[matched[position]["id"]] for position, alias in aliases}
            matches.append(Match(rule_id, facts, variant))
        return matches

    @staticmethod
    def _taken(handle: int, code: int, state: int) -> Iterator[str]:
        """Take what the last assertion or retraction queued off the queue: one JSON text per
        match, {engine rule name: {alias: fact as posted}}. Code 1: stored, nothing matched;
        3: queued on no state."""
        if code not in (0, 3):
            return
        state = 0 if code == 3 else state
        started = durable_rules_engine.start_action_for_state(handle, state)
        queued = started[1] if started else None
        while queued:
            yield queued
            queued = durable_rules_engine.complete_and_start_action(handle, state)

    def _queued(self, handle: int, code: int, state: int) -> list[tuple[str, dict[str, Any]]]:
        """Every match the last assertion queued: (engine rule name, alias -> fact as posted)."""
        taken = self._taken(handle, code, state)
        return [item for text in taken for item in orjson.loads(text).items()]

    def _drain(self, handle: int, code: int, state: int) -> None:
        """Take what a retraction queued off the queue: nothing in it is news."""
        for _ in self._taken(handle, code, state):
            pass

    def remove(self, key: str) -> None:
        old = self._posted.pop(key, None)
        if old is None or self._joins is None:
            return
        self._key_of.pop(old["id"], None)
        try:
            code, state = durable_rules_engine.retract_fact(self._joins, encode_fact(old))
            self._drain(self._joins, code, state)
        except Exception as exc:
            raise EngineError(f"the engine failed to retract fact {key}: {exc}") from exc

    def held(self) -> int:
        """How many facts the join ruleset holds (the single one holds none)."""
        return len(self._posted)

    def joined(self, key: str) -> bool:
        """Whether the join ruleset holds the fact: its answers depend on other facts."""
        return key in self._posted

    def close(self) -> None:
        self._posted.clear()
        self._key_of.clear()


def _own_terms(condition: dict[str, Any]) -> dict[str, Any] | None:
    """A join alias's engine terms without those that refer to another alias (None if none)."""
    terms = condition["$and"] if set(condition) == {"$and"} else [condition]
    own = [
        term
        for term in terms
        if not any(not name.startswith("$") and isinstance(v, dict) for name, v in term.items())
    ]
    if not own:
        return None
    return own[0] if len(own) == 1 else {"$and": own}


def _ignore(closure: Any) -> None:
    return None


def _postable(value: object) -> bool:
    """The engine gets strings and finite numbers only: it matches `"5" > 0` and chokes on inf."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int))


# Floats in this range are written without an exponent by orjson (and by `repr`).
_PLAIN_MIN: Final = 1e-4
_PLAIN_MAX: Final = 1e16


def encode_fact(fact: Mapping[str, str | int | float]) -> str:
    """JSON for the engine's parser, which refuses exponents (`1e-05`: error 204).

    orjson in one call for the usual fact (the hot path: twice per message); field by field
    when a float would be written with an exponent or orjson refuses a value.
    """
    for value in fact.values():
        if isinstance(value, float) and value and not _PLAIN_MIN <= abs(value) < _PLAIN_MAX:
            return _encode_fieldwise(fact)
    try:
        return orjson.dumps(fact).decode()
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a non-dict mapping
        return _encode_fieldwise(fact)


def _encode_fieldwise(fact: Mapping[str, str | int | float]) -> str:
    parts = []
    for key, value in fact.items():
        text = (
            _plain_float(value)
            if isinstance(value, float)
            else json.dumps(value, ensure_ascii=False)
        )
        parts.append(f"{json.dumps(key, ensure_ascii=False)}:{text}")
    return "{" + ",".join(parts) + "}"


def _plain_float(value: float) -> str:
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
        if "." not in text:
            text += ".0"
    return text
