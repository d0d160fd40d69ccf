"""The readings table: write a batch's downsampled readings, prune old ones, read a series.

`write` runs on the batch's own connection (inside its transaction), merging into the rows of
buckets already there; `prune` and `series` open their own. SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, RowMapping, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from agent.store.db import READ_ONLY
from agent.store.errors import store_error
from agent.store.tables import reading_table
from agent.world.history import Reading

_KEY = ("kind", "site", "subject", "metric", "bucket_s")


def write(connection: Connection, readings: Sequence[Reading]) -> None:
    """Insert the readings, or merge each into its bucket's row (count, min, max, mean, last).

    One executemany straight to the driver with the statement compiled once per dialect: built
    per batch through SQLAlchemy, 1,500 rows took 18 ms, two thirds of it making parameters."""
    if not readings:
        return
    sql, names = _upsert(connection.dialect)
    rows = [_row(reading) for reading in readings]
    if names is None:
        connection.exec_driver_sql(sql, rows)
    else:
        connection.exec_driver_sql(sql, [tuple(row[name] for name in names) for row in rows])


@functools.cache
def _upsert(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """The merging insert as the dialect's SQL, and its parameters' order if positional."""
    table = reading_table
    insert = (sqlite if dialect.name == "sqlite" else postgresql).insert(table)
    new = insert.excluded
    count = table.c.count + new.count
    newer = new.last_at_s >= table.c.last_at_s
    statement = insert.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={
            "count": count,
            "min": case((new.min < table.c.min, new.min), else_=table.c.min),
            "max": case((new.max > table.c.max, new.max), else_=table.c.max),
            "mean": (table.c.mean * table.c.count + new.mean * new.count) / count,
            "last": case((newer, new.last), else_=table.c.last),
            "last_at_s": case((newer, new.last_at_s), else_=table.c.last_at_s),
        },
    )
    compiled = statement.compile(dialect=dialect, column_keys=[c.name for c in table.columns])
    names = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
    return compiled.string, names


def prune(engine: Engine, before: datetime) -> int:
    """Delete the buckets that start before `before`; how many rows went."""
    try:
        with engine.begin() as connection:
            done = connection.execute(
                delete(reading_table).where(reading_table.c.bucket_s < before.timestamp())
            )
    except SQLAlchemyError as exc:
        raise store_error(exc, "could not prune the readings") from exc
    return int(done.rowcount or 0)


def series(
    engine: Engine,
    kind: str,
    site: str,
    subjects: Sequence[str],
    since: datetime,
    metric: str | None = None,
) -> list[Reading]:
    """The readings of the subjects from `since` on, by subject, metric and time."""
    table = reading_table
    statement = select(table).where(
        table.c.kind == kind,
        table.c.site == site,
        table.c.subject.in_(list(subjects)),
        table.c.bucket_s >= since.timestamp(),
    )
    if metric is not None:
        statement = statement.where(table.c.metric == metric)
    statement = statement.order_by(table.c.subject, table.c.metric, table.c.bucket_s)
    try:
        with engine.connect() as connection:
            rows = connection.execution_options(**{READ_ONLY: True}).execute(statement)
            return [_reading(row) for row in rows.mappings()]
    except SQLAlchemyError as exc:
        raise store_error(exc, "could not read the readings") from exc


def _row(reading: Reading) -> dict[str, Any]:
    return {
        "kind": reading.kind,
        "site": reading.site,
        "subject": reading.subject,
        "metric": reading.metric,
        "bucket_s": int(reading.bucket.timestamp()),
        "count": reading.count,
        "min": reading.min,
        "max": reading.max,
        "mean": reading.mean,
        "last": reading.last,
        "last_at_s": reading.last_at.timestamp(),
    }


def _reading(row: RowMapping) -> Reading:
    return Reading(
        row["kind"],
        row["site"],
        row["subject"],
        row["metric"],
        datetime.fromtimestamp(row["bucket_s"], UTC),
        row["count"],
        row["min"],
        row["max"],
        row["mean"],
        row["last"],
        datetime.fromtimestamp(row["last_at_s"], UTC),
    )
