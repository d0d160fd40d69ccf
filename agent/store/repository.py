"""The store: decisions and dead letters written in one transaction, read back, and transitioned.

One open row per dedup key is the database's job (a partial unique index); this module only asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, Self

import structlog
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from agent.decisions import states
from agent.errors import StoreError, TransitionError
from agent.model import (
    ACTION_STATUSES,
    ALERT_STATUSES,
    NO_TRACK_CHANGES,
    AppliedReceipt,
    Decision,
    Fact,
    OpenReorder,
    Outcome,
    ReceiptDecision,
    Rejected,
    SavedTrack,
    TrackChanges,
)
from agent.store.batchwrite import DecisionWriter, json_ready
from agent.store.batchwrite import StoredChange as StoredChange
from agent.store.batchwrite import json_friendly as json_friendly
from agent.store.db import READ_ONLY, create_schema, open_engine
from agent.store.errors import store_error
from agent.store.probe import writable_problem
from agent.store.snapshot import (
    committed,
    load_facts,
    load_tracks,
    mark_processed,
    save_facts,
    save_tracks,
)
from agent.store.tables import (
    ACTION_OPEN,
    ALERT_OPEN,
    action_table,
    alert_table,
    dead_letter_table,
    receipt_table,
    rule_set_table,
)

log = structlog.get_logger(__name__)

TableName = Literal["action", "alert"]

# How often to go round "update the open row, else insert one" when another writer keeps
# opening or closing the same key in between; in practice the second round always settles it.
_MAX_ROUNDS = 3
# Keys per "which are open?" query: well below SQLite's bound-parameter limit.
_KEYS_PER_QUERY = 500


# Called inside the transaction that stored the changes, e.g. to write outbox rows with them.
ChangeHook = Callable[[Connection, Sequence[StoredChange]], None]


# Who made a person's move and when, by the status it ends in (the moves: `states.MOVES`).
_RECORDED: dict[str, tuple[str, str | None]] = {
    "acknowledged": ("acknowledged_by", None),
    "resolved": ("resolved_by", "resolved_at"),
    "done": ("closed_by", "closed_at"),
    "cancelled": ("closed_by", "closed_at"),
}


class Store:
    """Actions, alerts and dead letters in SQLite or PostgreSQL, safe for concurrent writers."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._decisions = DecisionWriter(engine)
        self._new_receipt = _insert_receipt_once(engine)

    @classmethod
    def open(cls, url: str, sqlite_synchronous: str = "FULL") -> Self:
        """Open the database at `url` and create any missing tables."""
        engine = open_engine(url, sqlite_synchronous)
        try:
            create_schema(engine)
        except StoreError:
            engine.dispose()
            raise
        return cls(engine)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    @property
    def engine(self) -> Engine:
        return self._engine

    def writable_problem(self) -> str | None:
        """None when the database takes writes right now, else why not (for `/readyz`)."""
        return writable_problem(self._engine)

    def apply(
        self,
        outcome: Outcome,
        on_changes: ChangeHook | None = None,
        *,
        facts: Sequence[Fact] = (),
        tracks: TrackChanges = NO_TRACK_CHANGES,
        processed: Sequence[str] = (),
        keep_processed: int = 100_000,
    ) -> list[StoredChange]:
        """Store a batch's dead letters and decisions in ONE transaction; all or nothing.

        A decision whose key has an open row updates that row (count + 1, last_seen); otherwise
        it opens a new row. An `AlertResolved` resolves its key's open alert (a change with
        status "resolved", or nothing if none is open); `PublishDecision` and `NotifyDecision`
        are not stored here. Changes come back in the decisions' order. `on_changes` runs in
        the same transaction (the outbox is written there), which also saves the batch's changed
        `facts` and `tracks` and marks its `processed` message digests.
        """
        if not (outcome.decisions or outcome.rejected or facts or tracks or processed):
            return []
        try:
            with self._engine.begin() as connection:
                _store_dead_letters(connection, outcome.rejected)
                changes = self._store_in_order(connection, outcome.decisions)
                if on_changes is not None:
                    on_changes(connection, changes)
                save_facts(connection, facts)
                save_tracks(connection, tracks)
                mark_processed(connection, processed, keep_processed)
        except SQLAlchemyError as exc:
            error = store_error(exc, "could not store the batch (rolled back)")
            log.warning("store_apply_failed", decisions=len(outcome.decisions), error=str(error))
            raise error from exc
        log.debug(
            "store_applied",
            created=sum(change.created for change in changes),
            updated=sum(not change.created for change in changes),
            dead_letters=len(outcome.rejected),
        )
        return changes

    def open_reorders(self) -> list[OpenReorder]:
        """The reorders still open or acknowledged, oldest first: what the core must know."""
        statement = (
            select(action_table)
            .where(action_table.c.kind == "reorder", text(ACTION_OPEN))
            .order_by(action_table.c.created_at, action_table.c.id)
        )
        try:
            with self._reading() as connection:
                rows = list(connection.execute(statement).mappings())
        except SQLAlchemyError as exc:
            raise store_error(exc, "could not read the open reorders") from exc
        return [_open_reorder(dict(row)) for row in rows]

    def work_orders(self, closed_since: datetime | None = None) -> list[dict[str, Any]]:
        """Work orders open or acknowledged, and with `closed_since` also those closed (done
        or cancelled) at or after it: what the core must know about machines' work orders."""
        table = action_table
        still_open = text(ACTION_OPEN)
        which = (
            still_open
            if closed_since is None
            else or_(still_open, table.c.closed_at >= closed_since)
        )
        statement = select(table).where(table.c.kind == "work_order", which).order_by(table.c.id)
        try:
            with self._reading() as connection:
                rows = list(connection.execute(statement).mappings())
        except SQLAlchemyError as exc:
            raise store_error(exc, "could not read the work orders") from exc
        return [json_friendly(row) for row in rows]

    def applied_receipts(self, since: datetime | None = None) -> list[AppliedReceipt]:
        """Receipts stored (received at or after `since`): each is applied once only."""
        table = receipt_table
        statement = select(table.c.receipt_key, table.c.site, table.c.subject, table.c.received_at)
        if since is not None:
            statement = statement.where(table.c.received_at >= since)
        try:
            with self._reading() as connection:
                rows = list(connection.execute(statement))
        except SQLAlchemyError as exc:
            raise store_error(exc, "could not read the receipts") from exc
        return [AppliedReceipt(key, site, sku, at) for key, site, sku, at in rows]

    def receipts(self) -> list[dict[str, Any]]:
        """Receipts, newest first."""
        return self._rows(receipt_table, (), None)

    def facts(self) -> list[Fact]:
        """The world state saved with the last commit."""
        return load_facts(self._engine)

    def tracks(self) -> list[SavedTrack]:
        """The rules' tracked matches saved with the last commit (pending `for`, firing)."""
        return load_tracks(self._engine)

    def firing_alert_keys(self) -> set[str]:
        """The dedup keys of the alerts open (firing or acknowledged)."""
        statement = select(alert_table.c.dedup_key).where(text(ALERT_OPEN))
        try:
            with self._reading() as connection:
                return set(connection.scalars(statement))
        except SQLAlchemyError as exc:
            raise store_error(exc, "could not read the open alerts") from exc

    def committed(self, digests: Iterable[str]) -> set[str]:
        """Which of these message digests belong to messages already committed."""
        return committed(self._engine, digests)

    def actions(self, status: str | None = None) -> list[dict[str, Any]]:
        """Actions, newest first, optionally only those in `status`."""
        return self._rows(action_table, ACTION_STATUSES, status)

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        """Alerts, newest first, optionally only those in `status`."""
        return self._rows(alert_table, ALERT_STATUSES, status)

    def open_alerts(self, rule_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The alerts open now (firing or acknowledged), newest first; only those of `rule_ids`
        when given. Reads the open rows' partial index, not the whole history (the console)."""
        return self._alert_rows(text(ALERT_OPEN), rule_ids)

    def rule_alerts(self, rule_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Every alert of these rules, open or closed, newest first (the console's MTBF)."""
        return self._alert_rows(None, rule_ids)

    def _alert_rows(self, open_only: Any, rule_ids: Sequence[str]) -> list[dict[str, Any]]:
        statement = select(alert_table).order_by(alert_table.c.id.desc())
        if open_only is not None:
            statement = statement.where(open_only)
        if rule_ids:
            statement = statement.where(alert_table.c.rule_id.in_(list(rule_ids)))
        try:
            with self._reading() as connection:
                return [dict(row) for row in connection.execute(statement).mappings()]
        except SQLAlchemyError as exc:
            raise store_error(exc, "could not read alert rows") from exc

    def dead_letters(self) -> list[dict[str, Any]]:
        """Dead letters, newest first, with their payloads as the raw bytes received."""
        return self._rows(dead_letter_table, (), None)

    def transition(
        self,
        table: Literal["action", "alert"],
        id: int,
        command: str,
        by: str,
        note: str = "",
        *,
        at: datetime,
        on_change: ChangeHook | None = None,
    ) -> dict[str, Any]:
        """Apply `command` (ack, done, cancel, resolve) to one row and return the row after it.

        Raises TransitionError for an unknown id, command, or a change its status forbids.
        `on_change` runs in the same transaction with the changed row.
        """
        step = states.step(table, command)
        target = action_table if table == "action" else alert_table
        by_column, at_column = _RECORDED[step.to]
        values: dict[str, Any] = {"status": step.to, by_column: by}
        if at_column is not None:
            values[at_column] = at
        if table == "action":
            values["updated_at"] = at
        if note:
            values["note"] = note
        statement = (
            update(target)
            .where(target.c.id == id, target.c.status.in_(step.sources))
            .values(values)
            .returning(*target.c)
        )
        try:
            with self._engine.begin() as connection:
                row = connection.execute(statement).mappings().one_or_none()
                if row is None:
                    status = connection.scalar(select(target.c.status).where(target.c.id == id))
                    raise TransitionError(states.refusal(table, id, status, command))
                if on_change is not None:
                    on_change(connection, [StoredChange(table, id, False, json_friendly(row))])
        except SQLAlchemyError as exc:
            raise store_error(exc, f"could not {command} {table} {id}") from exc
        log.info("store_transitioned", table=table, id=id, command=command, status=step.to, by=by)
        return dict(row)

    def _store_in_order(
        self, connection: Connection, decisions: Sequence[Decision]
    ) -> list[StoredChange]:
        """Receipts split the batch: a reorder a receipt closes must be closed before a later
        decision of the same batch may open the next one with the same key."""
        changes: list[StoredChange] = []
        run: list[Decision] = []
        for decision in decisions:
            if isinstance(decision, ReceiptDecision):
                changes.extend(self._store_decisions(connection, run))
                run = []
                changes.extend(self._store_receipt(connection, decision))
            else:
                run.append(decision)
        changes.extend(self._store_decisions(connection, run))
        return changes

    def _store_receipt(
        self, connection: Connection, receipt: ReceiptDecision
    ) -> list[StoredChange]:
        """Record the receipt once; reduce or close the reorders it went to (done by `receipt`)."""
        claimed = connection.execute(
            self._new_receipt,
            {
                "receipt_key": receipt.receipt_key,
                "site": receipt.site,
                "subject": receipt.subject,
                "quantity": receipt.quantity,
                "reference": receipt.reference,
                "applied": [],
                "over_received": receipt.over_received,
                "received_at": receipt.at,
            },
        ).scalar_one_or_none()
        if claimed is None:
            log.info("receipt_already_stored", key=receipt.receipt_key)
            return []
        changes: list[StoredChange] = []
        applied: list[dict[str, Any]] = []
        for line in receipt.lines:
            row = (
                connection.execute(
                    select(action_table).where(
                        action_table.c.dedup_key == line.dedup_key, text(ACTION_OPEN)
                    )
                )
                .mappings()
                .one_or_none()
            )
            if row is None:
                log.warning("receipt_reorder_missing", key=line.dedup_key, sku=receipt.subject)
                applied.append({"dedup_key": line.dedup_key, "quantity": line.quantity})
                continue
            params = dict(row["params"])
            params["received"] = line.received
            values: dict[str, Any] = {"params": json_ready(params), "updated_at": receipt.at}
            if line.closes:
                values.update(status="done", closed_at=receipt.at, closed_by="receipt")
            updated = (
                connection.execute(
                    update(action_table)
                    .where(action_table.c.id == row["id"])
                    .values(values)
                    .returning(*action_table.c)
                )
                .mappings()
                .one()
            )
            changes.append(StoredChange("action", updated["id"], False, json_friendly(updated)))
            log.info(
                "reorder_received",
                id=updated["id"],
                sku=receipt.subject,
                quantity=line.quantity,
                received=line.received,
                done=line.closes,
            )
            applied.append(
                {"dedup_key": line.dedup_key, "action_id": row["id"], "quantity": line.quantity}
            )
        connection.execute(
            update(receipt_table).where(receipt_table.c.id == claimed).values(applied=applied)
        )
        return changes

    def _store_decisions(
        self, connection: Connection, decisions: Sequence[Decision]
    ) -> list[StoredChange]:
        return self._decisions.write(connection, decisions)

    def record_rule_set(
        self, hash: str, files: Sequence[str], loaded_at: datetime, loaded_by: str
    ) -> int:
        """Remember that a rule set was loaded (by whom or what): decisions name it by hash."""
        row = {
            "hash": hash,
            "files": list(files),
            "loaded_at": loaded_at,
            "loaded_by": loaded_by,
        }
        try:
            with self._engine.begin() as connection:
                new_id = connection.execute(
                    insert(rule_set_table).returning(rule_set_table.c.id), row
                ).scalar_one()
        except SQLAlchemyError as exc:
            raise store_error(exc, "could not record the rule set") from exc
        return int(new_id)

    def rule_sets(self) -> list[dict[str, Any]]:
        """Loaded rule sets, newest first."""
        return self._rows(rule_set_table, (), None)

    def find(self, table: TableName, id: int) -> dict[str, Any] | None:
        """One action or alert by id, or None."""
        target = action_table if table == "action" else alert_table
        try:
            with self._reading() as connection:
                row = connection.execute(select(target).where(target.c.id == id)).mappings()
                found = row.one_or_none()
        except SQLAlchemyError as exc:
            raise store_error(exc, f"could not read {table} {id}") from exc
        return None if found is None else dict(found)

    def _rows(
        self, table: Table, statuses: tuple[str, ...], status: str | None
    ) -> list[dict[str, Any]]:
        statement = select(table).order_by(table.c.id.desc())
        if status is not None:
            if status not in statuses:
                raise ValueError(f"unknown {table.name} status {status!r}; one of {statuses}")
            statement = statement.where(table.c.status == status)
        try:
            with self._reading() as connection:
                return [dict(row) for row in connection.execute(statement).mappings()]
        except SQLAlchemyError as exc:
            raise store_error(exc, f"could not read {table.name} rows") from exc

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._engine.connect() as connection:
            yield connection.execution_options(**{READ_ONLY: True})


def _store_dead_letters(connection: Connection, rejected: Sequence[Rejected]) -> None:
    if not rejected:
        return
    rows = [
        {
            "topic": letter.topic,
            "payload": bytes(letter.raw),
            "reason": letter.reason,
            "received_at": letter.received_at,
        }
        for letter in rejected
    ]
    connection.execute(insert(dead_letter_table), rows)


def _insert_receipt_once(engine: Engine) -> Any:
    """INSERT a receipt unless its key is stored already, RETURNING its id."""
    dialect = engine.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise StoreError(f"unsupported database dialect {dialect!r}")
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(receipt_table).on_conflict_do_nothing(
        index_elements=[receipt_table.c.receipt_key]
    )
    return statement.returning(receipt_table.c.id)


def _open_reorder(row: Mapping[str, Any]) -> OpenReorder:
    params = row["params"] or {}
    quantity, received = params.get("quantity"), params.get("received")
    return OpenReorder(
        dedup_key=row["dedup_key"],
        site=row["site"],
        sku=row["subject"],
        quantity=float(quantity) if isinstance(quantity, int | float) else 0.0,
        received=float(received) if isinstance(received, int | float) else 0.0,
        opened_at=row["created_at"],
    )
