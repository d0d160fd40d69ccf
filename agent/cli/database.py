"""Opening the store for a command, and saying in one line why it cannot be opened.

Commands that only read (alerts, actions, dead-letters list/show, explain, machines) never
create or migrate a database: a missing SQLite file is an error with a hint, not a new empty
database that then lists nothing.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from agent.config import Settings, redact_url
from agent.errors import StoreError
from agent.store.db import open_engine
from agent.store.errors import store_error
from agent.store.repository import Store

HINT_CREATE = "run factory-agent run once, or check [database] url"
HINT_REACH = "is the database running and reachable? check [database] url (AGENT_DATABASE__URL)"
HINT_PATH = "check [database] url (AGENT_DATABASE__URL): a file in a directory the agent may write"
_TABLES = {"action", "alert", "dead_letter"}
HINT_SCHEMA = "run factory-agent db upgrade, or check [database] url"


class DatabaseUnavailable(StoreError):
    """The configured database cannot be opened: one line with its URL, the reason and a hint."""

    def __init__(self, url: str, reason: str, hint: str) -> None:
        self.url, self.reason, self.hint = shown(url), reason, hint
        super().__init__(f"cannot open the database {self.url}: {reason} (hint: {hint})")


def shown(url: str) -> str:
    """The URL as it may be printed: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return redact_url(url)


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for memory, URI filenames and other databases."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.query.get("mode") == "memory":
        return None
    if parsed.database in (None, "", ":memory:") or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database).expanduser()


def open_for_reading(settings: Settings) -> Store:
    """The configured store, to read: it must exist and hold the agent's tables already."""
    url = settings.database.url
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise DatabaseUnavailable(url, f"{path} does not exist", HINT_CREATE)
    engine = _engine(url, settings)
    try:
        _check_tables(url, engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


def open_for_writing(
    settings: Settings, url: str | None = None, *, must_exist: bool = False
) -> Store:
    """The store at `url` (default: the configured one), migrated as needed, and created
    unless `must_exist` (changing a row of a database that is not there is a wrong URL)."""
    url = url or settings.database.url
    path = sqlite_file(url)
    if must_exist and path is not None and not path.is_file():
        raise DatabaseUnavailable(url, f"{path} does not exist", HINT_CREATE)
    try:
        return Store.open(url, settings.database.sqlite_synchronous)
    except StoreError as exc:
        raise unavailable(url, exc) from exc
    except SQLAlchemyError as exc:
        raise unavailable(url, store_error(exc, "failed")) from exc


def unavailable(url: str, exc: Exception) -> DatabaseUnavailable:
    """The store's error as one line: the URL, the reason (once) and the hint for its kind."""
    return DatabaseUnavailable(url, _reason(exc, url), hint_for(url))


def hint_for(url: str) -> str:
    return HINT_PATH if sqlite_file(url) is not None else HINT_REACH


def _engine(url: str, settings: Settings) -> Engine:
    try:
        return open_engine(url, settings.database.sqlite_synchronous)
    except StoreError as exc:
        raise unavailable(url, exc) from exc


def _check_tables(url: str, engine: Engine) -> None:
    try:
        with engine.connect() as connection:
            present = _TABLES & set(inspect(connection).get_table_names())
    except SQLAlchemyError as exc:
        raise unavailable(url, store_error(exc, "cannot connect")) from exc
    if present != _TABLES:
        raise DatabaseUnavailable(url, "it holds no agent tables yet", HINT_SCHEMA)


def _reason(exc: Exception, url: str) -> str:
    """The error's first line, without a repeat of the URL (shown once, in front)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for form in (url, shown(url)):
        text = text.replace(f" in {form}", "").replace(f" {form}", "")
    return text
