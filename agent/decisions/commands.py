"""A person's command (ack, resolve, done, cancel) on an alert or an action, checked, from its
words or from an MQTT message: no I/O, so the runner can use it; the store applies it.

A command names its target as `alert` or `action` and an id; when it does not, `ack` and
`resolve` mean an alert, `done` and `cancel` an action (`states.TARGETS`). Illegal ones raise
`TransitionError`, whose text is the reason a dead letter or the CLI gives.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from agent.decisions import states
from agent.errors import TransitionError
from agent.model import Message, Rejected

Target = states.Table


@dataclass(frozen=True, slots=True)
class Command:
    command: str
    target: Target
    id: int
    by: str
    note: str = ""


def command(name: str, id: int, by: str, note: str = "", target: str | None = None) -> Command:
    """A checked command: the target defaults by command; a target it cannot apply to raises."""
    return Command(name, states.target(name, id, target), id, by, note)


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
