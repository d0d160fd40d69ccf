"""A database the CLI cannot open: one line with the URL (password masked) and a hint, exit 1,
no traceback; commands that only read never create or migrate a database."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from tests.integration.test_cli import cli
from tests.support.databases import DATABASES, database_url

READERS = [
    ("alerts",),
    ("actions", "--all"),
    ("explain", "1"),
    ("machines",),
]


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("argv", READERS, ids=lambda argv: argv[0])
def test_a_missing_sqlite_file_is_an_error_with_a_hint_and_is_not_created(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    path = tmp_path / "agent.db"
    done = cli(*argv, env={"AGENT_DATABASE__URL": f"sqlite:///{path}"})
    assert done.returncode == 1
    error = one_line_error(done.stderr)
    assert f"sqlite:///{path}" in error and "does not exist" in error
    assert "hint: run factory-agent run once, or check [database] url" in error
    assert not path.exists()


def test_changing_a_row_of_a_missing_database_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    done = cli("ack", "1", env={"AGENT_DATABASE__URL": f"sqlite:///{path}"})
    assert done.returncode == 1
    assert "does not exist" in one_line_error(done.stderr)
    assert not path.exists()


def test_an_empty_file_is_not_migrated_by_a_listing(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    path.write_bytes(b"")
    done = cli("alerts", env={"AGENT_DATABASE__URL": f"sqlite:///{path}"})
    assert done.returncode == 1
    error = one_line_error(done.stderr)
    assert "holds no agent tables yet" in error and "factory-agent db upgrade" in error
    with sqlite3.connect(path) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == []


def test_a_path_that_cannot_be_a_database(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    url = f"sqlite:///{blocker}/agent.db"
    done = cli("db", "upgrade", env={"AGENT_DATABASE__URL": url})
    assert done.returncode == 1
    error = one_line_error(done.stderr)
    assert error.startswith(f"factory-agent: cannot open the database {url}: ")
    assert "hint: check [database] url" in error


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("argv", [("alerts",), ("ack", "1"), ("db", "upgrade")], ids=str)
def test_postgresql_down_masks_the_password_and_hints(argv: tuple[str, ...]) -> None:
    url = f"postgresql+psycopg://planner:s3cret@127.0.0.1:{free_port()}/agent"
    done = cli(*argv, env={"AGENT_DATABASE__URL": url})
    assert done.returncode == 1
    error = one_line_error(done.stderr)
    assert "s3cret" not in error
    assert f"postgresql+psycopg://planner:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in error
    assert "Connection refused" in error and "hint: is the database running" in error


@pytest.mark.parametrize("backend", DATABASES)
def test_an_empty_database_is_refused_unmigrated_then_listed_once_upgraded(
    backend: str, tmp_path: Path
) -> None:
    with database_url(backend, tmp_path) as url:
        if backend == "sqlite":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
            Path(url.removeprefix("sqlite:///")).write_bytes(b"")
        env = {"AGENT_DATABASE__URL": url}
        refused = cli("alerts", env=env)
        assert refused.returncode == 1
        assert "holds no agent tables yet" in one_line_error(refused.stderr)
        refused_again = cli("dead-letters", "list", env=env)
        assert "holds no agent tables yet" in refused_again.stderr  # still not migrated
        assert cli("db", "upgrade", env=env).returncode == 0
        listed = cli("alerts", env=env)
        assert (listed.returncode, listed.stdout.strip()) == (0, "no open alerts")
