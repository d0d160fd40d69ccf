"""The rule engine behind a small interface: facts in, candidate matches out.

`DurableEngine` owns a durable-rules `Host` (never the global one in `durable.lang`), with its
timer threads switched off: it runs only when called, on the caller's thread. Its types stay here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Protocol

import durable_rules_engine
import orjson
import structlog
from durable.engine import Host

from agent.errors import EngineError
from agent.rulebook.compiler import EnginePlan, engine_alias

log = structlog.get_logger(__name__)

RULESET: Final = "factory"
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
    """durable-rules driven through its C module directly for facts and matches.

    The Host only registers the ruleset. A match is read from the action queue the C core fills
    (`start_action_for_state` / `complete_and_start_action`) instead of through durable's Python
    action machinery, which builds a closure and writes the state back as JSON for every match
    (about a fifth of the time of a message before this): the rules' actions do nothing, so
    there is nothing to write back.
    """

    def __init__(self, plan: EnginePlan) -> None:
        self._plan = plan
        self._posted: dict[str, dict[str, Any]] = {}  # fact key -> what the engine holds
        self._key_of: dict[str, str] = {}  # engine id -> fact key
        # engine rule name -> (rule id, user alias per engine alias, `any:` variant)
        self._actions = {
            name: (
                plan.rule_ids[name],
                tuple((engine_alias(i), alias) for i, alias in enumerate(plan.aliases[name])),
                plan.variants.get(name, 0),
            )
            for name in plan.definitions
        }
        definitions = {name: {**body, "run": _ignore} for name, body in plan.definitions.items()}
        if not definitions:
            definitions = {"idle": {"all": [{"a0": {"kind": "\0never"}}], "run": _ignore}}
        self._host = _OwnedHost()
        try:
            self._host.register_rulesets({RULESET: definitions})
        except Exception as exc:  # the C core reports refusals as bare Exceptions with codes
            raise EngineError(f"the engine refused the compiled rules: {exc}") from exc
        self._handle = self._host.get_ruleset(RULESET)._handle

    def update(self, key: str, fields: Mapping[str, Any]) -> list[Match]:
        wanted = {name: value for name in self._plan.fields if _postable(value := fields.get(name))}
        self.remove(key)
        for salt in range(MAX_ID_SALTS):
            engine_id = key if salt == 0 else f"{key}#{salt}"
            fact = {**wanted, "id": engine_id}
            self._key_of[engine_id] = key
            try:
                code, state = durable_rules_engine.assert_fact(self._handle, encode_fact(fact))
                matches = self._matches(0 if code == 3 else state) if code in (0, 3) else []
            except Exception as exc:
                del self._key_of[engine_id]
                raise EngineError(f"the engine failed on fact {key}: {exc}") from exc
            if code == 2:  # another id with the same 32-bit hash is stored
                del self._key_of[engine_id]
                log.info("engine_id_collision", fact=key, salt=salt)
                continue
            self._posted[key] = fact  # code 1: stored, no rule matched
            return matches
        raise EngineError(f"fact {key}: engine id collided {MAX_ID_SALTS} times")

    def _matches(self, state: int) -> list[Match]:
        """Every match the last assertion queued, taken off the queue."""
        handle, key_of = self._handle, self._key_of
        matches: list[Match] = []
        started = durable_rules_engine.start_action_for_state(handle, state)
        queued = started[1] if started else None
        while queued:
            for name, matched in orjson.loads(queued).items():
                rule_id, aliases, variant = self._actions[name]
                facts = {alias: key_of[matched[position]["id"]] for position, alias in aliases}
                matches.append(Match(rule_id, facts, variant))
            queued = durable_rules_engine.complete_and_start_action(handle, state)
        return matches

    def remove(self, key: str) -> None:
        old = self._posted.pop(key, None)
        if old is None:
            return
        self._key_of.pop(old["id"], None)
        try:
            code, state = durable_rules_engine.retract_fact(self._handle, encode_fact(old))
            if code in (0, 3):  # nothing a retraction queues is news: take it off the queue
                state = 0 if code == 3 else state
                started = durable_rules_engine.start_action_for_state(self._handle, state)
                while started:
                    started = durable_rules_engine.complete_and_start_action(self._handle, state)
        except Exception as exc:
            raise EngineError(f"the engine failed to retract fact {key}: {exc}") from exc

    def close(self) -> None:
        self._posted.clear()
        self._key_of.clear()


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
