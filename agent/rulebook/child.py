"""The engine worker's side of `ProcessEngine`: the child process's entry and its serve loop.

Kept apart from `worker.py` (the daemon's side) so the child imports only what it runs: the
engine, the plan's types and the standard library. structlog (with the asyncio and ssl it loads,
6 MB of a 31 MB worker) is imported only if the engine has something to log.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Final

from agent.errors import EngineError

if TYPE_CHECKING:
    from agent.rulebook.compiler import EnginePlan
    from agent.rulebook.engine import Note

PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h
# What the worker process runs (`python -c`): the socket's descriptor, the serve function's
# "module:name" and the daemon's PID follow on the command line.
CHILD: Final = "from agent.rulebook.child import child_main; child_main()"

# A match as it crosses the boundary: rule id, (alias, fact key) pairs, `any:` variant.
Found = tuple[str, tuple[tuple[str, str], ...], int]
# Per fact: its matches and whether a join holds it; or why the fact failed.
Served = tuple[list[Found], bool] | str


def serve(conn: Connection, plan: EnginePlan, log_level: str, log_format: str) -> None:
    """The worker's main loop: (op, payload) requests in, answers out, until EOF or `close`."""
    from agent.rulebook.engine import DurableEngine

    try:
        engine = DurableEngine(plan, note=_logging_on_first_use(log_level, log_format))
    except EngineError as exc:
        conn.send(("refused", str(exc)))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            op, payload = conn.recv()
        except (EOFError, OSError):
            return  # the daemon is gone
        if op == "update":
            conn.send(("ok", [_serve_one(engine, key, fields) for key, fields in payload]))
        elif op == "probe":
            _probe(conn, plan, *payload)
        elif op == "remove":
            try:
                engine.remove(payload)
                conn.send(("ok", None))
            except EngineError as exc:
                conn.send(("ok", str(exc)))
        else:
            engine.close()
            conn.send(("ok", None))
            return


def child_main() -> None:
    """The worker process's entry (`python -c ...`): the connection's descriptor, the serve
    function and the daemon's PID are on the command line; the plan and logging come first over
    the connection."""
    _die_with_parent(int(sys.argv[3]))
    conn = Connection(int(sys.argv[1]))
    paths, plan, log_level, log_format = conn.recv()
    sys.path[:] = paths
    module, _, name = sys.argv[2].partition(":")
    target = getattr(importlib.import_module(module), name)
    target(conn, plan, log_level, log_format)


def _logging_on_first_use(log_level: str, log_format: str) -> Note:
    """The engine's log line, with the daemon's logging set up first (once, when first used)."""
    from agent.rulebook.engine import log_note

    configured = False

    def note(event: str, context: dict[str, Any]) -> None:
        nonlocal configured
        if not configured:
            from agent.log import configure_logging

            configure_logging(log_level, log_format)
            configured = True
        log_note(event, context)

    return note


def _die_with_parent(daemon_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when the daemon dies, even if the worker hangs and never
    reads the closed pipe (elsewhere, EOF on the pipe is all there is).

    The daemon's PID comes from the daemon: in a container it is PID 1 itself, so "my parent is
    init" cannot mean "my parent died". A parent other than the daemon means the daemon died
    before the request took effect and the worker was handed to a reaper.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != daemon_pid:
        os._exit(1)


def _probe(
    conn: Connection,
    plan: EnginePlan,
    key: str,
    fields: Mapping[str, Any],
    rules: list[tuple[str, list[str]]],
) -> None:
    """Post one fact through each rule on its own, each in an engine of its own, saying which
    rule is tried before trying it: the daemon reads the culprit of a hang or a crash from the
    last ("trying", rule id) it got. ("ok", None) when every rule took the fact."""
    from agent.rulebook.disabled import only_names
    from agent.rulebook.engine import DurableEngine

    for rule_id, names in rules:
        conn.send(("trying", rule_id))
        try:
            engine = DurableEngine(only_names(plan, names), note=lambda event, context: None)
            engine.update(key, fields)
            engine.close()
        except EngineError:
            pass  # a refusal is an answer: the worker lives
    conn.send(("ok", None))


def _serve_one(engine: Any, key: str, fields: Mapping[str, Any]) -> Served:
    try:
        matches = engine.update(key, fields)
    except EngineError as exc:
        return str(exc)
    answer = [(match.rule_id, tuple(match.facts.items()), match.variant) for match in matches]
    return answer, engine.joined(key)
