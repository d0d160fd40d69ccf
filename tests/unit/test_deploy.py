"""The monitoring and service files in deploy/ against the agent they describe: every metric a
dashboard panel or alert names exists in the agent's registry, the rules pass promtool (and
their promtool tests) when it is installed, and the systemd unit matches the daemon's settings
and passes `systemd-analyze verify` when that is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import DaemonSettings
from agent.http.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "factory-agent.json"
ALERTS = DEPLOY / "prometheus" / "factory-agent-alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "factory-agent-alerts.test.yml"
UNIT = DEPLOY / "systemd" / "factory-agent.service"

# Series Prometheus makes itself for each scrape target.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
}
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan",
}  # fmt: skip


def exposed_names() -> set[str]:
    """Every series name the agent's /metrics can show, labelled families included (which
    show nothing until a first label set is used)."""
    names = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords or labels)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, template vars
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, $__rate_interval
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    found = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text):
        name = match.group(1)
        if name.lower() not in _KEYWORDS:
            found.add(name)
    return found


def test_the_expression_parser_finds_metrics_and_only_metrics() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le) (rate(factory_agent_commit_seconds_bucket"
        '{instance=~"$i"}[$__rate_interval]))) and on (instance) up == 0 or vector(1) > bool 2'
    )
    assert metric_names(expr) == {"factory_agent_commit_seconds_bucket", "up"}
    assert metric_names("factory_agent_typo_total > 0") == {"factory_agent_typo_total"}


def dashboard_exprs() -> dict[str, list[str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels: list[dict[str, Any]] = dashboard["panels"]
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in panels}


def test_every_dashboard_panel_queries_only_metrics_the_agent_exposes() -> None:
    known = exposed_names() | SCRAPE_SERIES
    exprs = dashboard_exprs()
    assert exprs and all(exprs.values())
    for title, panel_exprs in exprs.items():
        for expr in panel_exprs:
            names = metric_names(expr)
            assert names, f"{title}: {expr} names no metric"
            assert names <= known, f"{title}: unknown {sorted(names - known)} in {expr}"


def test_the_dashboard_shows_the_metrics_operators_ask_for() -> None:
    used = {name for exprs in dashboard_exprs().values() for e in exprs for name in metric_names(e)}
    for wanted in (
        "up",
        "factory_agent_ready",
        "factory_agent_messages_total",
        "factory_agent_decisions_total",
        "factory_agent_rule_evaluation_seconds_bucket",
        "factory_agent_commit_seconds_bucket",
        "factory_agent_queue_depth",
        "factory_agent_outbox_backlog",
        "factory_agent_outbox_failures_total",
        "factory_agent_dead_letters_total",
        "factory_agent_engine_worker_restarts_total",
    ):
        assert wanted in used, wanted


def alert_rules() -> dict[str, str]:
    loaded = yaml.safe_load(ALERTS.read_text())
    return {r["alert"]: r["expr"] for group in loaded["groups"] for r in group["rules"]}


def test_every_alert_names_only_metrics_the_agent_exposes() -> None:
    known = exposed_names() | SCRAPE_SERIES
    rules = alert_rules()
    assert {
        "FactoryAgentDown",
        "FactoryAgentNotReady",
        "FactoryAgentQueueBacklogGrowing",
        "FactoryAgentOutboxBacklogGrowing",
        "FactoryAgentDeadLettersRising",
        "FactoryAgentOutboxFailing",
        "FactoryAgentEngineWorkerRestarts",
    } <= set(rules)
    for alert, expr in rules.items():
        names = metric_names(expr)
        assert names and names <= known, f"{alert}: unknown {sorted(names - known)} in {expr}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    for args in (["check", "rules", ALERTS.name], ["test", "rules", ALERT_TESTS.name]):
        done = subprocess.run(
            ["promtool", *args], cwd=ALERTS.parent, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def unit_settings() -> dict[str, list[str]]:
    """The [Service] and [Unit] keys (a key may repeat, e.g. SystemCallFilter)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_runs_the_agent_unprivileged_and_waits_longer_than_its_stop_timeout() -> None:
    unit = unit_settings()
    (exec_start,) = unit["ExecStart"]
    assert re.fullmatch(r"/\S+/\.venv/bin/factory-agent run --config /\S+\.toml", exec_start)
    assert unit["User"] != ["root"] and unit["User"]
    assert unit["Restart"] == ["on-failure"]
    timeout_s = float(unit["TimeoutStopSec"][0])
    assert timeout_s > DaemonSettings().stop_timeout_s  # the daemon exits first, then SIGKILL
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert unit[key] == [value], key
    # The default database is sqlite:///data/agent.db, relative to the working directory.
    (workdir,) = unit["WorkingDirectory"]
    assert f"{workdir}/data" in unit["ReadWritePaths"][0].split()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is absent")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify wants ExecStart to exist: point it at an executable that does, nothing else changes.
    stand_in = shutil.which("factory-agent") or shutil.which("true") or "/bin/true"
    text = UNIT.read_text()
    (exec_path,) = re.findall(r"^ExecStart=(\S+)", text, flags=re.MULTILINE)
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(exec_path, stand_in))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    about_unit = [line for line in (done.stdout + done.stderr).splitlines() if UNIT.name in line]
    assert done.returncode == 0 and not about_unit, done.stdout + done.stderr
