"""What a restart needs to resume: the world's facts as of the last commit, and the digests of
the messages already committed (so a redelivered one is recognised and not counted twice).

Both are written in the batch's own transaction, so they never disagree with the decisions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StoreError
from agent.model import Fact
from agent.store.db import READ_ONLY, store_error
from agent.store.tables import fact_snapshot_table, processed_message_table

# Digests per "which were committed?" query: below SQLite's bound-parameter limit.
_PER_QUERY = 500
_FACT_COLUMNS = ("kind", "site", "subject", "fields", "updated_at")


def message_digest(topic: str, payload: bytes) -> str:
    """The identity of a message across redeliveries: MQTT keeps topic and payload, nothing else."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(topic.encode("utf-8", "surrogateescape"))
    digest.update(b"\0")
    digest.update(payload)
    return digest.hexdigest()


def save_facts(connection: Connection, facts: Sequence[Fact]) -> None:
    """Insert or replace the snapshot row of each fact."""
    if not facts:
        return
    rows = [
        {
            "key": fact.key,
            "kind": fact.kind,
            "site": fact.site,
            "subject": fact.subject,
            "fields": dict(fact.fields),
            "updated_at": fact.updated_at,
        }
        for fact in facts
    ]
    insert = _dialect_insert(connection)(fact_snapshot_table)
    statement = insert.on_conflict_do_update(
        index_elements=[fact_snapshot_table.c.key],
        set_={name: insert.excluded[name] for name in _FACT_COLUMNS},
    )
    connection.execute(statement, rows)


def mark_processed(connection: Connection, digests: Iterable[str], keep: int) -> None:
    """Remember these messages as committed; forget all but the newest `keep` markers."""
    rows = [{"digest": digest} for digest in dict.fromkeys(digests)]
    if not rows:
        return
    insert = _dialect_insert(connection)(processed_message_table)
    connection.execute(insert.on_conflict_do_nothing(index_elements=["digest"]), rows)
    newest = select(func.max(processed_message_table.c.id)).scalar_subquery()
    connection.execute(
        delete(processed_message_table).where(processed_message_table.c.id <= newest - keep)
    )


def committed(engine: Engine, digests: Iterable[str]) -> set[str]:
    """Which of these message digests were committed already (within the kept window)."""
    wanted = sorted(set(digests))
    found: set[str] = set()
    if not wanted:
        return found
    column = processed_message_table.c.digest
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**{READ_ONLY: True})
            for start in range(0, len(wanted), _PER_QUERY):
                chunk = wanted[start : start + _PER_QUERY]
                found.update(connection.scalars(select(column).where(column.in_(chunk))))
    except SQLAlchemyError as exc:
        raise store_error(exc, "could not look up processed messages") from exc
    return found


def load_facts(engine: Engine) -> list[Fact]:
    """The saved world state, oldest change first."""
    table = fact_snapshot_table
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**{READ_ONLY: True})
            rows = connection.execute(select(table).order_by(table.c.updated_at)).mappings().all()
    except SQLAlchemyError as exc:
        raise store_error(exc, "could not read the fact snapshot") from exc
    return [_fact(row) for row in rows]


def _fact(row: Any) -> Fact:
    updated_at: datetime = row["updated_at"]
    return Fact(row["kind"], row["site"], row["subject"], dict(row["fields"]), updated_at)


def _dialect_insert(connection: Connection) -> Any:
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise StoreError(f"unsupported database dialect {name!r}")
