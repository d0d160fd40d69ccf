"""Wires the daemon to the HTTP edge: which readiness checks exist and what each one looks at.

`start_http(settings, daemon)` returns the running server, or None when `[http] enabled = false`;
with `[http] pages = true` it serves the console too, its buttons applied by the ingest thread.
The console (jinja2, argon2, itsdangerous: 2.5 MB, 35 ms) is imported only then.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from agent.config import HttpSettings
from agent.http.health import Check, CheckResult, flag_check, message_age_check, run_checks
from agent.http.server import HealthServer
from agent.model import Fact
from agent.rulebook.rules import Rule
from agent.store import readings as history
from agent.world.history import Reading

if TYPE_CHECKING:
    from agent.app.daemon import Daemon
    from agent.app.deadletters import Resent
    from agent.http.web.routes import Console
    from agent.http.web.rules import RulesState


def readiness_checks(daemon: Daemon, max_message_age_s: float) -> dict[str, Check]:
    """broker connected, database writable, rules and master data loaded, last message recent
    enough."""
    mqtt = daemon.settings.mqtt

    def database() -> CheckResult:
        problem = daemon.store.writable_problem()
        return CheckResult(True, "writable") if problem is None else CheckResult(False, problem)

    def rules() -> CheckResult:
        ruleset = daemon.pipeline.core.ruleset
        if not ruleset.rules:
            return CheckResult(False, "no rules loaded")
        return CheckResult(True, f"{len(ruleset.rules)} rules (rule set {ruleset.hash})")

    def masterdata() -> CheckResult:
        # Ready either way: a refused change leaves the last good master data running.
        data = daemon.pipeline.core.world.masterdata
        detail = f"{len(data.items)} items, {len(data.machines)} machines"
        if daemon.masterdata_refused:
            detail += (
                f"; a change was refused, the last good data runs: {daemon.masterdata_refused}"
            )
        return CheckResult(True, detail)

    return {
        "broker": flag_check(
            lambda: daemon.source.connected,
            f"connected to {mqtt.host}:{mqtt.port}",
            f"not connected to {mqtt.host}:{mqtt.port}",
        ),
        "database": database,
        "rules": rules,
        "masterdata": masterdata,
        "last_message": message_age_check(daemon.metrics.message_age_s, max_message_age_s),
    }


# A scrape waits this long for the readiness checks; slower counts as not ready. A locked
# database makes the database check wait for its lock: /metrics must still answer.
READY_WITHIN_S = 1.0


def watch_readiness(
    gauge: Gauge, checks: Mapping[str, Check], within_s: float = READY_WITHIN_S
) -> None:
    """`factory_agent_ready` runs the checks of /readyz at each scrape (alerts need a metric),
    on a thread of their own: 0 when one fails or they take longer than `within_s`."""
    lock = threading.Lock()
    state: dict[str, Any] = {"thread": None, "ok": False}

    def run() -> None:
        state["ok"] = all(result.ok for result in run_checks(checks).values())

    def value() -> float:
        with lock:
            thread: threading.Thread | None = state["thread"]
            if thread is None or not thread.is_alive():  # one run at a time, even if stuck
                state["ok"] = False
                thread = threading.Thread(target=run, name="readiness-metric", daemon=True)
                state["thread"] = thread
                thread.start()
        thread.join(within_s)
        return 0.0 if thread.is_alive() else float(state["ok"])

    gauge.set_function(value)


# A button waits this long for the ingest thread to apply its command.
COMMAND_WITHIN_S = 10.0


class DaemonConsoleData:
    """The console's view of a running daemon: rows from the store, commands via its queue."""

    def __init__(self, daemon: Daemon, within_s: float = COMMAND_WITHIN_S) -> None:
        self._daemon = daemon
        self._within_s = within_s

    def alerts(self) -> list[dict[str, Any]]:
        return self._daemon.store.alerts()

    def open_alerts(self, rule_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        return self._daemon.store.open_alerts(rule_ids)

    def rule_alerts(self, rule_ids: Sequence[str]) -> list[dict[str, Any]]:
        return self._daemon.store.rule_alerts(rule_ids)

    def actions(self) -> list[dict[str, Any]]:
        return self._daemon.store.actions()

    def facts(self) -> list[Fact]:
        return self._daemon.store.facts()  # as of the last commit: no lock on the world

    def readings(self, kind: str, site: str, subject: str, since: datetime) -> list[Reading]:
        return history.series(self._daemon.store.engine, kind, site, [subject], since)

    def find(self, table: str, id: int) -> dict[str, Any] | None:
        return self._daemon.store.find("alert" if table == "alert" else "action", id)

    def rule(self, rule_id: str) -> Rule | None:
        return self._daemon.pipeline.core.ruleset.by_id().get(rule_id)

    def rules(self) -> RulesState:
        from agent.http.web.rules import RulesState

        daemon = self._daemon
        return RulesState(
            daemon.pipeline.core.ruleset,
            daemon.rules_disabled.ids(),
            daemon.last_reload,
            daemon.store.rule_sets(),
        )

    def receipts(self) -> list[dict[str, Any]]:
        return self._daemon.store.receipts()

    def dead_letters(self) -> list[dict[str, Any]]:
        return self._daemon.store.dead_letters()

    def reprocess(self, ids: list[int]) -> list[Resent]:
        """As `factory-agent dead-letters reprocess`: each payload published again to its topic,
        its row deleted after the broker's PUBACK (the agent then takes it in as any message)."""
        from agent.app.deadletters import Resent, resend

        wanted = set(ids)
        rows = sorted(
            (r for r in self._daemon.store.dead_letters() if r["id"] in wanted),
            key=lambda r: r["id"],
        )
        outcomes = list(resend(self._daemon.store, self._daemon.settings.mqtt, rows))
        found = {o.id for o in outcomes}
        return outcomes + [
            Resent(id, "", 0, False, "no such dead letter") for id in sorted(wanted - found)
        ]

    def apply(self, command: str, target: str, id: int, by: str) -> dict[str, Any]:
        from agent.app.commands import command as checked

        done = self._daemon.submit(checked(command, id, by, target=target))
        try:
            return done.result(self._within_s)
        except FutureTimeout:
            from agent.http.web.routes import ConsoleUnavailable

            done.cancel()
            raise ConsoleUnavailable(
                f"the agent did not apply {command} within {self._within_s:.0f} s; "
                "look at the alerts list before trying again"
            ) from None


def start_http(settings: HttpSettings, daemon: Daemon) -> HealthServer | None:
    if not settings.enabled:
        return None
    checks = readiness_checks(daemon, settings.max_message_age_s)
    watch_readiness(daemon.metrics.ready, checks)
    console: Console | None = None
    if settings.pages:
        from agent.http.web.routes import Console

        console = Console(settings, DaemonConsoleData(daemon))
    server = HealthServer(settings.host, settings.port, daemon.metrics.registry, checks, console)
    server.start()
    return server
