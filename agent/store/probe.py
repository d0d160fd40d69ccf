"""Is the database writable right now? A write that changes nothing, rolled back.

Used by `/readyz`: it takes the write lock on SQLite and is refused by a read-only PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from agent.store.errors import store_error

# Matches no row, but PostgreSQL refuses any UPDATE in a read-only transaction or on a standby,
# and SQLite must get the write lock (BEGIN IMMEDIATE) first.
_PROBE = text("UPDATE dead_letter SET id = id WHERE 1 = 0")


def writable_problem(engine: Engine) -> str | None:
    """None when a write would succeed; otherwise what the database said."""
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            connection.execute(_PROBE)
            transaction.rollback()
    except SQLAlchemyError as exc:
        return str(store_error(exc, "database not writable"))
    return None
