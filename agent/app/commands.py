"""People's commands (ack, resolve, done, cancel) on alerts and actions, from the CLI, the
console or MQTT, applied to the store. Checking them is pure (`agent.decisions.commands`, with
the moves in `agent.decisions.states`); this module only hands a checked one to the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.decisions.commands import Command, command
from agent.errors import TransitionError
from agent.store.repository import ChangeHook, Store

__all__ = ["Command", "TransitionError", "apply", "command"]


def apply(
    store: Store, cmd: Command, at: datetime, on_change: ChangeHook | None = None
) -> dict[str, Any]:
    """Apply through `Store.transition` (the outbox rows, if any, in the same transaction)."""
    return store.transition(
        cmd.target, cmd.id, cmd.command, cmd.by, cmd.note, at=at, on_change=on_change
    )
