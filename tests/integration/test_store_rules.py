"""What rule authoring adds to the store: automatic resolution, the rule_set record, lookups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.model import AlertResolved, Outcome, PublishDecision
from agent.store.repository import Store
from tests.integration.test_store import OVERHEAT, T0, overheat
from tests.support.databases import DATABASES, database_url


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url, Store.open(url) as opened:
        yield opened


def resolved(at_minutes: float = 5) -> AlertResolved:
    at = T0 + timedelta(minutes=at_minutes)
    return AlertResolved(OVERHEAT, at, "overheat", "abc123", "resolve_when: m.temp_c < 75")


def test_a_rule_resolution_closes_the_open_alert_with_the_time_and_the_reason(store: Store) -> None:
    (fired,) = store.apply(Outcome([overheat()]))
    (change,) = store.apply(Outcome([resolved()]))
    assert change.id == fired.id and change.row["status"] == "resolved"
    assert change.row["resolved_at"] == (T0 + timedelta(minutes=5)).isoformat()
    assert change.row["resolved_by"] == "rule:overheat"
    # The key is free again: the next firing opens a new alert.
    (again,) = store.apply(Outcome([overheat(at=T0 + timedelta(minutes=9))]))
    assert again.created and again.id != fired.id


def test_fire_and_resolve_in_one_batch_ends_resolved(store: Store) -> None:
    changes = store.apply(Outcome([overheat(), resolved()]))
    assert [c.row["status"] for c in changes] == ["firing", "resolved"]


def test_a_resolution_without_an_open_alert_changes_nothing(store: Store) -> None:
    assert store.apply(Outcome([resolved()])) == []


def test_published_messages_are_not_stored(store: Store) -> None:
    publish = PublishDecision("andon/press-3", {"lit": True}, False, "overheat", "abc123", T0)
    assert store.apply(Outcome([publish])) == []


def test_loaded_rule_sets_are_recorded_newest_first(store: Store) -> None:
    store.record_rule_set("aaa", ["rules/a.yaml"], T0, "start")
    store.record_rule_set("bbb", ["rules/a.yaml", "rules/b.yaml"], T0, "reload: file change")
    rows = store.rule_sets()
    assert [r["hash"] for r in rows] == ["bbb", "aaa"]
    assert rows[0]["files"] == ["rules/a.yaml", "rules/b.yaml"]
    assert rows[0]["loaded_by"] == "reload: file change"


def test_find_returns_one_decision_or_none(store: Store) -> None:
    (fired,) = store.apply(Outcome([overheat()]))
    found = store.find("alert", fired.id)
    assert found is not None and found["matched"] == {"m": {"temp_c": 92.5}}
    assert store.find("action", 999) is None
