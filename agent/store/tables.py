"""The database tables: actions, alerts, dead letters and the outbox; one open row per dedup key.

Every table is defined here, on one `metadata` with a naming convention, so migrations can own it.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from agent.model import ACTION_STATUSES, ALERT_STATUSES

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

# The partial-index predicates. Queries repeat them verbatim (as text, not bound parameters):
# SQLite's planner uses a partial index only when the query's WHERE contains the same term.
ACTION_OPEN = "status IN ('open', 'acknowledged')"
ALERT_OPEN = "status IN ('firing', 'acknowledged')"

# 64-bit ids on PostgreSQL; SQLite needs exactly INTEGER for an auto-incrementing rowid alias.
ID = BigInteger().with_variant(Integer(), "sqlite")
JSON_DOCUMENT = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware, on SQLite too.

    SQLite keeps no offset (it would hand back naive datetimes), so values are converted to UTC
    on the way in and tagged as UTC on the way out. Naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: timestamps must carry a zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _status_check(statuses: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{status}'" for status in statuses)
    return CheckConstraint(f"status IN ({allowed})", name="status")


def _open_key_index(table: str, predicate: str) -> Index:
    return Index(
        f"uq_{table}_open_dedup_key",
        "dedup_key",
        unique=True,
        sqlite_where=text(predicate),
        postgresql_where=text(predicate),
    )


class TableModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of the agent's tables: they share `metadata` (and its naming convention)."""


class Action(TableModel, table=True):
    """A reorder, work order or idle-capacity record; `count` is how often rules asked for it."""

    __tablename__ = "action"
    __table_args__ = (_open_key_index("action", ACTION_OPEN), _status_check(ACTION_STATUSES))

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    kind: str = Field(sa_column=Column(String, nullable=False))
    dedup_key: str = Field(sa_column=Column(String, nullable=False))
    status: str = Field(sa_column=Column(String, nullable=False))
    site: str = Field(sa_column=Column(String, nullable=False))
    subject: str = Field(sa_column=Column(String, nullable=False))
    params: dict[str, Any] = Field(sa_column=Column(JSON_DOCUMENT, nullable=False))
    rule_id: str = Field(sa_column=Column(String, nullable=False))
    rule_set_hash: str = Field(sa_column=Column(String, nullable=False))
    matched: dict[str, Any] = Field(sa_column=Column(JSON_DOCUMENT, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_seen: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    count: int = Field(sa_column=Column(Integer, nullable=False))
    acknowledged_by: str | None = Field(default=None, sa_column=Column(String))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    closed_by: str | None = Field(default=None, sa_column=Column(String))
    note: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="", server_default="")
    )


class Alert(TableModel, table=True):
    """An alert while it fires; repeats bump `count` and `last_seen` instead of adding rows."""

    __tablename__ = "alert"
    __table_args__ = (
        _open_key_index("alert", ALERT_OPEN),
        # A new episode links to the key's latest row (`previous_id`): without it, one scan of
        # every alert ever stored per new alert (a 10k-alert storm spent 56% of its tick there).
        Index("ix_alert_dedup_key_id", "dedup_key", "id"),
        _status_check(ALERT_STATUSES),
    )

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    dedup_key: str = Field(sa_column=Column(String, nullable=False))
    severity: str = Field(sa_column=Column(String, nullable=False))
    status: str = Field(sa_column=Column(String, nullable=False))
    message: str = Field(sa_column=Column(Text, nullable=False))
    site: str = Field(sa_column=Column(String, nullable=False))
    subject: str = Field(sa_column=Column(String, nullable=False))
    rule_id: str = Field(sa_column=Column(String, nullable=False))
    rule_set_hash: str = Field(sa_column=Column(String, nullable=False))
    matched: dict[str, Any] = Field(sa_column=Column(JSON_DOCUMENT, nullable=False))
    first_seen: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_seen: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    count: int = Field(sa_column=Column(Integer, nullable=False))
    # `message` and `matched` are the first firing's; a repeat's text and facts go here (the
    # latest by `at`), so the two never mix (None until the first repeat).
    last_message: str | None = Field(default=None, sa_column=Column(Text))
    last_matched: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON_DOCUMENT))
    acknowledged_by: str | None = Field(default=None, sa_column=Column(String))
    resolved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    resolved_by: str | None = Field(default=None, sa_column=Column(String))
    note: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="", server_default="")
    )
    # Re-notify every `repeat_s` seconds while firing and not acknowledged (None: never).
    repeat_s: float | None = Field(default=None, sa_column=Column(Float))
    # Decided on late data (a gateway's backfill): its times are plant times from the past.
    late: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    # The previous episode of the same key: a resolved alert that fires again is a new row.
    previous_id: int | None = Field(default=None, sa_column=Column(ID))


class DeadLetter(TableModel, table=True):
    """A message that could not be decoded or validated, kept byte for byte with the reason."""

    __tablename__ = "dead_letter"

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    topic: str = Field(sa_column=Column(String, nullable=False))
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


OUTBOX_STATUSES = ("pending", "sent", "failed", "skipped")
OUTBOX_PENDING = "status = 'pending'"


