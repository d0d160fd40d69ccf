"""What a restart needs to resume: the world's facts and the rules' tracked matches (pending
`for` timers, firing matches) as of the last commit, and the digests of the messages already
committed (so a redelivered one is recognised and not counted twice).

Both are written in the batch's own transaction, so they never disagree with the decisions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StoreError
from agent.model import Fact, SavedTrack, TrackChanges
from agent.store.db import READ_ONLY
from agent.store.errors import store_error
from agent.store.tables import fact_snapshot_table, processed_message_table, rule_track_table

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


def save_tracks(connection: Connection, changes: TrackChanges) -> None:
    """Insert or replace the saved tracks, delete the removed ones."""
    table = rule_track_table
    for start in range(0, len(changes.removed), _PER_QUERY):
        chunk = changes.removed[start : start + _PER_QUERY]
        connection.execute(
            delete(table).where(
                or_(
                    *(
                        and_(table.c.rule_id == rule_id, table.c.fact_keys == _fact_keys(keys))
                        for rule_id, keys in chunk
                    )
                )
            )
        )
    if not changes.saved:
        return
    rows = [
        {
            "rule_id": track.rule_id,
            "fact_keys": _fact_keys(track.fact_keys),
            "fingerprint": track.fingerprint,
            "facts": dict(track.facts),
            "since": track.since,
            "firing": track.firing,
            "alert_keys": list(track.alert_keys),
        }
        for track in changes.saved
    ]
    insert = _dialect_insert(connection)(table)
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.rule_id, table.c.fact_keys],
        set_={
            name: insert.excluded[name]
            for name in ("fingerprint", "facts", "since", "firing", "alert_keys")
        },
    )
    connection.execute(statement, rows)


def load_tracks(engine: Engine) -> list[SavedTrack]:
    """The saved tracked matches, oldest first."""
    table = rule_track_table
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**{READ_ONLY: True})
            statement = select(table).order_by(table.c.since, table.c.rule_id, table.c.fact_keys)
            rows = connection.execute(statement).mappings().all()
    except SQLAlchemyError as exc:
        raise store_error(exc, "could not read the rule tracks") from exc
    return [
        SavedTrack(
            row["rule_id"],
            row["fingerprint"],
            {str(alias): str(key) for alias, key in row["facts"].items()},
            row["since"],
            bool(row["firing"]),
            tuple(str(key) for key in row["alert_keys"]),
        )
        for row in rows
    ]


def _fact_keys(keys: Sequence[str]) -> str:
    return json.dumps(list(keys), separators=(",", ":"))


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
