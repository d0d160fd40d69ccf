"""The readings table on real databases: merged per bucket across batches, pruned, read back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.store import readings
from agent.store.repository import Store
from agent.world.history import Reading
from tests.support.databases import DATABASES, database_url

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url, Store.open(url) as opened:
        yield opened


def reading(bucket: datetime, count: int, low: float, high: float, mean: float, last: float,
            at: datetime, subject: str = "press-1") -> Reading:  # fmt: skip
    return Reading("machine", "plant1", subject, "temp_c", bucket, count, low, high, mean, last, at)


def write(store: Store, rows: list[Reading]) -> None:
    with store.engine.begin() as connection:
        readings.write(connection, rows)


def test_a_bucket_written_by_two_batches_merges_into_one_row(store: Store) -> None:
    write(store, [reading(T0, 2, 60.0, 70.0, 65.0, 70.0, T0 + timedelta(seconds=30))])
    write(store, [reading(T0, 1, 50.0, 50.0, 50.0, 50.0, T0 + timedelta(seconds=50))])
    write(store, [reading(T0, 1, 90.0, 90.0, 90.0, 90.0, T0 + timedelta(seconds=10))])  # late
    (row,) = readings.series(store.engine, "machine", "plant1", ["press-1"], T0)
    assert (row.count, row.min, row.max, row.mean) == (
        4,
        50.0,
        90.0,
        67.5,
    )  # (2 x 65 + 50 + 90) / 4
    assert (row.last, row.last_at) == (50.0, T0 + timedelta(seconds=50))


def test_series_reads_the_subjects_since_a_time_in_order(store: Store) -> None:
    rows = [
        reading(T0 + timedelta(minutes=m), 1, m, m, m, m, T0 + timedelta(minutes=m), subject)
        for m in (2, 0, 1)
        for subject in ("press-1", "press-2", "press-3")
    ]
    write(store, rows)
    got = readings.series(
        store.engine, "machine", "plant1", ["press-1", "press-2"], T0 + timedelta(minutes=1)
    )
    assert [(r.subject, r.mean) for r in got] == [
        ("press-1", 1.0), ("press-1", 2.0), ("press-2", 1.0), ("press-2", 2.0),
    ]  # fmt: skip
    assert got[0].bucket.tzinfo is not None
    assert readings.series(store.engine, "stock", "plant1", ["press-1"], T0) == []


def test_prune_deletes_only_the_buckets_before_the_cut(store: Store) -> None:
    write(store, [reading(T0 + timedelta(minutes=m), 1, 1, 1, 1, 1, T0) for m in range(5)])
    assert readings.prune(store.engine, T0 + timedelta(minutes=3)) == 3
    left = readings.series(store.engine, "machine", "plant1", ["press-1"], T0)
    assert [r.bucket for r in left] == [T0 + timedelta(minutes=3), T0 + timedelta(minutes=4)]
