"""Wires the daemon to the HTTP edge: which readiness checks exist and what each one looks at.

`start_http(settings, daemon)` returns the running server, or None when `[http] enabled = false`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client import Gauge

from agent.adapters.http import HealthServer
from agent.config import HttpSettings
from agent.health import Check, CheckResult, flag_check, message_age_check, run_checks

if TYPE_CHECKING:
    from agent.daemon import Daemon


def readiness_checks(daemon: Daemon, max_message_age_s: float) -> dict[str, Check]:
    """broker connected, database writable, rules loaded, last message recent enough."""
    mqtt = daemon.settings.mqtt

    def database() -> CheckResult:
        problem = daemon.store.writable_problem()
        return CheckResult(True, "writable") if problem is None else CheckResult(False, problem)

    def rules() -> CheckResult:
        ruleset = daemon.pipeline.core.ruleset
        if not ruleset.rules:
            return CheckResult(False, "no rules loaded")
        return CheckResult(True, f"{len(ruleset.rules)} rules (rule set {ruleset.hash})")

    return {
        "broker": flag_check(
            lambda: daemon.source.connected,
            f"connected to {mqtt.host}:{mqtt.port}",
            f"not connected to {mqtt.host}:{mqtt.port}",
        ),
        "database": database,
        "rules": rules,
        "last_message": message_age_check(daemon.metrics.message_age_s, max_message_age_s),
    }


def watch_readiness(gauge: Gauge, checks: Mapping[str, Check]) -> None:
    """`factory_agent_ready` runs the checks of /readyz at each scrape: alerts need a metric."""
    gauge.set_function(lambda: float(all(r.ok for r in run_checks(checks).values())))


def start_http(settings: HttpSettings, daemon: Daemon) -> HealthServer | None:
    if not settings.enabled:
        return None
    checks = readiness_checks(daemon, settings.max_message_age_s)
    watch_readiness(daemon.metrics.ready, checks)
    server = HealthServer(settings.host, settings.port, daemon.metrics.registry, checks)
    server.start()
    return server
