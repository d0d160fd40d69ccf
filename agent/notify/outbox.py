"""The outbox: what must be delivered, written in the transaction that stored its cause.

`Outbox.on_changes` is the store's change hook: it turns stored alerts and actions into outbox
rows (MQTT publications and routed notifications). Repeats and digests are added here too; the
sender (`sender.py`) claims due rows and records how each delivery went.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from agent.app.clock import Clock
from agent.config import NotifySettings, RouteSettings
from agent.decisions.report import record
from agent.model import NotifyDecision, PublishDecision
from agent.notify.message import render
from agent.notify.routes import matching, quiet_until, subject_of
from agent.store.repository import StoredChange
from agent.store.tables import alert_table, outbox_table

log = structlog.get_logger(__name__)

MQTT = "mqtt"
# Keys per "which are in the outbox already?" query: below SQLite's bound-parameter limit.
_KEYS_PER_QUERY = 500
# Events whose message says "this is firing": repeats look back at these.
FIRING_EVENTS = ("firing", "repeat")


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


class Outbox:
    """Writes and reads outbox rows; holds no connection of its own (the caller's transaction)."""

    def __init__(
        self,
        settings: NotifySettings,
        topic_prefix: str,
        clock: Clock,
        owner: str = "agent",
        public_url: str = "",
    ) -> None:
        self.settings = settings
        self.public_url = public_url  # the console's address: messages link to their row
        self.owner = owner  # who claims rows: the agent's MQTT client id, unique per agent
        self.topic_prefix = topic_prefix
        self.clock = clock
        self.routes: dict[str, RouteSettings] = {route.name: route for route in settings.routes}

    @property
    def active(self) -> bool:
        """Whether anything is ever written (MQTT publications or at least one route)."""
        return self.settings.publish_mqtt or bool(self.settings.routes)

    # -- writing, inside the caller's transaction -----------------------------------------------

    def on_changes(self, connection: Connection, changes: Sequence[StoredChange]) -> None:
        """The store's change hook: outbox rows for what `changes` made new or different.

        Most changes are repeats of an open row, already told: their keys are looked up in one
        query first, so only news is rendered and inserted.
        """
        now = self.clock.now()
        wanted: dict[str, Callable[[], dict[str, Any] | None]] = {}
        past: dict[tuple[str, str], list[StoredChange]] = {}  # late episodes over, per route
        for change in changes:
            if self.settings.publish_mqtt:
                key = f"{MQTT}/{change.table}/{change.id}/{change.row['status']}"
                wanted.setdefault(key, partial(self._publication, key, change, now))
            event = _event(change)
            if event is None or not self.routes:
                continue
            late = event in ("firing", "resolved") and self._late(change.row, event, now)
            for route in matching(self.settings.routes, subject_of(change.table, change.row)):
                if event == "resolved" and not route.send_resolved:
                    continue
                quiet = late and route.late_episodes == "digest"
                for channel in route.channels:
                    told = quiet and event == "resolved"
                    if told and not _was_sent(connection, change.id, route, channel):
                        # Began and ended in late data: its firing is held and now skipped;
                        # one summary line instead of a page.
                        past.setdefault((route.name, channel), []).append(change)
                        continue
                    key = _notice_key(route, channel, change, event)
                    hold = quiet and event == "firing"
                    build = partial(
                        self._notice, connection, route, channel, change, event, now, hold
                    )
                    wanted.setdefault(key, build)
        known = _existing_keys(connection, list(wanted))
        rows = [build() for key, build in wanted.items() if key not in known]
        rows += [self._late_summary(self.routes[r], c, over, now) for (r, c), over in past.items()]
        self._insert(connection, [row for row in rows if row is not None])

    def _late(self, row: Mapping[str, Any], event: str, now: datetime) -> bool:
        """Whether an alert fired (or resolved) from late data: long before it is stored."""
        at = _as_time(row.get("resolved_at" if event == "resolved" else "first_seen"))
        return at is not None and (now - at).total_seconds() > self.settings.late_after_s

    def _late_summary(
        self, route: RouteSettings, channel: str, over: list[StoredChange], now: datetime
    ) -> dict[str, Any]:
        """One message for the episodes that began and ended in late data."""
        lines = []
        for change in over:
            row = change.row
            began, ended = _as_time(row.get("first_seen")), _as_time(row.get("resolved_at"))
            span = f"{began:%Y-%m-%d %H:%M}-{ended:%H:%M} UTC" if began and ended else ""
            lines.append(
                f"- #{change.id} {row['severity']} {row['subject']}: {row['message']} ({span})"
            )
        ids = [change.id for change in over]
        return self._row(
            dedup_key=f"{route.name}/{channel}/late/{min(ids)}-{max(ids)}/{len(ids)}",
            channel=channel,
            route=route.name,
            event="late",
            ref=(None, None),
            severity=None,
            topic=None,
            title=f"{len(over)} episode{'s' if len(over) != 1 else ''} from late data, "
            "over before their data arrived",
            body="Readings that arrived late (a gateway's backfill) held these episodes; each "
            "began and ended before the data came, so nobody was paged:\n" + "\n".join(lines),
            now=now,
            not_before=now,
        )

    def on_decisions(
        self, connection: Connection, decisions: Sequence[PublishDecision | NotifyDecision]
    ) -> None:
        """Outbox rows for rules' `publish` and `notify` actions, in the decision's transaction.

        They are sent by the sender like any other row: retried, and never lost to a crash
        between the commit and the send.
        """
        now = self.clock.now()
        rows: list[dict[str, Any]] = []
        for decision in decisions:
            at = decision.at.isoformat()
            if isinstance(decision, PublishDecision):
                rows.append(
                    self._row(
                        dedup_key=f"{MQTT}/rule/{decision.rule_id}/{decision.topic}/{at}",
                        channel=MQTT,
                        route="",
                        event="publish",
                        ref=(None, None),
                        severity=None,
                        topic=decision.topic,
                        title=f"rule {decision.rule_id} publishes",
                        body=json.dumps(dict(decision.payload), default=str, sort_keys=True),
                        now=now,
                        not_before=now,
                    )
                )
                continue
            route = self.routes.get(decision.route)
            if route is None:
                log.warning("notify_route_unknown", route=decision.route, rule=decision.rule_id)
                continue
            for channel in route.channels:
                rows.append(
                    self._row(
                        dedup_key=f"{route.name}/{channel}/notify/{decision.dedup_key}/{at}",
                        channel=channel,
                        route=route.name,
                        event="notify",
                        ref=(None, None),
                        severity=decision.severity,
                        topic=None,
                        title=f"[{decision.severity}] {decision.subject}: {decision.rule_id}",
                        body=f"{decision.message}\n(rule {decision.rule_id})",
                        now=now,
                        not_before=self._not_before(
                            connection, route, channel, decision.severity, now
                        ),
                    )
                )
        self._insert(connection, rows)

    def _publication(self, key: str, change: StoredChange, now: datetime) -> dict[str, Any]:
        # One publication per status a row reaches: count bumps of an open row are not news.
        row = change.row
        rec = record(change.table, row)
        rec["previous_id"] = row.get("previous_id")
        folder = "alerts" if change.table == "alert" else "actions"
        return self._row(
            dedup_key=key,
            channel=MQTT,
            route="",
            event=str(row["status"]),
            ref=(change.table, change.id),
            severity=row.get("severity"),
            topic=f"{self.topic_prefix}/{row['site']}/agent/{folder}",
            title=f"{change.table} {change.id} {row['status']}",
            body=json.dumps(rec, default=str, sort_keys=True),
            now=now,
            not_before=now,
        )

    def _notice(
        self,
        connection: Connection,
        route: RouteSettings,
        channel: str,
        change: StoredChange,
        event: str,
        now: datetime,
        hold: bool = False,
    ) -> dict[str, Any] | None:
        if event == "resolved" and not _was_told(connection, change.id, route, channel):
            return None  # never told it fired (e.g. resolved while pending): nothing to undo
        row = self.notification(connection, route, channel, change, event, now)
        if hold:  # a late firing: if the same backfill resolves it, it is skipped unsent
            row["not_before"] = max(
                row["not_before"], now + timedelta(seconds=self.settings.late_hold_s)
            )
        return row

    def notification(
        self,
        connection: Connection,
        route: RouteSettings,
        channel: str,
        change: StoredChange,
        event: str,
        now: datetime,
        number: int = 0,
    ) -> dict[str, Any]:
        title, body = render(change.table, change.row, event, self.topic_prefix, self.public_url)
        severity = change.row.get("severity")
        return self._row(
            dedup_key=_notice_key(route, channel, change, event, number),
            channel=channel,
            route=route.name,
            event=event,
            ref=(change.table, change.id),
            severity=severity,
            topic=None,
            title=title,
            body=body,
            now=now,
            not_before=self._not_before(connection, route, channel, severity, now),
        )

    def digest(
        self, connection: Connection, route: RouteSettings, title: str, body: str
    ) -> list[dict[str, Any]]:
        """Outbox rows for a route's digest, one per channel, at most one per minute."""
        now = self.clock.now()
        rows = [
            self._row(
                dedup_key=f"{route.name}/{channel}/digest/{now:%Y-%m-%dT%H:%M}",
                channel=channel,
                route=route.name,
                event="digest",
                ref=(None, None),
                severity=None,
                topic=None,
                title=title,
                body=body,
                now=now,
                not_before=now,
            )
            for channel in route.channels
        ]
        self._insert(connection, rows)
        return rows

    def schedule_repeats(self, connection: Connection) -> int:
        """Re-notify firing, unacknowledged alerts whose `repeat_s` has passed since they were
        last told on a route and channel (and nothing for them is still waiting there)."""
        if not self.routes:
            return 0
        now = self.clock.now()
        told = _told(connection)
        if not told:
            return 0
        alerts = connection.execute(
            select(alert_table).where(alert_table.c.id.in_(sorted({id for id, _, _ in told})))
        ).mappings()
        rows: list[dict[str, Any]] = []
        for alert in alerts:
            for (alert_id, route_name, channel), (last, waiting, number) in told.items():
                if alert_id != alert["id"]:
                    continue
                route = self.routes.get(route_name)
                due = last + timedelta(seconds=float(alert["repeat_s"]))
                if route is None or waiting or due > now:
                    continue
                change = StoredChange("alert", int(alert["id"]), False, _friendly(alert))
                rows.append(
                    self.notification(connection, route, channel, change, "repeat", now, number)
                )
        self._insert(connection, rows)
        if rows:
            log.info("notify_repeats_scheduled", count=len(rows))
        return len(rows)

    def _not_before(
        self,
        connection: Connection,
        route: RouteSettings,
        channel: str,
        severity: str | None,
        now: datetime,
    ) -> datetime:
        """When a row may go: after quiet hours (unless critical), with its route's group."""
        not_before = now
        if severity != "critical":
            not_before = quiet_until(route, now) or now
        if route.group_window_s <= 0 or not_before > now:
            return not_before
        window = timedelta(seconds=route.group_window_s)
        open_group = connection.scalar(
            select(func.min(outbox_table.c.not_before)).where(
                outbox_table.c.route == route.name,
                outbox_table.c.channel == channel,
                outbox_table.c.status == "pending",
                outbox_table.c.event != "digest",
                outbox_table.c.not_before > now,
                outbox_table.c.not_before <= now + window,
            )
        )
        return open_group if open_group is not None else now + window

    def _row(
        self,
        *,
        dedup_key: str,
        channel: str,
        route: str,
        event: str,
        ref: tuple[str | None, int | None],
        severity: str | None,
        topic: str | None,
        title: str,
        body: str,
        now: datetime,
        not_before: datetime,
    ) -> dict[str, Any]:
        return {
            "dedup_key": dedup_key,
            "channel": channel,
            "route": route,
            "event": event,
            "ref_table": ref[0],
            "ref_id": ref[1],
            "severity": severity,
            "topic": topic,
            "title": title,
            "body": body,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "not_before": not_before,
            "last_error": "",
        }

    @staticmethod
    def _insert(connection: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert rows; one whose dedup key exists already (a replayed batch) is left out."""
        if not rows:
            return
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(outbox_table).on_conflict_do_nothing(
            index_elements=[outbox_table.c.dedup_key]
        )
        connection.execute(statement, rows)

    # -- the sender's side ----------------------------------------------------------------------

    def claim_due(self, connection: Connection, limit: int = 100) -> list[Due]:
        """Claim due pending rows for `claim_s` seconds, oldest first (one sender per row)."""
        now = self.clock.now()
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
            .values(
                claimed_until=now + timedelta(seconds=self.settings.claim_s),
                claimed_by=self.owner,
            )
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

    def backlog(self, connection: Connection) -> int:
        """Rows still to send (pending, due now or later): the `outbox_backlog` gauge."""
        found = connection.execute(
            select(func.count()).select_from(outbox_table).where(outbox_table.c.status == "pending")
        )
        return int(found.scalar_one())

    def alert_statuses(self, connection: Connection, ids: Iterable[int]) -> dict[int, str]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        found = connection.execute(
            select(alert_table.c.id, alert_table.c.status).where(alert_table.c.id.in_(wanted))
        )
        return {int(id): str(status) for id, status in found}

    def mark_sent(self, connection: Connection, ids: Sequence[int]) -> None:
        now = self.clock.now()
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

    def mark_skipped(self, connection: Connection, ids: Sequence[int], reason: str) -> None:
        connection.execute(
            update(outbox_table)
            .where(outbox_table.c.id.in_(ids))
            .values(status="skipped", claimed_until=None, last_error=reason)
        )

    def mark_failed(
        self, connection: Connection, ids: Sequence[int], error: str, retry_at: datetime | None
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

    def release_own_claims(self, connection: Connection) -> int:
        """At start: rows this agent claimed before it stopped or was killed are free again."""
        result = connection.execute(
            update(outbox_table)
            .where(outbox_table.c.claimed_by == self.owner, outbox_table.c.status == "pending")
            .values(claimed_until=None)
        )
        return int(result.rowcount or 0)

    def release(self, connection: Connection, ids: Sequence[int]) -> None:
        """Give claimed rows back untried (e.g. MQTT is not connected right now)."""
        connection.execute(
            update(outbox_table).where(outbox_table.c.id.in_(ids)).values(claimed_until=None)
        )


def _event(change: StoredChange) -> str | None:
    """What a change tells people: an alert firing or resolved, an action opened."""
    status = change.row.get("status")
    if change.table == "alert":
        return status if status in ("firing", "resolved") else None
    return "opened" if change.created and status == "open" else None


def _notice_key(
    route: RouteSettings, channel: str, change: StoredChange, event: str, number: int = 0
) -> str:
    suffix = f"/{number}" if number else ""
    return f"{route.name}/{channel}/{change.table}/{change.id}/{event}{suffix}"


def _existing_keys(connection: Connection, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start : start + _KEYS_PER_QUERY]
        statement = select(outbox_table.c.dedup_key).where(outbox_table.c.dedup_key.in_(chunk))
        found.update(connection.scalars(statement))
    return found


def _was_sent(connection: Connection, alert_id: int, route: RouteSettings, channel: str) -> bool:
    """Whether this alert's firing message has gone out on the route and channel."""
    found = connection.scalar(
        select(func.count())
        .select_from(outbox_table)
        .where(
            outbox_table.c.ref_table == "alert",
            outbox_table.c.ref_id == alert_id,
            outbox_table.c.route == route.name,
            outbox_table.c.channel == channel,
            outbox_table.c.event == "firing",
            outbox_table.c.status == "sent",
        )
    )
    return bool(found)


def _as_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return None


def _was_told(connection: Connection, alert_id: int, route: RouteSettings, channel: str) -> bool:
    """Whether this alert's firing went (or is going) out on the route and channel."""
    found = connection.scalar(
        select(func.count())
        .select_from(outbox_table)
        .where(
            outbox_table.c.ref_table == "alert",
            outbox_table.c.ref_id == alert_id,
            outbox_table.c.route == route.name,
            outbox_table.c.channel == channel,
            outbox_table.c.event == "firing",
        )
    )
    return bool(found)


Told = dict[tuple[int, str, str], tuple[datetime, bool, int]]


def _told(connection: Connection) -> Told:
    """For firing alerts with a repeat interval, per (alert, route, channel): when the alert
    was last told, whether a message still waits, and the number the next repeat gets. One
    query, whatever the number of alerts."""
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
    told: Told = {}
    for alert_id, route, channel, status, created_at in rows:
        key = (int(alert_id), route, channel)
        last, waiting, number = told.get(key, (created_at, False, 0))
        told[key] = (max(last, created_at), waiting or status == "pending", number + 1)
    return told


def _friendly(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        str(name): value.isoformat() if isinstance(value, datetime) else value
        for name, value in row.items()
    }
