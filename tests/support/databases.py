"""Real databases for integration tests: a SQLite file always, PostgreSQL when
AGENT_TEST_POSTGRES_URL is set (each test in a fresh schema of its own, dropped afterwards).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from agent.store.db import open_engine

POSTGRES_URL_ENV = "AGENT_TEST_POSTGRES_URL"

# Parametrize a fixture with these: PostgreSQL is skipped, with the reason, only when the
# variable is unset; when it is set, a PostgreSQL that cannot be reached fails the test.
DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not os.environ.get(POSTGRES_URL_ENV),
                reason=f"PostgreSQL not configured: set {POSTGRES_URL_ENV}",
            ),
        ],
    ),
]


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of `backend` ("sqlite" or "postgresql"), for one test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'agent.db'}"
        return
    if backend != "postgresql":
        raise ValueError(f"unknown test database backend {backend!r}")
    base_url = os.environ.get(POSTGRES_URL_ENV)
    if not base_url:
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_URL_ENV}")
    with postgres_schema(base_url) as url:
        yield url


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """Create a uniquely named schema, yield a URL whose search_path is that schema, drop it.

    Tests running in parallel, or again after a crash, never see each other's tables.
    """
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = open_engine(base_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = make_url(base_url)
        options = f"{url.query.get('options', '')} -csearch_path={schema}".strip()
        yield url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
