"""Schema migrations: the migrated schema is exactly the tables' metadata, on SQLite and PostgreSQL.

When a table or column is added to agent/store/tables.py without a revision, this fails and says
what is missing: `python -m agent.store.migrate "what changed"` writes the revision to review.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, Table, inspect

from agent.errors import StoreError
from agent.store.db import open_engine
from agent.store.migrate import BASELINE, alembic_config, current, head, upgrade
from agent.store.repository import Store
from agent.store.tables import metadata
from tests.integration.test_cli import cli
from tests.support.databases import DATABASES, database_url


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    with database_url(request.param, tmp_path) as value:
        yield value


def differences(engine: Engine, target: MetaData) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "render_as_batch": engine.dialect.name == "sqlite"},
        )
        return list(compare_metadata(context, target))


def test_the_migrated_schema_equals_the_metadata(url: str) -> None:
    engine = open_engine(url)
    try:
        assert upgrade(engine) == (None, head())
        found = differences(engine, metadata)
        assert found == [], (
            f"agent/store/tables.py and the migrations differ: {found}; add a revision "
            '(python -m agent.store.migrate "what changed", then review it)'
        )
    finally:
        engine.dispose()


def test_the_comparison_notices_a_table_that_has_no_revision(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path}/agent.db")
    try:
        upgrade(engine)
        extended = MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.tables.values():
            table.to_metadata(extended)
        Table("not_migrated_yet", extended, Column("id", Integer, primary_key=True))
        assert [change[0] for change in differences(engine, extended)] == ["add_table"]
    finally:
        engine.dispose()


def test_upgrading_twice_changes_nothing_and_the_cli_says_so(url: str) -> None:
    first = cli("db", "upgrade", env={"AGENT_DATABASE__URL": url})
    assert first.returncode == 0, first.stderr
    assert f"from empty to revision {head()}" in first.stdout
    again = cli("db", "upgrade", env={"AGENT_DATABASE__URL": url})
    assert again.stdout.strip() == f"schema is up to date (revision {head()})"


def test_a_database_made_before_migrations_is_adopted_not_recreated(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path}/old.db")
    try:
        # What the agent did before migrations: create_all of the baseline's tables (revision
        # 0001), with no alembic_version table.
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), BASELINE)
            connection.exec_driver_sql("DROP TABLE alembic_version")
        before, after = upgrade(engine)
        assert (before, after) == (None, head())
        with engine.connect() as connection:
            assert current(connection) == head()
    finally:
        engine.dispose()


def test_a_database_from_a_newer_agent_is_refused_with_a_reason(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/newer.db"
    Store.open(url).close()
    engine = open_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(StoreError, match="9999"):
            upgrade(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_agents_starting_together_migrate_in_turn(tmp_path: Path) -> None:
    with database_url("postgresql", tmp_path) as url:
        errors: list[BaseException] = []

        def start() -> None:
            try:
                Store.open(url).close()
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        engine = open_engine(url)
        try:
            assert {"action", "alert", "dead_letter"} <= set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
