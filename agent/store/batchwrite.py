"""A batch's alerts and actions written with one statement per table and shape, not per row.

The batch's keys are looked up once (their open rows' ids, locked on PostgreSQL); each key's
decisions then go in their own order, in rounds: round n holds the n-th decision of every key,
and a round is one executemany per shape (repeats and closes by id, new rows as one INSERT ...
ON CONFLICT DO NOTHING RETURNING) and one read of the rows it updated. A batch that fires,
resolves and fires again one alert is three rounds and ends with a resolved episode and a firing
one. What another writer changed under us (a key opened meanwhile) takes the old row-by-row
path for that key only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Result,
    String,
    Table,
    Text,
    Update,
    bindparam,
    case,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate

from agent.errors import StoreError
from agent.model import ActionClosed, ActionDecision, AlertDecision, AlertResolved, Decision
from agent.store.tables import ACTION_OPEN, ALERT_OPEN, UTCDateTime, action_table, alert_table

TableName = Literal["action", "alert"]
Stored = ActionDecision | AlertDecision | AlertResolved | ActionClosed

# What this module writes: rows opened or repeated, and rows a rule closes.
STORED = (ActionDecision, AlertDecision, AlertResolved, ActionClosed)
# How often to go round "update the open row, else insert one" when another writer keeps
# opening or closing the same key in between; in practice the second round always settles it.
_MAX_ROUNDS = 3
# Keys or ids per query: well below SQLite's bound-parameter limit.
_PER_QUERY = 500


@dataclass(frozen=True)
class StoredChange:
    """What happened to one decision, for logs and `replay` output."""

    table: Literal["action", "alert"]
    id: int
    created: bool  # True: a new row; False: the open row was updated (count+1, last_seen)
    row: dict[str, Any]  # the row after the change, JSON-friendly (datetimes as ISO strings)


def json_friendly(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row with its datetimes as ISO 8601 strings (with the +00:00 offset)."""
    return {
        str(name): value.isoformat() if isinstance(value, datetime) else value
        for name, value in row.items()
    }


@dataclass(frozen=True)
class _Shapes:
    """One table's statements."""

    table: Table
    name: TableName
    open_predicate: str
    insert: ReturningInsert[Any]  # INSERT ... ON CONFLICT (open key) DO NOTHING RETURNING *
    repeat_by_key: ReturningUpdate[Any]  # the row-by-row fallback
    repeat_by_id: Update
    close_by_id: Update


