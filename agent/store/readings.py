"""The readings table: write a batch's downsampled readings, prune old ones, read a series.

`write` runs on the batch's own connection (inside its transaction), merging into the rows of
buckets already there; `prune` and `series` open their own. SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from agent.store.db import READ_ONLY
from agent.store.errors import store_error
from agent.store.tables import reading_table
from agent.world.history import Reading

_KEY = ("kind", "site", "subject", "metric", "bucket")


def write(connection: Connection, readings: Sequence[Reading]) -> None:
    """Insert the readings, or merge each into its bucket's row (count, min, max, mean, last)."""
    if not readings:
        return
    table = reading_table
    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
    insert = dialect.insert(table)
    new = insert.excluded
    count = table.c.count + new.count
    statement = insert.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={
            "count": count,
            "min": case((new.min < table.c.min, new.min), else_=table.c.min),
            "max": case((new.max > table.c.max, new.max), else_=table.c.max),
            "mean": (table.c.mean * table.c.count + new.mean * new.count) / count,
            "last": case((new.last_at >= table.c.last_at, new.last), else_=table.c.last),
            "last_at": case((new.last_at >= table.c.last_at, new.last_at), else_=table.c.last_at),
        },
    )
    connection.execute(statement, [_row(reading) for reading in readings])


def prune(engine: Engine, before: datetime) -> int:
    """Delete the buckets that start before `before`; how many rows went."""
    try:
        with engine.begin() as connection:
            done = connection.execute(delete(reading_table).where(reading_table.c.bucket < before))
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
        table.c.bucket >= since,
    )
    if metric is not None:
        statement = statement.where(table.c.metric == metric)
    statement = statement.order_by(table.c.subject, table.c.metric, table.c.bucket)
    try:
        with engine.connect() as connection:
            rows = connection.execution_options(**{READ_ONLY: True}).execute(statement)
            return [Reading(**row) for row in rows.mappings()]
    except SQLAlchemyError as exc:
        raise store_error(exc, "could not read the readings") from exc


def _row(reading: Reading) -> dict[str, Any]:
    return {
        "kind": reading.kind,
        "site": reading.site,
        "subject": reading.subject,
        "metric": reading.metric,
        "bucket": reading.bucket,
        "count": reading.count,
        "min": reading.min,
        "max": reading.max,
        "mean": reading.mean,
        "last": reading.last,
        "last_at": reading.last_at,
    }
