"""What the readings history costs: commit throughput with and without it, and its size.

An hour of plant time (default: 1,000 machines, one reading each per 30 s, three metrics each)
goes through the real pipeline in batches of 500; each batch is committed twice, alternately,
to two databases: one with the batch's readings written in the commit (as the daemon does),
one without. Prints messages/s of the commits of each, the readings' rows and bytes per row
(SQLite: dbstat; PostgreSQL with --url: pg_total_relation_size), and MB per day for the fleet.

    PYTHONPATH=. python bench/history.py [--machines 1000] [--hours 1]
        [--url postgresql+psycopg://.../a --plain-url postgresql+psycopg://.../b]  (empty ones)
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import Connection, text

sys.path.insert(0, str(Path(__file__).parent))
import corecost
import workload

from agent.app.pipeline import Raw
from agent.store import readings as history
from agent.store.repository import Store, StoredChange
from agent.world.history import summarize

BATCH = 500
METRICS = 3
T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def stream(machines: int, period_s: float, hours: float) -> list[Raw]:
    rng = random.Random(7)
    offsets = [rng.random() * period_s for _ in range(machines)]
    raws = []
    for round_ in range(int(hours * 3600 / period_s)):
        for m in range(machines):
            at = T0 + timedelta(seconds=round_ * period_s + offsets[m])
            payload = b'{"state":"running","temp_c":%.1f,"vibration_mm_s":%.2f,' % (
                40 + rng.random() * 30,
                1 + rng.random() * 3,
            )
            payload += b'"spindle_load_pct":%.1f,"ts":"%s"}' % (
                rng.random() * 100,
                at.isoformat().encode(),
            )
            topic = (
                f"{workload.PREFIX}/{workload.SITE}/machine/{workload.machine_name(m)}/telemetry"
            )
            raws.append(Raw(topic, payload, at))
    raws.sort(key=lambda raw: raw.received_at)
    return raws


def size_of_readings(store: Store) -> int:
    with store.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            query = (
                "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('reading', 'ix_reading_bucket_s')"
            )
        else:
            query = "SELECT pg_total_relation_size('reading')"
        return int(connection.execute(text(query)).scalar_one() or 0)


def rows_of_readings(store: Store) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(text("SELECT COUNT(*) FROM reading")).scalar_one())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--period-s", type=float, default=30.0)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--resolution-s", type=int, default=60)
    parser.add_argument("--url", help="database of the run with history (default: SQLite file)")
    parser.add_argument("--plain-url", help="database of the run without (default: SQLite file)")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    directory = Path(tempfile.mkdtemp(prefix="bench-history-"))
    pipeline, _, _ = corecost.pipeline_for(directory, 2 * args.machines, 10)
    raws = stream(args.machines, args.period_s, args.hours)
    with_url = args.url or f"sqlite:///{directory}/with.db"
    plain_url = args.plain_url or f"sqlite:///{directory}/without.db"
    with Store.open(with_url) as kept, Store.open(plain_url) as plain:
        spent = {"with": 0.0, "without": 0.0}
        for number, start in enumerate(range(0, len(raws), BATCH)):
            outcome = pipeline.run(raws[start : start + BATCH])
            facts = pipeline.core.take_changed()
            tracks = pipeline.core.take_tracks()
            readings = summarize(outcome.taken, args.resolution_s)

            def hook(connection: Connection, _: Sequence[StoredChange], r=readings) -> None:  # type: ignore[no-untyped-def]
                history.write(connection, r)

            order = [("with", kept, hook), ("without", plain, None)]
            for name, store, on_changes in order if number % 2 else reversed(order):
                began = time.perf_counter()
                store.apply(outcome, on_changes, facts=facts, tracks=tracks)
                spent[name] += time.perf_counter() - began
        pipeline.core.close()
        rows, size = rows_of_readings(kept), size_of_readings(kept)
        backend = kept.engine.dialect.name
    messages = len(raws)
    per_row = size / rows if rows else 0.0
    rows_per_day = args.machines * METRICS * 86400 / args.resolution_s
    print(f"{messages} messages, {args.machines} machines x {METRICS} metrics, one per "
          f"{args.period_s:g} s for {args.hours:g} h, batches of {BATCH}")  # fmt: skip
    for name in ("without", "with"):
        print(f"  commit {name:7} history: {messages / spent[name]:9,.0f} messages/s "
              f"({spent[name] / (messages / BATCH) * 1000:.2f} ms per batch)")  # fmt: skip
    print(f"  readings on {backend}: {rows} rows, {size / 1e6:.1f} MB, {per_row:.0f} bytes/row")
    print(f"  per day at {args.resolution_s} s buckets: {rows_per_day:,.0f} rows, "
          f"{rows_per_day * per_row / 1e6:,.0f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
