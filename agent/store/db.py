"""Opening the database: a SQLite file (or memory, for replay) or PostgreSQL through psycopg 3.

SQLite gets WAL, a busy timeout, foreign keys, a chosen `synchronous` and `BEGIN IMMEDIATE`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from agent.errors import ConfigError, StoreError
from agent.store import schemacheck

log = structlog.get_logger(__name__)

SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
SQLITE_BUSY_TIMEOUT_MS = 5000

# Execution option: a read-only unit of work on SQLite starts with a deferred BEGIN, so listing
# rows does not queue behind (or hold) the single writer's lock.
READ_ONLY = "agent_read_only"

_URL_HINT = (
    "use sqlite:///path/to/agent.db, sqlite:// (memory) or postgresql+psycopg://user@host/db"
)


def open_engine(url: str, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine for `url`, configured as the store expects; nothing is connected yet."""
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _open_sqlite(parsed, _synchronous(sqlite_synchronous))
    if backend in ("postgresql", "postgres"):
        return _open_postgresql(parsed)
    raise StoreError(f"unsupported database {backend!r} in {_shown(parsed)}: {_URL_HINT}")


def create_schema(engine: Engine) -> None:
    """Bring the schema to the newest migration (agent/store/migrations), creating it if new:
    nothing to do (and alembic not imported) when it is at the newest already; a file or a
    server migrated by a child process; an in-memory database here (see `schemacheck`)."""
    if schemacheck.is_current(engine):
        return
    if schemacheck.in_memory(engine):
        from agent.store.migrate import upgrade

        upgrade(engine)
        return
    schemacheck.migrate_in_child(engine)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}; {_URL_HINT}") from exc


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _synchronous(setting: str) -> str:
    level = setting.strip().upper()
    if level not in SQLITE_SYNCHRONOUS:
        allowed = ", ".join(SQLITE_SYNCHRONOUS)
        raise ConfigError(f"sqlite_synchronous {setting!r} is not one of {allowed}")
    return level


def json_text(value: Any) -> str:
    """JSON columns (the fact snapshot, decisions' matched facts) written by orjson: the
    snapshot of a batch's facts took 4% of the daemon's time with `json.dumps`. What orjson
    cannot write (an integer beyond 64 bits) goes through `json.dumps`."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def _open_sqlite(url: URL, synchronous: str) -> Engine:
    if url.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise StoreError(f"unsupported SQLite driver in {_shown(url)}: {_URL_HINT}")
    if schemacheck.memory_url(url):
        # One connection for every user, or each would see its own empty database.
        engine = create_engine(
            url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            json_serializer=json_text,
        )
    else:
        _make_parent_directory(url)
        engine = create_engine(url, json_serializer=json_text)
    _configure_sqlite(engine, synchronous)
    log.info("database_opened", backend="sqlite", url=_shown(url), synchronous=synchronous)
    return engine


def _make_parent_directory(url: URL) -> None:
    if url.database is None or url.database.startswith("file:"):
        return
    parent = Path(url.database).expanduser().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the database directory {parent}: {exc}") from exc


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    """SQLAlchemy's recipe: take BEGIN away from the sqlite3 module and emit it ourselves."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def _open_postgresql(url: URL) -> Engine:
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername != "postgresql+psycopg":
        raise StoreError(f"unsupported PostgreSQL driver in {_shown(url)}: {_URL_HINT}")
    try:
        engine = create_engine(url, pool_pre_ping=True, json_serializer=json_text)
    except ImportError as exc:
        raise StoreError(
            "PostgreSQL needs psycopg 3: pip install 'factory-agent[postgres]'"
        ) from exc
    log.info("database_opened", backend="postgresql", url=_shown(url))
    return engine
