"""People's commands (ack, resolve, done, cancel) on alerts and actions, from the CLI or MQTT.

A command names its target as `alert` or `action` and an id; when it does not, `ack` and
`resolve` mean an alert, `done` and `cancel` an action. Illegal ones raise `TransitionError`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from agent.errors import TransitionError
from agent.model import Message, Rejected
from agent.store.repository import ChangeHook, Store

Target = Literal["alert", "action"]
COMMAND_TARGETS: dict[str, tuple[Target, ...]] = {
    "ack": ("alert", "action"),
    "resolve": ("alert",),
    "done": ("action",),
    "cancel": ("action",),
}


@dataclass(frozen=True, slots=True)
class Command:
    command: str
    target: Target
    id: int
    by: str
    note: str = ""


def command(name: str, id: int, by: str, note: str = "", target: str | None = None) -> Command:
    """A checked command: the target defaults by command; a target it cannot apply to raises."""
    allowed = COMMAND_TARGETS.get(name)
    if allowed is None:
        raise TransitionError(f"unknown command {name!r}; use one of {', '.join(COMMAND_TARGETS)}")
    chosen = target or allowed[0]
    if chosen not in allowed:
        raise TransitionError(f"{name} applies to {' or '.join(allowed)}, not to {chosen} {id}")
    return Command(name, chosen, id, by, note)


def apply(
    store: Store, cmd: Command, at: datetime, on_change: ChangeHook | None = None
) -> dict[str, Any]:
    """Apply through `Store.transition` (the outbox rows, if any, in the same transaction)."""
    return store.transition(
        cmd.target, cmd.id, cmd.command, cmd.by, cmd.note, at=at, on_change=on_change
    )


def from_message(message: Message, allowed_by: Sequence[str]) -> Command:
    """The command an MQTT message carries; TransitionError if refused (the dead-letter reason)."""
    fields = message.fields
    by = str(fields.get("by", ""))
    if allowed_by and by not in allowed_by:
        raise TransitionError(f"{by!r} is not in commands.allowed_by")
    target = fields.get("type")
    return command(
        str(fields.get("command")),
        int(fields.get("id") or 0),  # type: ignore[arg-type]
        by,
        str(fields.get("note") or ""),
        str(target) if target is not None else None,
    )


def refused(message: Message, reason: str) -> Rejected:
    """A dead letter for a refused command: its validated payload and the reason."""
    payload = dict(message.fields)
    payload["ts"] = message.ts.isoformat()
    raw = json.dumps(payload, sort_keys=True).encode()
    return Rejected(message.topic, raw, f"command refused: {reason}", message.received_at)
