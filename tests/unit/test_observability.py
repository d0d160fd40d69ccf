"""`factory_agent_ready` follows the readiness checks, as /readyz does."""

from __future__ import annotations

import threading

from agent.http.health import CheckResult
from agent.http.metrics import Metrics
from agent.http.observability import watch_readiness


def test_ready_gauge_is_1_only_while_every_check_passes() -> None:
    metrics = Metrics()
    broker = [True]

    def failing() -> CheckResult:
        raise RuntimeError("probe broke")

    checks = {"broker": lambda: CheckResult(broker[0], "")}
    watch_readiness(metrics.ready, checks)
    assert metrics.registry.get_sample_value("factory_agent_ready") == 1
    broker[0] = False
    assert metrics.registry.get_sample_value("factory_agent_ready") == 0
    broker[0] = True
    checks["broken"] = failing
    assert metrics.registry.get_sample_value("factory_agent_ready") == 0


def test_a_check_that_hangs_reads_as_not_ready_without_blocking_the_scrape() -> None:
    metrics = Metrics()
    release = threading.Event()

    def locked_database() -> CheckResult:
        release.wait(30)
        return CheckResult(True, "")

    watch_readiness(metrics.ready, {"database": locked_database}, within_s=0.05)
    assert metrics.registry.get_sample_value("factory_agent_ready") == 0
    assert metrics.registry.get_sample_value("factory_agent_ready") == 0  # still stuck: no 2nd run
    (thread,) = [t for t in threading.enumerate() if t.name == "readiness-metric"]
    release.set()
    thread.join(5)
    assert metrics.registry.get_sample_value("factory_agent_ready") == 1
