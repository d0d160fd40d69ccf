"""Receipts in the store, on SQLite and PostgreSQL: they reduce or close open reorders once, are
read back to seed the core, and `actions --summary` shows what is still to come per supplier."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.model import ActionDecision, Outcome, ReceiptDecision, ReceiptLine
from agent.store.repository import Store
from tests.support.databases import DATABASES, database_url

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
KEY = "reorder/plant1/BRG-6204"


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url, Store.open(url) as opened:
        yield opened


def reorder(
    sku: str = "BRG-6204", quantity: int = 120, supplier: str = "Nordlager GmbH"
) -> ActionDecision:
    return ActionDecision(
        kind="reorder",
        dedup_key=f"reorder/plant1/{sku}",
        site="plant1",
        subject=sku,
        params={
            "sku": sku,
            "quantity": quantity,
            "supplier": supplier,
            "unit_cost": 4.8,
            "cost": round(4.8 * quantity, 2),
        },
        rule_id="reorder-point",
        rule_set_hash="abc123",
        matched={"stock": {"on_hand": 30}},
        at=T0,
    )


def receipt(
    quantity: float, received: float, closes: bool, minutes: int, over: float = 0
) -> ReceiptDecision:
    taken = quantity - over
    return ReceiptDecision(
        receipt_key=f"plant1/BRG-6204/{minutes}/{quantity}/",
        site="plant1",
        subject="BRG-6204",
        quantity=quantity,
        reference=f"DN-{minutes}",
        lines=(ReceiptLine(KEY, taken, received, closes),),
        over_received=over,
        at=T0 + timedelta(minutes=minutes),
    )


def test_a_partial_receipt_records_what_came_and_a_full_one_closes_the_reorder(
    store: Store,
) -> None:
    store.apply(Outcome([reorder()]))
    (change,) = store.apply(Outcome([receipt(50, 50, False, 10)]))
    assert (change.row["status"], change.row["params"]["received"]) == ("open", 50)
    (open_reorder,) = store.open_reorders()
    assert (open_reorder.quantity, open_reorder.received, open_reorder.outstanding) == (120, 50, 70)
    (change,) = store.apply(Outcome([receipt(80, 120, True, 20, over=10)]))
    assert change.row["status"] == "done"
    assert change.row["closed_by"] == "receipt"
    assert change.row["closed_at"] == (T0 + timedelta(minutes=20)).isoformat()
    assert store.open_reorders() == []
    last, first = store.receipts()
    assert (first["quantity"], first["over_received"]) == (50, 0)
    assert (last["quantity"], last["over_received"]) == (80, 10)
    assert last["applied"][0]["action_id"] == change.id


def test_the_same_receipt_twice_changes_nothing_the_second_time(store: Store) -> None:
    store.apply(Outcome([reorder()]))
    assert len(store.apply(Outcome([receipt(50, 50, False, 10)]))) == 1
    assert store.apply(Outcome([receipt(50, 50, False, 10)])) == []
    (row,) = store.actions()
    assert row["params"]["received"] == 50
    assert len(store.receipts()) == 1
    (applied,) = store.applied_receipts()
    assert (applied.sku, applied.at) == ("BRG-6204", T0 + timedelta(minutes=10))
    assert store.applied_receipts(since=T0 + timedelta(minutes=11)) == []


def test_a_receipt_then_a_new_shortage_in_one_batch_opens_a_second_reorder(store: Store) -> None:
    store.apply(Outcome([reorder()]))
    later = ActionDecision(**{**_fields(reorder(quantity=100)), "at": T0 + timedelta(days=2)})
    store.apply(Outcome([receipt(120, 120, True, 60), later]))
    statuses = sorted((row["status"], row["params"]["quantity"]) for row in store.actions())
    assert statuses == [("done", 120), ("open", 100)]


def test_actions_summary_shows_the_open_spend_by_supplier(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    with Store.open(url) as store:
        store.apply(
            Outcome(
                [
                    reorder("BRG-6204", 120),
                    reorder("BRG-6205", 100),
                    reorder("OIL-HLP46", 1248, supplier="Rhein Lubricants AG"),
                ]
            )
        )
        store.apply(Outcome([receipt(50, 50, False, 10)]))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGENT_DATABASE__URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "agent", "actions", "--summary"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["supplier", "reorders", "open", "value"]
    # Rhein: 1248 × 4.80; Nordlager: (120 - 50 + 100) × 4.80
    assert lines[1].split() == ["Rhein", "Lubricants", "AG", "1", "5,990.40"]
    assert lines[2].split() == ["Nordlager", "GmbH", "2", "816.00"]
    assert lines[3].split() == ["total", "3", "6,806.40"]


def _fields(decision: ActionDecision) -> dict[str, object]:
    return {name: getattr(decision, name) for name in ActionDecision.__slots__}
