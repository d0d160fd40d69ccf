"""The schema's migrations (alembic, in `agent/store/migrations/`): upgrade to head, or check.

Run at start-up and by `factory-agent db upgrade`; agents starting together take turns.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StoreError
from agent.store.errors import store_error

log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# The revision that matches the tables `create_all` made before migrations existed.
BASELINE = "0001"
# pg_advisory_xact_lock key: agents starting at once against one database migrate in turn.
_LOCK_KEY = 0x6661_6374_6F72_79  # "factory"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision in one transaction; (before, after).

    Raises StoreError when the database cannot be migrated (unreachable, or a revision this
    version does not know: a newer agent migrated it).
    """
    try:
        return _upgrade(engine)
    except CommandError as exc:
        raise StoreError(f"cannot migrate {_shown(engine)}: {exc}") from exc
    except SQLAlchemyError as exc:
        raise store_error(exc, f"could not create the schema in {_shown(engine)}") from exc


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _upgrade(engine: Engine) -> tuple[str | None, str]:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        before = current(connection)
        if before is None and inspect(connection).has_table("action"):
            # A database made by create_all before migrations: it holds the baseline's tables.
            command.stamp(alembic_config(connection), BASELINE)
            log.info("schema_stamped", revision=BASELINE)
        command.upgrade(alembic_config(connection), "head")
        after = current(connection)
    if after != before:
        log.info("schema_upgraded", before=before, after=after)
    assert after is not None
    return before, after


def autogenerate(message: str) -> Path:
    """Write a new revision for what tables.py has and the migrations lack (for developers).

    `python -m agent.store.migrate "add the outbox table"`; review the file it writes.
    """
    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(f"sqlite:///{directory}/schema.db")
        try:
            _upgrade(engine)
            with engine.begin() as connection:
                number = head()
                rev_id = f"{int(number) + 1:04d}" if number.isdigit() else None
                script = command.revision(
                    alembic_config(connection), message=message, autogenerate=True, rev_id=rev_id
                )
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


if __name__ == "__main__":
    print(autogenerate(" ".join(sys.argv[1:]) or "schema change"))