class Outbox(TableModel, table=True):
    """A notification or MQTT publication to deliver, written with the decision that caused it.

    `channel` names a configured channel (`mqtt` for the agent's own publications); the sender
    moves a row from `pending` to `sent`, `failed` (gave up, `last_error` says why) or `skipped`.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "not_before"),
        Index("ix_outbox_ref", "ref_table", "ref_id"),
        _status_check(OUTBOX_STATUSES),
    )

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    dedup_key: str = Field(sa_column=Column(String, nullable=False, unique=True))
    channel: str = Field(sa_column=Column(String, nullable=False))
    route: str = Field(sa_column=Column(String, nullable=False))
    event: str = Field(sa_column=Column(String, nullable=False))
    ref_table: str | None = Field(default=None, sa_column=Column(String))
    ref_id: int | None = Field(default=None, sa_column=Column(ID))
    severity: str | None = Field(default=None, sa_column=Column(String))
    topic: str | None = Field(default=None, sa_column=Column(String))
    title: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(String, nullable=False))
    attempts: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    not_before: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    claimed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    claimed_by: str | None = Field(default=None, sa_column=Column(String))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    last_error: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="", server_default="")
    )


class RuleSetRecord(TableModel, table=True):
    """A rule set the agent loaded: its hash (named by every decision), files, when, by what."""

    __tablename__ = "rule_set"

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    hash: str = Field(sa_column=Column(String, nullable=False))
    files: list[str] = Field(sa_column=Column(JSON_DOCUMENT, nullable=False))
    loaded_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    loaded_by: str = Field(sa_column=Column(String, nullable=False))


class Receipt(TableModel, table=True):
    """Goods received for an SKU, once per `receipt_key`: which reorders it went to (`applied`)
    and what no open reorder asked for (`over_received`)."""

    __tablename__ = "receipt"

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    receipt_key: str = Field(sa_column=Column(String, nullable=False, unique=True))
    site: str = Field(sa_column=Column(String, nullable=False))
    subject: str = Field(sa_column=Column(String, nullable=False))
    quantity: float = Field(sa_column=Column(Float, nullable=False))
    reference: str = Field(sa_column=Column(String, nullable=False, default=""))
    applied: list[Any] = Field(sa_column=Column(JSON_DOCUMENT, nullable=False))
    over_received: float = Field(sa_column=Column(Float, nullable=False, default=0))
    received_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class FactSnapshot(TableModel, table=True):
    """The world state as of the last commit: one row per fact, replaced when the fact changes."""

    __tablename__ = "fact_snapshot"

    key: str = Field(sa_column=Column(String, primary_key=True))
    kind: str = Field(sa_column=Column(String, nullable=False))
    site: str = Field(sa_column=Column(String, nullable=False))
    subject: str = Field(sa_column=Column(String, nullable=False))
    fields: dict[str, Any] = Field(sa_column=Column(JSON_DOCUMENT, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class RuleTrack(TableModel, table=True):
    """A rule's match on a tuple of facts as of the last commit: pending (its `for` running
    since `since`) or firing (with the alerts it raised), so a restart resumes both."""

    __tablename__ = "rule_track"

    rule_id: str = Field(sa_column=Column(String, primary_key=True))
    fact_keys: str = Field(sa_column=Column(String, primary_key=True))  # JSON list, alias order
    fingerprint: str = Field(sa_column=Column(String, nullable=False))
    facts: dict[str, Any] = Field(sa_column=Column(JSON_DOCUMENT, nullable=False))
    since: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    firing: bool = Field(sa_column=Column(Boolean, nullable=False))
    alert_keys: list[str] = Field(sa_column=Column(JSON_DOCUMENT, nullable=False))


class ProcessedMessage(TableModel, table=True):
    """A digest of each committed message, so a redelivery of it is recognised (newest N kept)."""

    __tablename__ = "processed_message"

    id: int | None = Field(default=None, sa_column=Column(ID, primary_key=True))
    digest: str = Field(sa_column=Column(String, nullable=False, unique=True))


class ReadingRow(TableModel, table=True):
    """A metric of a subject over one `history.resolution_s` bucket: min, max, mean, last and
    how many samples; a batch with more samples of the bucket merges into the row.

    Times are epoch seconds, not timestamps: the table takes a row per metric and minute of
    every machine, and text timestamps on SQLite made a row half as big again and its writes
    twice as slow (bench/history.py)."""

    __tablename__ = "reading"
    __table_args__ = (Index("ix_reading_bucket_s", "bucket_s"), {"sqlite_with_rowid": False})

    kind: str = Field(sa_column=Column(String, primary_key=True))
    site: str = Field(sa_column=Column(String, primary_key=True))
    subject: str = Field(sa_column=Column(String, primary_key=True))
    metric: str = Field(sa_column=Column(String, primary_key=True))
    bucket_s: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    count: int = Field(sa_column=Column(Integer, nullable=False))
    min: float = Field(sa_column=Column(Float, nullable=False))
    max: float = Field(sa_column=Column(Float, nullable=False))
    mean: float = Field(sa_column=Column(Float, nullable=False))
    last: float = Field(sa_column=Column(Float, nullable=False))
    last_at_s: float = Field(sa_column=Column(Float, nullable=False))


action_table: Table = Action.__table__  # type: ignore[attr-defined]
alert_table: Table = Alert.__table__  # type: ignore[attr-defined]
dead_letter_table: Table = DeadLetter.__table__  # type: ignore[attr-defined]
outbox_table: Table = Outbox.__table__  # type: ignore[attr-defined]
rule_set_table: Table = RuleSetRecord.__table__  # type: ignore[attr-defined]
receipt_table: Table = Receipt.__table__  # type: ignore[attr-defined]
fact_snapshot_table: Table = FactSnapshot.__table__  # type: ignore[attr-defined]
rule_track_table: Table = RuleTrack.__table__  # type: ignore[attr-defined]
processed_message_table: Table = ProcessedMessage.__table__  # type: ignore[attr-defined]
reading_table: Table = ReadingRow.__table__  # type: ignore[attr-defined]