class DecisionWriter:
    """Writes the alerts and actions of a batch inside the caller's transaction."""

    def __init__(self, engine: Engine) -> None:
        self._shapes: dict[TableName, _Shapes] = {
            "action": _Shapes(
                action_table,
                "action",
                ACTION_OPEN,
                _insert_unless_open(engine, action_table, ACTION_OPEN),
                _repeat(action_table, ACTION_OPEN).returning(*action_table.c),
                _repeat(action_table, None),
                _close_action_by_id(),
            ),
            "alert": _Shapes(
                alert_table,
                "alert",
                ALERT_OPEN,
                _insert_unless_open(engine, alert_table, ALERT_OPEN),
                _repeat_alert(ALERT_OPEN).returning(*alert_table.c),
                _repeat_alert(None),
                _resolve_alert_by_id(),
            ),
        }

    def write(self, connection: Connection, decisions: Sequence[Decision]) -> list[StoredChange]:
        """Store the decisions (others are skipped); changes come back in the decisions' order."""
        stored = [(i, d) for i, d in enumerate(decisions) if isinstance(d, STORED)]
        if not stored:
            return []
        # Every transaction touches keys in the same (table, key) order, so two writers that
        # share keys wait for each other instead of deadlocking. Within a key, the decisions
        # go in their own order (applying every firing before every resolution counted a
        # second firing as a repeat of the first and ended resolved).
        queues: dict[tuple[int, str], list[tuple[int, Stored]]] = {}
        for index, decision in sorted(stored, key=lambda pair: (*_lock_order(pair[1]), pair[0])):
            queues.setdefault(_lock_order(decision), []).append((index, decision))
        open_ids = {
            name: _open_ids(connection, shapes, [k for t, k in queues if t == _ORDER[name]])
            for name, shapes in self._shapes.items()
        }
        changes: list[StoredChange | None] = [None] * len(decisions)
        for depth in range(max(len(queue) for queue in queues.values())):
            ones = [queue[depth] for queue in queues.values() if len(queue) > depth]
            for name, shapes in self._shapes.items():
                mine = [(i, d) for i, d in ones if _table_of(d) == name]
                if mine:
                    self._round(connection, shapes, mine, open_ids[name], changes)
        return [change for change in changes if change is not None]

    def _round(
        self,
        connection: Connection,
        shapes: _Shapes,
        items: Sequence[tuple[int, Stored]],
        open_ids: dict[str, int],
        changes: list[StoredChange | None],
    ) -> None:
        """At most one decision per key: repeats, closes and new rows, one statement each."""
        repeats: list[tuple[int, Stored]] = []
        closes: list[tuple[int, Stored]] = []
        news: list[tuple[int, ActionDecision | AlertDecision]] = []
        strays: list[tuple[int, AlertResolved | ActionClosed]] = []
        for index, decision in items:
            known = decision.dedup_key in open_ids
            if isinstance(decision, AlertResolved | ActionClosed):
                (closes if known else strays).append((index, decision))
            elif known:
                repeats.append((index, decision))
            else:
                news.append((index, decision))
        if repeats:
            connection.execute(
                shapes.repeat_by_id,
                [_repeat_values(d, open_ids[d.dedup_key]) for _, d in repeats],
            )
        if closes:
            connection.execute(
                shapes.close_by_id,
                [_close_values(d, open_ids[d.dedup_key]) for _, d in closes],  # type: ignore[arg-type]
            )
        touched = [(i, d.dedup_key, open_ids[d.dedup_key]) for i, d in (*repeats, *closes)]
        rows = _rows_by_id(connection, shapes.table, [id for _, _, id in touched])
        for index, _key, id in touched:
            changes[index] = StoredChange(shapes.name, id, False, rows[id])
        for _, decision in closes:
            del open_ids[decision.dedup_key]
        for index, stray in strays:  # none open when the batch began: one may be now (PostgreSQL)
            changes[index] = _close_by_key(connection, shapes, stray)
        if news:
            self._open(connection, shapes, news, open_ids, changes)

    def _open(
        self,
        connection: Connection,
        shapes: _Shapes,
        news: Sequence[tuple[int, ActionDecision | AlertDecision]],
        open_ids: dict[str, int],
        changes: list[StoredChange | None],
    ) -> None:
        """New rows in one INSERT; a key another writer opened meanwhile repeats its row."""
        previous: dict[str, int] = {}
        if shapes.name == "alert":
            previous = _latest_ids(connection, [d.dedup_key for _, d in news])
        rows = [_new_row(d, previous.get(d.dedup_key)) for _, d in news]
        made = {row["dedup_key"]: row for row in _friendly(connection.execute(shapes.insert, rows))}
        for (index, decision), values in zip(news, rows, strict=True):
            row = made.get(decision.dedup_key)
            if row is not None:
                change = StoredChange(shapes.name, row["id"], True, row)
            else:
                change = _upsert(connection, shapes, _repeat_values(decision, None), values)
            changes[index] = change
            if change.row["status"] in ("open", "acknowledged", "firing"):
                open_ids[decision.dedup_key] = change.id


_ORDER: dict[TableName, int] = {"action": 0, "alert": 1}


def _table_of(decision: Stored) -> TableName:
    return "action" if isinstance(decision, ActionDecision | ActionClosed) else "alert"


def _lock_order(decision: Stored) -> tuple[int, str]:
    """(table, key): actions before alerts, then by key."""
    return (_ORDER[_table_of(decision)], decision.dedup_key)


def _open_ids(connection: Connection, shapes: _Shapes, keys: Sequence[str]) -> dict[str, int]:
    """The open row of each key that has one, locked until the commit on PostgreSQL (SQLite's
    writer holds the whole database already)."""
    table = shapes.table
    found: dict[str, int] = {}
    for start in range(0, len(keys), _PER_QUERY):
        statement = (
            select(table.c.dedup_key, table.c.id)
            .where(table.c.dedup_key.in_(keys[start : start + _PER_QUERY]))
            .where(text(shapes.open_predicate))
            .order_by(table.c.dedup_key)
            .with_for_update()
        )
        found.update({str(key): int(id) for key, id in connection.execute(statement)})
    return found


