"""The outbox queue: its SQL, always inside the caller's transaction (no connection of its own).

`SqlLedger` answers the policy's questions about rows already queued; the functions below insert
rows and serve the sender (claim, mark sent / failed / skipped, release).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from agent.notify.policy import FIRING_EVENTS, MQTT, TellKey, Told, told_from
from agent.store.tables import alert_table, outbox_table

# Keys per "which are in the outbox already?" query: below SQLite's bound-parameter limit.
_KEYS_PER_QUERY = 500


@dataclass(frozen=True, slots=True)
class Due:
    """One claimed outbox row, as the sender needs it."""

    id: int
    channel: str
    route: str
    event: str
    ref_table: str | None
    ref_id: int | None
    topic: str | None
    title: str
    body: str
    attempts: int
    dedup_key: str


class SqlLedger:
    """The policy's `Ledger` over the outbox table, in one transaction.

    Asked about many alerts at once (a storm resolving), it answers from one query per 500
    alerts named in `know_alerts` and remembers each group window it looked up: the policy asks
    its questions before any row of the batch is inserted, so the answers hold for the call.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._firings_of: dict[int, set[tuple[str, str, str]]] = {}
        self._groups: dict[tuple[str, str, datetime, timedelta], datetime | None] = {}

    def know_alerts(self, alert_ids: Iterable[int]) -> None:
        """Load the firing messages queued for these alerts (route, channel, status)."""
        wanted = sorted(set(alert_ids) - set(self._firings_of))
        table = outbox_table
        for start in range(0, len(wanted), _KEYS_PER_QUERY):
            chunk = wanted[start : start + _KEYS_PER_QUERY]
            self._firings_of.update({alert_id: set() for alert_id in chunk})
            rows = self.connection.execute(
                select(table.c.ref_id, table.c.route, table.c.channel, table.c.status).where(
                    table.c.ref_table == "alert",
                    table.c.ref_id.in_(chunk),
                    table.c.event == "firing",
                )
            )
            for alert_id, route, channel, status in rows:
                self._firings_of[int(alert_id)].add((str(route), str(channel), str(status)))

    def existing_keys(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = keys[start : start + _KEYS_PER_QUERY]
            statement = select(outbox_table.c.dedup_key).where(outbox_table.c.dedup_key.in_(chunk))
            found.update(self.connection.scalars(statement))
        return found

    def was_sent(self, alert_id: int, route: str, channel: str) -> bool:
        known = self._firings_of.get(alert_id)
        if known is not None:
            return (route, channel, "sent") in known
        return self._firings(alert_id, route, channel, outbox_table.c.status == "sent")

    def was_told(self, alert_id: int, route: str, channel: str) -> bool:
        known = self._firings_of.get(alert_id)
        if known is not None:
            return any((r, c) == (route, channel) for r, c, _ in known)
        return self._firings(alert_id, route, channel)

    def _firings(self, alert_id: int, route: str, channel: str, *also: Any) -> bool:
        found = self.connection.scalar(
            select(func.count())
            .select_from(outbox_table)
            .where(
                outbox_table.c.ref_table == "alert",
                outbox_table.c.ref_id == alert_id,
                outbox_table.c.route == route,
                outbox_table.c.channel == channel,
                outbox_table.c.event == "firing",
                *also,
            )
        )
        return bool(found)

    def open_group(
        self, route: str, channel: str, now: datetime, window: timedelta
    ) -> datetime | None:
        key = (route, channel, now, window)
        if key not in self._groups:
            self._groups[key] = self._open_group(route, channel, now, window)
        return self._groups[key]

    def _open_group(
        self, route: str, channel: str, now: datetime, window: timedelta
    ) -> datetime | None:
        found: datetime | None = self.connection.scalar(
            select(func.min(outbox_table.c.not_before)).where(
                outbox_table.c.route == route,
                outbox_table.c.channel == channel,
                outbox_table.c.status == "pending",
                outbox_table.c.event != "digest",
                outbox_table.c.not_before > now,
                outbox_table.c.not_before <= now + window,
            )
        )
        return found


def insert(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert rows; one whose dedup key exists already (a replayed batch) is left out."""
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(outbox_table).on_conflict_do_nothing(
        index_elements=[outbox_table.c.dedup_key]
    )
    connection.execute(statement, rows)


def told(connection: Connection) -> dict[TellKey, Told]:
    """For firing alerts with a repeat interval, per (alert, route, channel): their past
    messages (`policy.Told`). One query, whatever the number of alerts."""
    rows = connection.execute(
        select(
            outbox_table.c.ref_id,
            outbox_table.c.route,
            outbox_table.c.channel,
            outbox_table.c.status,
            outbox_table.c.created_at,
        )
        .join(alert_table, alert_table.c.id == outbox_table.c.ref_id)
        .where(
            outbox_table.c.ref_table == "alert",
            outbox_table.c.channel != MQTT,
            outbox_table.c.event.in_(FIRING_EVENTS),
            alert_table.c.status == "firing",
            alert_table.c.repeat_s.is_not(None),
        )
    )
    return told_from((int(a), str(r), str(c), str(s), t) for a, r, c, s, t in rows)


def alerts(connection: Connection, ids: Iterable[int]) -> Iterable[RowMapping]:
    """The alert rows with these ids."""
    return connection.execute(
        select(alert_table).where(alert_table.c.id.in_(sorted(set(ids))))
    ).mappings()


def claim_due(
    connection: Connection, now: datetime, claim_s: float, owner: str, limit: int
) -> list[Due]:
    """Claim due pending rows for `claim_s` seconds, oldest first (one sender per row)."""
    claimable = and_(
        outbox_table.c.status == "pending",
        outbox_table.c.not_before <= now,
        or_(outbox_table.c.claimed_until.is_(None), outbox_table.c.claimed_until <= now),
    )
    ids = (
        select(outbox_table.c.id)
        .where(claimable)
        .order_by(outbox_table.c.id)
        .limit(limit)
        .scalar_subquery()
    )
    statement = (
        update(outbox_table)
        .where(outbox_table.c.id.in_(ids), claimable)
        .values(claimed_until=now + timedelta(seconds=claim_s), claimed_by=owner)
        .returning(*outbox_table.c)
    )
    rows = connection.execute(statement).mappings().all()
    claimed = [
        Due(
            id=int(row["id"]),
            channel=row["channel"],
            route=row["route"],
            event=row["event"],
            ref_table=row["ref_table"],
            ref_id=row["ref_id"],
            topic=row["topic"],
            title=row["title"],
            body=row["body"],
            attempts=int(row["attempts"]),
            dedup_key=row["dedup_key"],
        )
        for row in rows
    ]
    return sorted(claimed, key=lambda due: due.id)


def backlog(connection: Connection) -> int:
    """Rows still to send (pending, due now or later)."""
    found = connection.execute(
        select(func.count()).select_from(outbox_table).where(outbox_table.c.status == "pending")
    )
    return int(found.scalar_one())


def alert_statuses(connection: Connection, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    found = connection.execute(
        select(alert_table.c.id, alert_table.c.status).where(alert_table.c.id.in_(wanted))
    )
    return {int(id): str(status) for id, status in found}


def mark_sent(connection: Connection, ids: Sequence[int], now: datetime) -> None:
    connection.execute(
        update(outbox_table)
        .where(outbox_table.c.id.in_(ids))
        .values(
            status="sent",
            sent_at=now,
            attempts=outbox_table.c.attempts + 1,
            claimed_until=None,
            last_error="",
        )
    )


def mark_skipped(connection: Connection, ids: Sequence[int], reason: str) -> None:
    connection.execute(
        update(outbox_table)
        .where(outbox_table.c.id.in_(ids))
        .values(status="skipped", claimed_until=None, last_error=reason)
    )


def mark_failed(
    connection: Connection, ids: Sequence[int], error: str, retry_at: datetime | None
) -> None:
    """One failed attempt: try again at `retry_at`, or give up (`failed`) when None."""
    values: dict[str, Any] = {
        "attempts": outbox_table.c.attempts + 1,
        "claimed_until": None,
        "last_error": error[:2000],
    }
    if retry_at is None:
        values["status"] = "failed"
    else:
        values["not_before"] = retry_at
    connection.execute(update(outbox_table).where(outbox_table.c.id.in_(ids)).values(values))


def release_claims_of(connection: Connection, owner: str) -> int:
    """Rows `owner` claimed and did not finish (pending) are free again."""
    result = connection.execute(
        update(outbox_table)
        .where(outbox_table.c.claimed_by == owner, outbox_table.c.status == "pending")
        .values(claimed_until=None)
    )
    return int(result.rowcount or 0)


def release(connection: Connection, ids: Sequence[int]) -> None:
    """Give claimed rows back untried."""
    connection.execute(
        update(outbox_table).where(outbox_table.c.id.in_(ids)).values(claimed_until=None)
    )
