"""A failed database call as a readable StoreError: what we were doing, what the driver said.

Its own module so that every store module (db, migrate, repository, snapshot, probe) can use it
without importing another: db.py runs migrate.py's upgrade, so migrate.py cannot import db.py.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError, StatementError

from agent.errors import StoreError


def store_error(exc: SQLAlchemyError, doing: str) -> StoreError:
    """A readable StoreError for a failed database call: what we did, and what the driver said."""
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return StoreError(f"{doing}: {reason}")
