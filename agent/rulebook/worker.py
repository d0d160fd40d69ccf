"""The rule engine fenced in a supervised worker process: a crash or a hang costs a restart.

`ProcessEngine` speaks the `RuleEngine` protocol; the child runs `DurableEngine` (durable-rules is
imported there). A dead or silent worker is replaced, re-seeded with the facts it held, and the
batch retried; a fact that stops the worker twice on its own is quarantined (an `EngineError`).
Which rule it stopped on is found by a fresh worker posting the fact through each rule on its own,
each within the deadline; that rule is disabled (`agent/rulebook/disabled.py`), the others go on.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any, Final

import structlog

from agent.errors import EngineError
from agent.rulebook.child import CHILD, Found, Served, serve
from agent.rulebook.compiler import EnginePlan
from agent.rulebook.disabled import DisabledRules
from agent.rulebook.engine import Match

log = structlog.get_logger(__name__)

START_TIMEOUT_S: Final = 60.0
# A new worker that dies while being re-seeded is tried this often before starting empty.
SEED_ATTEMPTS: Final = 3
# A fact on its own is quarantined when it stops this many workers.
KILLS_TO_QUARANTINE: Final = 2
# Facts per round trip at most: ~0.2 s of engine work, far inside any sensible deadline.
CHUNK: Final = 5000

# (event, reason, context): tell someone, outside the database; without a hook, it is logged.
FaultHook = Callable[[str, str, dict[str, Any]], None]
_ABSENT: Final = object()  # a rule field the fact does not have


class WorkerLost(Exception):
    """The worker died or did not answer within the deadline."""


class ProcessEngine:
    """A `RuleEngine` whose engine lives in a child process, restarted when it dies or hangs."""

    def __init__(
        self,
        plan: EnginePlan,
        *,
        deadline_s: float = 10.0,
        on_fault: FaultHook | None = None,
        log_level: str = "info",
        log_format: str = "json",
        target: Callable[..., None] | None = None,
        disabled: DisabledRules | None = None,
    ) -> None:
        # The rules disabled (by this engine or an earlier one) stay out of the worker's plan.
        self._disabled = disabled if disabled is not None else DisabledRules()
        self._full_plan = plan
        self._plan = self._disabled.apply(plan)
        self._deadline_s = deadline_s
        self._on_fault = on_fault
        self._log = (log_level, log_format)
        self._target = target or serve  # looked up now: a test may swap the module's `serve`
        # What the worker holds, to re-seed a new one: each fact's rule fields as a tuple in
        # `_names` order (a third of a dict's size: 11k facts are 2 MB less).
        self._names = tuple(sorted(plan.fields))
        self._held: dict[str, tuple[Any, ...]] = {}
        # The answer for a fact no join holds, as it came from the worker: the same while its
        # rule fields stay the same (most facts have none: the shared empty tuple).
        self._answers: dict[str, tuple[Found, ...]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self.restarts = 0
        self._start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- RuleEngine ---------------------------------------------------------------------------

    def update(self, key: str, fields: Mapping[str, Any]) -> list[Match]:
        result = self.update_many([(key, fields)])[0]
        if isinstance(result, EngineError):
            raise result
        return result

    def update_many(
        self, items: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[list[Match] | EngineError]:
        """Replace many facts in one round trip; one result per fact, in order.

        A fact whose rule fields are what the worker holds already, and that no join holds, is
        answered here: the engine would answer as before (only joins depend on other facts).
        Telemetry whose state did not change is most messages in a plant.
        """
        wanted = [(key, self._pack(fields)) for key, fields in items]
        if not wanted:
            return []
        results: list[list[Match] | EngineError | None] = []
        asked: list[tuple[str, tuple[Any, ...]]] = []
        for key, packed in wanted:
            known = self._answers.get(key)
            if known is not None and self._held.get(key) == packed:
                results.append(_matches(known))
            else:
                results.append(None)
                asked.append((key, packed))
        try:
            answers = iter(self._apply(asked, self._update_in_chunks(asked)) if asked else [])
            return [next(answers) if result is None else result for result in results]
        except WorkerLost as exc:
            self._fault("engine_worker_lost", str(exc), facts=len(wanted))
            self._restart()
        # Which fact was it? Each on its own, against a fresh worker.
        return [self._one_by_one(key, packed) for key, packed in wanted]

    def remove(self, key: str) -> None:
        self._answers.pop(key, None)
        if self._held.pop(key, None) is None:
            return
        try:
            error = self._call("remove", key)
        except WorkerLost as exc:
            self._fault("engine_worker_lost", str(exc), facts=0)
            self._restart()  # the new worker is seeded without the removed fact
            return
        if error:
            raise EngineError(error)

    def close(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None or conn is None:
            return
        try:
            conn.send(("close", None))
            if conn.poll(2.0):
                conn.recv()
        except (OSError, EOFError):
            pass
        conn.close()
        if not _ended(process, 2.0):
            process.kill()
            _ended(process, 2.0)
        log.info("engine_worker_stopped", pid=process.pid)

    # -- inside -------------------------------------------------------------------------------

    def _pack(self, fields: Mapping[str, Any]) -> tuple[Any, ...]:
        """The fields the rules test, in `_names` order: only they cross the process boundary."""
        return tuple(fields.get(name, _ABSENT) for name in self._names)

    def _unpack(self, held: tuple[Any, ...]) -> dict[str, Any]:
        pairs = zip(self._names, held, strict=True)
        return {name: value for name, value in pairs if value is not _ABSENT}

    def _apply(
        self, items: Sequence[tuple[str, tuple[Any, ...]]], served: list[Served]
    ) -> list[list[Match] | EngineError]:
        results: list[list[Match] | EngineError] = []
        for (key, packed), answer in zip(items, served, strict=True):
            if isinstance(answer, str):
                self._held.pop(key, None)  # the engine dropped the old fact before it failed
                self._answers.pop(key, None)
                results.append(EngineError(answer))
                continue
            found, joined = answer
            self._held[key] = packed
            if joined:
                self._answers.pop(key, None)
            else:
                self._answers[key] = tuple(found) if found else ()
            results.append(_matches(found))
        return results

    def _one_by_one(self, key: str, packed: tuple[Any, ...]) -> list[Match] | EngineError:
        reason = ""
        for attempt in range(KILLS_TO_QUARANTINE):
            try:
                return self._apply([(key, packed)], self._update_in_chunks([(key, packed)]))[0]
            except WorkerLost as exc:
                reason = str(exc)
                self._held.pop(key, None)  # never seed a new worker with it
                # The probe stops a worker on the fact too: with a culprit found, that is twice.
                culprit = self._find_rule(key, packed) if attempt == 0 else None
                if culprit is not None:
                    self._disable(culprit, reason, key)
                    self._restart()
                    reason = f"{reason}; rule {culprit} disabled"
                    break
                self._restart()
        self._fault("engine_fact_quarantined", reason, fact=key)
        return EngineError(
            f"fact {key} quarantined: it stopped the rule engine worker "
            f"{KILLS_TO_QUARANTINE} times on its own ({reason})"
        )

    def _find_rule(self, key: str, packed: tuple[Any, ...]) -> str | None:
        """The rule the fact stops the engine on: a fresh worker posts it through no rule, then
        through each rule on its own, saying which before it tries; the deadline applies to
        each. None when no rule is to blame (it stops an engine without rules too) or all pass.
        """
        rules: dict[str, list[str]] = {"": []}  # first, no rule at all: the baseline
        for name, rule_id in self._plan.rule_ids.items():
            rules.setdefault(rule_id, []).append(name)
        started = time.monotonic()
        try:
            process, conn = self._spawn()
        except EngineError as exc:
            log.error("engine_probe_failed", fact=key, error=str(exc))
            return None
        trying: str | None = None
        try:
            conn.send(("probe", (key, self._unpack(packed), list(rules.items()))))
            while conn.poll(self._deadline_s):
                status, detail = conn.recv()
                if status != "trying":
                    trying = None  # every rule took the fact
                    break
                trying = str(detail)
        except (EOFError, OSError):
            pass  # it died on the rule it was trying
        finally:
            conn.close()
            if process.poll() is None:
                process.kill()
            _ended(process, 5.0)
        log.info(
            "engine_probe_done",
            fact=key,
            rule=trying,
            rules=len(rules) - 1,
            seconds=round(time.monotonic() - started, 3),
        )
        return trying or None  # "": the fact stops an engine without rules

    def _disable(self, rule_id: str, reason: str, key: str) -> None:
        """Take the rule out of this engine and of every engine built after it."""
        rule = self._disabled.disable(self._full_plan, rule_id, reason, key)
        self._plan = self._disabled.apply(self._full_plan)
        self._answers.clear()  # they may hold the rule's matches
        self._fault("engine_rule_disabled", reason, rule=rule_id, at=rule.where, fact=key)

    def _update_in_chunks(self, items: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Served]:
        """One round trip per CHUNK facts, so a big seed or restore stays within the deadline."""
        served: list[Served] = []
        for start in range(0, len(items), CHUNK):
            chunk = [(key, self._unpack(packed)) for key, packed in items[start : start + CHUNK]]
            served.extend(self._call("update", chunk))
        return served

    def _call(self, op: str, payload: Any) -> Any:
        conn, process = self._conn, self._process
        if conn is None or process is None:
            raise WorkerLost("the worker is not running")
        try:
            conn.send((op, payload))
            if not conn.poll(self._deadline_s):
                raise WorkerLost(f"no answer within {self._deadline_s:g} s")
            status, answer = conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            _ended(process, 1.0)
            raise WorkerLost(f"the worker died ({_exit_reason(process)})") from exc
        if status != "ok":
            raise WorkerLost(f"unexpected answer {status!r}")
        return answer

    def _start(self) -> None:
        started = time.monotonic()
        self._process, self._conn = self._spawn()
        log.info(
            "engine_worker_started",
            pid=self._process.pid,
            seconds=round(time.monotonic() - started, 3),
            facts=len(self._held),
        )

    def _spawn(self) -> tuple[subprocess.Popen[bytes], Connection]:
        """A new worker on the plan, ready: a plain child process on one end of a socket pair.

        Not a multiprocessing `Process`: its spawn start also starts multiprocessing's resource
        tracker (another interpreter, 13 MB) and re-imports the daemon's main module.
        """
        parent_socket, child_socket = socket.socketpair()
        target = f"{self._target.__module__}:{self._target.__qualname__}"
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(child_socket.fileno()), target, str(os.getpid())],
            pass_fds=(child_socket.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        child_socket.close()
        parent = Connection(parent_socket.detach())
        try:
            parent.send((sys.path, self._plan, *self._log))
            ready = parent.poll(START_TIMEOUT_S)
            status, detail = parent.recv() if ready else ("timeout", "")
        except (EOFError, OSError):
            _ended(process, 2.0)
            status, detail = "died", _exit_reason(process)
        if status != "ready":
            parent.close()
            process.kill()
            _ended(process, 2.0)
            if status == "refused":
                raise EngineError(str(detail))
            raise EngineError(f"the rule engine worker did not start: {status} {detail}".strip())
        return process, parent

    def _stop_worker(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            if process.poll() is None:
                process.kill()
            _ended(process, 5.0)

    def _restart(self) -> None:
        """A new worker, seeded with what the old one held (matches discarded: no re-firing)."""
        self._stop_worker()
        self.restarts += 1
        for attempt in range(1, SEED_ATTEMPTS + 1):
            self._start()
            seed = list(self._held.items())
            if not seed:
                return
            try:
                self._update_in_chunks(seed)
                return
            except WorkerLost as exc:
                log.error("engine_worker_seed_failed", attempt=attempt, error=str(exc))
                self._stop_worker()
        log.error("engine_worker_seed_dropped", facts=len(self._held))
        self._held.clear()
        self._start()

    def _fault(self, event: str, reason: str, **context: Any) -> None:
        context["restarts"] = self.restarts
        if self._on_fault is None:
            log.error(event, reason=reason, **context)
            return
        self._on_fault(event, reason, context)


def _matches(found: Iterable[Found]) -> list[Match]:
    return [Match(rule_id, dict(facts), variant) for rule_id, facts, variant in found]


def _ended(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait up to `timeout_s` for the process to end; whether it did."""
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return True


def _exit_reason(process: subprocess.Popen[bytes]) -> str:
    code = process.poll()
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