def _rows_by_id(
    connection: Connection, table: Table, ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), _PER_QUERY):
        statement = select(table).where(table.c.id.in_(ids[start : start + _PER_QUERY]))
        found.update({int(row["id"]): row for row in _friendly(connection.execute(statement))})
    return found


def _friendly(result: Result[Any]) -> list[dict[str, Any]]:
    """The rows as `json_friendly` dicts, built from plain tuples: a `RowMapping` per row made
    its key view anew each time (6% of a storm's tick)."""
    names = result.keys()
    keys = [str(name) for name in names]
    return [
        {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in zip(keys, row, strict=True)
        }
        for row in result
    ]


def _latest_ids(connection: Connection, keys: Sequence[str]) -> dict[str, int]:
    """The newest row of each key (all closed: none is open), which a new row follows."""
    table = alert_table
    found: dict[str, int] = {}
    for start in range(0, len(keys), _PER_QUERY):
        statement = (
            select(table.c.dedup_key, func.max(table.c.id))
            .where(table.c.dedup_key.in_(keys[start : start + _PER_QUERY]))
            .group_by(table.c.dedup_key)
        )
        found.update({str(key): int(id) for key, id in connection.execute(statement)})
    return found


def _repeat_values(
    decision: ActionDecision | AlertDecision | Stored, id: int | None
) -> dict[str, Any]:
    values: dict[str, Any] = {"b_key": decision.dedup_key, "b_at": decision.at, "b_id": id}
    if isinstance(decision, AlertDecision):
        values.update(
            b_message=decision.message,
            b_matched=json_ready(decision.matched),
            b_severity=decision.severity,
        )
    return values


def _close_values(decision: AlertResolved | ActionClosed, id: int) -> dict[str, Any]:
    return {
        "b_id": id,
        "b_at": decision.at,
        "b_by": f"rule:{decision.rule_id}",
        "b_note": decision.reason,
    }


def _new_row(decision: ActionDecision | AlertDecision, previous: int | None) -> dict[str, Any]:
    if isinstance(decision, ActionDecision):
        return {
            "kind": decision.kind,
            "dedup_key": decision.dedup_key,
            "status": "open",
            "site": decision.site,
            "subject": decision.subject,
            "params": json_ready(decision.params),
            "rule_id": decision.rule_id,
            "rule_set_hash": decision.rule_set_hash,
            "matched": json_ready(decision.matched),
            "created_at": decision.at,
            "updated_at": decision.at,
            "last_seen": decision.at,
            "count": 1,
            "note": "",
        }
    return {
        "dedup_key": decision.dedup_key,
        "severity": decision.severity,
        "status": "firing",
        "message": decision.message,
        "site": decision.site,
        "subject": decision.subject,
        "rule_id": decision.rule_id,
        "rule_set_hash": decision.rule_set_hash,
        "matched": json_ready(decision.matched),
        "first_seen": decision.at,
        "last_seen": decision.at,
        "count": 1,
        "note": "",
        "repeat_s": decision.repeat_s,
        "late": decision.late,
        "previous_id": previous,
    }


def _upsert(
    connection: Connection, shapes: _Shapes, repeat: dict[str, Any], new_row: dict[str, Any]
) -> StoredChange:
    """A key another writer opened after the batch looked: update its open row, or (closed
    again meanwhile) open a new one; row by row, as it is rare."""
    attempts = [(shapes.repeat_by_key, repeat, False), (shapes.insert, new_row, True)]
    for _ in range(_MAX_ROUNDS):
        for statement, values, creates in attempts:
            row = connection.execute(statement, values).mappings().one_or_none()
            if row is not None:
                change = StoredChange(shapes.name, row["id"], creates, json_friendly(row))
                return _link_previous_episode(connection, change) if creates else change
    key = new_row["dedup_key"]
    raise StoreError(f"{shapes.name} {key!r} kept opening and closing under us; retry the batch")


def _link_previous_episode(connection: Connection, change: StoredChange) -> StoredChange:
    """A new alert row of a key that fired before points at the latest earlier row (episode)."""
    if change.table != "alert":
        return change
    table = alert_table
    key = change.row["dedup_key"]
    previous = connection.scalar(
        select(table.c.id)
        .where(table.c.dedup_key == key, table.c.id < change.id)
        .order_by(table.c.id.desc())
        .limit(1)
    )
    if previous is None:
        return change
    connection.execute(update(table).where(table.c.id == change.id).values(previous_id=previous))
    return StoredChange(change.table, change.id, True, {**change.row, "previous_id": previous})


