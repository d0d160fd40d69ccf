"""What a restart resumes from: the fact snapshot and the processed-message markers, written in
the batch's transaction, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.errors import StoreError
from agent.model import Fact, Outcome, Rejected
from agent.store.repository import Store
from agent.store.snapshot import message_digest
from tests.support.databases import DATABASES, database_url

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url, Store.open(url) as opened:
        yield opened


def machine(state: str, minute: int) -> Fact:
    at = T0.replace(minute=minute)
    fields = {"kind": "machine", "site": "p1", "machine": "press-01", "state": state}
    return Fact("machine", "p1", "press-01", {**fields, "spare_parts": ["BRG-6204"]}, at)


def test_the_snapshot_keeps_the_latest_fact_per_key(store: Store) -> None:
    store.apply(Outcome(), facts=[machine("running", 1)])
    store.apply(Outcome(), facts=[machine("down", 2)])
    assert store.facts() == [machine("down", 2)]


def test_markers_say_which_messages_were_committed_and_only_the_newest_are_kept(
    store: Store,
) -> None:
    digests = [message_digest("factory/p1/stock/A", str(n).encode()) for n in range(10)]
    store.apply(Outcome(), processed=digests[:6], keep_processed=4)
    store.apply(Outcome(), processed=digests[6:], keep_processed=4)
    assert store.committed(digests) == set(digests[6:])
    assert message_digest("t", b"x") != message_digest("t", b"y") != message_digest("u", b"y")


def test_a_failed_batch_saves_neither_facts_nor_markers(store: Store) -> None:
    bad = Outcome(rejected=[Rejected("t", b"x", "r", datetime(2026, 3, 2))])  # naive: refused
    with pytest.raises((StoreError, ValueError)):
        store.apply(bad, facts=[machine("down", 2)], processed=["d1"])
    assert store.facts() == []
    assert store.committed(["d1"]) == set()
