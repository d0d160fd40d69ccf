"""A rule that stops the engine worker is found and disabled; the other rules go on, and the rule
comes back when a reload changes it (issue 16: every evaluation under a deadline)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import pytest

from agent.errors import EngineError
from agent.model import AlertDecision, AlertResolved
from agent.rulebook.compiler import EnginePlan, compile_rules
from agent.rulebook.disabled import ALERT_KEY, DisabledRules, without_rules
from agent.rulebook.engine import Match
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import parse_rule_sources
from agent.rulebook.worker import ProcessEngine, serve

SCHEMA = build_schema()
RULES = """\
rules:
  - id: low
    when:
      stock: kind == "stock" and on_hand <= 10
    then:
      - alert: {message: low}
  - id: slow
    when:
      stock: kind == "stock" and on_hand < 0
    then:
      - alert: {message: negative}
"""
HANG, CRASH = -777, -666  # on_hand values the rule `slow` hangs or crashes the engine on
AT = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def plan(text: str = RULES) -> EnginePlan:
    return compile_rules(parse_rule_sources([("rules/r.yaml", text)], SCHEMA))


def serve_with_slow_rule(conn: Connection, plan: EnginePlan, level: str, fmt: str) -> None:
    """The real worker, where an engine holding the rule `slow` hangs or crashes on a trap
    value (tests only): as a catastrophic rule would, and only with that rule loaded."""
    from agent.rulebook import engine

    update = engine.DurableEngine.update

    def trapped(self: Any, key: str, fields: Any) -> list[Match]:
        if "slow" in self._plan.rule_ids.values():
            if fields.get("on_hand") == HANG:
                time.sleep(3600)
            if fields.get("on_hand") == CRASH:
                os.kill(os.getpid(), signal.SIGSEGV)
        return update(self, key, fields)

    engine.DurableEngine.update = trapped  # type: ignore[method-assign]
    serve(conn, plan, level, fmt)


def stock(on_hand: int, sku: str = "S1") -> tuple[str, dict[str, Any]]:
    return f"stock/p/{sku}", {"kind": "stock", "sku": sku, "on_hand": on_hand}


@pytest.fixture
def disabled() -> DisabledRules:
    return DisabledRules()


@pytest.fixture
def faults() -> list[tuple[str, dict[str, Any]]]:
    return []


@pytest.fixture
def worker(
    disabled: DisabledRules, faults: list[tuple[str, dict[str, Any]]]
) -> Iterator[ProcessEngine]:
    engine = ProcessEngine(
        plan(),
        deadline_s=1.0,
        on_fault=lambda event, reason, context: faults.append((event, context)),
        target=serve_with_slow_rule,
        disabled=disabled,
    )
    yield engine
    engine.close()


@pytest.mark.parametrize(("trap", "why"), [(HANG, "no answer within 1 s"), (CRASH, "SIGSEGV")])
def test_the_rule_a_fact_stops_the_worker_on_is_disabled_and_the_others_go_on(
    worker: ProcessEngine,
    disabled: DisabledRules,
    faults: list[tuple[str, dict[str, Any]]],
    trap: int,
    why: str,
) -> None:
    started = time.monotonic()
    results = worker.update_many([stock(5, "A"), stock(trap, "POISON"), stock(7, "B")])
    # The batch, the fact on its own, the probe: three deadlines at most, not one per rule.
    assert time.monotonic() - started < 3 * 1.0 + 8
    assert results[0] == [Match("low", {"stock": "stock/p/A"})]
    assert results[2] == [Match("low", {"stock": "stock/p/B"})]
    # It stopped the worker twice on its own (once more in the probe): a dead letter still.
    assert isinstance(results[1], EngineError)
    assert "quarantined" in str(results[1]) and "rule slow disabled" in str(results[1])
    assert why in str(results[1])
    assert disabled.ids() == {"slow"} and disabled.count == 1
    found = [context for event, context in faults if event == "engine_rule_disabled"]
    assert found == [
        {"rule": "slow", "at": "rules/r.yaml:7", "fact": "stock/p/POISON", "restarts": 1}
    ]

    # The same kind of fact again: the worker no longer stops, `low` still decides.
    again = time.monotonic()
    assert worker.update(*stock(trap, "NEXT")) == [Match("low", {"stock": "stock/p/NEXT"})]
    assert time.monotonic() - again < 1.0


def test_a_fact_that_stops_an_engine_without_rules_disables_no_rule(
    disabled: DisabledRules,
) -> None:
    """The probe's baseline: a fault that is no rule's (here every engine hangs on it)."""
    from tests.unit.test_worker import HANG as ANY_HANG
    from tests.unit.test_worker import serve_with_traps

    engine = ProcessEngine(plan(), deadline_s=1.0, target=serve_with_traps, disabled=disabled)
    try:
        with pytest.raises(EngineError, match="quarantined"):
            engine.update(*stock(ANY_HANG))
        assert disabled.count == 0
        assert engine.update(*stock(-1)) == [
            Match("low", {"stock": "stock/p/S1"}),
            Match("slow", {"stock": "stock/p/S1"}),
        ]
    finally:
        engine.close()


def test_a_disabled_rule_stays_out_of_later_engines_until_a_reload_changes_it(
    worker: ProcessEngine, disabled: DisabledRules
) -> None:
    assert isinstance(worker.update_many([stock(HANG)])[0], EngineError)
    alerts = disabled.alerts(AT, "h1")
    assert [type(a) for a in alerts] == [AlertDecision] and disabled.alerts(AT, "h1") == []
    alert = alerts[0]
    assert isinstance(alert, AlertDecision)
    assert alert.dedup_key == f"{ALERT_KEY}/slow" and alert.severity == "critical"
    assert alert.message.startswith("rules/r.yaml:7: rule slow is disabled")
    worker.close()

    # A reload that leaves the rule as it was (another rule changed): still disabled.
    unchanged = RULES.replace("message: low", "message: low stock")
    same = ProcessEngine(plan(unchanged), deadline_s=1.0, target=serve_with_slow_rule,
                         disabled=disabled)  # fmt: skip
    try:
        assert same.update(*stock(HANG, "X")) == [Match("low", {"stock": "stock/p/X"})]
        assert disabled.count == 1 and disabled.alerts(AT, "h2") == []
    finally:
        same.close()

    # A reload that changes it: back, and its alert resolved.
    changed = RULES.replace("on_hand < 0", "on_hand < -1")
    back = ProcessEngine(plan(changed), deadline_s=1.0, disabled=disabled)
    try:
        assert disabled.count == 0
        assert back.update(*stock(-5, "Y")) == [
            Match("low", {"stock": "stock/p/Y"}),
            Match("slow", {"stock": "stock/p/Y"}),
        ]
    finally:
        back.close()
    resolved = disabled.alerts(AT, "h3")
    assert [(type(r), r.dedup_key) for r in resolved] == [(AlertResolved, f"{ALERT_KEY}/slow")]


def test_a_rule_a_reload_removes_is_forgotten(disabled: DisabledRules) -> None:
    disabled.disable(plan(), "slow", "no answer within 1 s", "stock/p/S1")
    assert without_rules(plan(), disabled.ids()).rule_ids == {"r0": "low"}
    disabled.alerts(AT, "h1")
    only_low = RULES.split("  - id: slow")[0]
    assert disabled.apply(plan(only_low)).rule_ids == {"r0": "low"}
    assert disabled.count == 0
    [resolved] = disabled.alerts(AT, "h2")
    assert isinstance(resolved, AlertResolved) and "removed" in resolved.reason