def _close_by_key(
    connection: Connection, shapes: _Shapes, decision: AlertResolved | ActionClosed
) -> StoredChange | None:
    """Close the key's open row if there is one now; None when none is open."""
    table = shapes.table
    values: dict[str, Any] = {"note": decision.reason}
    if shapes.name == "alert":
        values.update(
            status="resolved", resolved_at=decision.at, resolved_by=f"rule:{decision.rule_id}"
        )
    else:
        values.update(
            status="done",
            closed_at=decision.at,
            closed_by=f"rule:{decision.rule_id}",
            updated_at=decision.at,
        )
    statement = (
        update(table)
        .where(table.c.dedup_key == decision.dedup_key, text(shapes.open_predicate))
        .values(values)
        .returning(*table.c)
    )
    row = connection.execute(statement).mappings().one_or_none()
    if row is None:
        return None
    return StoredChange(shapes.name, row["id"], False, json_friendly(row))


def _insert_unless_open(engine: Engine, table: Table, open_predicate: str) -> ReturningInsert[Any]:
    """INSERT ... ON CONFLICT (dedup_key) WHERE <open> DO NOTHING RETURNING *."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing(
            index_elements=[table.c.dedup_key], index_where=text(open_predicate)
        )
        return statement.returning(*table.c)
    if dialect == "sqlite":
        statement_ = sqlite.insert(table).on_conflict_do_nothing(
            index_elements=[table.c.dedup_key], index_where=text(open_predicate)
        )
        return statement_.returning(*table.c)
    raise StoreError(f"unsupported database dialect {dialect!r}")


def _row_of(table: Table, open_predicate: str | None) -> Any:
    """WHERE of one row: the open row of `b_key`, or (already known open) the row `b_id`."""
    if open_predicate is None:
        return table.c.id == bindparam("b_id", type_=Integer())
    return (table.c.dedup_key == bindparam("b_key", type_=String())) & text(open_predicate)


def _repeat(table: Table, open_predicate: str | None) -> Update:
    """UPDATE a key's open row: count + 1, last_seen/updated_at moved forward (never back)."""
    at = bindparam("b_at", type_=UTCDateTime())
    latest = case((table.c.last_seen < at, at), else_=table.c.last_seen)
    values: dict[str, Any] = {"count": table.c.count + 1, "last_seen": latest}
    if "updated_at" in table.c:
        values["updated_at"] = latest
    return update(table).where(_row_of(table, open_predicate)).values(values)


def _repeat_alert(open_predicate: str | None) -> Update:
    """A repeat of a firing alert: the first firing's `message` and `matched` stay, the latest
    repeat's text, facts and severity are kept beside them; a repeat older than `last_seen`
    (a late message) changes neither."""
    table = alert_table
    newest = table.c.last_seen <= bindparam("b_at", type_=UTCDateTime())
    latest_text = bindparam("b_message", type_=Text())
    latest_facts = bindparam("b_matched", type_=table.c.last_matched.type)
    latest_severity = bindparam("b_severity", type_=String())
    return _repeat(table, open_predicate).values(
        last_message=case((newest, latest_text), else_=table.c.last_message),
        last_matched=case((newest, latest_facts), else_=table.c.last_matched),
        severity=case((newest, latest_severity), else_=table.c.severity),
    )


def _resolve_alert_by_id() -> Update:
    table = alert_table
    return (
        update(table)
        .where(_row_of(table, None))
        .values(
            status="resolved",
            resolved_at=bindparam("b_at", type_=UTCDateTime()),
            resolved_by=bindparam("b_by", type_=String()),
            note=bindparam("b_note", type_=Text()),
        )
    )


def _close_action_by_id() -> Update:
    table = action_table
    at = bindparam("b_at", type_=UTCDateTime())
    return (
        update(table)
        .where(_row_of(table, None))
        .values(
            status="done",
            closed_at=at,
            closed_by=bindparam("b_by", type_=String()),
            updated_at=at,
            note=bindparam("b_note", type_=Text()),
        )
    )


def json_ready(value: Any) -> Any:
    """Plain dicts and lists for the JSON column; non-finite numbers become the strings
    "inf", "-inf", "nan" (PostgreSQL's JSON has no such numbers, and a refused row would block
    the batch forever)."""
    if isinstance(value, Mapping):
        return {str(name): json_ready(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
