"""A held-out week of counts and receipts for 200 SKUs through replay into SQLite: exactly one
reorder per shortage, closed by its receipt, quantities as worked out by hand; a restart in the
middle (two replays into one database file) neither duplicates nor forgets a reorder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.app.core import Core
from agent.app.policy import Policy
from agent.app.replay import replay
from agent.model import Message
from agent.rulebook.fields import build_schema
from agent.rulebook.loader import load_rules
from agent.store.repository import Store
from agent.world.masterdata import load_masterdata
from tests.support.stockstream import Stream, week_stream

# A week of 200 SKUs takes ~45 s alone; on a loaded 2-core machine it came within 0.4 s of the
# default 120 s hang guard.
pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stream() -> Stream:
    return week_stream(skus=200, days=7, count_every_h=4, seed=4)


@pytest.fixture(scope="module")
def policy(stream: Stream, tmp_path_factory: pytest.TempPathFactory) -> Policy:
    folder = tmp_path_factory.mktemp("week")
    items = folder / "items.yaml"
    items.write_text(yaml.safe_dump({"items": stream.items}), encoding="utf-8")
    machines = folder / "machines.yaml"
    machines.write_text("machines: {}\n", encoding="utf-8")
    masterdata = load_masterdata(items, machines)
    schema = build_schema(masterdata.item_fields(), masterdata.machine_fields())
    return Policy(masterdata, schema, load_rules([ROOT / "rules/inventory.yaml"], schema))


def write_recording(path: Path, messages: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")
    return path


def reorder_rows(store: Store) -> list[dict[str, Any]]:
    return [row for row in store.actions() if row["kind"] == "reorder"]


def assert_matches_the_hand_worked_reorders(stream: Stream, rows: list[dict[str, Any]]) -> None:
    got = {
        (row["subject"], row["created_at"]): (
            row["params"]["quantity"],
            row["status"],
            row["params"].get("received"),
            row["closed_at"],
        )
        for row in rows
    }
    assert len(got) == len(rows), "two reorders for one SKU at one time"
    expected = {
        (e.sku, e.at): (
            e.quantity,
            "done" if e.received_at else "open",
            e.quantity if e.received_at else None,
            e.received_at,
        )
        for e in stream.expected
    }
    missing = sorted(set(expected) - set(got))[:5]
    extra = sorted(set(got) - set(expected))[:5]
    assert not missing and not extra, f"missing {missing}, extra {extra}"
    wrong = [(key, got[key], value) for key, value in expected.items() if got[key] != value]
    assert wrong == []


def test_a_week_gives_exactly_one_reorder_per_shortage_closed_by_its_receipt(
    stream: Stream, policy: Policy, tmp_path: Path
) -> None:
    recording = write_recording(tmp_path / "week.jsonl", stream.messages)
    assert len(stream.expected) > 300  # several shortages per SKU, some still in transit
    with Store.open(f"sqlite:///{tmp_path / 'agent.db'}") as store:
        replay(recording, policy, store, "factory", 65536)
        rows = reorder_rows(store)
        assert_matches_the_hand_worked_reorders(stream, rows)
        receipts = store.receipts()
        assert len(receipts) == sum(1 for e in stream.expected if e.received_at)
        assert all(r["over_received"] == 0 for r in receipts)


def test_a_restart_in_the_middle_neither_duplicates_nor_forgets_a_reorder(
    stream: Stream, policy: Policy, tmp_path: Path
) -> None:
    middle = len(stream.messages) // 2
    first = write_recording(tmp_path / "first.jsonl", stream.messages[:middle])
    # the broker redelivers the last unacknowledged messages after the restart
    second = write_recording(tmp_path / "second.jsonl", stream.messages[middle - 200 :])
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    with Store.open(url) as store:
        replay(first, policy, store, "factory", 65536)
        open_at_restart = len(store.open_reorders())
    assert open_at_restart > 50  # the restart falls between reorders and their receipts
    with Store.open(url) as store:
        replay(second, policy, store, "factory", 65536)
        assert_matches_the_hand_worked_reorders(stream, reorder_rows(store))
        assert all(r["over_received"] == 0 for r in store.receipts())


def test_learned_daily_usage_is_close_to_the_true_rate(stream: Stream, policy: Policy) -> None:
    errors = learned_usage_errors(stream, policy, [f"SKU-{n:03d}" for n in range(0, 200, 4)])
    mean = sum(abs(e) for e in errors.values()) / len(errors)
    assert mean < 0.10, f"mean absolute error {mean:.1%}"
    assert abs(errors["SKU-000"]) < 0.15


def learned_usage_errors(stream: Stream, policy: Policy, skus: list[str]) -> dict[str, float]:
    """Relative error of the learned daily_usage against the true rate after the week."""
    core = Core(policy.ruleset, policy.masterdata)
    wanted = set(skus)
    try:
        for entry in stream.messages:
            _, site, kind, sku = entry["topic"].split("/")
            if sku in wanted:
                at = datetime.fromisoformat(entry["ts"])
                topic = entry["topic"]
                core.process([Message(kind, topic, site, sku, entry["payload"], at, at)])  # type: ignore[arg-type]
        errors: dict[str, float] = {}
        for sku in skus:
            fact = core.world.get(f"stock/plant1/{sku}")
            assert fact is not None
            usage = fact.fields["daily_usage"]
            assert isinstance(usage, float | int)
            rate = stream.true_rates[sku]
            errors[sku] = (usage - rate) / rate
        return errors
    finally:
        core.close()
