"""The domain's values: what comes in (Message, Rejected), what rules see (Fact), what goes out
(ActionDecision, AlertDecision). Frozen and free of I/O; validated at the edges, trusted here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

MessageKind = Literal["stock", "receipt", "telemetry", "command"]
FactKind = Literal["stock", "machine"]
ActionKind = Literal["reorder", "work_order", "idle_capacity"]
Severity = Literal["info", "warning", "critical"]

ACTION_KINDS: tuple[str, ...] = ("reorder", "work_order", "idle_capacity")
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
ACTION_STATUSES: tuple[str, ...] = ("open", "acknowledged", "done", "cancelled")
ALERT_STATUSES: tuple[str, ...] = ("firing", "acknowledged", "resolved")

# A field value as rules see it: JSON scalars, or a list of them (e.g. a machine's spare_parts).
Scalar = str | int | float | bool | None
Value = Scalar | list[Scalar]


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded, validated MQTT message.

    `subject` is the SKU for stock and receipt messages, the machine id for telemetry, and ""
    for commands. `fields` holds the payload's validated fields (numbers are int or float and
    finite; `ts` removed, since it is `ts` here).
    """

    kind: MessageKind
    topic: str
    site: str
    subject: str
    fields: Mapping[str, Value]
    ts: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that could not be decoded or validated: it becomes a dead letter, never lost."""

    topic: str
    raw: bytes
    reason: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Fact:
    """The current state of one subject (an SKU at a site, or a machine), as rules see it.

    `fields` always contains `kind`, `site` and `sku` or `machine`, the latest message's fields,
    the master data of the subject, and the derived values (`projected`, ...).
    """

    kind: FactKind
    site: str
    subject: str
    fields: Mapping[str, Value]
    updated_at: datetime

    @property
    def key(self) -> str:
        """A stable id for the subject: one fact per key, replaced on update."""
        return f"{self.kind}/{self.site}/{self.subject}"


@dataclass(frozen=True, slots=True)
class ActionDecision:
    """A rule asks for an action: at most one open action per `dedup_key`."""

    kind: ActionKind
    dedup_key: str
    site: str
    subject: str
    params: Mapping[str, Value]
    rule_id: str
    rule_set_hash: str
    matched: Mapping[str, Mapping[str, Value]]
    at: datetime


@dataclass(frozen=True, slots=True)
class AlertDecision:
    """A rule raises an alert: at most one open alert per `dedup_key`; repeats are counted."""

    dedup_key: str
    severity: Severity
    message: str
    site: str
    subject: str
    rule_id: str
    rule_set_hash: str
    matched: Mapping[str, Mapping[str, Value]]
    at: datetime
    repeat_s: float | None = None
    late: bool = False  # decided on readings that arrived long after their `ts` (a backfill)


@dataclass(frozen=True, slots=True)
class AlertResolved:
    """A rule's `resolve_when` holds: the open alert with `dedup_key` becomes resolved."""

    dedup_key: str
    at: datetime
    rule_id: str
    rule_set_hash: str
    reason: str


@dataclass(frozen=True, slots=True)
class ActionClosed:
    """A rule's `resolve_when` holds and its action is a record of a state that ended (an
    `idle_capacity` record when the machine runs again): the open action becomes done."""

    dedup_key: str
    at: datetime
    rule_id: str
    rule_set_hash: str
    reason: str


@dataclass(frozen=True, slots=True)
class PublishDecision:
    """A rule's `publish` action: one MQTT message for the daemon to send after the commit."""

    topic: str
    payload: Mapping[str, Value]
    retain: bool
    rule_id: str
    rule_set_hash: str
    at: datetime


@dataclass(frozen=True, slots=True)
class NotifyDecision:
    """A rule's `notify` action: tell the people behind a named route (see agent/notify/)."""

    route: str
    severity: Severity
    message: str
    dedup_key: str  # the alert key of the same rule and facts
    site: str
    subject: str
    rule_id: str
    rule_set_hash: str
    matched: Mapping[str, Mapping[str, Value]]
    at: datetime


@dataclass(frozen=True, slots=True)
class OpenReorder:
    """A reorder the store holds open (or the core just opened): what is still to come.

    `dedup_key` names the one open row; `received` is what receipts have delivered so far.
    """

    dedup_key: str
    site: str
    sku: str
    quantity: float
    received: float
    opened_at: datetime

    @property
    def outstanding(self) -> float:
        return max(self.quantity - self.received, 0.0)


@dataclass(frozen=True, slots=True)
class AppliedReceipt:
    """A receipt the store holds: applied once; counts older than it are out of date."""

    receipt_key: str
    site: str
    sku: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    """The part of a receipt that went to one open reorder."""

    dedup_key: str
    quantity: float  # taken by this reorder from the receipt
    received: float  # the reorder's total received after this receipt
    closes: bool  # fully received: the reorder is done


@dataclass(frozen=True, slots=True)
class ReceiptDecision:
    """Goods arrived for an SKU: the open reorders they close or reduce, oldest first, and any
    quantity no open reorder asked for (`over_received`). `receipt_key` makes it idempotent."""

    receipt_key: str
    site: str
    subject: str
    quantity: float
    reference: str
    lines: tuple[ReceiptLine, ...]
    over_received: float
    at: datetime


Decision = (
    ActionDecision
    | AlertDecision
    | AlertResolved
    | ActionClosed
    | PublishDecision
    | NotifyDecision
    | ReceiptDecision
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the core made of a batch: decisions to store, messages to dead-letter, and the
    commands (ack, resolve, ...) people sent, which change stored rows without the rules; and
    the messages the core took (the daemon's readings history summarizes them in the same
    transaction; replay and rule tests leave them)."""

    decisions: list[Decision] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    commands: list[Message] = field(default_factory=list)
    taken: list[Message] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SavedTrack:
    """A rule's match on a tuple of facts as the store keeps it across a restart: pending since
    `since` (its `for` running), or firing with the alerts it raised."""

    rule_id: str
    fingerprint: str
    facts: Mapping[str, str]  # alias -> fact key, in the rule's alias order
    since: datetime
    firing: bool
    alert_keys: tuple[str, ...] = ()

    @property
    def fact_keys(self) -> tuple[str, ...]:
        return tuple(self.facts.values())


@dataclass(frozen=True, slots=True)
class TrackChanges:
    """What changed in the tracked matches since the last commit: saved anew, or gone."""

    saved: tuple[SavedTrack, ...] = ()
    removed: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (rule id, fact keys)

    def __bool__(self) -> bool:
        return bool(self.saved or self.removed)


NO_TRACK_CHANGES = TrackChanges()
