"""The engine fenced in a worker process: same answers as inline, and a crash or hang in the
worker costs a restart and, for the fact that caused it, a quarantine: never the caller.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest

from agent.errors import EngineError
from agent.rulebook.compiler import EnginePlan, compile_rules
from agent.rulebook.engine import DurableEngine, Match
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import parse_rule_sources
from agent.rulebook.worker import KILLS_TO_QUARANTINE, ProcessEngine, serve

SCHEMA = build_schema(machine_fields={"spare_parts": "list"})
RULES = """\
rules:
  - id: low
    when:
      stock: kind == "stock" and on_hand <= 10
    then:
      - alert: {message: low}
  - id: spare
    when:
      m: kind == "machine" and state == "down"
      s: kind == "stock" and on_hand < 1 and sku in m.spare_parts
    then:
      - alert: {message: "{m.machine} {s.sku}"}
"""
CRASH, HANG = -666, -777  # on_hand values the test worker reacts to


def plan() -> EnginePlan:
    return compile_rules(parse_rule_sources([("r.yaml", RULES)], SCHEMA))


def serve_with_traps(conn: Connection, plan: EnginePlan, level: str, fmt: str) -> None:
    """The real worker, with a fact that segfaults it and one that hangs it (tests only)."""
    from agent.rulebook import engine

    update = engine.DurableEngine.update

    def trapped(self: Any, key: str, fields: Any) -> list[Match]:
        if fields.get("on_hand") == CRASH:
            os.kill(os.getpid(), signal.SIGSEGV)
        if fields.get("on_hand") == HANG:
            time.sleep(3600)
        return update(self, key, fields)

    engine.DurableEngine.update = trapped  # type: ignore[method-assign]
    serve(conn, plan, level, fmt)


def serve_colliding(conn: Connection, plan: EnginePlan, level: str, fmt: str) -> None:
    """The real worker, where fact id `stock/p/A` always collides once (tests only)."""
    import durable_rules_engine

    real_assert = durable_rules_engine.assert_fact

    def collide_once(handle: int, text: str) -> Any:
        if json.loads(text)["id"] == "stock/p/A":
            return (2, 0)  # what the C core answers for an id whose hash is taken
        return real_assert(handle, text)

    durable_rules_engine.assert_fact = collide_once
    serve(conn, plan, level, fmt)


@pytest.fixture
def worker() -> Iterator[ProcessEngine]:
    faults: list[tuple[str, str]] = []
    engine = ProcessEngine(
        plan(),
        deadline_s=1.0,
        on_fault=lambda event, reason, context: faults.append((event, reason)),
        target=serve_with_traps,
    )
    engine.faults = faults  # type: ignore[attr-defined]
    yield engine
    engine.close()


def stock(on_hand: int, sku: str = "S1") -> tuple[str, dict[str, Any]]:
    return f"stock/p/{sku}", {"kind": "stock", "sku": sku, "on_hand": on_hand}


DOWN = ("machine/p/M1", {"kind": "machine", "machine": "M1", "state": "down"})


def test_the_worker_answers_as_the_inline_engine_does(worker: ProcessEngine) -> None:
    inline = DurableEngine(plan())
    updates = [DOWN, stock(50), stock(5), stock(0, "S2"), stock(20)]
    assert worker.update_many(updates) == [inline.update(k, f) for k, f in updates]
    assert worker.update(*stock(3, "S3")) == [Match("low", {"stock": "stock/p/S3"})]


def test_a_fact_that_crashes_the_worker_twice_is_quarantined_and_the_rest_go_on(
    worker: ProcessEngine,
) -> None:
    worker.update(*DOWN)
    first = worker.pid
    results = worker.update_many([stock(5, "A"), stock(CRASH, "POISON"), stock(7, "B")])
    assert results[0] == [Match("low", {"stock": "stock/p/A"})]
    assert isinstance(results[1], EngineError)
    assert "quarantined" in str(results[1]) and "SIGSEGV" in str(results[1])
    assert results[2] == [Match("low", {"stock": "stock/p/B"})]
    assert worker.pid != first
    assert worker.restarts == 1 + KILLS_TO_QUARANTINE  # the batch, then the fact on its own
    events = [event for event, _ in worker.faults]  # type: ignore[attr-defined]
    assert events == ["engine_worker_lost", "engine_fact_quarantined"]
    # The new worker was seeded with what the old one held: the machine that is down.
    matches = worker.update(*stock(0, "C"))
    assert Match("spare", {"m": "machine/p/M1", "s": "stock/p/C"}) in matches


def test_a_worker_that_stops_answering_is_replaced_within_the_deadline(
    worker: ProcessEngine,
) -> None:
    started = time.monotonic()
    with pytest.raises(EngineError, match="no answer within 1 s"):
        worker.update(*stock(HANG))
    assert time.monotonic() - started < 10
    assert worker.update(*stock(1)) == [Match("low", {"stock": "stock/p/S1"})]


def test_a_worker_killed_between_batches_is_noticed_and_replaced(worker: ProcessEngine) -> None:
    worker.update(*DOWN)
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    matches = worker.update(*stock(0, "C"))
    assert Match("spare", {"m": "machine/p/M1", "s": "stock/p/C"}) in matches
    assert worker.restarts == 1


def test_rules_the_engine_refuses_are_refused_at_start() -> None:
    bad = EnginePlan({"r0": {"all": 5}}, {"r0": "x"}, {"r0": ("a",)}, frozenset({"kind"}))
    with pytest.raises(EngineError, match="refused the compiled rules"):
        ProcessEngine(bad)


def test_a_large_world_is_fed_and_reseeded_in_chunks(worker: ProcessEngine) -> None:
    facts = [stock(50, f"S{n}") for n in range(12_000)]  # more than one chunk
    assert worker.update_many([*facts, DOWN]) == [[]] * 12_001
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    matches = worker.update(*stock(0, "S7"))  # the new worker was seeded with all 12,001
    assert Match("spare", {"m": "machine/p/M1", "s": "stock/p/S7"}) in matches


def test_a_fact_whose_rule_fields_did_not_change_is_answered_without_the_worker(
    worker: ProcessEngine,
) -> None:
    asked: list[str] = []
    call = worker._call

    def counting(op: str, payload: Any) -> Any:
        if op == "update":
            asked.extend(key for key, _ in payload)
        return call(op, payload)

    worker._call = counting  # type: ignore[method-assign]
    low = [Match("low", {"stock": "stock/p/S1"})]
    assert worker.update(*stock(5)) == low
    # `note` is no rule's field: the same rule fields, the same answer, no round trip.
    assert worker.update("stock/p/S1", {**stock(5)[1], "note": "recount"}) == low
    assert worker.update(*stock(7)) == low
    assert asked == ["stock/p/S1", "stock/p/S1"]
    # A fact a join holds (empty stock, for `spare`) is always asked: its partners may change.
    worker.update(*stock(0))
    worker.update(*stock(0))
    assert asked[2:] == ["stock/p/S1", "stock/p/S1"]
    worker.update(*DOWN)
    assert Match("spare", {"m": "machine/p/M1", "s": "stock/p/S1"}) in worker.update(*stock(0))


def test_the_worker_logs_in_the_daemons_format(capfd: pytest.CaptureFixture[str]) -> None:
    engine = ProcessEngine(plan(), log_format="json", target=serve_colliding)
    try:
        assert engine.update(*stock(1, "A")) == [Match("low", {"stock": "stock/p/A"})]
    finally:
        engine.close()
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if "{" in line]
    collisions = [line for line in lines if line["event"] == "engine_id_collision"]
    assert collisions and collisions[0]["fact"] == "stock/p/A" and collisions[0]["salt"] == 0
    assert collisions[0]["level"] == "info" and "timestamp" in collisions[0]


def test_the_worker_imports_no_logging_library_until_it_logs() -> None:
    """structlog brings asyncio and ssl: 6 of the worker's 31 MB, for one rare line."""
    imports = (
        "import sys; from agent.rulebook.child import child_main, serve; "
        "import agent.rulebook.engine; print(sorted(m for m in ('structlog', 'asyncio', "
        "'ssl', 'sqlalchemy', 'pydantic') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", imports], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
