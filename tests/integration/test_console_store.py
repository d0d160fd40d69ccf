"""The store's reads for the console, on real SQLite and PostgreSQL: the open alerts without the
history, and every alert of some rules (MTBF/MTTR)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.model import AlertDecision, AlertResolved, Outcome
from agent.store.repository import Store
from tests.support.databases import DATABASES, database_url

T0 = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url, Store.open(url) as opened:
        yield opened


def fired(rule: str, subject: str, at: datetime) -> AlertDecision:
    return AlertDecision(
        dedup_key=f"{rule}/{subject}",
        severity="critical",
        message=f"{subject} {rule}",
        site="plant1",
        subject=subject,
        rule_id=rule,
        rule_set_hash="abc123",
        matched={"m": {"machine": subject}},
        at=at,
    )


def test_open_alerts_leave_the_history_out_and_rule_alerts_keep_it(store: Store) -> None:
    later = T0 + timedelta(hours=1)
    store.apply(
        Outcome(
            decisions=[
                fired("machine-down", "press-01", T0),
                AlertResolved("machine-down/press-01", T0 + timedelta(minutes=5), "machine-down",
                              "abc123", "running"),
                fired("machine-down", "press-01", later),
                fired("overheating", "press-02", later),
            ]
        )
    )  # fmt: skip
    (hot,) = [a for a in store.alerts() if a["rule_id"] == "overheating"]
    store.transition("alert", hot["id"], "ack", "olga", at=later)
    opened = store.open_alerts()
    # One batch: the store writes its rows per statement shape, so their ids follow the keys'
    # rounds, not the order of the decisions (both fired at `later`).
    assert sorted((a["subject"], a["status"]) for a in opened) == [
        ("press-01", "firing"),
        ("press-02", "acknowledged"),
    ]
    assert [a["rule_id"] for a in store.open_alerts(["overheating"])] == ["overheating"]
    down = store.rule_alerts(["machine-down"])
    assert [a["status"] for a in down] == ["firing", "resolved"]
    assert down[1]["resolved_at"] == T0 + timedelta(minutes=5)
