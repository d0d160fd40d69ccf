"""The schema check without alembic, and the migration in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent.store import migrate, schemacheck
from agent.store.db import open_engine
from agent.store.repository import Store


def test_the_newest_revision_from_the_file_names_is_alembics_head() -> None:
    assert schemacheck.newest_revision() == migrate.head()


def test_a_file_database_is_migrated_by_a_child_and_then_found_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/agent.db"
    engine = open_engine(url)
    try:
        assert schemacheck.current_revision(engine) is None
        assert schemacheck.migrate_in_child(engine) == (None, migrate.head())
        assert schemacheck.is_current(engine)
        assert schemacheck.migrate_in_child(engine) == (migrate.head(), migrate.head())
    finally:
        engine.dispose()


def test_opening_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/agent.db"
    Store.open(url).close()  # migrated (in a child)
    script = (
        "import sys\n"
        "from agent.store.repository import Store\n"
        f"Store.open({url!r}).close()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako'))\n"
        "print(loaded)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, env=env)
    assert done.stdout.decode().strip().splitlines()[-1] == "[]"
