"""Is the schema at the newest migration? Asked without alembic (10 MB of imports with mako and
pygments), so a daemon started on an up-to-date database never loads it; and when it is not,
the migration runs in a short-lived child process (`migrate_in_child`), so the daemon still
does not keep alembic in memory for the weeks it runs. An in-memory database (replay, tests)
is migrated in process: a child could not see it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Final

import structlog
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StoreError

log = structlog.get_logger(__name__)

VERSIONS: Final = Path(__file__).with_name("migrations") / "versions"
_REVISION_FILE: Final = re.compile(r"^(\d{4})_\w+\.py$")
# The child's own deadline: a PostgreSQL lock held by another agent's migration is waited for.
CHILD_TIMEOUT_S: Final = 600.0


def newest_revision() -> str:
    """The head revision, from the file names (`0006_late_alerts.py`: linear, numbered)."""
    numbers = [m.group(1) for p in VERSIONS.iterdir() if (m := _REVISION_FILE.match(p.name))]
    return max(numbers)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: no alembic_version table, or it cannot say)."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == newest_revision()


def in_memory(engine: Engine) -> bool:
    return memory_url(engine.url)


def memory_url(url: URL) -> bool:
    """An in-memory SQLite database (`sqlite://`, `:memory:`, `mode=memory`): one per process."""
    if url.get_backend_name() != "sqlite":
        return False
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def migrate_in_child(engine: Engine) -> tuple[str | None, str]:
    """`migrate.upgrade` in a child process on the same database; (before, after)."""
    url = engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from agent.store.migratechild import main; main()"],
            input=url.encode(),  # not in argv: the URL may carry a password
            capture_output=True,
            timeout=CHILD_TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StoreError(f"the schema migration did not run: {exc}") from exc
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise StoreError(reason[-1] if reason else f"the schema migration exited {done.returncode}")
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise StoreError(str(answer["error"]))
    before, after = answer["before"], answer["after"]
    if before != after:
        log.info("schema_upgraded", before=before, after=after, process="child")
    return before, after
