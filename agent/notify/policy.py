"""What to notify: the outbox's policy, free of SQL (the queue, `queue.py`, stores its answers).

The stages, named after Alertmanager's notify pipeline (`notify/notify.go`):

- **news** (`event_of`): which stored changes tell people something (an alert firing or
  resolved, an action opened); count bumps of an open row are not news.
- **routing** (`RoutingStage`): the routes whose filters match, each fanned out to its channels;
  `send_resolved` drops resolutions on routes that do not want them.
- **late episodes** (a `MuteStage` of our own): an alert that fired from late data is held for
  `late_hold_s`; if it resolved from the same late data before its firing went out, the page is
  skipped and one summary line per route and channel says what happened instead.
- **dedup** (`DedupStage`): one row per dedup key, and no resolution for a firing never told.
- **quiet hours and group windows** (`TimeMuteStage`, `WaitStage`): when a row may go.
- **repeats** (`DedupStage`'s repeat interval): firing, unacknowledged alerts told too long ago.
- **rendering**: the row's title and body (`message.py`).

What the policy must know about rows already queued comes through a `Ledger` (the queue's SQL
in the daemon, a dict in unit tests); time is passed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

import structlog

from agent.config import NotifySettings, RouteSettings
from agent.decisions.report import record
from agent.model import NotifyDecision, PublishDecision
from agent.notify.message import render
from agent.notify.routes import matching, quiet_until, subject_of

log = structlog.get_logger(__name__)

MQTT = "mqtt"
# Events whose message says "this is firing": repeats look back at these.
FIRING_EVENTS = ("firing", "repeat")

Row = dict[str, Any]  # one outbox row, as inserted


class Change(Protocol):
    """A stored alert or action and what happened to it (the store's `StoredChange`)."""

    @property
    def table(self) -> str: ...
    @property
    def id(self) -> int: ...
    @property
    def created(self) -> bool: ...
    @property
    def row(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Changed:
    """A `Change` the policy makes itself (an alert due for a repeat)."""

    table: str
    id: int
    created: bool
    row: Mapping[str, Any]


class Ledger(Protocol):
    """What the policy asks about rows already in the outbox."""

    def existing_keys(self, keys: list[str]) -> set[str]:
        """The dedup keys among `keys` that have a row already."""
        ...

    def was_sent(self, alert_id: int, route: str, channel: str) -> bool:
        """Whether the alert's firing message has gone out on the route and channel."""
        ...

    def was_told(self, alert_id: int, route: str, channel: str) -> bool:
        """Whether the alert's firing went (or is going) out on the route and channel."""
        ...

    def open_group(
        self, route: str, channel: str, now: datetime, window: timedelta
    ) -> datetime | None:
        """The earliest `not_before` of a pending, non-digest row waiting on the route and
        channel within (now, now + window], or None."""
        ...


@dataclass(frozen=True, slots=True)
class Told:
    """An alert's past on one route and channel: when it was last told, whether a message
    still waits, and the number the next repeat gets."""

    last: datetime
    waiting: bool
    number: int


TellKey = tuple[int, str, str]  # (alert id, route, channel)


def told_from(rows: Iterable[tuple[int, str, str, str, datetime]]) -> dict[TellKey, Told]:
    """Fold (alert id, route, channel, status, created_at) of firing and repeat rows."""
    told: dict[TellKey, Told] = {}
    for alert_id, route, channel, status, created_at in rows:
        key = (int(alert_id), route, channel)
        before = told.get(key, Told(created_at, False, 0))
        told[key] = Told(
            max(before.last, created_at), before.waiting or status == "pending", before.number + 1
        )
    return told


class Policy:
    """Turns changes, decisions, digests and the clock into outbox rows; writes nothing."""

    def __init__(self, settings: NotifySettings, topic_prefix: str, public_url: str = "") -> None:
        self.settings = settings
        self.topic_prefix = topic_prefix
        self.public_url = public_url
        self.routes: dict[str, RouteSettings] = {route.name: route for route in settings.routes}

    @property
    def active(self) -> bool:
        """Whether anything is ever written (MQTT publications or at least one route)."""
        return self.settings.publish_mqtt or bool(self.settings.routes)

    # -- stored changes -------------------------------------------------------------------------

    def on_changes(self, ledger: Ledger, changes: Sequence[Change], now: datetime) -> list[Row]:
        """Rows for what `changes` made new or different.

        Most changes are repeats of an open row, already told: their keys are looked up in one
        query first, so only news is rendered.
        """
        wanted: dict[str, Callable[[], Row | None]] = {}
        past: dict[tuple[str, str], list[Change]] = {}  # late episodes over, per route
        for change in changes:
            if self.settings.publish_mqtt:
                key = f"{MQTT}/{change.table}/{change.id}/{change.row['status']}"
                wanted.setdefault(key, partial(self.publication, key, change, now))
            event = event_of(change)
            if event is None or not self.routes:
                continue
            late = event in ("firing", "resolved") and self.is_late(change.row, event, now)
            for route in matching(self.settings.routes, subject_of(change.table, change.row)):
                if event == "resolved" and not route.send_resolved:
                    continue
                quiet = late and route.late_episodes == "digest"
                for channel in route.channels:
                    told = quiet and event == "resolved"
                    if told and not ledger.was_sent(change.id, route.name, channel):
                        # Began and ended in late data: its firing is held and now skipped;
                        # one summary line instead of a page.
                        past.setdefault((route.name, channel), []).append(change)
                        continue
                    key = notice_key(route, channel, change, event)
                    hold = quiet and event == "firing"
                    build = partial(self._notice, ledger, route, channel, change, event, now, hold)
                    wanted.setdefault(key, build)
        known = ledger.existing_keys(list(wanted))
        rows = [build() for key, build in wanted.items() if key not in known]
        rows += [late_summary(self.routes[r], c, over, now) for (r, c), over in past.items()]
        return [row for row in rows if row is not None]

    def is_late(self, row: Mapping[str, Any], event: str, now: datetime) -> bool:
        """Whether an alert fired (or resolved) from late data: long before it is stored (or,
        for a firing, marked `late` by the core, which saw how late its readings arrived)."""
        if event == "firing" and row.get("late") is True:
            return True
        at = as_time(row.get("resolved_at" if event == "resolved" else "first_seen"))
        return at is not None and (now - at).total_seconds() > self.settings.late_after_s

    def publication(self, key: str, change: Change, now: datetime) -> Row:
        """The MQTT publication of a status a row reaches."""
        row = change.row
        rec = record(change.table, dict(row))
        rec["previous_id"] = row.get("previous_id")
        folder = "alerts" if change.table == "alert" else "actions"
        return outbox_row(
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
        ledger: Ledger,
        route: RouteSettings,
        channel: str,
        change: Change,
        event: str,
        now: datetime,
        hold: bool = False,
    ) -> Row | None:
        if event == "resolved" and not ledger.was_told(change.id, route.name, channel):
            return None  # never told it fired (e.g. resolved while pending): nothing to undo
        row = self.notification(ledger, route, channel, change, event, now)
        if hold:  # a late firing: if the same backfill resolves it, it is skipped unsent
            row["not_before"] = max(
                row["not_before"], now + timedelta(seconds=self.settings.late_hold_s)
            )
        return row

    def notification(
        self,
        ledger: Ledger,
        route: RouteSettings,
        channel: str,
        change: Change,
        event: str,
        now: datetime,
        number: int = 0,
    ) -> Row:
        """The message telling a route's channel about an alert or action."""
        title, body = render(change.table, change.row, event, self.topic_prefix, self.public_url)
        severity = change.row.get("severity")
        return outbox_row(
            dedup_key=notice_key(route, channel, change, event, number),
            channel=channel,
            route=route.name,
            event=event,
            ref=(change.table, change.id),
            severity=severity,
            topic=None,
            title=title,
            body=body,
            now=now,
            not_before=send_after(ledger, route, channel, severity, now),
        )

    # -- rules' actions, digests and repeats ----------------------------------------------------

    def on_decisions(
        self,
        ledger: Ledger,
        decisions: Sequence[PublishDecision | NotifyDecision],
        now: datetime,
    ) -> list[Row]:
        """Rows for rules' `publish` and `notify` actions."""
        rows: list[Row] = []
        for decision in decisions:
            at = decision.at.isoformat()
            if isinstance(decision, PublishDecision):
                rows.append(
                    outbox_row(
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
                    outbox_row(
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
                        not_before=send_after(ledger, route, channel, decision.severity, now),
                    )
                )
        return rows

    def digest(self, route: RouteSettings, title: str, body: str, now: datetime) -> list[Row]:
        """A route's digest, one row per channel, at most one per minute."""
        return [
            outbox_row(
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

    def repeats(
        self,
        ledger: Ledger,
        told: Mapping[TellKey, Told],
        alerts: Iterable[Mapping[Any, Any]],
        now: datetime,
    ) -> list[Row]:
        """Repeats for firing, unacknowledged alerts whose `repeat_s` has passed since they were
        last told on a route and channel (and nothing for them is still waiting there)."""
        rows: list[Row] = []
        for alert in alerts:
            for (alert_id, route_name, channel), past in told.items():
                if alert_id != alert["id"]:
                    continue
                route = self.routes.get(route_name)
                due = past.last + timedelta(seconds=float(alert["repeat_s"]))
                if route is None or past.waiting or due > now:
                    continue
                change = Changed("alert", int(alert["id"]), False, friendly(alert))
                rows.append(
                    self.notification(ledger, route, channel, change, "repeat", now, past.number)
                )
        return rows


def event_of(change: Change) -> str | None:
    """What a change tells people: an alert firing or resolved, an action opened."""
    status = change.row.get("status")
    if change.table == "alert":
        return status if status in ("firing", "resolved") else None
    return "opened" if change.created and status == "open" else None


def notice_key(
    route: RouteSettings, channel: str, change: Change, event: str, number: int = 0
) -> str:
    suffix = f"/{number}" if number else ""
    return f"{route.name}/{channel}/{change.table}/{change.id}/{event}{suffix}"


def send_after(
    ledger: Ledger, route: RouteSettings, channel: str, severity: str | None, now: datetime
) -> datetime:
    """When a row may go: after quiet hours (unless critical), with its route's group."""
    start = now
    if severity != "critical":
        start = quiet_until(route, now) or now
    if route.group_window_s <= 0 or start > now:
        return start
    window = timedelta(seconds=route.group_window_s)
    open_group = ledger.open_group(route.name, channel, now, window)
    return open_group if open_group is not None else now + window


def late_summary(route: RouteSettings, channel: str, over: Sequence[Change], now: datetime) -> Row:
    """One message for the episodes that began and ended in late data."""
    lines = []
    for change in over:
        row = change.row
        began, ended = as_time(row.get("first_seen")), as_time(row.get("resolved_at"))
        span = f"{began:%Y-%m-%d %H:%M}-{ended:%H:%M} UTC" if began and ended else ""
        lines.append(
            f"- #{change.id} {row['severity']} {row['subject']}: {row['message']} ({span})"
        )
    ids = [change.id for change in over]
    return outbox_row(
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


def outbox_row(
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
) -> Row:
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


def as_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return None


def friendly(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row with its datetimes as ISO strings, as the store hands changes to hooks."""
    return {
        str(name): value.isoformat() if isinstance(value, datetime) else value
        for name, value in row.items()
    }
