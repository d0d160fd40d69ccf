"""Opening the store for a command."""

from __future__ import annotations

from agent.config import Settings
from agent.store.repository import Store


def open_for_reading(settings: Settings) -> Store:
    """The configured store, to read."""
    return Store.open(settings.database.url, settings.database.sqlite_synchronous)
