"""The store moves rows as `agent.decisions.states` says, on real databases: every person's
command and every rule's close from every status, allowed or refused with the table's reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.decisions import states
from agent.errors import TransitionError
from agent.model import ActionClosed, ActionDecision, AlertDecision, AlertResolved, Outcome
from agent.store.repository import Store
from tests.support.databases import DATABASES, database_url

T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
# The commands that bring a new row (firing, open) to each status.
REACH: dict[tuple[states.Table, str], tuple[str, ...]] = {
    ("alert", "firing"): (),
    ("alert", "acknowledged"): ("ack",),
    ("alert", "resolved"): ("resolve",),
    ("action", "open"): (),
    ("action", "acknowledged"): ("ack",),
    ("action", "done"): ("done",),
    ("action", "cancelled"): ("cancel",),
}
# The agent's own event the store applies through a decision, per kind of row.
RULE_EVENT = {"alert": "rule_resolved", "action": "rule_closed"}


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url, Store.open(url) as opened:
        yield opened


def _open(store: Store, table: str, key: str) -> int:
    decision: AlertDecision | ActionDecision
    if table == "alert":
        decision = AlertDecision(
            dedup_key=key,
            severity="warning",
            message="hot",
            site="plant1",
            subject="press-3",
            rule_id="overheat",
            rule_set_hash="abc",
            matched={},
            at=T0,
        )
    else:
        decision = ActionDecision(
            kind="reorder",
            dedup_key=key,
            site="plant1",
            subject="BRG-6204",
            params={"sku": "BRG-6204", "quantity": 300},
            rule_id="reorder-point",
            rule_set_hash="abc",
            matched={},
            at=T0,
        )
    [change] = store.apply(Outcome([decision]))
    return change.id


def _rows(store: Store, table: str) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in (store.alerts() if table == "alert" else store.actions())}


def test_every_command_from_every_status_moves_as_the_table_says(store: Store) -> None:
    wrong: list[str] = []
    for (table, status), path in REACH.items():
        for command in states.COMMANDS_OF[table]:
            id = _open(store, table, f"{table}/{status}/{command}")
            for step in path:
                store.transition(table, id, step, "anna", at=T0)
            before = _rows(store, table)[id]
            assert before["status"] == status
            expected = states.move(table, status, command)
            try:
                row = store.transition(table, id, command, "bob", at=T0 + timedelta(hours=1))
            except TransitionError as exc:
                if (
                    expected is not None
                    or str(exc) != f"{table} {id} is {status}; cannot {command}"
                ):
                    wrong.append(f"{table} {status} {command}: refused ({exc})")
                if _rows(store, table)[id] != before:
                    wrong.append(f"{table} {status} {command}: refused but changed")
                continue
            if row["status"] != expected:
                wrong.append(f"{table} {status} {command}: {row['status']}, table: {expected}")
    assert wrong == []


def test_a_rules_close_from_every_status_moves_as_the_table_says(store: Store) -> None:
    wrong: list[str] = []
    for (table, status), path in REACH.items():
        key = f"{table}/{status}"
        id = _open(store, table, key)
        for step in path:
            store.transition(table, id, step, "anna", at=T0)
        at = T0 + timedelta(hours=1)
        close = (
            AlertResolved(key, at, "overheat", "abc", "cooled")
            if table == "alert"
            else ActionClosed(key, at, "reorder-point", "abc", "enough")
        )
        store.apply(Outcome([close]))
        expected = states.move(table, status, RULE_EVENT[table]) or status
        if _rows(store, table)[id]["status"] != expected:
            wrong.append(
                f"{table} {status}: {_rows(store, table)[id]['status']}, table: {expected}"
            )
    assert wrong == []
