"""The outbox: what must be delivered, written in the transaction that stored its cause.

`Outbox.on_changes` is the store's change hook: it turns stored alerts and actions into outbox
rows (MQTT publications and routed notifications). Repeats and digests are added here too; the
sender (`sender.py`) claims due rows and records how each delivery went.

This is the facade: what to notify is decided by the pure `policy.Policy`, the rows are kept by
the SQL in `queue.py`; the clock is read here and passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import structlog
from sqlalchemy import Connection

from agent.app.clock import Clock
from agent.config import NotifySettings, RouteSettings
from agent.model import NotifyDecision, PublishDecision
from agent.notify import queue
from agent.notify.policy import Policy, Row
from agent.notify.queue import Due, SqlLedger
from agent.store.repository import StoredChange

log = structlog.get_logger(__name__)


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
        self.policy = Policy(settings, topic_prefix, public_url)
        self.routes: dict[str, RouteSettings] = self.policy.routes

    @property
    def active(self) -> bool:
        """Whether anything is ever written (MQTT publications or at least one route)."""
        return self.policy.active

    # -- writing, inside the caller's transaction -----------------------------------------------

    def on_changes(self, connection: Connection, changes: Sequence[StoredChange]) -> None:
        """The store's change hook: outbox rows for what `changes` made new or different.

        What the policy asks about resolved alerts' firings is read up front, in one query per
        500 alerts (a storm that ends resolves thousands at once)."""
        ledger = SqlLedger(connection)
        ledger.know_alerts(
            change.id
            for change in changes
            if change.table == "alert" and change.row.get("status") == "resolved"
        )
        rows = self.policy.on_changes(ledger, changes, self.clock.now())
        queue.insert(connection, rows)

    def on_decisions(
        self, connection: Connection, decisions: Sequence[PublishDecision | NotifyDecision]
    ) -> None:
        """Outbox rows for rules' `publish` and `notify` actions, in the decision's transaction.

        They are sent by the sender like any other row: retried, and never lost to a crash
        between the commit and the send.
        """
        rows = self.policy.on_decisions(SqlLedger(connection), decisions, self.clock.now())
        queue.insert(connection, rows)

    def notification(
        self,
        connection: Connection,
        route: RouteSettings,
        channel: str,
        change: StoredChange,
        event: str,
        now: datetime,
        number: int = 0,
    ) -> Row:
        """The row telling a route's channel about `change` (not inserted)."""
        ledger = SqlLedger(connection)
        return self.policy.notification(ledger, route, channel, change, event, now, number)

    def digest(
        self, connection: Connection, route: RouteSettings, title: str, body: str
    ) -> list[Row]:
        """Outbox rows for a route's digest, one per channel, at most one per minute."""
        rows = self.policy.digest(route, title, body, self.clock.now())
        queue.insert(connection, rows)
        return rows

    def schedule_repeats(self, connection: Connection) -> int:
        """Re-notify firing, unacknowledged alerts whose `repeat_s` has passed since they were
        last told on a route and channel (and nothing for them is still waiting there)."""
        if not self.routes:
            return 0
        now = self.clock.now()
        told = queue.told(connection)
        if not told:
            return 0
        alerts = queue.alerts(connection, (alert_id for alert_id, _, _ in told))
        rows = self.policy.repeats(SqlLedger(connection), told, alerts, now)
        queue.insert(connection, rows)
        if rows:
            log.info("notify_repeats_scheduled", count=len(rows))
        return len(rows)

    # -- the sender's side ----------------------------------------------------------------------

    def claim_due(self, connection: Connection, limit: int = 100) -> list[Due]:
        """Claim due pending rows for `claim_s` seconds, oldest first (one sender per row)."""
        now = self.clock.now()
        return queue.claim_due(connection, now, self.settings.claim_s, self.owner, limit)

    def backlog(self, connection: Connection) -> int:
        """Rows still to send (pending, due now or later): the `outbox_backlog` gauge."""
        return queue.backlog(connection)

    def alert_statuses(self, connection: Connection, ids: Iterable[int]) -> dict[int, str]:
        return queue.alert_statuses(connection, ids)

    def mark_sent(self, connection: Connection, ids: Sequence[int]) -> None:
        queue.mark_sent(connection, ids, self.clock.now())

    def mark_skipped(self, connection: Connection, ids: Sequence[int], reason: str) -> None:
        queue.mark_skipped(connection, ids, reason)

    def mark_failed(
        self, connection: Connection, ids: Sequence[int], error: str, retry_at: datetime | None
    ) -> None:
        """One failed attempt: try again at `retry_at`, or give up (`failed`) when None."""
        queue.mark_failed(connection, ids, error, retry_at)

    def release_own_claims(self, connection: Connection) -> int:
        """At start: rows this agent claimed before it stopped or was killed are free again."""
        return queue.release_claims_of(connection, self.owner)

    def release(self, connection: Connection, ids: Sequence[int]) -> None:
        """Give claimed rows back untried (e.g. MQTT is not connected right now)."""
        queue.release(connection, ids)
