"""`factory_agent_ready` follows the readiness checks, as /readyz does."""

from __future__ import annotations

from agent.health import CheckResult
from agent.metrics import Metrics
from agent.observability import watch_readiness


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
