"""The console's alerts page with 1,000 open alerts, the database read included.

Fills a real SQLite file (and PostgreSQL, in a schema of its own, when AGENT_TEST_POSTGRES_URL is
set) with `--alerts` open alerts, each after `--history` resolved episodes of its key (which
the page leaves out), serves the console through the agent's real HTTP server, and loads
`/alerts` and its live endpoint `/api/alerts` `--loads` times each over HTTP. Every load reads
the open rows from the database, filters, sorts and renders them. `--read-all` reads every row
instead, as the pages did before they asked the store for the open ones only. Prints p50 and
p95 per page and backend.

    PYTHONPATH=. python bench/console.py [--alerts 1000] [--history 1] [--loads 20] [--read-all]

The machine is shared and noisy: compare the figures of one run with each other.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from agent.app.deadletters import Resent
from agent.config import HttpSettings
from agent.http.server import HealthServer
from agent.http.web.routes import Console
from agent.http.web.rules import RulesState
from agent.model import AlertDecision, AlertResolved, Fact, Outcome
from agent.rulebook.rules import Rule, RuleSet
from agent.store.repository import Store
from agent.world.history import Reading

T0 = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
SEVERITIES = ("critical", "warning", "info")


class StoreData:
    """The console's data source over a store alone (no daemon): what the alerts page reads."""

    def __init__(self, store: Store, read_all: bool = False) -> None:
        self.store = store
        self.read_all = read_all

    def alerts(self) -> list[dict[str, Any]]:
        return self.store.alerts()

    def open_alerts(self, rule_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        if self.read_all:  # the whole table, filtered by the page
            return self.store.alerts()
        return self.store.open_alerts(rule_ids)

    def rule_alerts(self, rule_ids: Sequence[str]) -> list[dict[str, Any]]:
        return self.store.rule_alerts(rule_ids)

    def actions(self) -> list[dict[str, Any]]:
        return self.store.actions()

    def apply(self, command: str, target: str, id: int, by: str) -> dict[str, Any]:
        raise NotImplementedError("read-only benchmark")

    def facts(self) -> list[Fact]:
        return self.store.facts()

    def readings(self, kind: str, site: str, subject: str, since: datetime) -> list[Reading]:
        return []

    def find(self, table: str, id: int) -> dict[str, Any] | None:
        return self.store.find("alert" if table == "alert" else "action", id)

    def rule(self, rule_id: str) -> Rule | None:
        return None

    def rules(self) -> RulesState:
        return RulesState(RuleSet((), "bench", ()))

    def receipts(self) -> list[dict[str, Any]]:
        return self.store.receipts()

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.store.dead_letters()

    def reprocess(self, ids: list[int]) -> list[Resent]:
        raise NotImplementedError("read-only benchmark")


def fill(store: Store, alerts: int, history: int) -> None:
    """`alerts` open alerts on as many machines, each after `history` resolved episodes."""
    decisions: list[Any] = []
    for n in range(alerts):
        machine = f"m-{n:05d}"
        for episode in range(history + 1):  # the last one stays open
            at = T0 + timedelta(seconds=n + episode * 3600)
            decisions.append(
                AlertDecision(
                    dedup_key=f"machine-down/plant1/{machine}",
                    severity=SEVERITIES[n % 3],
                    message=f"{machine} is down (fault E{n % 50})",
                    site="plant1",
                    subject=machine,
                    rule_id="machine-down",
                    rule_set_hash="bench",
                    matched={"m": {"kind": "machine", "machine": machine, "state": "down"}},
                    at=at,
                )
            )
            if episode < history:
                key = f"machine-down/plant1/{machine}"
                later = at + timedelta(minutes=5)
                decisions.append(AlertResolved(key, later, "machine-down", "bench", "running"))
    for start in range(0, len(decisions), 500):
        store.apply(Outcome(decisions=decisions[start : start + 500]))


def load_times(port: int, path: str, loads: int) -> list[float]:
    times = []
    for _ in range(loads):
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            body = response.read()
            assert response.status == 200 and body
        times.append(time.perf_counter() - started)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def run(name: str, url: str, args: argparse.Namespace) -> None:
    alerts, loads = args.alerts, args.loads
    store = Store.open(url)
    try:
        fill(store, alerts, args.history)
        rows = store.alerts()
        shown = f"{sum(1 for r in rows if r['status'] == 'firing')} open of {len(rows)} rows"
        shown += " (read all)" if args.read_all else ""
        data = StoreData(store, args.read_all)
        console = Console(HttpSettings(pages=True, session_secret="bench"), data)
        server = HealthServer("127.0.0.1", 0, CollectorRegistry(), {}, console)
        server.start()
        try:
            load_times(server.port, "/alerts", 2)  # warm: templates compiled, statements cached
            for path in ("/alerts", "/api/alerts"):
                times = load_times(server.port, path, loads)
                p50_ms, p95_ms = statistics.median(times) * 1000, p95(times) * 1000
                print(
                    f"{name:10} {path:12} {shown}: p50 {p50_ms:6.1f} ms"
                    f"  p95 {p95_ms:6.1f} ms  ({loads} loads)"
                )
        finally:
            server.stop()
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--history", type=int, default=1, help="resolved episodes per alert")
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--read-all", action="store_true", help="read every row, as before")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        run("sqlite", f"sqlite:///{folder / 'agent.db'}", args)
        base = os.environ.get("AGENT_TEST_POSTGRES_URL")
        if base:
            from tests.support.databases import postgres_schema

            url = stack.enter_context(postgres_schema(base))
            run("postgresql", url, args)
        else:
            print("postgresql: skipped (set AGENT_TEST_POSTGRES_URL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
