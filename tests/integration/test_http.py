"""The HTTP edge against a real agent: liveness, readiness following the broker, metrics."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.http.health import CheckResult
from agent.http.metrics import Metrics
from agent.http.server import HealthServer
from tests.support.agent_process import AgentProcess, write_config
from tests.support.live import PRESS, STOCK, Publisher, poll
from tests.support.mosquitto import Mosquitto, free_port


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def readiness(port: int) -> tuple[int, dict[str, Any]]:
    status, body = get(port, "/readyz")
    return status, json.loads(body)


def start_agent(
    broker: Mosquitto, tmp_path: Path, max_age_s: float = 0, extra: str = ""
) -> tuple[AgentProcess, int]:
    port = free_port()
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=f"agent-{tmp_path.name}",
        extra=f"\n[http]\nenabled = true\nport = {port}\nmax_message_age_s = {max_age_s}\n" + extra,
    )
    process = AgentProcess(config, cwd=tmp_path)
    process.start()
    process.wait_for("http_started", timeout=15)
    return process, port


@pytest.fixture
def agent_http(broker: Mosquitto, tmp_path: Path) -> Iterator[int]:
    process, port = start_agent(broker, tmp_path)
    yield port
    process.stop()


def test_readyz_fails_within_10_s_of_the_broker_stopping_and_recovers(
    broker: Mosquitto, agent_http: int
) -> None:
    poll(lambda: readiness(agent_http)[0] == 200, 15, "ready with the broker up")
    assert get(agent_http, "/healthz")[0] == 200
    assert "factory_agent_ready 1.0" in get(agent_http, "/metrics")[1]

    broker.stop()
    stopped = time.monotonic()
    poll(lambda: readiness(agent_http)[0] == 503, 10, "not ready after the broker stopped")
    to_503 = time.monotonic() - stopped
    status, body = readiness(agent_http)
    assert status == 503
    assert body["failing"] == ["broker"]
    assert body["checks"]["database"]["ok"] is True
    assert get(agent_http, "/healthz")[0] == 200  # alive, only not ready
    assert "factory_agent_ready 0.0" in get(agent_http, "/metrics")[1]

    broker.start()
    started = time.monotonic()
    poll(lambda: readiness(agent_http)[0] == 200, 15, "ready again after the broker returned")
    print(f"readyz: 503 after {to_503:.2f} s, 200 again {time.monotonic() - started:.2f} s later")


def test_metrics_count_messages_dead_letters_and_decisions(
    broker: Mosquitto, agent_http: int
) -> None:
    poll(lambda: readiness(agent_http)[0] == 200, 15, "ready")
    publisher = Publisher(broker)
    try:
        publisher.send(STOCK, {"on_hand": 12})
        publisher.send(STOCK, {"on_hand": 11})
        publisher.send(PRESS, {"state": "down", "fault": "E17"})
        publisher.send(PRESS, {"state": "down", "fault": "E17"})
        publisher.send(STOCK, b"not json")
    finally:
        publisher.close()

    def scraped() -> str:
        text = get(agent_http, "/metrics")[1]
        return text if "factory_agent_dead_letters_total 1.0" in text else ""

    text = poll(scraped, 10, "the dead letter counted")
    assert 'factory_agent_messages_total{kind="stock",outcome="accepted"} 2.0' in text
    assert 'factory_agent_messages_total{kind="stock",outcome="rejected"} 1.0' in text
    assert 'factory_agent_messages_total{kind="telemetry",outcome="accepted"} 2.0' in text
    assert 'factory_agent_decisions_total{kind="reorder",result="opened"} 1.0' in text
    # once open, a reorder counts as on order: the second low count asks for nothing more
    assert 'factory_agent_decisions_total{kind="reorder",result="repeated"}' not in text
    assert 'factory_agent_decisions_total{kind="work_order",result="opened"} 1.0' in text
    assert 'factory_agent_decisions_total{kind="work_order",result="repeated"} 1.0' in text
    assert "factory_agent_rule_evaluation_seconds_count" in text
    assert "factory_agent_commit_seconds_bucket" in text
    assert "factory_agent_queue_depth 0.0" in text
    assert "factory_agent_rule_set_generation 1.0" in text
    for name in ("outbox_backlog", "engine_worker_restarts_total"):
        assert f"factory_agent_{name}" in text


def sample(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, flags=re.MULTILINE)
    return float(found.group(1)) if found else None


def test_undeliverable_notifications_show_as_outbox_backlog_and_failures(
    broker: Mosquitto, tmp_path: Path
) -> None:
    dead = free_port()  # nothing listens: every webhook delivery fails and is retried later
    routes = (
        f'\n[notify]\nchannels = {{ chat = "json://127.0.0.1:{dead}/hook" }}\nretry_min_s = 600\n'
        '\n[[notify.routes]]\nname = "all"\nchannels = ["chat"]\n'
    )
    process, port = start_agent(broker, tmp_path, extra=routes)
    try:
        poll(lambda: readiness(port)[0] == 200, 15, "ready")
        before = get(port, "/metrics")[1]
        assert sample(before, "factory_agent_outbox_backlog") == 0
        publisher = Publisher(broker)
        try:
            publisher.send(PRESS, {"state": "down", "fault": "E17"})  # a work order and an alert
        finally:
            publisher.close()

        def scraped() -> str:
            text = get(port, "/metrics")[1]
            failures = sample(text, "factory_agent_outbox_failures_total") or 0
            backlog = sample(text, "factory_agent_outbox_backlog") or 0
            return text if failures >= 1 and backlog >= 1 else ""

        poll(scraped, 15, "the failed delivery counted and its row in the backlog")
    finally:
        process.stop()


def test_readyz_fails_when_no_message_came_for_too_long(broker: Mosquitto, tmp_path: Path) -> None:
    process, port = start_agent(broker, tmp_path, max_age_s=2)
    try:
        poll(lambda: get(port, "/readyz")[0] == 200, 10, "ready while the start is recent")
        _, body = poll(lambda: (r := readiness(port))[0] == 503 and r, 10, "stale")
        assert body["failing"] == ["last_message"]
        assert "no message for" in body["checks"]["last_message"]["detail"]
        publisher = Publisher(broker)  # closed after the check: closing takes up to a second
        try:
            publisher.send(STOCK, {"on_hand": 500})
            poll(lambda: readiness(port)[0] == 200, 10, "ready after a message")
        finally:
            publisher.close()
    finally:
        process.stop()


def test_a_failing_or_broken_check_is_listed_and_unknown_paths_are_404() -> None:
    def broken() -> CheckResult:
        raise RuntimeError("probe exploded")

    checks = {"fine": lambda: CheckResult(True, "ok"), "broken": broken}
    server = HealthServer("127.0.0.1", 0, Metrics().registry, checks)
    server.start()
    try:
        status, body = readiness(server.port)
        assert status == 503
        assert body["failing"] == ["broken"]
        assert body["checks"]["broken"]["detail"] == "RuntimeError: probe exploded"
        assert get(server.port, "/nothing")[0] == 404
        assert get(server.port, "/healthz") == (200, '{"status": "alive"}\n')
    finally:
        server.stop()
